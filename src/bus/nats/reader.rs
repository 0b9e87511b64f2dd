//! The reading half of consumption: one inbox for every pull request, so that messages arrive in
//! stream order; a new request whenever less than half a batch is still asked for, so that the
//! server streams without pause; the messages decoded and queued in chunks as they arrive, for
//! the storer (see `consumer`), which so finds them decoded when its previous append returns.

use std::time::Duration;

use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::consumer::pull::BatchConfig;
use async_nats::jetstream::{self, Message};
use async_nats::{Client, StatusCode, Subject};
use futures::{FutureExt, StreamExt};
use tokio::sync::{mpsc, watch};

use super::consumer::stopping;
use super::decode::{Incoming, Refusal, StreamIdentity, decode};
use crate::domain::{Event, Timestamp};

/// How long one pull request waits for messages on an idle stream. Bounds how long a stop (or a
/// pause) waits for the open requests to end.
const PULL_EXPIRES: Duration = Duration::from_secs(1);

/// Silence after which the open requests are taken as lost (the server answers every request
/// by its expiry, with messages or a timeout status).
const REQUESTS_LOST_AFTER: Duration = Duration::from_secs(6);

/// Decodes the messages of one stream with the hub's limits.
#[derive(Debug, Clone)]
pub(super) struct Decoder {
    /// The stream the messages come from.
    pub identity: StreamIdentity,
    /// Largest message body accepted.
    pub max_bytes: usize,
    /// Deepest `data` accepted.
    pub max_depth: usize,
}

impl Decoder {
    /// Decodes the message at stream position `sequence` (`now` is the timestamp of an event
    /// without one).
    pub fn event(
        &self,
        message: &Message,
        sequence: u64,
        now: Timestamp,
    ) -> Result<Event, Refusal> {
        let msg_id = message
            .headers
            .as_ref()
            .and_then(|h| h.get(NATS_MESSAGE_ID))
            .map(|v| v.as_str());
        let incoming = Incoming {
            subject: message.subject.as_str(),
            payload: &message.payload,
            msg_id,
            stream_sequence: sequence,
        };
        decode(
            &incoming,
            &self.identity,
            now,
            self.max_bytes,
            self.max_depth,
        )
    }

    /// Reads a message's stream position and decodes it.
    fn arrived(&self, message: Message, now: Timestamp) -> Arrived {
        let decoded = match message.info() {
            Ok(info) => {
                let sequence = info.stream_sequence;
                Ok((sequence, self.event(&message, sequence, now)))
            }
            Err(e) => Err(e.to_string()),
        };
        Arrived { message, decoded }
    }
}

/// A message of the stream as the reader hands it to the storer.
pub(super) struct Arrived {
    pub message: Message,
    /// Its stream position and its event (or why it is refused); `Err` when the message carries
    /// no JetStream metadata.
    pub decoded: Result<(u64, Result<Event, Refusal>), String>,
}

/// The reader task's state.
pub(super) struct Reader {
    pub client: Client,
    pub consumer: PullConsumer,
    pub batch_size: usize,
    /// The hub is stopping.
    pub stop: watch::Receiver<bool>,
    /// The storer asks the reader to stop (the store failed).
    pub halt: watch::Receiver<bool>,
    /// Changes whenever the client loses its connection.
    pub disconnects: watch::Receiver<u64>,
    pub decoder: Decoder,
    pub queue: mpsc::Sender<Vec<Arrived>>,
}

/// What one message on the inbox means.
enum Received {
    /// A message of the stream.
    Message(async_nats::Message),
    /// A pull request ended (expired or terminated) with this many messages undelivered.
    Ended(usize),
    /// An idle heartbeat.
    Heartbeat,
    /// The consumer cannot be read any more (deleted, push based, limits).
    Fatal(String),
}

