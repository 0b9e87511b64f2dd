//! The event-id index, kept in memory: where each stored event id lives, so that an event whose
//! id is already stored is recognised instead of stored again.
//!
//! It is derived from the event records (each carries its id), so it is rebuilt by one scan at
//! open instead of being written: a record per event in the durable group commit would cost
//! about as much as the event itself. Entries are keyed by a 64-bit fingerprint of the id and
//! every answer is checked against the event record it names, so a fingerprint collision or an
//! entry for a pruned event can never answer for the wrong event. Memory: about 80 bytes per
//! stored event placement.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hasher};
use std::sync::{Mutex, MutexGuard};

use super::StoreError;
use super::keys;
use super::tree::decode_event;
use crate::domain::{EventId, Room};

/// Fingerprint -> placements `(room, seq)` of the ids with that fingerprint.
#[derive(Default)]
pub(super) struct IdIndex(Mutex<HashMap<u64, Vec<(Room, u64)>>>);

fn fingerprint(id: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    hasher.write(id.as_bytes());
    hasher.finish()
}

impl IdIndex {
    fn map(&self) -> MutexGuard<'_, HashMap<u64, Vec<(Room, u64)>>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Builds the index from every event record in the store.
    pub fn rebuild(db: &sled::Db) -> Result<Self, StoreError> {
        let index = IdIndex::default();
        {
            let mut map = index.map();
            for entry in db.scan_prefix([keys::EVENT]) {
                let (key, value) = entry?;
                let event = decode_event(&key, &value)?;
                let (room, _) = keys::parse_event(&key).ok_or_else(|| StoreError::Corrupt {
                    key: keys::display(&key),
                    reason: "malformed event key".into(),
                })?;
                let room = room.parse::<Room>().map_err(|_| StoreError::Corrupt {
                    key: keys::display(&key),
                    reason: "invalid room name".into(),
                })?;
                map.entry(fingerprint(event.id.as_str()))
                    .or_default()
                    .push((room, event.seq));
            }
        }
        Ok(index)
    }

    /// Records where a newly stored event lives.
    pub fn insert(&self, id: &EventId, placement: &[(Room, u64)]) {
        self.map()
            .entry(fingerprint(id.as_str()))
            .or_default()
            .extend(placement.iter().cloned());
    }

    /// Forgets one placement of `id` (its event was pruned).
    pub fn remove(&self, id: &str, room: &Room, seq: u64) {
        let mut map = self.map();
        let key = fingerprint(id);
        if let Some(places) = map.get_mut(&key) {
            places.retain(|(r, s)| !(r == room && *s == seq));
            if places.is_empty() {
                map.remove(&key);
            }
        }
    }

    /// Where `id` is stored, checked against the event records.
    pub fn lookup(
        &self,
        db: &sled::Db,
        id: &EventId,
    ) -> Result<Option<Vec<(Room, u64)>>, StoreError> {
        let candidates = match self.map().get(&fingerprint(id.as_str())) {
            Some(places) => places.clone(),
            None => return Ok(None),
        };
        let mut kept = Vec::with_capacity(candidates.len());
        for (room, seq) in candidates {
            let key = keys::event(&room.to_string(), seq);
            if let Some(value) = db.get(&key)?
                && decode_event(&key, &value)?.id == *id
            {
                kept.push((room, seq));
            }
        }
        Ok(if kept.is_empty() { None } else { Some(kept) })
    }
}
