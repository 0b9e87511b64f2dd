//! The command line and environment (docs/protocol.md, "Running it"): clap parses them once into
//! [`Settings`] for `serve`, and into plain values for `token` and `prune`; the support CLI's
//! flags are in [`crate::cli::args`]. Defaults come from
//! [`crate::settings`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::auth::Permission;
use crate::bus::nats::{self, NatsError, NatsSettings};
use crate::cli::args::{DeadLettersArgs, HistoryArgs, StatusArgs, TailArgs};
use crate::photos::PhotoSettings;
use crate::retention::{PruneSchedule, RetentionError};
use crate::settings::{
    self, AllowedOrigins, CorsSettings, HttpSettings, Limits, Settings, SettingsError,
    SocketSettings,
};
use crate::store::{RetentionPolicy, StoreOptions};

/// socket-bridge: a durable real-time event hub (Socket.IO delivery of gap-free, stored events).
///
/// Without a subcommand it serves, and takes the `serve` flags directly.
#[derive(Debug, Parser)]
#[command(
    name = "socket-bridge",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The `serve` flags, accepted without the subcommand too.
    #[command(flatten)]
    pub serve: ServeArgs,
}

impl Cli {
    /// The command to run: the subcommand given, else `serve` with the top-level flags.
    pub fn into_command(self) -> Command {
        self.command
            .unwrap_or_else(|| Command::Serve(Box::new(self.serve)))
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub (the default).
    Serve(Box<ServeArgs>),
    /// Print a signed token for the configured secret.
    Token(TokenArgs),
    /// Run one retention pass on a stopped hub's data dir and print what it removed.
    Prune(PruneArgs),
    /// Copy a stopped hub's store into a fresh directory that takes its place, giving back the
    /// disk space sled's log holds for removed records.
    Compact(CompactArgs),
    /// Print a photo's (or a room's) event history from a running hub.
    History(HistoryArgs),
    /// Print a photo's status from a running hub.
    Status(StatusArgs),
    /// Follow a room's events live on a running hub (SSE).
    Tail(TailArgs),
    /// List or re-publish the NATS messages the hub refused (talks to NATS, not to the hub).
    DeadLetters(DeadLettersArgs),
}

/// Why the flags cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A general setting is invalid.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The prune schedule does not parse.
    #[error(transparent)]
    Schedule(#[from] RetentionError),
    /// A NATS setting is invalid.
    #[error(transparent)]
    Nats(#[from] NatsError),
    /// A count or duration that must be at least one is zero.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// A size does not fit this machine's address space.
    #[error("{flag} {value} is larger than this machine can address")]
    TooLarge {
        /// The flag.
        flag: &'static str,
        /// Its value.
        value: u64,
    },
}

/// Where the data lives and which secret signs tokens (shared by `serve` and `token`).
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Data directory (the event log and the generated token secret live here).
    #[arg(long, env = "DATA_DIR", default_value = settings::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// HS256 secret for tokens. Without it, a random secret is created once in the data dir.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
}

/// What retention keeps.
#[derive(Debug, Clone, Args)]
pub struct RetentionArgs {
    /// Events older than this are pruned (e.g. `7d`, `12h`).
    #[arg(long, env = "RETENTION_MAX_AGE", value_parser = duration, default_value_t = settings::DEFAULT_RETENTION_MAX_AGE.into())]
    pub retention_max_age: humantime::Duration,
    /// At most this many events are kept per room.
    #[arg(long, env = "RETENTION_MAX_EVENTS", default_value_t = settings::DEFAULT_RETENTION_MAX_EVENTS)]
    pub retention_max_events: u64,
}

impl RetentionArgs {
    /// The store's retention policy.
    pub fn policy(&self) -> RetentionPolicy {
        RetentionPolicy {
            max_age: self.retention_max_age.into(),
            max_events_per_room: self.retention_max_events,
        }
    }
}

/// `socket-bridge prune`.
#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// Data directory of a stopped hub.
    #[arg(long, env = "DATA_DIR", default_value = settings::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub retention: RetentionArgs,
    /// Only count what would be removed.
    #[arg(long)]
    pub dry_run: bool,
}

