//! The real `socket-bridge` binary, started without the settings of this process's environment:
//! [`run`] to its end, or [`HubProcess`], serving as a child process on a port it picks itself
//! (`--listen 127.0.0.1:0`), whose address is read back from its `socket-bridge listening` log
//! line.

use std::ops::Deref;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use super::SECRET;
use super::api::Api;
use super::process::Process;

/// The environment variables the binary reads its settings from.
const SETTINGS_ENV: [&str; 24] = [
    "LISTEN_ADDR",
    "DATA_DIR",
    "JWT_SECRET",
    "NATS_URL",
    "NATS_STREAM",
    "NATS_CONSUMER",
    "NATS_DEAD_LETTER_SUBJECT",
    "NATS_DEAD_LETTER_STREAM",
    "NATS_BATCH_SIZE",
    "NATS_ACK_WAIT",
    "ALLOWED_ORIGINS",
    "SOCKET_CORS_CREDENTIALS",
    "SOCKET_PING_TIMEOUT",
    "SOCKET_PING_INTERVAL",
    "SOCKET_MAX_BUFFER_SIZE",
    "SOCKET_QUEUE_PACKETS",
    "SLOW_CLIENT_TIMEOUT",
    "STORE_CACHE_MB",
    "RETENTION_MAX_AGE",
    "RETENTION_MAX_EVENTS",
    "PRUNE_SCHEDULE",
    "INSECURE_DEV_AUTH",
    "MAX_JSON_DEPTH",
    "LOG_FORMAT",
];

/// The binary under test, with no arguments yet and none of its settings taken from this
/// process's environment (a test sets what it needs).
fn command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_socket-bridge"));
    for var in SETTINGS_ENV {
        command.env_remove(var);
    }
    command
}

/// Runs the binary with `args`, logging warnings and errors only, and waits for its end.
pub fn run(args: &[&str]) -> Output {
    command()
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the binary runs")
}

/// The binary serving as a child process; killed when dropped.
pub struct HubProcess {
    api: Api,
    process: Process,
}

impl Deref for HubProcess {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl HubProcess {
    /// Serves `data_dir` with the kit's token secret and JSON logs, plus what `configure` adds
    /// (flags or environment); returns once it has logged the address it listens on. `HUB_LOG`
    /// shows its logs, and sets their filter (one that keeps info lines of the hub).
    pub async fn start(data_dir: &Path, configure: impl FnOnce(&mut Command)) -> Self {
        let filter = std::env::var("HUB_LOG").ok();
        let mut command = command();
        command
            .args(["--listen", "127.0.0.1:0", "--jwt-secret", SECRET])
            .arg("--data-dir")
            .arg(data_dir)
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", filter.as_deref().unwrap_or("info"));
        configure(&mut command);
        let (process, addr) = Process::start(command, filter.is_some(), |line| {
            let log: Value = serde_json::from_str(line).ok()?;
            let fields = &log["fields"];
            if fields["message"] != "socket-bridge listening" {
                return None;
            }
            fields["addr"].as_str().map(str::to_owned)
        })
        .await
        .expect("start socket-bridge");
        Self {
            api: Api::new(format!("http://{addr}")),
            process,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Its exit status once it has ended by itself within `limit`; `None` while it runs.
    pub fn wait_for_exit(
        &mut self,
        limit: std::time::Duration,
    ) -> Option<std::process::ExitStatus> {
        self.process.wait_for_exit(limit)
    }

    /// SIGKILL, and waits until it is gone.
    pub fn kill(mut self) {
        self.process.kill();
    }
}

/// Serves with `args` (and the kit's token secret, a temp data dir, port 0) until a line of its
/// output satisfies `until`; returns every line up to that one. The process is killed then.
pub async fn output_until(
    args: &[&str],
    until: impl Fn(&str) -> bool + Send + 'static,
) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut command = command();
    command
        .args(["--listen", "127.0.0.1:0", "--jwt-secret", SECRET])
        .arg("--data-dir")
        .arg(dir.path())
        .args(args)
        .env("RUST_LOG", "debug");
    let mut lines = Vec::new();
    let (_process, lines) = Process::start(command, false, move |line| {
        lines.push(line.to_owned());
        until(line).then(|| std::mem::take(&mut lines))
    })
    .await
    .expect("start socket-bridge");
    lines
}
