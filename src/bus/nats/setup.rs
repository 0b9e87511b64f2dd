//! Making sure the JetStream streams and the hub's durable pull consumer exist: creating them when
//! missing (the consumer from where the store says the stream is consumed), keeping the events
//! stream's age limit equal to retention's, adjusting the consumer's tunables, moving a consumer
//! with explicit acks (made by earlier versions) to ack-all, and refusing an existing stream or
//! consumer that the hub cannot use (docs/protocol.md, "Producers: NATS JetStream" and "Dead
//! letters").

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::consumer::{
    self, AckPolicy, DeliverPolicy, FromConsumer, PullConsumer, pull,
};
use async_nats::jetstream::context::{ConsumerInfoErrorKind, GetStreamErrorKind};
use async_nats::jetstream::{self, stream};

use super::decode::StreamIdentity;
use crate::store::EventLog;
use crate::telemetry::ErrorChain;

/// The subjects of the producers' stream: exactly these, so that the hub sees every event type of
/// docs/protocol.md, "Stored events", and nothing else.
pub const STREAM_SUBJECTS: [&str; 2] = ["photo.>", "system.>"];

/// Extra wait after the last delivery's ack deadline (or nak delay), so that the server has moved
/// the messages to its redelivery queue before the hub asks for more.
pub(super) const REDELIVERY_MARGIN: Duration = Duration::from_millis(250);

/// Why the stream or consumer could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// An existing stream or consumer is configured in a way the hub cannot use. An operator has
    /// to change it (or point the hub at another one); retrying does not help.
    #[error("{0}")]
    Conflict(String),
    /// JetStream could not be asked (NATS down, timeout, no JetStream, permissions).
    #[error("NATS JetStream unavailable while {action}")]
    Unavailable {
        /// What the hub was doing.
        action: &'static str,
        /// What failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Maps a JetStream error met while doing `action` to [`SetupError::Unavailable`].
fn unavailable<E: Into<Box<dyn std::error::Error + Send + Sync>>>(
    action: &'static str,
) -> impl FnOnce(E) -> SetupError {
    move |e| SetupError::Unavailable {
        action,
        source: e.into(),
    }
}

/// What to make ready.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The stream's name.
    pub stream: String,
    /// The durable consumer's name.
    pub consumer: String,
    /// The consumer's ack wait.
    pub ack_wait: Duration,
    /// The consumer's limit of delivered, unacknowledged messages.
    pub max_ack_pending: i64,
    /// The events stream's `max_age`: retention's maximum age, so that JetStream keeps no message
    /// longer than the hub keeps its event.
    pub max_age: Duration,
    /// The stream that keeps dead letters.
    pub dead_letter_stream: String,
    /// The subject dead letters are published on (the dead-letter stream's only subject).
    pub dead_letter_subject: String,
}

/// JetStream's default duplicate window; a stream's window may not be longer than its `max_age`.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// A stream and consumer ready to be read.
pub struct Ready {
    /// The durable pull consumer.
    pub consumer: PullConsumer,
    /// The stream's identity, for ids derived from stream sequences.
    pub identity: StreamIdentity,
    /// How long to wait before reading: messages an earlier run received but did not ack (it was
    /// killed, or NATS restarted) are redelivered once their ack wait is over, and reading new
    /// messages before them would store events out of order.
    pub redelivery_wait: Duration,
}

