//! Version 3: the event-id index moves into memory (rebuilt from the event records at open), so
//! the `i eventId` records of version 2 are removed. Writing one per event cost about as much as
//! the event itself on the append path. Safe to re-run: it only deletes.

use crate::store::StoreError;
use crate::store::keys;

/// Removes every `i` record, in batches of 10,000.
pub(super) fn apply(db: &sled::Db) -> Result<(), StoreError> {
    let mut batch = sled::Batch::default();
    let mut pending = 0;
    for key in db.scan_prefix([keys::ID]).keys() {
        batch.remove(key?);
        pending += 1;
        if pending == 10_000 {
            db.apply_batch(std::mem::take(&mut batch))?;
            pending = 0;
        }
    }
    db.apply_batch(batch)?;
    Ok(())
}
