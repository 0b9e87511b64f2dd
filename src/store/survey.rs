//! A store-wide survey for operators (the support console's hub overview): how many rooms keep
//! events, and the oldest event kept. It visits rooms by jumping from one room's key range to the
//! next, reading one record per room, never every event. [`EventLog::record_bytes`] does read
//! every record: what the kept records hold, to set beside the size on disk.

use foldhash::HashMap;

use super::keys;
use super::records::StoredEvent;
use super::tree::readable_events;
use super::{EventLog, StoreError};
use crate::domain::{Room, Timestamp};

/// What the store keeps, in brief.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreSurvey {
    /// Rooms that keep at least one event.
    pub rooms: u64,
    /// The oldest kept event: the earliest of the rooms' first kept events.
    pub oldest: Option<OldestEvent>,
}

impl StoreSurvey {
    /// Counts a room that keeps events, whose first kept event is `first` (`None` when it does
    /// not decode). `key` names the room's record in errors.
    fn count(
        &mut self,
        key: &[u8],
        room: &str,
        first: Option<StoredEvent>,
    ) -> Result<(), StoreError> {
        self.rooms += 1;
        if let Some(event) = first
            && self
                .oldest
                .as_ref()
                .is_none_or(|oldest| event.timestamp < oldest.timestamp)
        {
            let room = room.parse().map_err(|_| StoreError::Corrupt {
                key: keys::display(key),
                reason: "invalid room name".into(),
            })?;
            self.oldest = Some(OldestEvent {
                room,
                seq: event.seq,
                timestamp: event.timestamp,
            });
        }
        Ok(())
    }
}

/// Where the oldest kept event is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldestEvent {
    /// Its room.
    pub room: Room,
    /// Its seq there.
    pub seq: u64,
    /// Its timestamp.
    pub timestamp: Timestamp,
}

/// The bytes (keys and values) of the records the store keeps, by kind: the data sled has to keep,
/// whatever its files take on disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordBytes {
    /// Event blocks.
    pub events: u64,
    /// Event-id index records.
    pub ids: u64,
    /// Everything else: heads, photo statuses, commit records, positions, metadata.
    pub other: u64,
}

impl RecordBytes {
    /// All kinds together.
    pub fn total(&self) -> u64 {
        self.events + self.ids + self.other
    }
}

impl EventLog {
    /// Adds up the keys and values of every record. Blocking, and it reads the whole tree: for
    /// benchmarks and diagnostics, not for a request path.
    pub fn record_bytes(&self) -> Result<RecordBytes, StoreError> {
        let mut bytes = RecordBytes::default();
        for entry in self.db().iter() {
            let (key, value) = entry?;
            let size = (key.len() + value.len()) as u64;
            match key.first() {
                Some(&keys::EVENT) => bytes.events += size,
                Some(&keys::ID | &keys::ID_RUN) => bytes.ids += size,
                _ => bytes.other += size,
            }
        }
        Ok(bytes)
    }

    /// Surveys the kept events. Blocking (one read per room): call it from a blocking thread.
    pub fn survey(&self) -> Result<StoreSurvey, StoreError> {
        let db = self.db();
        let mut survey = StoreSurvey::default();
        // Rooms whose events are all in memory still (read first: a block the writer moves
        // meanwhile is then found in the tree).
        let mut unwritten: HashMap<String, Option<StoredEvent>> = self
            .unwritten()
            .rooms(self.corruption())
            .into_iter()
            .collect();
        let mut from = vec![keys::EVENT];
        while let Some(entry) = db.range(from.clone()..).next() {
            let (key, value) = entry?;
            if key.first() != Some(&keys::EVENT) {
                break;
            }
            let (room, _) = keys::parse_event(&key).ok_or_else(|| StoreError::Corrupt {
                key: keys::display(&key),
                reason: "malformed event key".into(),
            })?;
            unwritten.remove(room);
            let event = readable_events(&key, &value, self.corruption())
                .into_iter()
                .next();
            survey.count(&key, room, event)?;
            from = keys::after_room(room);
        }
        for (room, event) in unwritten {
            survey.count(&keys::event_prefix(&room), &room, event)?;
        }
        Ok(survey)
    }
}
