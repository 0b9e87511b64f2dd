//! Turning a JetStream message into a validated [`Event`] (docs/protocol.md, "Stored events" and "Producers: NATS JetStream"), or into
//! the [`Refusal`] it is dead-lettered with. Pure: no I/O, so every rule is unit-tested here.

use crate::domain::data_text;
use crate::domain::{DomainError, Event, EventInput, Timestamp};
use crate::store::Rejection;

/// Why a message from the stream was refused. Refused messages are terminated (never
/// redelivered), counted, logged and copied to the dead-letter subject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The message body is larger than the configured limit.
    #[error("the message is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// The body's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The body's `data` nests deeper than the limit (`--max-json-depth`).
    #[error("data is nested {depth} levels deep, more than the limit of {limit}")]
    TooDeep {
        /// Its depth (counting stops past the limit).
        depth: usize,
        /// The limit.
        limit: usize,
    },
    /// The body is not a JSON object of the shape `{ id?, type?, data, timestamp? }`.
    #[error("invalid JSON body: {0}")]
    InvalidJson(String),
    /// The body's `type` is not the subject it was published on.
    #[error("type `{given}` differs from the subject `{subject}`")]
    TypeMismatch {
        /// The subject.
        subject: String,
        /// The body's `type`.
        given: String,
    },
    /// The event breaks a rule of docs/protocol.md, "Stored events" (unknown type, missing `photoId`, ...).
    #[error(transparent)]
    Invalid(#[from] DomainError),
    /// The event breaks a rule that needs the stored state (the photo's owner).
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// The message carries no JetStream metadata (it did not come from a stream).
    #[error("no JetStream metadata: {0}")]
    NoMetadata(String),
}

impl Refusal {
    /// A short machine-readable reason, used as the metric label and the dead-letter header.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::TooLarge { .. } => "too_large",
            Refusal::InvalidJson(_) => "invalid_json",
            Refusal::TooDeep { .. } => "too_deep",
            Refusal::TypeMismatch { .. } => "type_mismatch",
            Refusal::Invalid(e) => match e {
                DomainError::InvalidId { .. } => "invalid_id",
                DomainError::UnknownEventType(_) => "unknown_type",
                DomainError::InvalidRoom(_) => "invalid_room",
                DomainError::MissingField(_) => "missing_field",
                DomainError::InvalidField { .. } => "invalid_field",
                DomainError::TooLarge { .. } => "too_large",
            },
            Refusal::Rejected(r) => r.code(),
            Refusal::NoMetadata(_) => "no_metadata",
        }
    }
}

/// Which stream a message came from: its name and its creation time. A stream that is deleted and
/// created again gets a new creation time, so ids derived from it are never reused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamIdentity {
    name: String,
    created_nanos: i128,
}

impl StreamIdentity {
    /// The identity of stream `name` created at `created_nanos` (nanoseconds since the Unix epoch).
    pub fn new(name: impl Into<String>, created_nanos: i128) -> Self {
        Self {
            name: name.into(),
            created_nanos,
        }
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stream as a source of events in the store (`nats:<name>:<created>`), under which the
    /// hub records how far it has consumed it.
    pub fn source(&self) -> String {
        format!("nats:{}:{}", self.name, self.created_nanos)
    }

    /// The event id of the message at `stream_sequence`, for messages with neither a body `id`
    /// nor a `Nats-Msg-Id` header: the same for every redelivery of the message.
    pub fn event_id(&self, stream_sequence: u64) -> String {
        format!(
            "nats:{}:{}:{}",
            self.name, self.created_nanos, stream_sequence
        )
    }
}

/// The parts of a JetStream message that decoding looks at.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// The subject it was published on (= the event type).
    pub subject: &'a str,
    /// The body.
    pub payload: &'a [u8],
    /// The `Nats-Msg-Id` header, if any.
    pub msg_id: Option<&'a str>,
    /// Its sequence number in the stream.
    pub stream_sequence: u64,
}

