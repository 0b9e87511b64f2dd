//! The flags of the HTTP-talking subcommands (`history`, `status`, `tail`), listed in the
//! `socket-bridge` command line by [`crate::config`].

use clap::{Args, ValueEnum};

/// The hub's default address for the CLI.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// Which hub, and with which token.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// The hub's base URL.
    #[arg(long, env = "SOCKET_BRIDGE_SERVER", default_value = DEFAULT_SERVER)]
    pub server: String,
    /// Bearer token (`support:read` reads every photo and room).
    #[arg(long, env = "SOCKET_BRIDGE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// How `history` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HistoryFormat {
    /// Aligned columns with local times and a progress bar.
    Table,
    /// One JSON object: `{ room, events, nextAfter }`.
    Json,
    /// One event object per line, as the history endpoint gives them.
    Jsonl,
    /// A header line, then one line per event.
    Csv,
}

/// How `status` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    /// One aligned line per field.
    Table,
    /// The status object, as the hub gives it.
    Json,
}

/// How `tail` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TailFormat {
    /// One aligned line per event.
    Table,
    /// One JSON object per line: `{ seq, type, data }` (`data` is what a Socket.IO client gets),
    /// and `{ type: "replay:truncated", data }` where history is gone.
    Jsonl,
}

/// `socket-bridge history`.
#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The photo whose events to print.
    #[arg(required_unless_present = "room", conflicts_with = "room")]
    pub photo_id: Option<String>,
    /// Any room instead of a photo's (`user:<id>`, `global`, ...).
    #[arg(long)]
    pub room: Option<String>,
    /// Start after this seq.
    #[arg(long, default_value_t = 0)]
    pub after: u64,
    /// At most this many events (default: every event to the end).
    #[arg(long)]
    pub limit: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = HistoryFormat::Table)]
    pub format: HistoryFormat,
}

/// `socket-bridge status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The photo.
    pub photo_id: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = StatusFormat::Table)]
    pub format: StatusFormat,
}

/// `socket-bridge tail`.
#[derive(Debug, Clone, Args)]
pub struct TailArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The room to follow: `photo:<id>`, `user:<id>`, `global`, ...
    pub room: String,
    /// Start after this seq (default: the last 10 events, then every new one).
    #[arg(long)]
    pub after: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TailFormat::Table)]
    pub format: TailFormat,
}

/// `socket-bridge dead-letters`: talks to NATS directly, not to the hub.
#[derive(Debug, Clone, Args)]
pub struct DeadLettersArgs {
    /// NATS server URL(s), as the hub's `--nats-url`.
    #[arg(long, env = "NATS_URL", hide_env_values = true)]
    pub nats_url: String,
    /// The dead-letter stream, as the hub's `--nats-dead-letter-stream`.
    #[arg(
        long = "nats-dead-letter-stream",
        env = "NATS_DEAD_LETTER_STREAM",
        default_value = crate::bus::nats::DEFAULT_DEAD_LETTER_STREAM
    )]
    pub stream: String,
    /// What to do.
    #[command(subcommand)]
    pub action: DeadLettersAction,
}

/// What `dead-letters` does.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum DeadLettersAction {
    /// List the kept dead letters, oldest first.
    List {
        /// Only those refused for this reason (`invalid_json`, `owner_mismatch`, ...).
        #[arg(long)]
        reason: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// Output format.
        #[arg(long, value_enum, default_value_t = StatusFormat::Table)]
        format: StatusFormat,
    },
    /// Publish dead letters again on their original subject, then remove them from the
    /// dead-letter stream.
    Republish {
        /// The dead letter with this sequence in the dead-letter stream.
        #[arg(long, required_unless_present_any = ["reason", "all"], conflicts_with_all = ["reason", "all"])]
        seq: Option<u64>,
        /// Every dead letter refused for this reason.
        #[arg(long, conflicts_with = "all")]
        reason: Option<String>,
        /// Every dead letter.
        #[arg(long)]
        all: bool,
    },
}