/// Ensures the stream and the durable pull consumer of `spec` exist and fit. `consumed` says how
/// far the store has consumed a stream (its last settled sequence, 0 for none): a consumer the
/// hub creates, or makes again to move it to ack-all, starts after it.
pub async fn ensure(
    js: &jetstream::Context,
    spec: &Spec,
    consumed: impl FnOnce(&StreamIdentity) -> u64,
) -> Result<Ready, SetupError> {
    let mut stream = match js.get_stream(&spec.stream).await {
        Ok(stream) => stream,
        Err(e) if stream_missing(&e) => create_stream(js, spec).await?,
        Err(e) => return Err(unavailable("reading the stream")(e)),
    };
    let info = stream
        .info()
        .await
        .map_err(unavailable("reading the stream's info"))?;
    check_stream(&spec.stream, &info.config)?;
    if let Some(update) = aged(spec, &info.config) {
        tracing::info!(
            stream = %spec.stream,
            max_age_s = spec.max_age.as_secs(),
            "setting the stream's max age to the retention age"
        );
        js.update_stream(update)
            .await
            .map_err(unavailable("updating the stream's max age"))?;
    }
    ensure_dead_letter_stream(js, spec).await?;
    let identity = StreamIdentity::new(spec.stream.clone(), info.created.unix_timestamp_nanos());

    let consumer: PullConsumer = match stream.consumer_info(&spec.consumer).await {
        Ok(info) if info.config.ack_policy == AckPolicy::Explicit => {
            check_consumer(&spec.stream, &spec.consumer, &info.config)?;
            let position = consumed(&identity);
            tracing::info!(
                consumer = %spec.consumer,
                consumed = position,
                "moving the consumer from explicit acks to ack-all: making it again after the consumed position"
            );
            stream
                .delete_consumer(&spec.consumer)
                .await
                .map_err(unavailable("deleting the consumer with explicit acks"))?;
            stream
                .create_consumer(new_consumer(spec, position))
                .await
                .map_err(unavailable("creating the consumer"))?
        }
        Ok(info) => {
            check_consumer(&spec.stream, &spec.consumer, &info.config)?;
            match tuned(spec, &info.config) {
                Some(update) => {
                    tracing::info!(
                        consumer = %spec.consumer,
                        "updating the consumer's ack wait, ack pending limit or delivery limit"
                    );
                    stream
                        .create_consumer(update)
                        .await
                        .map_err(unavailable("updating the consumer"))?
                }
                None => stream
                    .get_consumer(&spec.consumer)
                    .await
                    .map_err(unavailable("opening the consumer"))?,
            }
        }
        Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => {
            let position = consumed(&identity);
            tracing::info!(stream = %spec.stream, consumer = %spec.consumer, consumed = position, "creating the durable pull consumer");
            stream
                .create_consumer(new_consumer(spec, position))
                .await
                .map_err(unavailable("creating the consumer"))?
        }
        Err(e) => return Err(unavailable("reading the consumer")(e)),
    };
    let info = consumer.cached_info();
    let redelivery_wait = redelivery_wait(
        info.num_ack_pending,
        info.delivered.last_active.map(|t| t.unix_timestamp_nanos()),
        info.config.ack_wait,
        now_nanos(),
    );
    Ok(Ready {
        consumer,
        identity,
        redelivery_wait,
    })
}

/// How far `log` has consumed a stream, for [`ensure`]: 0 (from the stream's start, where every
/// redelivery is recognised) when the store cannot say.
pub(super) fn consumed_in(log: &EventLog) -> impl FnOnce(&StreamIdentity) -> u64 + '_ {
    move |identity| {
        log.consumed(&identity.source()).unwrap_or_else(|e| {
            tracing::warn!(error = %ErrorChain(&e), "could not read how far the stream is consumed; a new consumer starts at the stream's start");
            0
        })
    }
}

fn stream_missing(e: &jetstream::context::GetStreamError) -> bool {
    matches!(e.kind(), GetStreamErrorKind::JetStream(ref js) if js.error_code() == ErrorCode::STREAM_NOT_FOUND)
}

async fn create_stream(
    js: &jetstream::Context,
    spec: &Spec,
) -> Result<jetstream::stream::Stream, SetupError> {
    tracing::info!(stream = %spec.stream, subjects = ?STREAM_SUBJECTS, "creating the JetStream stream");
    js.create_stream(stream::Config {
        name: spec.stream.clone(),
        subjects: STREAM_SUBJECTS.iter().map(|s| (*s).to_owned()).collect(),
        storage: stream::StorageType::File,
        max_age: spec.max_age,
        duplicate_window: duplicate_window(spec.max_age),
        ..Default::default()
    })
    .await
    .map_err(unavailable("creating the stream"))
}

