//! Version 2: the event-id index (`i eventId` -> rooms and seqs), so that an event whose id is
//! already stored is recognised instead of stored again. Built from the event records that a
//! version 1 store holds; safe to re-run after a crash (adding a placement is idempotent).

use crate::store::StoreError;
use crate::store::index::add_placement;
use crate::store::keys;
use crate::store::log::decode_event;

pub(super) fn apply(db: &sled::Db) -> Result<(), StoreError> {
    for entry in db.scan_prefix([keys::EVENT]) {
        let (key, value) = entry?;
        let event = decode_event(&key, &value)?;
        let (room, seq) = keys::parse_event(&key).ok_or_else(|| StoreError::Corrupt {
            key: keys::display(&key),
            reason: "malformed event key".into(),
        })?;
        add_placement(db, event.id.as_str(), room, seq)?;
    }
    Ok(())
}
