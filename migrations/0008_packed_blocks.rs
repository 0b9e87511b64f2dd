//! Version 8: a group commit packs the small blocks it writes (one room's events of the group)
//! into its commit record, now numbered by part (`c commitNo part`), and the writer copies them
//! under their own keys behind the committer (see the store's `commit_record` module); a crash
//! before that leaves them only in the commit record, and the next open writes them.
//!
//! Nothing is rewritten: a commit record of version 7 (format byte 1, the ranges only, under
//! `c commitNo`) is read as ranges written directly, and open's recovery derives its statuses and
//! ids from the tree as before. The step only raises the version, so that a build of version 7,
//! which would take a packed commit record for corrupt and lose its blocks, refuses the store.

use crate::store::StoreError;

/// Nothing to do (see the module comment); safe to re-run.
pub(super) fn apply(_db: &sled::Db) -> Result<(), StoreError> {
    Ok(())
}
