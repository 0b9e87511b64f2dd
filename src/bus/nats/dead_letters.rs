//! Dead letters (docs/protocol.md, "Dead letters"): the headers a refused message is kept with in
//! the dead-letter stream, and reading them back for `socket-bridge dead-letters`: listing them,
//! and re-publishing one on its original subject (then removing it from the dead-letter stream).

use async_nats::HeaderMap;
use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream::{self, ErrorCode};
use bytes::Bytes;

use crate::domain::Timestamp;

/// Header: the refusal's code (`invalid_json`, `unknown_type`, `owner_mismatch`, ...).
pub const DEAD_LETTER_REASON: &str = "Socket-Bridge-Reason";
/// Header: the refusal in words.
pub const DEAD_LETTER_ERROR: &str = "Socket-Bridge-Error";
/// Header: the subject the message was published on.
pub const DEAD_LETTER_SUBJECT: &str = "Socket-Bridge-Subject";
/// Header: the events stream it came from.
pub const DEAD_LETTER_STREAM: &str = "Socket-Bridge-Stream";
/// Header: its sequence in that stream.
pub const DEAD_LETTER_SEQUENCE: &str = "Socket-Bridge-Stream-Sequence";
/// Header: its `Nats-Msg-Id`, if it had one.
pub const DEAD_LETTER_MSG_ID: &str = "Socket-Bridge-Msg-Id";
/// Header: present (with the body's size) when the body was too large to keep.
pub const DEAD_LETTER_BODY_OMITTED: &str = "Socket-Bridge-Body-Omitted";

/// Why dead letters could not be read or re-published.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// NATS or JetStream failed.
    #[error("NATS JetStream: {action}")]
    Nats {
        /// What was being done.
        action: &'static str,
        /// What failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The dead-letter stream does not exist.
    #[error("there is no dead-letter stream `{0}` (the hub creates it at start with --nats-url)")]
    NoStream(String),
    /// No dead letter has that sequence.
    #[error("no dead letter at sequence {0}")]
    NotFound(u64),
    /// The dead letter cannot be re-published as it is.
    #[error("dead letter {sequence}: {reason}")]
    NotRepublishable {
        /// Its sequence in the dead-letter stream.
        sequence: u64,
        /// Why.
        reason: &'static str,
    },
}

fn nats<E: Into<Box<dyn std::error::Error + Send + Sync>>>(
    action: &'static str,
) -> impl FnOnce(E) -> DeadLetterError {
    move |e| DeadLetterError::Nats {
        action,
        source: e.into(),
    }
}

/// One kept dead letter.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Its sequence in the dead-letter stream.
    pub sequence: u64,
    /// When it was dead-lettered.
    pub time: Timestamp,
    /// The refusal's code.
    pub reason: String,
    /// The refusal in words.
    pub error: String,
    /// The subject it was published on.
    pub subject: String,
    /// The events stream it came from.
    pub stream: String,
    /// Its sequence there.
    pub stream_sequence: u64,
    /// Its `Nats-Msg-Id`, if it had one.
    pub msg_id: Option<String>,
    /// The original body (empty when it was too large to keep).
    pub body: Bytes,
    /// Whether the body was too large to keep.
    pub body_omitted: bool,
}

impl DeadLetter {
    fn from_message(message: jetstream::message::StreamMessage) -> Self {
        let header = |name: &str| header(&message.headers, name);
        let millis = message.time.unix_timestamp_nanos() / 1_000_000;
        Self {
            sequence: message.sequence,
            time: Timestamp::from_millis(i64::try_from(millis).unwrap_or(i64::MAX)),
            reason: header(DEAD_LETTER_REASON).unwrap_or_default(),
            error: header(DEAD_LETTER_ERROR).unwrap_or_default(),
            subject: header(DEAD_LETTER_SUBJECT).unwrap_or_default(),
            stream: header(DEAD_LETTER_STREAM).unwrap_or_default(),
            stream_sequence: header(DEAD_LETTER_SEQUENCE)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            msg_id: header(DEAD_LETTER_MSG_ID),
            body_omitted: header(DEAD_LETTER_BODY_OMITTED).is_some(),
            body: message.payload,
        }
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).map(|v| v.as_str().to_owned())
}

