//! What the store keeps, and what an append answers.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::domain::{
    EventId, EventType, PhotoId, PhotoStatus, ProcessingState, Room, Timestamp, UserId,
};

/// The stored form of one event in one room up to schema version 5 (the room and seq are in the
/// key); such records still read as blocks of one event (see `block`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct EventRecord {
    pub id: String,
    pub type_code: u8,
    /// The event's `data` object as JSON text.
    pub data: String,
    /// The event's `timestamp` (the producer's, kept for display).
    pub timestamp_ms: i64,
    /// When the hub stored it, by its own clock: what retention's age reads (schema version 5).
    pub stored_ms: i64,
}

/// The stored form of a photo's status (the wire form, [`PhotoStatus`], has optional fields that
/// a non-self-describing encoding cannot skip).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct StatusRecord {
    pub photo_id: String,
    pub user_id: String,
    pub state: u8,
    pub progress: u8,
    pub last_type_code: u8,
    pub last_seq: u64,
    pub updated_at_ms: i64,
    pub error: Option<String>,
}

const STATES: [ProcessingState; 5] = [
    ProcessingState::Pending,
    ProcessingState::Processing,
    ProcessingState::Completed,
    ProcessingState::Failed,
    ProcessingState::Deleted,
];

impl From<&PhotoStatus> for StatusRecord {
    fn from(s: &PhotoStatus) -> Self {
        Self {
            photo_id: s.photo_id.to_string(),
            user_id: s.user_id.to_string(),
            state: STATES.iter().position(|x| *x == s.status).unwrap_or(0) as u8,
            progress: s.progress,
            last_type_code: s.last_event_type.code(),
            last_seq: s.last_seq,
            updated_at_ms: s.updated_at.millis(),
            error: s.error.clone(),
        }
    }
}

impl StatusRecord {
    /// The wire form, or what is invalid about the record.
    pub fn into_status(self) -> Result<PhotoStatus, &'static str> {
        Ok(PhotoStatus {
            photo_id: PhotoId::parse(&self.photo_id).map_err(|_| "invalid photo id")?,
            user_id: UserId::parse(&self.user_id).map_err(|_| "invalid user id")?,
            status: *STATES.get(self.state as usize).ok_or("unknown state")?,
            progress: self.progress,
            last_event_type: EventType::from_code(self.last_type_code)
                .ok_or("unknown event type")?,
            last_seq: self.last_seq,
            updated_at: Timestamp::from_millis(self.updated_at_ms),
            error: self.error,
        })
    }
}

/// Rooms and seq ranges `(room, first, last)` written by one group commit.
pub(super) type CommitRecord = Vec<(String, u64, u64)>;

/// An event read back from one room.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Its seq in the room it was read from.
    pub seq: u64,
    /// Its id.
    pub id: EventId,
    /// Whether the hub generated its id (such ids are not in the id index: docs/protocol.md,
    /// "Idempotency").
    pub id_generated: bool,
    /// Its type.
    pub event_type: EventType,
    /// Its `data` object as JSON text.
    pub data: Arc<str>,
    /// Its timestamp.
    pub timestamp: Timestamp,
    /// When the hub stored it (by its own clock; retention reads this).
    pub stored_at: Timestamp,
}

/// What an append answers for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The event's id.
    pub event_id: EventId,
    /// The rooms it is stored in, with its seq in each.
    pub rooms: Vec<(Room, u64)>,
    /// True when the id was already stored: nothing was written and `rooms` repeats the stored
    /// rooms and seqs.
    pub duplicate: bool,
}

/// An event that has just become durable, handed to live delivery once per group commit in
/// commit order (so each room's seqs arrive in order).
#[derive(Debug, Clone)]
pub struct CommittedEvent {
    /// Its id.
    pub id: EventId,
    /// Its type.
    pub event_type: EventType,
    /// Its `data` object as JSON text.
    pub data: Arc<str>,
    /// Its timestamp.
    pub timestamp: Timestamp,
    /// The rooms it was stored in, with its seq in each.
    pub rooms: Vec<(Room, u64)>,
}