/// `socket-bridge compact`.
#[derive(Debug, Clone, Args)]
pub struct CompactArgs {
    /// Data directory of a stopped hub.
    #[arg(long, env = "DATA_DIR", default_value = settings::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
}

/// The flags of `serve`, as given; [`ServeArgs::into_settings`] validates them.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "LISTEN_ADDR", default_value_t = settings::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Serve `/metrics` on this address only (e.g. an internal interface) instead of on
    /// `--listen`.
    #[arg(long, env = "METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub data: DataArgs,
    /// NATS server URL; unset means the in-process event bus.
    #[arg(long, env = "NATS_URL")]
    pub nats_url: Option<String>,
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Comma-separated origins allowed by CORS (`*` for any).
    #[arg(
        long,
        env = "ALLOWED_ORIGINS",
        value_delimiter = ',',
        default_values = settings::DEFAULT_ORIGINS
    )]
    pub allowed_origins: Vec<String>,
    /// Whether CORS responses allow credentials.
    #[arg(long, env = "SOCKET_CORS_CREDENTIALS", default_value_t = false, action = clap::ArgAction::Set)]
    pub cors_credentials: bool,
    /// Socket.IO ping timeout, milliseconds.
    #[arg(long, env = "SOCKET_PING_TIMEOUT", default_value_t = millis(settings::DEFAULT_PING_TIMEOUT))]
    pub ping_timeout_ms: u64,
    /// Socket.IO ping interval, milliseconds.
    #[arg(long, env = "SOCKET_PING_INTERVAL", default_value_t = millis(settings::DEFAULT_PING_INTERVAL))]
    pub ping_interval_ms: u64,
    /// Largest packet a client may send, bytes (also the HTTP ingest body limit).
    #[arg(long, env = "SOCKET_MAX_BUFFER_SIZE", default_value_t = settings::DEFAULT_MAX_PAYLOAD_BYTES as u64)]
    pub max_buffer_size: u64,
    /// Packets queued per socket before the hub treats the client as slow and catches it up
    /// from the store instead.
    #[arg(long, env = "SOCKET_QUEUE_PACKETS", default_value_t = settings::DEFAULT_QUEUE_PACKETS)]
    pub socket_queue_packets: usize,
    /// Bytes queued per socket before the hub treats the client as slow, whatever the number
    /// of packets (one event may take the queue past it).
    #[arg(long, env = "SOCKET_QUEUE_BYTES", default_value_t = settings::DEFAULT_QUEUE_BYTES)]
    pub socket_queue_bytes: usize,
    /// How long a slow client may make no progress before it is disconnected (it will resume).
    #[arg(long, env = "SLOW_CLIENT_TIMEOUT", value_parser = duration, default_value_t = settings::DEFAULT_SLOW_CLIENT_TIMEOUT.into())]
    pub slow_client_timeout: humantime::Duration,
    #[command(flatten)]
    pub retention: RetentionArgs,
    /// When retention runs: cron with a seconds field (`sec min hour day-of-month month day-of-week`).
    #[arg(long, env = "PRUNE_SCHEDULE", default_value = crate::retention::DEFAULT_PRUNE_SCHEDULE)]
    pub prune_schedule: String,
    /// sled page cache size, MiB.
    #[arg(long, env = "STORE_CACHE_MB", default_value_t = StoreOptions::default().cache_capacity_bytes >> 20)]
    pub store_cache_mb: u64,
    /// How long one write to the store may take before the hub treats the store as failed (as on
    /// a write error: 503 for writes, then exit non-zero for the supervisor to restart it).
    #[arg(long, env = "STORE_WRITE_DEADLINE", value_parser = write_deadline, default_value_t = StoreOptions::default().write_deadline.into())]
    pub store_write_deadline: humantime::Duration,
    /// Accept the original design's unauthenticated handshake (`userId`/`clientId`). Development
    /// only, and only on a loopback listen address.
    #[arg(long, env = "INSECURE_DEV_AUTH", default_value_t = false)]
    pub insecure_dev_auth: bool,
    /// Clock skew tolerated on a token's `exp` (whole seconds); a connected socket is sent
    /// `auth:expired` and disconnected once `exp` plus this has passed.
    #[arg(long, env = "TOKEN_LEEWAY", value_parser = duration, default_value_t = settings::DEFAULT_TOKEN_LEEWAY.into())]
    pub token_leeway: humantime::Duration,
    /// Most sockets connected at once; more are refused at the handshake with `overloaded`.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = settings::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Most photo rooms one socket may subscribe to (`too_many_subscriptions` beyond).
    #[arg(long, env = "MAX_SUBSCRIPTIONS_PER_SOCKET", default_value_t = settings::DEFAULT_MAX_SUBSCRIPTIONS)]
    pub max_subscriptions_per_socket: usize,
    /// Most events in one `POST /api/events` batch (413 `batch_too_large` beyond).
    #[arg(long, env = "MAX_BATCH_EVENTS", default_value_t = settings::DEFAULT_MAX_BATCH_EVENTS)]
    pub max_batch_events: usize,
    /// Requests (subscribe, unsubscribe, status, ping) one socket may send per second once its
    /// burst is spent (`rate_limited` beyond).
    #[arg(long, env = "SOCKET_REQUESTS_PER_SECOND", default_value_t = settings::DEFAULT_SOCKET_REQUESTS_PER_SECOND)]
    pub socket_requests_per_second: u32,
    /// Requests one socket may send at once before the per-second rate applies.
    #[arg(long, env = "SOCKET_REQUEST_BURST", default_value_t = settings::DEFAULT_SOCKET_REQUEST_BURST)]
    pub socket_request_burst: u32,
    /// Most rooms in a handshake's `resume` (`invalid_handshake` beyond).
    #[arg(long, env = "MAX_RESUME_ROOMS", default_value_t = settings::DEFAULT_MAX_RESUME_ROOMS)]
    pub max_resume_rooms: usize,
    /// Longest time to receive a request's headers, and to keep an idle keep-alive connection.
    #[arg(long, env = "HTTP_HEADER_TIMEOUT", value_parser = duration, default_value_t = settings::DEFAULT_HTTP_HEADER_TIMEOUT.into())]
    pub http_header_timeout: humantime::Duration,
    /// Longest wait for the next part of a request body.
    #[arg(long, env = "HTTP_BODY_TIMEOUT", value_parser = duration, default_value_t = settings::DEFAULT_HTTP_BODY_TIMEOUT.into())]
    pub http_body_timeout: humantime::Duration,
    /// Deepest nesting of an event's `data` object (1 = flat); deeper is refused (HTTP 400
    /// `invalid_payload`, NATS dead letter `too_deep`).
    #[arg(long, env = "MAX_JSON_DEPTH", default_value_t = settings::DEFAULT_MAX_JSON_DEPTH, value_parser = json_depth)]
    pub max_json_depth: usize,
    #[command(flatten)]
    pub photos: PhotoArgs,
}

