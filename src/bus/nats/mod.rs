//! The NATS bus (docs/protocol.md, "Producers: NATS JetStream"): the hub is a durable consumer of the producers'
//! JetStream stream, and publishes its own `client.*` events on core NATS.
//!
//! # Layout
//! - `decode`: a message into a validated event, or the reason it is refused (pure).
//! - `setup`: ensuring the stream and the durable pull consumer exist and fit.
//! - `consumer`: the consumption loop (group commit, ack; dead letters; backoff, set up again).
//! - `dead_letters`: the dead-letter headers, and listing and re-publishing kept dead letters.
//! - `reader`: its reading half (pull requests kept open, messages queued as they arrive).
//!
//! The client reconnects by itself, forever, with a capped backoff; while NATS is away the hub
//! keeps serving sockets and HTTP and reports the bus as down.

mod consumer;
pub mod dead_letters;
pub(crate) mod decode;
mod reader;
mod setup;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_nats::connection::State;
use async_nats::{Client, ConnectOptions, Event};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use decode::{Refusal, StreamIdentity};
pub use setup::{STREAM_SUBJECTS, SetupError};

use super::{BusError, BusFuture, EventBus};
use crate::ingest::Ingest;
use crate::store::EventLog;
use crate::telemetry::ErrorChain;

/// How the hub uses NATS.
#[derive(Debug, Clone)]
pub struct NatsSettings {
    /// The server URL(s), comma-separated.
    pub url: String,
    /// The JetStream stream of the producers' events.
    pub stream: String,
    /// The hub's durable pull consumer.
    pub consumer: String,
    /// Where refused messages are published.
    pub dead_letter_subject: String,
    /// The JetStream stream that keeps them (created when missing, capturing that subject).
    pub dead_letter_stream: String,
    /// The events stream's `max_age`: the hub sets it to retention's maximum age (docs/protocol.md,
    /// "Producers: NATS JetStream").
    pub stream_max_age: Duration,
    /// Most messages per pull request and per append.
    pub batch_size: usize,
    /// The consumer's ack wait.
    pub ack_wait: Duration,
    /// Largest message body accepted; larger ones are refused as `too_large`.
    pub max_message_bytes: usize,
}

/// Default JetStream stream of the producers' events.
pub const DEFAULT_STREAM: &str = "PHOTO_EVENTS";
/// Default durable pull consumer of the hub.
pub const DEFAULT_CONSUMER: &str = "socket-bridge";
/// Default subject refused messages are published on.
pub const DEFAULT_DEAD_LETTER_SUBJECT: &str = "socket-bridge.dead-letter";
/// Default JetStream stream that keeps the dead letters.
pub const DEFAULT_DEAD_LETTER_STREAM: &str = "PHOTO_EVENTS_DLQ";
/// Default `max_age` of the events stream (retention's default maximum age).
pub const DEFAULT_STREAM_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default messages per pull request.
pub const DEFAULT_BATCH_SIZE: usize = 256;
/// Default consumer ack wait.
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);

impl NatsSettings {
    /// The defaults for the server(s) at `url`; messages up to `max_message_bytes` are accepted.
    pub fn new(url: impl Into<String>, max_message_bytes: usize) -> Self {
        Self {
            url: url.into(),
            stream: DEFAULT_STREAM.to_owned(),
            consumer: DEFAULT_CONSUMER.to_owned(),
            dead_letter_subject: DEFAULT_DEAD_LETTER_SUBJECT.to_owned(),
            dead_letter_stream: DEFAULT_DEAD_LETTER_STREAM.to_owned(),
            stream_max_age: DEFAULT_STREAM_MAX_AGE,
            batch_size: DEFAULT_BATCH_SIZE,
            ack_wait: DEFAULT_ACK_WAIT,
            max_message_bytes,
        }
    }

