//! Reading records from the tree: events, photo statuses and room heads, decoded and checked.
//! The lowest layer of the store beside `keys`, `codec` and `records`; every other store module
//! reads through it.

use std::collections::HashSet;
use std::sync::Mutex;

use super::StoreError;
use super::block;
use super::codec;
use super::keys;
use super::records::{StatusRecord, StoredEvent};
use super::unwritten::Unwritten;
use crate::domain::{PhotoId, PhotoStatus};
use crate::telemetry::{ErrorChain, metric};

/// Corrupt records remembered by key (so that each is logged and counted once); past this many,
/// each new meeting is logged and counted again.
const CORRUPT_REMEMBERED: usize = 10_000;

/// The corrupt records a store has met since it was opened (docs/protocol.md, "Faults"): each
/// is logged once with its room and seq, counted in `store_corrupt_records_total`, and skipped by
/// whoever met it (replay, history, prune, open).
#[derive(Debug, Default)]
pub(super) struct Corruption(Mutex<HashSet<Vec<u8>>>);

impl Corruption {
    /// Reports the corrupt record at `key`.
    pub fn report(&self, key: &[u8], error: &StoreError) {
        {
            let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
            if seen.contains(key) {
                return;
            }
            if seen.len() < CORRUPT_REMEMBERED {
                seen.insert(key.to_vec());
            }
        }
        metrics::counter!(metric::STORE_CORRUPT_RECORDS_TOTAL).increment(1);
        match keys::parse_event(key) {
            Some((room, seq)) => tracing::warn!(
                room,
                seq,
                error = %ErrorChain(error),
                "skipping a corrupt event record"
            ),
            None => tracing::warn!(
                key = %keys::display(key),
                error = %ErrorChain(error),
                "skipping a corrupt record"
            ),
        }
    }

    /// How many distinct corrupt records were met.
    pub fn count(&self) -> usize {
        self.0.lock().map(|seen| seen.len()).unwrap_or(0)
    }
}

/// The events of the block at `key`, or none (reported to `corruption`) when it does not decode.
pub(super) fn readable_events(
    key: &[u8],
    value: &[u8],
    corruption: &Corruption,
) -> Vec<StoredEvent> {
    match block::decode(key, value) {
        Ok(block) => block.events,
        Err(error) => {
            corruption.report(key, &error);
            Vec::new()
        }
    }
}

/// The stored event at `seq` in `room`: read from the block holding it (the first block whose
/// key is at or after the seq's). `None` when it is not kept or its block does not decode
/// (reported to `corruption`).
pub(super) fn event_at(
    db: &sled::Db,
    room: &str,
    seq: u64,
    corruption: &Corruption,
) -> Result<Option<StoredEvent>, StoreError> {
    let Some(entry) = db
        .range(keys::event(room, seq)..keys::after_room(room))
        .next()
    else {
        return Ok(None);
    };
    let (key, value) = entry?;
    Ok(readable_events(&key, &value, corruption)
        .into_iter()
        .find(|event| event.seq == seq))
}

/// The head of `room` as stored: its last event's seq (the key of its last block), or the head record retention leaves when
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

/// The head of `room` counting the blocks not in the tree yet: read from memory first, so that a
/// block the writer moves into the tree meanwhile is counted either way.
pub(super) fn durable_head(
    db: &sled::Db,
    unwritten: &Unwritten,
    room: &str,
) -> Result<u64, StoreError> {
    let pending = unwritten.head(room).unwrap_or(0);
    Ok(stored_head(db, room)?.max(pending))
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