/// Validates `message` into an event. `now` is its timestamp when the body has none; bodies over
/// `max_bytes` are refused before they are parsed, `data` nested deeper than `max_depth` after.
pub fn decode(
    message: &Incoming<'_>,
    stream: &StreamIdentity,
    now: Timestamp,
    max_bytes: usize,
    max_depth: usize,
) -> Result<Event, Refusal> {
    if message.payload.len() > max_bytes {
        return Err(Refusal::TooLarge {
            size: message.payload.len(),
            limit: max_bytes,
        });
    }
    let mut input: EventInput = data_text::from_json_bytes(message.payload)
        .map_err(|e| Refusal::InvalidJson(e.to_string()))?;
    if let Some(depth) = input.data_too_deep(max_depth) {
        return Err(Refusal::TooDeep {
            depth,
            limit: max_depth,
        });
    }
    match &input.event_type {
        Some(given) if given != message.subject => {
            return Err(Refusal::TypeMismatch {
                subject: message.subject.to_owned(),
                given: given.chars().take(100).collect(),
            });
        }
        Some(_) => {}
        None => input.event_type = Some(message.subject.to_owned()),
    }
    // Without a body id or header, the id is the message's position in the stream: its
    // redeliveries are recognised by the consumed position, not by the id index.
    let derived = input.id.is_none() && message.msg_id.is_none();
    if input.id.is_none() {
        input.id = Some(match message.msg_id {
            Some(id) => id.to_owned(),
            None => stream.event_id(message.stream_sequence),
        });
    }
    let mut event = Event::from_input(input, now)?;
    event.id_generated = derived;
    Ok(event)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::domain::{EventType, MAX_EVENT_DATA_BYTES};

    const LIMIT: usize = 1024 * 1024;

    fn stream() -> StreamIdentity {
        StreamIdentity::new("PHOTO_EVENTS", 1_700_000_000_123_456_789)
    }

    fn run(subject: &str, body: &[u8], msg_id: Option<&str>) -> Result<Event, Refusal> {
        let incoming = Incoming {
            subject,
            payload: body,
            msg_id,
            stream_sequence: 42,
        };
        decode(&incoming, &stream(), Timestamp::from_millis(5), LIMIT, 32)
    }

    fn run_json(subject: &str, body: Value) -> Result<Event, Refusal> {
        run(subject, body.to_string().as_bytes(), None)
    }

    /// The type defaults to the subject; a body `type` equal to the subject is accepted.
    #[test]
    fn type_defaults_to_the_subject() {
        let event = run_json(
            "photo.uploaded",
            json!({"data": {"photoId": "p", "userId": "u"}}),
        )
        .expect("valid");
        assert_eq!(event.event_type, EventType::PhotoUploaded);
        assert_eq!(event.timestamp, Timestamp::from_millis(5));
        let same = run_json(
            "photo.deleted",
            json!({"type": "photo.deleted", "data": {"photoId": "p"}}),
        )
        .expect("valid");
        assert_eq!(same.event_type, EventType::PhotoDeleted);
    }

    /// The id comes from the body, else the `Nats-Msg-Id` header, else the stream and sequence.
    #[test]
    fn id_precedence() {
        let body = json!({"id": "body-id", "data": {}}).to_string();
        let with_both =
            run("system.maintenance", body.as_bytes(), Some("header-id")).expect("valid");
        assert_eq!(with_both.id.as_str(), "body-id");
        let header = run("system.maintenance", b"{\"data\":{}}", Some("header-id")).expect("valid");
        assert_eq!(header.id.as_str(), "header-id");
        let derived = run("system.maintenance", b"{\"data\":{}}", None).expect("valid");
        assert_eq!(
            derived.id.as_str(),
            "nats:PHOTO_EVENTS:1700000000123456789:42"
        );
        assert!(
            derived.id_generated,
            "a derived id is the hub's, deduplicated by position, not indexed"
        );
        assert!(
            !with_both.id_generated && !header.id_generated,
            "given ids are indexed"
        );
        let recreated = StreamIdentity::new("PHOTO_EVENTS", 1_800_000_000_000_000_000);
        assert_ne!(recreated.event_id(42), derived.id.as_str());
    }

    /// Every kind of bad message of the issue is refused with its own reason code.
    #[test]
    fn refusals() {
        let code = |r: Result<Event, Refusal>| r.err().map(|e| e.code());
        assert_eq!(
            code(run("photo.uploaded", b"{not json", None)),
            Some("invalid_json")
        );
        assert_eq!(
            code(run("photo.uploaded", b"[1,2]", None)),
            Some("invalid_json")
        );
        assert_eq!(
            code(run(
                "system.maintenance",
                b"{\"data\":{\"note\":\"caf\xe9\"}}",
                None
            )),
            Some("invalid_json"),
            "bytes that are not UTF-8"
        );
        assert_eq!(
            code(run_json(
                "system.maintenance",
                json!({"data": {}, "extra": 1})
            )),
            Some("invalid_json")
        );
        assert_eq!(
            code(run_json(
                "photo.exploded",
                json!({"data": {"photoId": "p"}})
            )),
            Some("unknown_type")
        );
        assert_eq!(
            code(run_json(
                "photo.processing.progress",
                json!({"data": {"progress": 5}})
            )),
            Some("missing_field")
        );
        assert_eq!(
            code(run_json(
                "photo.deleted",
                json!({"type": "photo.uploaded", "data": {"photoId": "p", "userId": "u"}})
            )),
            Some("type_mismatch")
        );
        let big = json!({"data": {"blob": "x".repeat(MAX_EVENT_DATA_BYTES)}});
        assert_eq!(code(run_json("system.maintenance", big)), Some("too_large"));
        let mut deep = json!({});
        for _ in 0..32 {
            deep = json!({ "a": deep });
        }
        assert_eq!(
            code(run_json("system.maintenance", json!({ "data": deep }))),
            Some("too_deep")
        );
        let huge = vec![b' '; LIMIT + 1];
        assert_eq!(
            code(run("system.maintenance", &huge, None)),
            Some("too_large")
        );
        assert_eq!(
            code(run("system.maintenance", b"{\"data\":{}}", Some(""))),
            Some("invalid_id")
        );
    }
}
