//! Client requests with a photo (`subscribe:photo`, `unsubscribe:photo`, `photo:status:request`,
//! docs/protocol.md "Client to server events"): parsing their `{ photoId, since? }` payload, why
//! one is refused ([`RequestError`]), and answering either to the client's ack or, without one,
//! with events.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use socketioxide::adapter::{Adapter, LocalAdapter};
use socketioxide::extract::AckSender;
use socketioxide::handler::FromMessageParts;
use socketioxide::socket::Socket;
use socketioxide::{SendError, SocketError};

use crate::access::AccessError;
use crate::domain::PhotoId;
use crate::telemetry::metric;

/// Why a request was refused; [`RequestError::code`] is what the client sees.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The payload is not `{ photoId, since? }` with a valid photo id.
    #[error("invalid payload")]
    InvalidPayload {
        /// The photo id, when one could be read.
        photo_id: Option<String>,
    },
    /// The socket's user may not read the photo, or it is unknown (or the store failed).
    #[error("photo {photo_id}: access refused")]
    Access {
        /// The photo.
        photo_id: PhotoId,
        /// Why.
        #[source]
        source: AccessError,
    },
    /// The socket already holds the most photo subscriptions allowed.
    #[error("photo {photo_id}: too many subscriptions")]
    TooManySubscriptions {
        /// The photo.
        photo_id: PhotoId,
    },
    /// The socket sent requests faster than its budget allows.
    #[error("too many requests")]
    RateLimited {
        /// The photo id, when the payload names one.
        photo_id: Option<String>,
    },
    /// The store failed while subscribing.
    #[error("photo {photo_id}: subscribing failed")]
    Internal {
        /// The photo.
        photo_id: PhotoId,
        /// The failure.
        #[source]
        source: crate::store::StoreError,
    },
}

impl RequestError {
    /// The wire code: `invalid_payload`, `forbidden`, `not_found`, `too_many_subscriptions`,
    /// `rate_limited` or `internal`.
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::InvalidPayload { .. } => "invalid_payload",
            RequestError::Access { source, .. } => source.code(),
            RequestError::TooManySubscriptions { .. } => "too_many_subscriptions",
            RequestError::RateLimited { .. } => "rate_limited",
            RequestError::Internal { .. } => "internal",
        }
    }

    fn photo_id(&self) -> Option<String> {
        match self {
            RequestError::InvalidPayload { photo_id } | RequestError::RateLimited { photo_id } => {
                photo_id.clone()
            }
            RequestError::Access { photo_id, .. }
            | RequestError::TooManySubscriptions { photo_id }
            | RequestError::Internal { photo_id, .. } => Some(photo_id.to_string()),
        }
    }
}

/// `{ photoId, since? }`
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PhotoRequest {
    photo_id: String,
    #[serde(default)]
    since: Option<u64>,
}

