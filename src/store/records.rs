//! What the store keeps, and what an append answers.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::domain::{EventId, EventType, Room, Timestamp};

/// The stored form of one event in one room (the room and seq are in the key).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct EventRecord {
    pub id: String,
    pub type_code: u8,
    /// The event's `data` object as JSON text.
    pub data: String,
    pub timestamp_ms: i64,
}

/// Rooms and seqs an event was stored at (the id index's value).
pub(super) type Placement = Vec<(String, u64)>;

/// Rooms and seq ranges `(room, first, last)` written by one group commit.
pub(super) type CommitRecord = Vec<(String, u64, u64)>;

/// An event read back from one room.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Its seq in the room it was read from.
    pub seq: u64,
    /// Its id.
    pub id: EventId,
    /// Its type.
    pub event_type: EventType,
    /// Its `data` object as JSON text.
    pub data: Arc<str>,
    /// Its timestamp.
    pub timestamp: Timestamp,
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
