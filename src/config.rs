//! Command line and environment: every setting of CONTRACT.md section 1, parsed once by clap.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// socket-bridge: a durable real-time event hub (Socket.IO delivery of gap-free, stored events).
#[derive(Debug, Parser)]
#[command(name = "socket-bridge", version, about)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
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
}

/// Where the data lives and which secret signs tokens (shared by `serve` and `token`).
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Data directory (the event log and the generated token secret live here).
    #[arg(long, env = "DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// HS256 secret for tokens. Without it, a random secret is created once in the data dir.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
}

/// What retention keeps.
#[derive(Debug, Clone, Args)]
pub struct RetentionArgs {
    /// Events older than this are pruned (e.g. `7d`, `12h`).
    #[arg(long, env = "RETENTION_MAX_AGE", value_parser = humantime::parse_duration, default_value = "7d")]
    pub retention_max_age: Duration,
    /// At most this many events are kept per room.
    #[arg(long, env = "RETENTION_MAX_EVENTS", default_value_t = 10_000)]
    pub retention_max_events: u64,
}

impl RetentionArgs {
    /// The store's retention policy.
    pub fn policy(&self) -> crate::store::RetentionPolicy {
        crate::store::RetentionPolicy {
            max_age: self.retention_max_age,
            max_events_per_room: self.retention_max_events,
        }
    }
}

/// `socket-bridge prune`.
#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// Data directory of a stopped hub.
    #[arg(long, env = "DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub retention: RetentionArgs,
    /// Only count what would be removed.
    #[arg(long)]
    pub dry_run: bool,
}

/// Settings of the hub.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
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
        default_value = "http://localhost:3000,http://localhost:3001"
    )]
    pub allowed_origins: Vec<String>,
    /// Whether CORS responses allow credentials.
    #[arg(long, env = "SOCKET_CORS_CREDENTIALS", default_value_t = false, action = clap::ArgAction::Set)]
    pub cors_credentials: bool,
    /// Socket.IO ping timeout, milliseconds.
    #[arg(long, env = "SOCKET_PING_TIMEOUT", default_value_t = 30_000)]
    pub ping_timeout_ms: u64,
    /// Socket.IO ping interval, milliseconds.
    #[arg(long, env = "SOCKET_PING_INTERVAL", default_value_t = 25_000)]
    pub ping_interval_ms: u64,
    /// Largest packet a client may send, bytes (also the HTTP ingest body limit).
    #[arg(long, env = "SOCKET_MAX_BUFFER_SIZE", default_value_t = 1_048_576)]
    pub max_buffer_size: u64,
    /// Packets queued per socket before the hub treats the client as slow and catches it up
    /// from the store instead.
    #[arg(long, env = "SOCKET_QUEUE_PACKETS", default_value_t = 1024)]
    pub socket_queue_packets: usize,
    /// How long a slow client may make no progress before it is disconnected (it will resume).
    #[arg(long, env = "SLOW_CLIENT_TIMEOUT", value_parser = humantime::parse_duration, default_value = "30s")]
    pub slow_client_timeout: Duration,
    #[command(flatten)]
    pub retention: RetentionArgs,
    /// When retention runs: cron with a seconds field (`sec min hour day-of-month month day-of-week`).
    #[arg(long, env = "PRUNE_SCHEDULE", default_value = "0 */10 * * * *")]
    pub prune_schedule: String,
    /// sled page cache size, MiB.
    #[arg(long, env = "STORE_CACHE_MB", default_value_t = 256)]
    pub store_cache_mb: u64,
    /// Accept the seed's unauthenticated handshake (`userId`/`clientId`). Development only.
    #[arg(long, env = "INSECURE_DEV_AUTH", default_value_t = false)]
    pub insecure_dev_auth: bool,
}

impl Default for ServeArgs {
    fn default() -> Self {
        match Cli::parse_from(["socket-bridge", "serve"]).command {
            Some(Command::Serve(args)) => *args,
            _ => unreachable!("`serve` parses into Command::Serve"),
        }
    }
}

/// How the hub consumes NATS JetStream (used only with `--nats-url`).
#[derive(Debug, Clone, Args)]
pub struct NatsArgs {
    /// JetStream stream holding the producers' events (`photo.>` and `system.>`); created when
    /// missing.
    #[arg(
        long = "nats-stream",
        env = "NATS_STREAM",
        default_value = "PHOTO_EVENTS"
    )]
    pub stream: String,
    /// Durable pull consumer the hub reads the stream with; created when missing.
    #[arg(
        long = "nats-consumer",
        env = "NATS_CONSUMER",
        default_value = "socket-bridge"
    )]
    pub consumer: String,
    /// Subject that refused messages are copied to, with the reason in headers.
    #[arg(
        long = "nats-dead-letter-subject",
        env = "NATS_DEAD_LETTER_SUBJECT",
        default_value = "socket-bridge.dead-letter"
    )]
    pub dead_letter_subject: String,
    /// Messages asked for per pull request; one group-committed append takes up to four such
    /// batches when they have arrived while the previous append was being written.
    #[arg(
        long = "nats-batch-size",
        env = "NATS_BATCH_SIZE",
        default_value_t = 256
    )]
    pub batch_size: usize,
    /// How long JetStream waits for an ack before redelivering (the consumer's `ack_wait`).
    #[arg(long = "nats-ack-wait", env = "NATS_ACK_WAIT", value_parser = humantime::parse_duration, default_value = "30s")]
    pub ack_wait: Duration,
}

/// `socket-bridge token`.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The user id (`sub`).
    #[arg(long)]
    pub user: String,
    /// A permission to grant (repeatable): read:photos, write:photos, events:publish, support:read, admin.
    #[arg(long = "permission")]
    pub permissions: Vec<String>,
    /// How long the token is valid, e.g. `1h`, `30m`, `7d`.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1h")]
    pub ttl: Duration,
}