/// The dead-letter stream `name`.
async fn stream(
    js: &jetstream::Context,
    name: &str,
) -> Result<jetstream::stream::Stream, DeadLetterError> {
    js.get_stream(name).await.map_err(|e| {
        let missing = matches!(
            e.kind(),
            jetstream::context::GetStreamErrorKind::JetStream(ref js)
                if js.error_code() == ErrorCode::STREAM_NOT_FOUND
        );
        if missing {
            DeadLetterError::NoStream(name.to_owned())
        } else {
            nats("reading the dead-letter stream")(e)
        }
    })
}

/// The dead letters of stream `name`, oldest first: those with `reason` when given, at most
/// `limit`.
pub async fn list(
    js: &jetstream::Context,
    name: &str,
    reason: Option<&str>,
    limit: usize,
) -> Result<Vec<DeadLetter>, DeadLetterError> {
    let mut stream = stream(js, name).await?;
    let state = stream
        .info()
        .await
        .map_err(nats("reading the dead-letter stream's info"))?
        .state
        .clone();
    let mut out = Vec::new();
    if state.messages == 0 {
        return Ok(out);
    }
    for sequence in state.first_sequence..=state.last_sequence {
        if out.len() >= limit {
            break;
        }
        let Some(letter) = get(&stream, sequence).await? else {
            continue;
        };
        if reason.is_none_or(|r| r == letter.reason) {
            out.push(letter);
        }
    }
    Ok(out)
}

/// The dead letter at `sequence`, `None` when there is none (removed).
async fn get(
    stream: &jetstream::stream::Stream,
    sequence: u64,
) -> Result<Option<DeadLetter>, DeadLetterError> {
    match stream.get_raw_message(sequence).await {
        Ok(message) => Ok(Some(DeadLetter::from_message(message))),
        Err(e) if e.kind() == jetstream::stream::RawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(nats("reading a dead letter")(e)),
    }
}

/// The dead letter at `sequence` of stream `name`.
pub async fn find(
    js: &jetstream::Context,
    name: &str,
    sequence: u64,
) -> Result<DeadLetter, DeadLetterError> {
    let stream = stream(js, name).await?;
    get(&stream, sequence)
        .await?
        .ok_or(DeadLetterError::NotFound(sequence))
}

/// What re-publishing a dead letter did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Republished {
    /// Stored again in the events stream at this sequence; removed from the dead-letter stream.
    Stored(u64),
    /// The events stream took it for a duplicate of its `Nats-Msg-Id` (its duplicate window has
    /// not passed) and did not store it; it stays in the dead-letter stream.
    Duplicate,
}

/// Publishes `letter` on its original subject with its original body (and `Nats-Msg-Id`),
/// waits until the events stream has stored it, then removes it from dead-letter stream `name`.
pub async fn republish(
    js: &jetstream::Context,
    name: &str,
    letter: &DeadLetter,
) -> Result<Republished, DeadLetterError> {
    let refuse = |reason| DeadLetterError::NotRepublishable {
        sequence: letter.sequence,
        reason,
    };
    if letter.body_omitted {
        return Err(refuse("its body was too large to keep"));
    }
    if letter.subject.is_empty() {
        return Err(refuse("it has no original subject"));
    }
    let mut headers = HeaderMap::new();
    if let Some(id) = &letter.msg_id {
        headers.insert(NATS_MESSAGE_ID, id.as_str());
    }
    let ack = js
        .publish_with_headers(letter.subject.clone(), headers, letter.body.clone())
        .await
        .map_err(nats("publishing on the original subject"))?
        .await
        .map_err(nats("waiting for the events stream to store it"))?;
    if ack.duplicate {
        return Ok(Republished::Duplicate);
    }
    stream(js, name)
        .await?
        .delete_message(letter.sequence)
        .await
        .map_err(nats("removing it from the dead-letter stream"))?;
    Ok(Republished::Stored(ack.sequence))
}