/// Photo uploads and the embedded thumbnail worker.
#[derive(Debug, Clone, Args)]
pub struct PhotoArgs {
    /// Largest photo `POST /api/photos` accepts, bytes (413 above it).
    #[arg(long, env = "MAX_UPLOAD_BYTES", default_value_t = settings::DEFAULT_MAX_UPLOAD_BYTES)]
    pub max_upload_bytes: u64,
    /// Largest photo accepted, in pixels (width times height; 413 above it).
    #[arg(long, env = "MAX_IMAGE_PIXELS", default_value_t = settings::DEFAULT_MAX_IMAGE_PIXELS)]
    pub max_image_pixels: u64,
    /// Run the embedded thumbnail worker (the default; `--no-worker` leaves the jobs to
    /// external workers).
    #[arg(long, env = "PHOTO_WORKER", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", overrides_with = "no_worker")]
    pub worker: bool,
    /// Do not run the embedded thumbnail worker.
    #[arg(long, overrides_with = "worker")]
    pub no_worker: bool,
    /// Photos the embedded worker processes at once (each on a blocking thread).
    #[arg(long, env = "WORKER_THREADS", default_value_t = settings::default_worker_threads())]
    pub worker_threads: usize,
    /// Times a photo's processing is tried (an attempt that panicked or was cut off by a stop
    /// counts) before it is failed.
    #[arg(long, env = "PHOTO_MAX_ATTEMPTS", default_value_t = settings::DEFAULT_PHOTO_MAX_ATTEMPTS)]
    pub photo_max_attempts: u32,
}

