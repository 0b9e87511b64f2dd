//! Version 2: the event-id index (`i eventId` -> rooms and seqs), so that an event whose id is
//! already stored is recognised instead of stored again. Built from the event records that a
//! version 1 store holds; safe to re-run after a crash (adding a placement is idempotent).

use crate::store::StoreError;
use crate::store::codec;
use crate::store::keys;
use crate::store::tree::decode_event;

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

/// Adds `(room, seq)` to the index record of `id`, keeping the photo room first. Idempotent.
fn add_placement(db: &sled::Db, id: &str, room: &str, seq: u64) -> Result<(), StoreError> {
    let key = keys::id(id);
    let mut placement: Vec<(String, u64)> = match db.get(&key)? {
        Some(bytes) => codec::decode(&key, &bytes)?,
        None => Vec::new(),
    };
    if placement.iter().any(|(r, s)| r == room && *s == seq) {
        return Ok(());
    }
    placement.push((room.to_owned(), seq));
    placement.sort_by_key(|(r, _)| !r.starts_with("photo:"));
    db.insert(key, codec::encode(&placement)?)?;
    Ok(())
}