/// The duplicate window of a stream whose messages live `max_age` (0: forever).
fn duplicate_window(max_age: Duration) -> Duration {
    if max_age.is_zero() {
        DUPLICATE_WINDOW
    } else {
        DUPLICATE_WINDOW.min(max_age)
    }
}

/// The existing stream's configuration with the spec's max age, if it has another.
fn aged(spec: &Spec, existing: &stream::Config) -> Option<stream::Config> {
    if existing.max_age == spec.max_age {
        return None;
    }
    let mut config = existing.clone();
    config.max_age = spec.max_age;
    config.duplicate_window = config.duplicate_window.min(duplicate_window(spec.max_age));
    Some(config)
}

/// Ensures the dead-letter stream exists and captures the dead-letter subject. It keeps dead
/// letters without a limit: they leave it when `socket-bridge dead-letters` re-publishes or an
/// operator removes them.
async fn ensure_dead_letter_stream(js: &jetstream::Context, spec: &Spec) -> Result<(), SetupError> {
    let stream = match js.get_stream(&spec.dead_letter_stream).await {
        Ok(stream) => stream,
        Err(e) if stream_missing(&e) => {
            tracing::info!(
                stream = %spec.dead_letter_stream,
                subject = %spec.dead_letter_subject,
                "creating the dead-letter stream"
            );
            return js
                .create_stream(stream::Config {
                    name: spec.dead_letter_stream.clone(),
                    description: Some(
                        "socket-bridge: messages the hub refused, with the reason in headers"
                            .into(),
                    ),
                    subjects: vec![spec.dead_letter_subject.clone()],
                    storage: stream::StorageType::File,
                    ..Default::default()
                })
                .await
                .map(drop)
                .map_err(unavailable("creating the dead-letter stream"));
        }
        Err(e) => return Err(unavailable("reading the dead-letter stream")(e)),
    };
    let captures = stream
        .cached_info()
        .config
        .subjects
        .contains(&spec.dead_letter_subject);
    if captures {
        Ok(())
    } else {
        Err(SetupError::Conflict(format!(
            "the JetStream stream `{}` exists with subjects {:?}, but socket-bridge keeps its dead \
             letters there on `{}`: add that subject, or point --nats-dead-letter-stream at another stream",
            spec.dead_letter_stream,
            stream.cached_info().config.subjects,
            spec.dead_letter_subject
        )))
    }
}

/// An existing stream must have exactly the subjects of [`STREAM_SUBJECTS`].
fn check_stream(name: &str, config: &stream::Config) -> Result<(), SetupError> {
    let have: BTreeSet<&str> = config.subjects.iter().map(String::as_str).collect();
    let want: BTreeSet<&str> = STREAM_SUBJECTS.into_iter().collect();
    if have == want {
        Ok(())
    } else {
        Err(SetupError::Conflict(format!(
            "the JetStream stream `{name}` exists with subjects {:?}, but socket-bridge needs exactly {:?}: \
             change the stream's subjects, or point --nats-stream at another stream",
            config.subjects, STREAM_SUBJECTS
        )))
    }
}

/// An existing consumer must be a pull consumer that acks (all, or explicit: moved to all by
/// [`ensure`]) over the whole stream.
fn check_consumer(stream: &str, name: &str, config: &consumer::Config) -> Result<(), SetupError> {
    let problem = if let Some(subject) = &config.deliver_subject {
        Some(format!("is a push consumer (deliver subject `{subject}`)"))
    } else if config.ack_policy == AckPolicy::None {
        Some("has ack policy none".to_owned())
    } else if !config.filter_subject.is_empty() || !config.filter_subjects.is_empty() {
        Some("filters the stream's subjects".to_owned())
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(SetupError::Conflict(format!(
            "the JetStream consumer `{name}` on stream `{stream}` {problem}, but socket-bridge needs a \
             durable pull consumer that acks all over every subject: delete it, or point \
             --nats-consumer at another name"
        ))),
    }
}

