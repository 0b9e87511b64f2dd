//! The hub's validated settings, what [`crate::app::Application`] is built from. The command line
//! ([`crate::config`]) is parsed into them once; tests build them with [`Settings::new`] and never
//! read the environment. Every default lives here.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use axum::http::HeaderValue;

use crate::bus::nats::NatsSettings;
use crate::photos::PhotoSettings;
use crate::retention::PruneSchedule;
use crate::store::{RetentionPolicy, StoreOptions};

/// Default listen address.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT);
/// Default port.
pub const DEFAULT_PORT: u16 = 8080;
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "data";
/// Default CORS origins: the development servers of the web clients.
pub const DEFAULT_ORIGINS: [&str; 2] = ["http://localhost:3000", "http://localhost:3001"];
/// Default Socket.IO ping interval.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(25);
/// Default Socket.IO ping timeout.
pub const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(30);
/// Default largest packet a client may send, and largest HTTP ingest body, bytes.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1_048_576;
/// Default packets queued per socket before the hub catches the client up from the store.
pub const DEFAULT_QUEUE_PACKETS: usize = 1024;
/// Default bytes of packets queued per socket before the hub catches the client up from the store.
pub const DEFAULT_QUEUE_BYTES: usize = 1_048_576;
/// Default time a slow client may make no progress before it is disconnected.
pub const DEFAULT_SLOW_CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default clock skew tolerated on a token's `exp`.
pub const DEFAULT_TOKEN_LEEWAY: Duration = crate::auth::DEFAULT_LEEWAY;
/// Default most sockets connected at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default most photo rooms one socket may subscribe to.
pub const DEFAULT_MAX_SUBSCRIPTIONS: usize = 100;
/// Default requests a socket may send per second, once its burst is spent.
pub const DEFAULT_SOCKET_REQUESTS_PER_SECOND: u32 = 20;
/// Default requests a socket may send at once before the per-second rate applies.
pub const DEFAULT_SOCKET_REQUEST_BURST: u32 = 200;
/// Default most rooms in a handshake's `resume`.
pub const DEFAULT_MAX_RESUME_ROOMS: usize = 256;
/// Default longest time to receive a request's headers (and to wait for the next request on an
/// idle connection).
pub const DEFAULT_HTTP_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default longest wait for the next part of a request body.
pub const DEFAULT_HTTP_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default most events in one `POST /api/events` batch.
pub const DEFAULT_MAX_BATCH_EVENTS: usize = 10_000;
/// Default deepest nesting of an event's `data`.
pub const DEFAULT_MAX_JSON_DEPTH: usize = 32;
/// Default age after which events are pruned.
pub const DEFAULT_RETENTION_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default number of events kept per room.
pub const DEFAULT_RETENTION_MAX_EVENTS: u64 = 10_000;
/// Default largest photo upload, bytes (20 MiB).
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 20 * 1024 * 1024;
/// Default largest photo, in pixels (width times height): a guard against decompression bombs.
pub const DEFAULT_MAX_IMAGE_PIXELS: u64 = 64_000_000;
/// Default number of times a photo's processing is tried (an attempt that panicked or was cut
/// off by a stop counts) before it is failed.
pub const DEFAULT_PHOTO_MAX_ATTEMPTS: u32 = 3;

/// Default number of photos the embedded worker processes at once: half the cores, at least one.
pub fn default_worker_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// Everything the hub is built from, valid by construction.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on (port 0 picks a free one; see `Application::local_addr`).
    pub listen: SocketAddr,
    /// Where `/metrics` is served when not on `listen` (port 0 picks a free one; see
    /// `Application::metrics_addr`).
    pub metrics_listen: Option<SocketAddr>,
    /// Data directory: the event log (`store/`), the photos (`photos/`) and the generated token
    /// secret.
    pub data_dir: PathBuf,
    /// HS256 secret; `None` uses (or creates) the one kept in the data dir.
    pub jwt_secret: Option<String>,
    /// NATS JetStream bus; `None` means the in-process bus.
    pub nats: Option<NatsSettings>,
    /// Cross-origin rules of the HTTP API and the Socket.IO polling transport.
    pub cors: CorsSettings,
    /// Socket.IO transport settings.
    pub socket: SocketSettings,
    /// What retention keeps.
    pub retention: RetentionPolicy,
    /// When retention runs.
    pub prune_schedule: PruneSchedule,
    /// Event log tuning.
    pub store: StoreOptions,
    /// Photo uploads, the job queue and the embedded worker.
    pub photos: PhotoSettings,
    /// Accept the original design's unauthenticated handshake (`userId`/`clientId`). Development
    /// only: refused unless the hub listens on a loopback address.
    pub insecure_dev_auth: bool,
    /// Clock skew tolerated on a token's `exp`; a socket is disconnected once its token's `exp`
    /// plus this has passed.
    pub token_leeway: Duration,
    /// Abuse limits.
    pub limits: Limits,
    /// HTTP read timeouts.
    pub http: HttpSettings,
}

