//! The event-id index: where each stored event id lives, so that an event whose id is already
//! stored is recognised instead of stored again, across restarts, for as long as the event is
//! kept.
//!
//! Only the ids producers give are indexed: an id the hub generated (128 random bits) is unique
//! by construction, one derived from a JetStream message's position is recognised by the
//! consumed position stored with its event, and indexing either would cost about as much as
//! storing the event (docs/protocol.md, "Idempotency"). The index is an `i <eventId>` record per id (its rooms and seqs, the photo room first),
//! written behind the committer by the derived-state writer, in the same batch that retires the
//! group's commit record: a record per event in the durable group commit would cost about as much
//! as the event itself. Until the writer has written them, a flushed group's ids are in
//! [`IdIndex`]'s memory (bounded by what the writer has not caught up with); after a crash, the
//! commit records still present name exactly the events whose ids may be missing, and opening
//! derives them again. Every answer is checked against the event record it names, so an entry
//! for a pruned event never answers. Nothing is scanned at open, and memory does not grow with
//! the history.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::StoreError;
use super::codec;
use super::keys;
use super::tree::{Corruption, event_at};
use crate::domain::{EventId, Room};

/// Entries the memory of unwritten ids keeps room for once it is empty.
pub(super) const KEPT_CAPACITY: usize = 4096;

/// The stored value of an `i` record: `(room, seq)` pairs, the photo room first.
pub(super) type PlacementRecord = Vec<(String, u64)>;

/// Ids of flushed groups that the writer has not written yet.
pub(super) struct IdIndex {
    recent: Mutex<HashMap<EventId, Vec<(Room, u64)>>>,
    /// Where event records that do not decode are reported.
    corruption: Arc<Corruption>,
}

impl IdIndex {
    /// An empty index reporting corrupt event records to `corruption`.
    pub fn new(corruption: Arc<Corruption>) -> Self {
        Self {
            recent: Mutex::default(),
            corruption,
        }
    }

    fn recent(&self) -> MutexGuard<'_, HashMap<EventId, Vec<(Room, u64)>>> {
        self.recent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes the ids of a flushed group known, until the writer has written them.
    pub fn add_recent(&self, ids: &[(EventId, Vec<(Room, u64)>)]) {
        let mut recent = self.recent();
        for (id, placement) in ids {
            recent.insert(id.clone(), placement.clone());
        }
    }

    /// Forgets written ids from memory (and, once none is left, the room a burst made).
    pub fn settle(&self, written: &[(EventId, Vec<(Room, u64)>)]) {
        let mut recent = self.recent();
        for (id, _) in written {
            recent.remove(id);
        }
        if recent.is_empty() {
            recent.shrink_to(KEPT_CAPACITY);
        }
    }

    /// Where `id` is stored, checked against the event records.
    pub fn lookup(
        &self,
        db: &sled::Db,
        id: &EventId,
    ) -> Result<Option<Vec<(Room, u64)>>, StoreError> {
        let recent = self.recent().get(id).cloned();
        let candidates = match recent {
            Some(placement) => placement,
            None => match read(db, id.as_str())? {
                Some(placement) => placement,
                None => return Ok(None),
            },
        };
        let mut kept = Vec::with_capacity(candidates.len());
        for (room, seq) in candidates {
            // A corrupt record is not this event any more: the id counts as not stored there.
            if event_at(db, &room.to_string(), seq, &self.corruption)?.is_some_and(|e| e.id == *id)
            {
                kept.push((room, seq));
            }
        }
        Ok(if kept.is_empty() { None } else { Some(kept) })
    }
}

/// The placements an `i` record holds for `id`.
fn read(db: &sled::Db, id: &str) -> Result<Option<Vec<(Room, u64)>>, StoreError> {
    let key = keys::id(id);
    let Some(bytes) = db.get(&key)? else {
        return Ok(None);
    };
    let record: PlacementRecord = codec::decode(&key, &bytes)?;
    record
        .into_iter()
        .map(|(room, seq)| {
            room.parse::<Room>()
                .map(|room| (room, seq))
                .map_err(|_| StoreError::Corrupt {
                    key: keys::display(&key),
                    reason: format!("invalid room name `{room}`"),
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The encoded `i` record of a placement, the photo room first.
pub(super) fn encode(placement: &[(Room, u64)]) -> Result<Vec<u8>, StoreError> {
    let mut record: PlacementRecord = placement
        .iter()
        .map(|(room, seq)| (room.to_string(), *seq))
        .collect();
    record.sort_by_key(|(room, _)| !room.starts_with("photo:"));
    codec::encode(&record)
}

/// Adds `(room, seq)` to the stored record of `id` (recovery after a crash). Idempotent.
pub(super) fn add_placement(
    db: &sled::Db,
    id: &str,
    room: &Room,
    seq: u64,
) -> Result<(), StoreError> {
    let mut placement = read(db, id)?.unwrap_or_default();
    if placement.iter().any(|(r, s)| r == room && *s == seq) {
        return Ok(());
    }
    placement.push((room.clone(), seq));
    db.insert(keys::id(id), encode(&placement)?)?;
    Ok(())
}

/// Stages the removal of `(room, seq)` from the record of `id` (its event is being pruned) into
/// `batch`; the record goes when no placement is left.
pub(super) fn forget_placement(
    db: &sled::Db,
    batch: &mut sled::Batch,
    id: &str,
    room: &Room,
    seq: u64,
) -> Result<(), StoreError> {
    let Some(mut placement) = read(db, id)? else {
        return Ok(());
    };
    placement.retain(|(r, s)| !(r == room && *s == seq));
    if placement.is_empty() {
        batch.remove(keys::id(id));
    } else {
        batch.insert(keys::id(id), encode(&placement)?);
    }
    Ok(())
}