/// The consumer the hub creates when there is none, starting after `consumed` (the store's last
/// settled sequence of the stream; 0: from the start). It acks all: one ack of a message settles
/// every message before it, and the hub consumes the stream in order (docs/protocol.md,
/// "Producers: NATS JetStream").
fn new_consumer(spec: &Spec, consumed: u64) -> pull::Config {
    let deliver_policy = match consumed {
        0 => DeliverPolicy::All,
        settled => DeliverPolicy::ByStartSequence {
            start_sequence: settled.saturating_add(1),
        },
    };
    pull::Config {
        durable_name: Some(spec.consumer.clone()),
        description: Some("socket-bridge: stores and delivers photo events".into()),
        deliver_policy,
        ack_policy: AckPolicy::All,
        ack_wait: spec.ack_wait,
        max_ack_pending: spec.max_ack_pending,
        // Never drop a message after some number of deliveries: that would lose an event.
        max_deliver: -1,
        ..Default::default()
    }
}

/// The existing consumer with the hub's tunables, if any of them differs.
fn tuned(spec: &Spec, existing: &consumer::Config) -> Option<pull::Config> {
    let fits = existing.ack_wait == spec.ack_wait
        && existing.max_ack_pending == spec.max_ack_pending
        && existing.max_deliver <= 0;
    if fits {
        return None;
    }
    let mut config = pull::Config::try_from_consumer_config(existing.clone()).ok()?;
    config.ack_wait = spec.ack_wait;
    config.max_ack_pending = spec.max_ack_pending;
    config.max_deliver = -1;
    Some(config)
}

/// How long to wait before reading when `ack_pending` messages were delivered and not acked, the
/// last delivery at `last_active` (Unix nanoseconds): until that delivery's ack wait is over.
fn redelivery_wait(
    ack_pending: usize,
    last_active: Option<i128>,
    ack_wait: Duration,
    now: i128,
) -> Duration {
    if ack_pending == 0 {
        return Duration::ZERO;
    }
    let remaining = match last_active {
        Some(last) => {
            let deadline =
                last.saturating_add(i128::try_from(ack_wait.as_nanos()).unwrap_or(i128::MAX));
            u64::try_from(deadline.saturating_sub(now).max(0))
                .map(Duration::from_nanos)
                .unwrap_or(ack_wait)
                .min(ack_wait)
        }
        None => ack_wait,
    };
    remaining + REDELIVERY_MARGIN
}

