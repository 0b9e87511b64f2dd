//! Reading records from the tree: events, photo statuses and room heads, decoded and checked.
//! The lowest layer of the store beside `keys`, `codec` and `records`; every other store module
//! reads through it.

use std::sync::Arc;

use super::StoreError;
use super::codec;
use super::keys;
use super::records::{EventRecord, StatusRecord, StoredEvent};
use crate::domain::{EventId, EventType, PhotoId, PhotoStatus, Timestamp};

/// The head of `room` as stored: its last event's seq, or the head record retention leaves when
/// it removes events (whichever is higher; 0 for a room that never had an event).
pub(super) fn stored_head(db: &sled::Db, room: &str) -> Result<u64, StoreError> {
    let key = keys::head(room);
    let recorded: u64 = match db.get(&key)? {
        Some(v) => codec::decode(&key, &v)?,
        None => 0,
    };
    let last = match db.scan_prefix(keys::event_prefix(room)).keys().next_back() {
        Some(key) => {
            let key = key?;
            keys::parse_event(&key)
                .ok_or_else(|| StoreError::Corrupt {
                    key: keys::display(&key),
                    reason: "malformed event key".into(),
                })?
                .1
        }
        None => 0,
    };
    Ok(recorded.max(last))
}

/// The stored status of a photo.
pub(super) fn read_status(
    db: &sled::Db,
    photo_id: &PhotoId,
) -> Result<Option<PhotoStatus>, StoreError> {
    let key = keys::status(photo_id.as_str());
    let Some(bytes) = db.get(&key)? else {
        return Ok(None);
    };
    let record: StatusRecord = codec::decode(&key, &bytes)?;
    record
        .into_status()
        .map(Some)
        .map_err(|reason| StoreError::Corrupt {
            key: keys::display(&key),
            reason: reason.into(),
        })
}

/// Decodes an event record read from `key`.
pub(super) fn decode_event(key: &[u8], value: &[u8]) -> Result<StoredEvent, StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        key: keys::display(key),
        reason: reason.into(),
    };
    let (_, seq) = keys::parse_event(key).ok_or_else(|| corrupt("malformed event key"))?;
    let record: EventRecord = codec::decode(key, value)?;
    Ok(StoredEvent {
        seq,
        id: EventId::parse(&record.id).map_err(|_| corrupt("invalid event id"))?,
        event_type: EventType::from_code(record.type_code)
            .ok_or_else(|| corrupt("unknown event type"))?,
        data: Arc::from(record.data),
        timestamp: Timestamp::from_millis(record.timestamp_ms),
    })
}