impl PhotoArgs {
    fn into_settings(self) -> Result<PhotoSettings, ConfigError> {
        if self.worker_threads == 0 || self.photo_max_attempts == 0 {
            return Err(ConfigError::Zero(if self.worker_threads == 0 {
                "--worker-threads"
            } else {
                "--photo-max-attempts"
            }));
        }
        Ok(PhotoSettings {
            max_upload_bytes: self.max_upload_bytes,
            max_image_pixels: self.max_image_pixels,
            worker: self.worker && !self.no_worker,
            worker_threads: self.worker_threads,
            max_attempts: self.photo_max_attempts,
        })
    }
}

/// Parses a duration such as `30s`, `15m`, `1h` or `7d`, with an error that says so.
fn duration(s: &str) -> Result<humantime::Duration, String> {
    s.parse()
        .map_err(|_| format!("`{s}` is not a duration; use e.g. 30s, 15m, 1h or 7d"))
}

/// A `--store-write-deadline`: at least a second (a flush on a busy disk can take hundreds of
/// milliseconds, and a store failed by a slow write stops the hub).
fn write_deadline(s: &str) -> Result<humantime::Duration, String> {
    let deadline = duration(s)?;
    if std::time::Duration::from(deadline) < std::time::Duration::from_secs(1) {
        return Err(format!("`{s}` is too short; use at least 1s"));
    }
    Ok(deadline)
}

/// A `--max-json-depth`: 1 to 128 (the JSON parser refuses deeper bodies anyway).
fn json_depth(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(depth @ 1..=128) => Ok(depth),
        _ => Err("a whole number from 1 to 128".into()),
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl ServeArgs {
    /// Validates the flags into the hub's settings.
    pub fn into_settings(self) -> Result<Settings, ConfigError> {
        let max_payload_bytes =
            usize::try_from(self.max_buffer_size).map_err(|_| ConfigError::TooLarge {
                flag: "--max-buffer-size",
                value: self.max_buffer_size,
            })?;
        let nats = match self.nats_url {
            None => None,
            Some(url) => {
                let nats = self.nats.into_settings(
                    url,
                    max_payload_bytes,
                    self.retention.retention_max_age.into(),
                );
                nats.validate()?;
                Some(nats)
            }
        };
        if self.insecure_dev_auth && !self.listen.ip().is_loopback() {
            return Err(SettingsError::InsecureOnPublicAddress(self.listen).into());
        }
        for (flag, value) in [
            (
                "--socket-requests-per-second",
                self.socket_requests_per_second as usize,
            ),
            ("--socket-request-burst", self.socket_request_burst as usize),
            ("--socket-queue-packets", self.socket_queue_packets),
            ("--socket-queue-bytes", self.socket_queue_bytes),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(flag));
            }
        }
        let (header_timeout, body_timeout): (Duration, Duration) = (
            self.http_header_timeout.into(),
            self.http_body_timeout.into(),
        );
        if header_timeout.is_zero() || body_timeout.is_zero() {
            return Err(ConfigError::Zero(if header_timeout.is_zero() {
                "--http-header-timeout"
            } else {
                "--http-body-timeout"
            }));
        }
        Ok(Settings {
            listen: self.listen,
            metrics_listen: self.metrics_listen,
            data_dir: self.data.data_dir,
            jwt_secret: self.data.jwt_secret,
            nats,
            cors: CorsSettings {
                origins: AllowedOrigins::parse(&self.allowed_origins)?,
                credentials: self.cors_credentials,
            },
            socket: SocketSettings {
                ping_interval: std::time::Duration::from_millis(self.ping_interval_ms),
                ping_timeout: std::time::Duration::from_millis(self.ping_timeout_ms),
                max_payload_bytes,
                queue_packets: self.socket_queue_packets,
                queue_bytes: self.socket_queue_bytes,
                slow_client_timeout: self.slow_client_timeout.into(),
            },
            retention: self.retention.policy(),
            prune_schedule: PruneSchedule::parse(&self.prune_schedule)?,
            store: StoreOptions {
                cache_capacity_bytes: self.store_cache_mb.saturating_mul(1024 * 1024),
                write_deadline: self.store_write_deadline.into(),
                ..StoreOptions::default()
            },
            photos: self.photos.into_settings()?,
            insecure_dev_auth: self.insecure_dev_auth,
            token_leeway: self.token_leeway.into(),
            limits: Limits {
                max_connections: self.max_connections,
                max_subscriptions: self.max_subscriptions_per_socket,
                max_batch_events: self.max_batch_events,
                max_json_depth: self.max_json_depth,
                socket_requests_per_second: self.socket_requests_per_second,
                socket_request_burst: self.socket_request_burst,
                max_resume_rooms: self.max_resume_rooms,
            },
            http: HttpSettings {
                header_timeout,
                body_timeout,
            },
        })
    }
}