    /// Refuses settings that cannot work: names JetStream rejects, a batch of zero, or a
    /// dead-letter subject inside the stream (refused messages would be consumed again forever).
    pub fn validate(&self) -> Result<(), NatsError> {
        for (flag, name) in [
            ("--nats-stream", &self.stream),
            ("--nats-consumer", &self.consumer),
            ("--nats-dead-letter-stream", &self.dead_letter_stream),
        ] {
            let bad = name.is_empty()
                || name
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || ".*>/\\".contains(c));
            if bad {
                return Err(NatsError::Config(format!(
                    "{flag} `{name}`: a JetStream name must be non-empty, without spaces or any of . * > / \\"
                )));
            }
        }
        if self.dead_letter_stream == self.stream {
            return Err(NatsError::Config(format!(
                "--nats-dead-letter-stream `{}` must differ from --nats-stream",
                self.dead_letter_stream
            )));
        }
        let subject = &self.dead_letter_subject;
        let valid_subject = !subject.is_empty()
            && !subject.chars().any(|c| c.is_whitespace() || c.is_control())
            && subject
                .split('.')
                .all(|t| !t.is_empty() && t != "*" && t != ">");
        if !valid_subject {
            return Err(NatsError::Config(format!(
                "--nats-dead-letter-subject `{subject}` is not a valid subject to publish on"
            )));
        }
        if subject.starts_with("photo.") || subject.starts_with("system.") {
            return Err(NatsError::Config(format!(
                "--nats-dead-letter-subject `{subject}` is inside the stream's subjects {STREAM_SUBJECTS:?}: refused messages would be consumed again"
            )));
        }
        if self.batch_size == 0 || self.batch_size > MAX_BATCH {
            return Err(NatsError::Config(format!(
                "--nats-batch-size must be from 1 to {MAX_BATCH}"
            )));
        }
        if self.ack_wait < Duration::from_secs(1) {
            return Err(NatsError::Config(
                "--nats-ack-wait must be at least 1s".into(),
            ));
        }
        Ok(())
    }
}

