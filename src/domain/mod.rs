//! Validated domain types: parse once at the edge, then trust.
//!
//! Everything that enters the hub (an HTTP body, a NATS message, a Socket.IO payload, a token's
//! claims) is turned into these types before any other module sees it. Past this point a
//! [`PhotoId`] is always well-formed and an [`Event`] always follows docs/protocol.md ("Stored events").

pub mod data_text;
mod error;
mod event;
mod ids;
mod room;
mod routing;
mod status;
mod timestamp;

pub use error::DomainError;
pub use event::{Event, EventInput, EventType, MAX_EVENT_DATA_BYTES};
pub use ids::{ClientId, EventId, PhotoId, SessionId, UserId};
pub use room::Room;
pub use routing::rooms_for;
pub use status::{PhotoStatus, ProcessingState};
pub use timestamp::Timestamp;