/// How the hub consumes NATS JetStream (used only with `--nats-url`).
#[derive(Debug, Clone, Args)]
pub struct NatsArgs {
    /// JetStream stream holding the producers' events (`photo.>` and `system.>`); created when
    /// missing.
    #[arg(long = "nats-stream", env = "NATS_STREAM", default_value = nats::DEFAULT_STREAM)]
    pub stream: String,
    /// Durable pull consumer the hub reads the stream with; created when missing.
    #[arg(long = "nats-consumer", env = "NATS_CONSUMER", default_value = nats::DEFAULT_CONSUMER)]
    pub consumer: String,
    /// Subject that refused messages are copied to, with the reason in headers.
    #[arg(
        long = "nats-dead-letter-subject",
        env = "NATS_DEAD_LETTER_SUBJECT",
        default_value = nats::DEFAULT_DEAD_LETTER_SUBJECT
    )]
    pub dead_letter_subject: String,
    /// JetStream stream that keeps the dead letters (created when missing, capturing the
    /// dead-letter subject).
    #[arg(
        long = "nats-dead-letter-stream",
        env = "NATS_DEAD_LETTER_STREAM",
        default_value = nats::DEFAULT_DEAD_LETTER_STREAM
    )]
    pub dead_letter_stream: String,
    /// Messages asked for per pull request; one group-committed append takes up to four such
    /// batches when they have arrived while the previous append was being written.
    #[arg(long = "nats-batch-size", env = "NATS_BATCH_SIZE", default_value_t = nats::DEFAULT_BATCH_SIZE)]
    pub batch_size: usize,
    /// How long JetStream waits for an ack before redelivering (the consumer's `ack_wait`).
    #[arg(long = "nats-ack-wait", env = "NATS_ACK_WAIT", value_parser = duration, default_value_t = nats::DEFAULT_ACK_WAIT.into())]
    pub ack_wait: humantime::Duration,
}

impl NatsArgs {
    fn into_settings(
        self,
        url: String,
        max_message_bytes: usize,
        max_age: std::time::Duration,
    ) -> NatsSettings {
        NatsSettings {
            url,
            stream: self.stream,
            consumer: self.consumer,
            dead_letter_subject: self.dead_letter_subject,
            dead_letter_stream: self.dead_letter_stream,
            stream_max_age: max_age,
            batch_size: self.batch_size,
            ack_wait: self.ack_wait.into(),
            max_message_bytes,
        }
    }
}