/// `url` (one or more comma-separated server URLs) with any `user:password@` or `token@` part
/// replaced by `***@`, for logs and errors.
pub fn redacted(url: &str) -> String {
    url.split(',')
        .map(|one| match (one.find("://"), one.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}***{}", &one[..scheme + 3], &one[at..])
            }
            (None, Some(at)) => format!("***{}", &one[at..]),
            _ => one.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Largest accepted `--nats-batch-size`.
const MAX_BATCH: usize = 10_000;

/// Why the NATS bus could not start.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// A setting is invalid.
    #[error("NATS settings: {0}")]
    Config(String),
    /// The URL cannot be used.
    #[error("NATS URL `{url}`: {reason}")]
    Connect {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The stream or consumer exists and does not fit.
    #[error(transparent)]
    Setup(#[from] SetupError),
}

/// The NATS bus: the client, whether the consumer is reading, and a count of lost connections.
#[derive(Clone)]
pub struct NatsBus {
    client: Client,
    consuming: Arc<AtomicBool>,
    disconnects: watch::Receiver<u64>,
}

impl NatsBus {
    /// Connects to `settings.url`. Returns at once even when NATS is down: the client keeps
    /// trying in the background, and reconnects by itself whenever the connection drops. Each
    /// change of the connection's state is logged once, with the URL (credentials redacted).
    pub async fn connect(settings: &NatsSettings) -> Result<Self, NatsError> {
        settings.validate()?;
        let (disconnected, disconnects) = watch::channel(0u64);
        let url = redacted(&settings.url);
        let connected = Arc::new(AtomicBool::new(false));
        let logged_down = Arc::new(AtomicBool::new(false));
        let client = ConnectOptions::new()
            .name("socket-bridge")
            .retry_on_initial_connect()
            .max_reconnects(None)
            .event_callback(move |event| {
                match event {
                    Event::Connected => {
                        logged_down.store(false, Ordering::SeqCst);
                        if !connected.swap(true, Ordering::SeqCst) {
                            tracing::info!(url = %url, "connected to NATS");
                        }
                    }
                    Event::Disconnected => {
                        disconnected.send_modify(|n| *n += 1);
                        connected.store(false, Ordering::SeqCst);
                        if !logged_down.swap(true, Ordering::SeqCst) {
                            tracing::warn!(url = %url, "lost the connection to NATS; reconnecting in the background");
                        }
                    }
                    Event::ClientError(e) => {
                        if !logged_down.swap(true, Ordering::SeqCst) {
                            tracing::warn!(url = %url, error = %e, "cannot reach NATS; retrying in the background");
                        }
                    }
                    other => tracing::debug!(url = %url, event = %other, "NATS client event"),
                }
                std::future::ready(())
            })
            .connect(settings.url.as_str())
            .await
            .map_err(|e| NatsError::Connect {
                url: redacted(&settings.url),
                reason: e.to_string(),
            })?;
        Ok(Self {
            client,
            consuming: Arc::new(AtomicBool::new(false)),
            disconnects,
        })
    }

    /// At start: waits up to `within` for the connection, then makes sure the stream and the
    /// consumer exist. A conflicting stream or consumer is an error; NATS being unreachable is
    /// not (the consumer sets up once NATS is there). Returns whether NATS was reachable.
    pub async fn prepare(
        &self,
        settings: &NatsSettings,
        within: Duration,
        log: &EventLog,
    ) -> Result<bool, NatsError> {
        let deadline = Instant::now() + within;
        while self.client.connection_state() != State::Connected {
            if Instant::now() >= deadline {
                tracing::warn!(url = %redacted(&settings.url), "NATS is not reachable; serving without it and retrying in the background");
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let js = async_nats::jetstream::new(self.client.clone());
        match setup::ensure(&js, &spec(settings), setup::consumed_in(log)).await {
            Ok(_) => Ok(true),
            Err(error @ SetupError::Unavailable { .. }) => {
                tracing::warn!(error = %ErrorChain(&error), "NATS JetStream is not ready; retrying in the background");
                Ok(false)
            }
            Err(conflict) => Err(conflict.into()),
        }
    }

    /// The NATS client, for other JetStream users of the same connection (the photo jobs).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Starts consuming the stream: every decoded message goes through `ingest`.
    pub fn start_consumer(&self, settings: &NatsSettings, ingest: Ingest) -> ConsumerHandle {
        let (stop, stopped) = watch::channel(false);
        let consumer = consumer::Consumer {
            client: self.client.clone(),
            spec: spec(settings),
            dead_letter_subject: settings.dead_letter_subject.clone(),
            batch_size: settings.batch_size,
            max_message_bytes: settings.max_message_bytes,
            ingest,
            consuming: Arc::clone(&self.consuming),
            disconnects: self.disconnects.clone(),
        };
        ConsumerHandle {
            stop,
            task: tokio::spawn(consumer.run(stopped)),
        }
    }
}

fn spec(settings: &NatsSettings) -> setup::Spec {
    setup::Spec {
        stream: settings.stream.clone(),
        consumer: settings.consumer.clone(),
        ack_wait: settings.ack_wait,
        // Room for the batches queued and in flight, never less than JetStream's usual default.
        max_ack_pending: i64::try_from(settings.batch_size.saturating_mul(16).max(1000))
            .unwrap_or(i64::MAX),
        max_age: settings.stream_max_age,
        dead_letter_stream: settings.dead_letter_stream.clone(),
        dead_letter_subject: settings.dead_letter_subject.clone(),
    }
}

impl EventBus for NatsBus {
    fn kind(&self) -> &'static str {
        "nats"
    }

    fn is_up(&self) -> bool {
        self.client.connection_state() == State::Connected && self.consuming.load(Ordering::SeqCst)
    }

    fn publish(
        &self,
        subject: &str,
        payload: serde_json::Value,
    ) -> BusFuture<'_, Result<(), BusError>> {
        let subject = subject.to_owned();
        Box::pin(async move {
            let body = serde_json::to_vec(&payload).map_err(BusError::Encode)?;
            self.client
                .publish(subject, body.into())
                .await
                .map_err(BusError::Nats)
        })
    }
}

/// The running consumer.
pub struct ConsumerHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ConsumerHandle {
    /// Stops consuming: the batch in hand is stored and acked, and the acks flushed. Waits at
    /// most `limit`; messages not acked by then are redelivered later (and recognised by id).
    pub async fn stop(self, limit: Duration) {
        let _ = self.stop.send(true);
        match tokio::time::timeout(limit, self.task).await {
            Ok(Ok(())) => {
                tracing::info!("NATS consumer stopped; its last batch is stored and acked")
            }
            Ok(Err(e)) => tracing::error!(error = %ErrorChain(&e), "the NATS consumer task failed"),
            Err(_) => tracing::warn!(
                limit_ms = limit.as_millis() as u64,
                "the NATS consumer did not stop in time; unacked messages will be redelivered"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> NatsSettings {
        NatsSettings::new("nats://127.0.0.1:4222", 1 << 20)
    }

    /// Credentials never reach a log line.
    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redacted("nats://alice:s3cret@nats1:4222,tls://tok@nats2:4222,nats://plain:4222"),
            "nats://***@nats1:4222,tls://***@nats2:4222,nats://plain:4222"
        );
        assert_eq!(redacted("user:pw@host:4222"), "***@host:4222");
    }

    /// The defaults are valid; unusable names, subjects and sizes are refused before connecting.
    #[test]
    fn settings_validation() {
        assert!(settings().validate().is_ok());
        let bad = [
            NatsSettings {
                stream: "A.B".into(),
                ..settings()
            },
            NatsSettings {
                consumer: "".into(),
                ..settings()
            },
            NatsSettings {
                dead_letter_subject: "photo.dead".into(),
                ..settings()
            },
            NatsSettings {
                dead_letter_subject: "dead.>".into(),
                ..settings()
            },
            NatsSettings {
                dead_letter_subject: "a..b".into(),
                ..settings()
            },
            NatsSettings {
                dead_letter_stream: "PHOTO_EVENTS".into(),
                ..settings()
            },
            NatsSettings {
                dead_letter_stream: "DLQ.X".into(),
                ..settings()
            },
            NatsSettings {
                batch_size: 0,
                ..settings()
            },
            NatsSettings {
                ack_wait: Duration::from_millis(10),
                ..settings()
            },
        ];
        for s in bad {
            assert!(matches!(s.validate(), Err(NatsError::Config(_))), "{s:?}");
        }
    }
}
