//! Version 6: a group commit writes the events it stores in a room as one block record, under
//! the key of the block's last seq (see the store's `block` module), and ids the hub generated
//! are no longer written to the id index (docs/protocol.md, "Idempotency").
//!
//! Nothing is rewritten: a single-event record of version 5 (format byte 1) is read as a block of
//! one event under the key of its seq, and the id records already written stay valid. The step
//! only raises the version, so that a build of version 5, which cannot read blocks, refuses the
//! store instead of misreading it.

use crate::store::StoreError;

/// Nothing to do (see the module comment); safe to re-run.
pub(super) fn apply(_db: &sled::Db) -> Result<(), StoreError> {
    Ok(())
}
