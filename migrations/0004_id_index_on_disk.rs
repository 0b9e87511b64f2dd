//! Version 4: the event-id index goes back to disk, as version 2 had it (`i eventId` -> rooms
//! and seqs, the photo room first), now written behind the committer instead of in the group
//! commit. Version 3 rebuilt it in memory by scanning every event at open, so memory and start
//! time grew with the history. Version 3's event records have version 1's layout, so version 2's
//! builder applies unchanged; like it, this step is safe to re-run after a crash.

use crate::store::StoreError;

pub(super) fn apply(db: &sled::Db) -> Result<(), StoreError> {
    super::m0002_event_id_index::apply(db)
}