/// Parses a `{ photoId, since? }` payload.
pub fn parse_photo_request(
    data: Result<Value, impl std::fmt::Debug>,
) -> Result<(PhotoId, Option<u64>), RequestError> {
    let invalid = |photo_id: Option<String>| RequestError::InvalidPayload { photo_id };
    let value = data.map_err(|_| invalid(None))?;
    if !value.is_object() {
        return Err(invalid(None));
    }
    let named = value
        .get("photoId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let request: PhotoRequest =
        serde_json::from_value(value).map_err(|_| invalid(named.clone()))?;
    let photo_id = PhotoId::parse(&request.photo_id).map_err(|_| invalid(None))?;
    Ok((photo_id, request.since))
}

/// How long an answer waits for room in a socket queue that a replay filled.
const ANSWER_WAIT: Duration = Duration::from_secs(10);
/// Pause before retrying an answer into a full socket queue.
const FULL_QUEUE_RETRY: Duration = Duration::from_millis(5);

/// How a request is answered: to its ack when the client asked for one (socketioxide's
/// `AckSender` silently drops a send when it did not), else with events. An answer waits while
/// the socket's queue is full (a replay may have filled it) instead of being dropped.
pub struct Reply<A: Adapter = LocalAdapter> {
    socket: Arc<Socket<A>>,
    ack_id: Option<i64>,
}

impl<A: Adapter> FromMessageParts<A> for Reply<A> {
    type Error = Infallible;

    fn from_message_parts(
        socket: &Arc<Socket<A>>,
        _: &mut socketioxide::handler::Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, Infallible> {
        Ok(Self {
            socket: Arc::clone(socket),
            ack_id: *ack_id,
        })
    }
}

impl<A: Adapter> Reply<A> {
    /// Whether the client asked for an ack.
    pub fn wants_ack(&self) -> bool {
        self.ack_id.is_some()
    }

    /// Answers `answer` to the ack (nothing when none was asked for).
    pub async fn ack(self, answer: &impl Serialize) {
        self.send_waiting(|socket| {
            let mut unused = socketioxide::handler::Value::Bytes(bytes::Bytes::new());
            let Ok(ack) = AckSender::from_message_parts(socket, &mut unused, &self.ack_id);
            ack.send(answer)
        })
        .await;
    }

    /// Emits `event` with `payload` to the socket.
    pub async fn emit(&self, event: &str, payload: &impl Serialize) {
        self.send_waiting(|socket| socket.emit(event, payload))
            .await;
    }

    /// Refuses `event`: `{ ok: false, error }` to the ack, else `request:error` with the event,
    /// the error and the photo id. Counted by code.
    pub async fn refuse(self, event: &'static str, error: &RequestError) {
        let code = error.code();
        metrics::counter!(metric::REQUESTS_REFUSED_TOTAL, "error" => code).increment(1);
        if self.wants_ack() {
            self.ack(&json!({ "ok": false, "error": code })).await;
            return;
        }
        let mut payload = json!({ "event": event, "error": code });
        if let Some(photo_id) = error.photo_id() {
            payload["photoId"] = json!(photo_id);
        }
        self.emit("request:error", &payload).await;
    }

    async fn send_waiting(&self, send: impl Fn(&Arc<Socket<A>>) -> Result<(), SendError>) {
        retry_while_full(&self.socket, || send(&self.socket)).await;
    }
}

/// Emits `event` to `socket`, waiting while its queue is full (up to [`ANSWER_WAIT`]) instead of
/// dropping it.
pub async fn emit_waiting<A: Adapter>(socket: &Socket<A>, event: &str, payload: &impl Serialize) {
    retry_while_full(socket, || socket.emit(event, payload)).await;
}

/// Sends to `socket` with `send`, retrying while its queue is full, for up to [`ANSWER_WAIT`].
async fn retry_while_full<A: Adapter>(
    socket: &Socket<A>,
    send: impl Fn() -> Result<(), SendError>,
) {
    let since = Instant::now();
    while let Err(SendError::Socket(SocketError::InternalChannelFull)) = send() {
        if since.elapsed() > ANSWER_WAIT {
            tracing::debug!(socket = %socket.id, "an answer found the socket's queue full; dropped");
            return;
        }
        tokio::time::sleep(FULL_QUEUE_RETRY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: Value) -> Result<(PhotoId, Option<u64>), RequestError> {
        parse_photo_request(Ok::<_, ()>(value))
    }

    /// Good payloads parse; bad ones are `invalid_payload`, naming the photo when they can.
    #[test]
    fn photo_requests() {
        let (photo, since) = parse(json!({ "photoId": "p1", "since": 4 })).expect("valid");
        assert_eq!((photo.as_str(), since), ("p1", Some(4)));
        for bad in [
            json!("p1"),
            json!([{ "photoId": "p1" }]),
            json!({ "photoId": 7 }),
            json!({ "photoId": "has space" }),
            json!({ "photoId": "p1", "since": -1 }),
        ] {
            let err = parse(bad.clone()).expect_err("refused");
            assert_eq!(err.code(), "invalid_payload", "{bad}");
        }
        let err = parse(json!({ "photoId": "p1", "since": "x" })).expect_err("refused");
        assert_eq!(err.photo_id().as_deref(), Some("p1"));
    }
}