/// `socket-bridge token`.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The user id (`sub`).
    #[arg(long)]
    pub user: String,
    /// A permission to grant (repeatable): read:photos, write:photos, events:publish,
    /// support:read, admin.
    #[arg(long = "permission")]
    pub permissions: Vec<Permission>,
    /// How long the token is valid, e.g. `30s`, `15m`, `1h`, `7d`.
    #[arg(long, value_parser = duration, default_value = "1h")]
    pub ttl: humantime::Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("socket-bridge").chain(args.iter().copied()))
            .map(Cli::into_command)
    }

    /// The serve flags work with and without `serve`.
    #[test]
    fn serve_flags_at_the_top_level() {
        for args in [
            &["--listen", "127.0.0.1:9999"][..],
            &["serve", "--listen", "127.0.0.1:9999"][..],
        ] {
            let Ok(Command::Serve(serve)) = parse(args) else {
                panic!("{args:?} should parse as serve");
            };
            assert_eq!(serve.listen.port(), 9999);
        }
    }

    /// The clap defaults and [`Settings::new`] agree.
    #[test]
    fn defaults_match_settings_new() {
        let Ok(Command::Serve(serve)) = parse(&["serve", "--data-dir", "d"]) else {
            panic!("serve parses");
        };
        let parsed = serve.into_settings().expect("defaults are valid");
        let built = Settings::new("d");
        assert_eq!(format!("{parsed:?}"), format!("{built:?}"));
    }

    /// `--store-write-deadline` takes durations from a second up and refuses shorter ones.
    #[test]
    fn store_write_deadline_is_at_least_a_second() {
        let Ok(Command::Serve(serve)) = parse(&["serve", "--store-write-deadline", "30s"]) else {
            panic!("30s parses");
        };
        assert_eq!(
            std::time::Duration::from(serve.store_write_deadline).as_secs(),
            30
        );
        let err = parse(&["serve", "--store-write-deadline", "500ms"]).expect_err("refused");
        assert!(err.to_string().contains("at least 1s"), "{err}");
    }

    /// An unknown permission is refused, naming the valid ones.
    #[test]
    fn unknown_permission_refused() {
        let err = parse(&["token", "--user", "u1", "--permission", "read:photo"])
            .expect_err("typo refused");
        let text = err.to_string();
        assert!(text.contains("read:photos"), "{text}");
    }

    /// `--ttl` takes 30s, 15m, 1h, 7d and says what it wants otherwise.
    #[test]
    fn ttl_words() {
        for (given, secs) in [("30s", 30), ("15m", 900), ("1h", 3600), ("7d", 604_800)] {
            let Ok(Command::Token(token)) = parse(&["token", "--user", "u1", "--ttl", given])
            else {
                panic!("{given} parses");
            };
            assert_eq!(std::time::Duration::from(token.ttl).as_secs(), secs);
        }
        let err = parse(&["token", "--user", "u1", "--ttl", "soon"]).expect_err("refused");
        assert!(
            err.to_string().contains("use e.g. 30s, 15m, 1h or 7d"),
            "{err}"
        );
    }

    /// `--worker` is the default, `--no-worker` (or `PHOTO_WORKER=false`) turns it off, and the
    /// last of the two flags wins.
    #[test]
    fn worker_flags() {
        let worker = |args: &[&str]| {
            let Ok(Command::Serve(serve)) = parse(args) else {
                panic!("{args:?} parses");
            };
            serve.into_settings().expect("valid").photos.worker
        };
        assert!(worker(&[]));
        assert!(!worker(&["--no-worker"]));
        assert!(worker(&["--no-worker", "--worker"]));
        assert!(!worker(&["--worker", "--no-worker"]));
        assert!(!worker(&["--worker", "false"]));
        let Ok(Command::Serve(serve)) = parse(&["--worker-threads", "0"]) else {
            panic!("parses");
        };
        assert!(matches!(
            serve.into_settings(),
            Err(ConfigError::Zero("--worker-threads"))
        ));
    }

    /// A socket queue of zero packets or zero bytes would never take an event: refused.
    #[test]
    fn zero_socket_queue_refused() {
        for flag in ["--socket-queue-packets", "--socket-queue-bytes"] {
            let Ok(Command::Serve(serve)) = parse(&[flag, "0"]) else {
                panic!("{flag} 0 parses");
            };
            assert!(
                matches!(serve.into_settings(), Err(ConfigError::Zero(f)) if f == flag),
                "{flag} 0 is refused"
            );
        }
    }

    /// A bad schedule is refused when the settings are built.
    #[test]
    fn bad_schedule_refused() {
        let Ok(Command::Serve(serve)) = parse(&["--prune-schedule", "often"]) else {
            panic!("serve parses");
        };
        assert!(matches!(
            serve.into_settings(),
            Err(ConfigError::Schedule(_))
        ));
    }
}