fn now_nanos() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec {
            stream: "PHOTO_EVENTS".into(),
            consumer: "socket-bridge".into(),
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 4096,
            max_age: Duration::from_secs(7 * 24 * 3600),
            dead_letter_stream: "PHOTO_EVENTS_DLQ".into(),
            dead_letter_subject: "socket-bridge.dead-letter".into(),
        }
    }

    /// An existing stream gets the retention age (and a duplicate window that fits in it) only
    /// when its age differs; its other settings are kept.
    #[test]
    fn stream_age_follows_retention() {
        let existing = stream::Config {
            name: "PHOTO_EVENTS".into(),
            description: Some("kept".into()),
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        let update = aged(&spec(), &existing).expect("an update");
        assert_eq!(update.max_age, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(update.duplicate_window, Duration::from_secs(120));
        assert_eq!(update.description.as_deref(), Some("kept"));
        assert!(aged(&spec(), &update).is_none());
        let short = Spec {
            max_age: Duration::from_secs(30),
            ..spec()
        };
        let update = aged(&short, &existing).expect("an update");
        assert_eq!(update.duplicate_window, Duration::from_secs(30));
    }

    /// A stream is accepted with exactly the two subjects, in any order, and refused otherwise.
    #[test]
    fn stream_subjects_must_match() {
        let with = |subjects: &[&str]| stream::Config {
            name: "PHOTO_EVENTS".into(),
            subjects: subjects.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        };
        assert!(check_stream("S", &with(&["system.>", "photo.>"])).is_ok());
        for bad in [&["photo.>"][..], &["photo.>", "system.>", "other.>"], &[]] {
            let refused = check_stream("S", &with(bad));
            assert!(matches!(refused, Err(SetupError::Conflict(_))), "{bad:?}");
        }
    }

    /// Push consumers, consumers without acks and filtered consumers are refused; explicit acks
    /// (which `ensure` moves to ack-all) are not.
    #[test]
    fn consumer_must_be_a_pull_consumer_that_acks_everything() {
        let good = as_consumer(new_consumer(&spec(), 0));
        assert_eq!(good.ack_policy, AckPolicy::All);
        assert!(check_consumer("S", "c", &good).is_ok());
        let explicit = consumer::Config {
            ack_policy: AckPolicy::Explicit,
            ..good.clone()
        };
        assert!(check_consumer("S", "c", &explicit).is_ok());
        let push = consumer::Config {
            deliver_subject: Some("deliver.here".into()),
            ..good.clone()
        };
        let no_acks = consumer::Config {
            ack_policy: AckPolicy::None,
            ..good.clone()
        };
        let filtered = consumer::Config {
            filter_subject: "photo.>".into(),
            ..good.clone()
        };
        for bad in [push, no_acks, filtered] {
            let refused = check_consumer("S", "c", &bad);
            assert!(matches!(refused, Err(SetupError::Conflict(_))), "{bad:?}");
        }
    }

    /// A new consumer starts after the consumed position, or at the stream's start without one.
    #[test]
    fn a_new_consumer_starts_after_the_consumed_position() {
        assert_eq!(new_consumer(&spec(), 0).deliver_policy, DeliverPolicy::All);
        assert_eq!(
            new_consumer(&spec(), 41).deliver_policy,
            DeliverPolicy::ByStartSequence { start_sequence: 42 }
        );
    }

    /// Only a consumer whose tunables differ is updated, and the update keeps its other settings.
    #[test]
    fn tunables_are_updated_only_when_they_differ() {
        let existing = as_consumer(new_consumer(&spec(), 0));
        assert!(tuned(&spec(), &existing).is_none());
        let slower = consumer::Config {
            ack_wait: Duration::from_secs(5),
            description: Some("kept".into()),
            max_deliver: 3,
            ..existing
        };
        let update = tuned(&spec(), &slower).expect("an update");
        assert_eq!(update.ack_wait, Duration::from_secs(30));
        assert_eq!(update.max_deliver, -1);
        assert_eq!(update.description.as_deref(), Some("kept"));
    }

    /// Unacked deliveries of an earlier run are waited for until their ack wait is over.
    #[test]
    fn waits_for_earlier_deliveries() {
        let wait = Duration::from_secs(10);
        let s = 1_000_000_000i128;
        assert_eq!(redelivery_wait(0, Some(0), wait, 100 * s), Duration::ZERO);
        assert_eq!(
            redelivery_wait(3, Some(100 * s), wait, 104 * s),
            Duration::from_secs(6) + REDELIVERY_MARGIN
        );
        assert_eq!(
            redelivery_wait(3, Some(100 * s), wait, 200 * s),
            REDELIVERY_MARGIN
        );
        assert_eq!(redelivery_wait(3, None, wait, 0), wait + REDELIVERY_MARGIN);
        assert_eq!(
            redelivery_wait(3, Some(900 * s), wait, 0),
            wait + REDELIVERY_MARGIN
        );
    }

    fn as_consumer(config: pull::Config) -> consumer::Config {
        consumer::IntoConsumerConfig::into_consumer_config(config)
    }
}
