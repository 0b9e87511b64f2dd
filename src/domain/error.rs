//! The one error type of input validation.

/// Why a piece of input was refused. The message is meant for the producer or client that sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// An identifier (photo, user, client, session or event id) is empty, too long or has a
    /// character outside its alphabet.
    #[error("invalid {field}: {reason}")]
    InvalidId {
        /// The field that held the identifier, e.g. `photoId`.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The event `type` is not one of the known types.
    #[error("unknown event type `{0}`")]
    UnknownEventType(String),
    /// A room name is not one of the room kinds.
    #[error("invalid room `{0}`")]
    InvalidRoom(String),
    /// A required field is absent.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A field is present with the wrong type or an out-of-range value.
    #[error("invalid field `{field}`: {reason}")]
    InvalidField {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The event's data is larger than [`crate::domain::MAX_EVENT_DATA_BYTES`].
    #[error("event data is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// Serialized size of the data.
        size: usize,
        /// The limit.
        limit: usize,
    },
}