/// Limits that keep one client or producer from hurting the others.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most sockets connected at once; more are refused with `overloaded`.
    pub max_connections: usize,
    /// Most photo rooms one socket may subscribe to (`too_many_subscriptions`).
    pub max_subscriptions: usize,
    /// Most events in one HTTP ingest batch (`batch_too_large`).
    pub max_batch_events: usize,
    /// Requests (subscribe, unsubscribe, status, ping) a socket may send per second once its
    /// burst is spent (`rate_limited` beyond).
    pub socket_requests_per_second: u32,
    /// Requests a socket may send at once.
    pub socket_request_burst: u32,
    /// Most rooms in a handshake's `resume` (`invalid_handshake` beyond).
    pub max_resume_rooms: usize,
    /// Deepest nesting of an event's `data` (HTTP: 400 `invalid_payload`; NATS: `too_deep`).
    pub max_json_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_subscriptions: DEFAULT_MAX_SUBSCRIPTIONS,
            max_batch_events: DEFAULT_MAX_BATCH_EVENTS,
            max_json_depth: DEFAULT_MAX_JSON_DEPTH,
            socket_requests_per_second: DEFAULT_SOCKET_REQUESTS_PER_SECOND,
            socket_request_burst: DEFAULT_SOCKET_REQUEST_BURST,
            max_resume_rooms: DEFAULT_MAX_RESUME_ROOMS,
        }
    }
}

/// HTTP read timeouts (against clients that send slowly on purpose).
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Longest time to receive a request's headers, and to wait for the next request on an idle
    /// keep-alive connection.
    pub header_timeout: Duration,
    /// Longest wait for the next part of a request body (a body that keeps arriving is not cut).
    pub body_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            header_timeout: DEFAULT_HTTP_HEADER_TIMEOUT,
            body_timeout: DEFAULT_HTTP_BODY_TIMEOUT,
        }
    }
}

/// Which origins CORS allows.
#[derive(Debug, Clone)]
pub enum AllowedOrigins {
    /// Any origin (`*`): the request's origin is mirrored.
    Any,
    /// Exactly these origins.
    List(Vec<HeaderValue>),
}

impl AllowedOrigins {
    /// Parses origins as given on the command line; `*` anywhere means any origin.
    pub fn parse<S: AsRef<str>>(origins: &[S]) -> Result<Self, SettingsError> {
        if origins.iter().any(|o| o.as_ref().trim() == "*") {
            return Ok(Self::Any);
        }
        origins
            .iter()
            .map(|o| {
                let o = o.as_ref().trim();
                HeaderValue::from_str(o).map_err(|_| SettingsError::Origin(o.to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self::List)
    }
}

/// Cross-origin settings.
#[derive(Debug, Clone)]
pub struct CorsSettings {
    /// Allowed origins.
    pub origins: AllowedOrigins,
    /// Whether responses allow credentials.
    pub credentials: bool,
}

/// Socket.IO transport settings.
#[derive(Debug, Clone)]
pub struct SocketSettings {
    /// Engine.IO ping interval.
    pub ping_interval: Duration,
    /// Engine.IO ping timeout.
    pub ping_timeout: Duration,
    /// Largest packet a client may send, and largest HTTP ingest body, bytes.
    pub max_payload_bytes: usize,
    /// Packets queued per socket before the hub treats the client as slow and catches it up
    /// from the store instead.
    pub queue_packets: usize,
    /// Bytes of packets queued per socket (not yet taken by its transport) at or above which the
    /// queue counts as full, whatever the number of packets.
    pub queue_bytes: usize,
    /// How long a slow client may make no progress before it is disconnected (it will resume).
    pub slow_client_timeout: Duration,
}

impl Default for SocketSettings {
    fn default() -> Self {
        Self {
            ping_interval: DEFAULT_PING_INTERVAL,
            ping_timeout: DEFAULT_PING_TIMEOUT,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            queue_packets: DEFAULT_QUEUE_PACKETS,
            queue_bytes: DEFAULT_QUEUE_BYTES,
            slow_client_timeout: DEFAULT_SLOW_CLIENT_TIMEOUT,
        }
    }
}

impl Default for PhotoSettings {
    fn default() -> Self {
        Self {
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            max_image_pixels: DEFAULT_MAX_IMAGE_PIXELS,
            worker: true,
            worker_threads: default_worker_threads(),
            max_attempts: DEFAULT_PHOTO_MAX_ATTEMPTS,
        }
    }
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            max_age: DEFAULT_RETENTION_MAX_AGE,
            max_events_per_room: DEFAULT_RETENTION_MAX_EVENTS,
        }
    }
}

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A CORS origin is not a valid header value.
    #[error("ALLOWED_ORIGINS: `{0}` is not a valid origin")]
    Origin(String),
    /// `--insecure-dev-auth` on an address other machines can reach.
    #[error(
        "--insecure-dev-auth lets anyone connect as any user; it is refused on {0}: listen on 127.0.0.1 (or ::1), or drop it"
    )]
    InsecureOnPublicAddress(SocketAddr),
}

impl Settings {
    /// The defaults, with the data in `data_dir`, the in-process bus and the default listen
    /// address.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            metrics_listen: None,
            data_dir: data_dir.into(),
            jwt_secret: None,
            nats: None,
            cors: CorsSettings {
                origins: AllowedOrigins::List(
                    DEFAULT_ORIGINS.map(HeaderValue::from_static).to_vec(),
                ),
                credentials: false,
            },
            socket: SocketSettings::default(),
            retention: RetentionPolicy::default(),
            prune_schedule: PruneSchedule::default(),
            store: StoreOptions::default(),
            photos: PhotoSettings::default(),
            insecure_dev_auth: false,
            token_leeway: DEFAULT_TOKEN_LEEWAY,
            limits: Limits::default(),
            http: HttpSettings::default(),
        }
    }

    /// Where the event log lives inside the data dir.
    pub fn store_dir(&self) -> PathBuf {
        store_dir(&self.data_dir)
    }
}

/// Where the event log lives inside `data_dir`.
pub fn store_dir(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("store")
}
