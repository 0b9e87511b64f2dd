//! A photo's processing status, derived from its events (docs/protocol.md, "Photo status").

use serde::{Deserialize, Serialize};

use super::{Event, EventType, PhotoId, Timestamp, UserId};

/// Where a photo is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessingState {
    /// Uploaded, waiting for processing.
    Pending,
    /// Being processed (also after a retry that follows a failure).
    Processing,
    /// Done. Final: later processing events do not change it.
    Completed,
    /// Processing failed; a later `started`/`progress` is a retry.
    Failed,
    /// Deleted. Final.
    Deleted,
}

/// The status object answered to `photo:status:request` and `GET /api/photos/{id}/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhotoStatus {
    /// The photo.
    pub photo_id: PhotoId,
    /// Its owner: the `userId` of its first stored event that carried one.
    pub user_id: UserId,
    /// The derived state.
    pub status: ProcessingState,
    /// Last reported progress, 0 to 100.
    pub progress: u8,
    /// Type of the last stored event of the photo.
    pub last_event_type: EventType,
    /// Head seq of the room `photo:<photoId>`.
    pub last_seq: u64,
    /// Timestamp of the last event applied to the status (events a `completed` or `deleted`
    /// photo ignores, and `system.*` events, leave it as it is).
    pub updated_at: Timestamp,
    /// The error of the last `photo.processing.failed`, while the status is `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl PhotoStatus {
    /// The status of `photo_id` after `event` (stored at `seq` in the photo's room), given the
    /// status before it (`None` for the photo's first event) and the photo's `owner`.
    ///
    /// Rules: `uploaded` -> pending (progress 0); `started`/`progress` -> processing (progress
    /// updated when given); `completed` -> completed (100); `failed` -> failed (progress kept,
    /// `error` from data); `deleted` -> deleted. `completed` is final for processing events and
    /// `deleted` is final for everything; an event that does not change the state still moves
    /// `lastSeq` and `lastEventType`.
    pub fn apply(
        before: Option<&PhotoStatus>,
        event: &Event,
        photo_id: &PhotoId,
        owner: &UserId,
        seq: u64,
    ) -> PhotoStatus {
        let mut next = match before {
            Some(s) => s.clone(),
            None => PhotoStatus {
                photo_id: photo_id.clone(),
                user_id: owner.clone(),
                status: ProcessingState::Pending,
                progress: 0,
                last_event_type: event.event_type,
                last_seq: seq,
                updated_at: event.timestamp,
                error: None,
            },
        };
        next.last_seq = seq;
        next.last_event_type = event.event_type;
        let state = next.status;
        let changes = match event.event_type {
            EventType::PhotoDeleted => state != ProcessingState::Deleted,
            _ => !matches!(state, ProcessingState::Completed | ProcessingState::Deleted),
        };
        if !changes {
            return next;
        }
        match event.event_type {
            EventType::PhotoUploaded => {
                next.status = ProcessingState::Pending;
                next.progress = 0;
                next.error = None;
            }
            EventType::ProcessingStarted | EventType::ProcessingProgress => {
                next.status = ProcessingState::Processing;
                next.progress = event.progress.unwrap_or(next.progress);
                next.error = None;
            }
            EventType::ProcessingCompleted => {
                next.status = ProcessingState::Completed;
                next.progress = 100;
                next.error = None;
            }
            EventType::ProcessingFailed => {
                next.status = ProcessingState::Failed;
                next.error = event.error.clone();
            }
            EventType::PhotoDeleted => {
                next.status = ProcessingState::Deleted;
                next.error = None;
            }
            EventType::SystemMaintenance | EventType::SystemHealth => return next,
        }
        next.updated_at = event.timestamp;
        next
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}