impl Reader {
    /// Reads until stopped (or halted) and every open request has ended, so that every message
    /// the server sent is queued for the storer; returns `Err` when NATS failed. Either way the
    /// queue closes after what was received.
    pub async fn run(mut self) -> Result<(), String> {
        self.disconnects.mark_unchanged();
        let context = jetstream::new(self.client.clone());
        let inbox = Subject::from(self.client.new_inbox());
        let mut subscription = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| e.to_string())?;
        // Messages asked for and neither delivered nor expired.
        let mut asked = 0usize;
        loop {
            let halted = stopping(&self.stop) || *self.halt.borrow();
            if !halted && asked * 2 < self.batch_size {
                let request = BatchConfig {
                    batch: self.batch_size,
                    expires: Some(PULL_EXPIRES),
                    ..Default::default()
                };
                self.consumer
                    .request_batch(request, inbox.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                asked += self.batch_size;
            }
            if halted && asked == 0 {
                return Ok(());
            }
            // A pull request does not survive a lost connection (the server may have
            // restarted): give it up at once rather than waiting for it to time out.
            let first = tokio::select! {
                message = subscription.next() => message,
                _ = self.disconnects.changed() => {
                    return Err("the connection to NATS was lost".to_owned());
                }
                _ = tokio::time::sleep(REQUESTS_LOST_AFTER) => {
                    tracing::debug!(asked, "no answer to the open pull requests; asking again");
                    asked = 0;
                    continue;
                }
            };
            let Some(first) = first else {
                return Err("the inbox subscription closed".to_owned());
            };
            let mut messages = Vec::new();
            let mut failure = None;
            let mut next = Some(first);
            while let Some(message) = next {
                match classify(message, self.batch_size) {
                    Received::Message(message) => {
                        asked = asked.saturating_sub(1);
                        messages.push(Message {
                            message,
                            context: context.clone(),
                        });
                    }
                    Received::Ended(undelivered) => asked = asked.saturating_sub(undelivered),
                    Received::Heartbeat => {}
                    Received::Fatal(error) => {
                        failure = Some(error);
                        break;
                    }
                }
                if messages.len() >= self.batch_size {
                    break;
                }
                next = subscription.next().now_or_never().flatten();
            }
            if !messages.is_empty() {
                let now = Timestamp::now();
                let arrived = messages
                    .into_iter()
                    .map(|message| self.decoder.arrived(message, now))
                    .collect();
                if self.queue.send(arrived).await.is_err() {
                    return Ok(());
                }
            }
            if let Some(error) = failure {
                return Err(error);
            }
        }
    }
}

/// What a message on the inbox means (JetStream answers pull requests with status messages too).
fn classify(message: async_nats::Message, batch_size: usize) -> Received {
    match message.status.unwrap_or(StatusCode::OK) {
        StatusCode::OK => Received::Message(message),
        StatusCode::IDLE_HEARTBEAT => Received::Heartbeat,
        StatusCode::TIMEOUT | StatusCode::REQUEST_TERMINATED => {
            let description = message.description.as_deref().unwrap_or_default();
            let fatal = [
                "Consumer Deleted",
                "Consumer is push based",
                "Exceeded MaxRequest",
            ]
            .iter()
            .any(|d| description.starts_with(d));
            if fatal {
                return Received::Fatal(format!("pull request refused: {description}"));
            }
            // Without the header, a whole request (they all ask for a batch) is taken as ended.
            let undelivered = message
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Pending-Messages"))
                .and_then(|v| v.as_str().parse().ok())
                .unwrap_or(batch_size);
            Received::Ended(undelivered)
        }
        status => Received::Fatal(format!(
            "pull request answered with {status}: {}",
            message.description.unwrap_or_default()
        )),
    }
}

#[cfg(test)]
mod tests {
    use async_nats::HeaderMap;

    use super::*;

    fn status(
        code: StatusCode,
        description: &str,
        headers: Option<HeaderMap>,
    ) -> async_nats::Message {
        async_nats::Message {
            subject: "_INBOX.x".into(),
            reply: None,
            payload: Default::default(),
            headers,
            status: Some(code),
            description: Some(description.to_owned()),
            length: 0,
        }
    }

    /// Messages, heartbeats, ended requests (with and without the pending count) and refusals are
    /// told apart.
    #[test]
    fn inbox_messages_are_classified() {
        let mut message = status(StatusCode::OK, "", None);
        message.status = None;
        assert!(matches!(classify(message, 256), Received::Message(_)));
        assert!(matches!(
            classify(
                status(StatusCode::IDLE_HEARTBEAT, "Idle Heartbeat", None),
                256
            ),
            Received::Heartbeat
        ));
        let mut pending = HeaderMap::new();
        pending.insert("Nats-Pending-Messages", "17");
        assert!(matches!(
            classify(
                status(StatusCode::TIMEOUT, "Request Timeout", Some(pending)),
                256
            ),
            Received::Ended(17)
        ));
        assert!(matches!(
            classify(status(StatusCode::TIMEOUT, "Request Timeout", None), 256),
            Received::Ended(256)
        ));
        for fatal in [
            "Consumer Deleted",
            "Consumer is push based",
            "Exceeded MaxRequestBatch of 10",
        ] {
            assert!(matches!(
                classify(status(StatusCode::REQUEST_TERMINATED, fatal, None), 256),
                Received::Fatal(_)
            ));
        }
        assert!(matches!(
            classify(status(StatusCode::NO_RESPONDERS, "", None), 256),
            Received::Fatal(_)
        ));
    }
}
