//! The real `socket-bridge` binary, started without the settings of this process's environment:
//! [`run`] to its end, or [`HubProcess`], serving as a child process on a port it picks itself
//! (`--listen 127.0.0.1:0`), whose address is read back from its `socket-bridge listening` log
//! line.

use std::ops::Deref;
use std::path::Path;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use super::api::Api;
use super::process::Process;
use super::{SECRET, WAIT};

/// The environment variables the binary reads its settings from.
const SETTINGS_ENV: &[&str] = &[
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
    "SOCKET_REQUESTS_PER_SECOND",
    "SOCKET_REQUEST_BURST",
    "MAX_RESUME_ROOMS",
    "HTTP_HEADER_TIMEOUT",
    "HTTP_BODY_TIMEOUT",
    "TOKEN_LEEWAY",
    "MAX_CONNECTIONS",
    "MAX_SUBSCRIPTIONS_PER_SOCKET",
    "MAX_BATCH_EVENTS",
    "MAX_UPLOAD_BYTES",
    "MAX_IMAGE_PIXELS",
    "PHOTO_WORKER",
    "WORKER_THREADS",
    "PHOTO_MAX_ATTEMPTS",
];

/// The binary under test, with no arguments yet and none of its settings taken from this
/// process's environment (a test sets what it needs).
pub fn command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_socket-bridge"));
    for var in SETTINGS_ENV {
        command.env_remove(var);
    }
    command
}

/// Runs the binary with `args`, logging warnings and errors only, and waits for its end; one
/// still running after [`WAIT`] is killed and fails the test (it was meant to end).
pub fn run(args: &[&str]) -> Output {
    let child = command()
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let pid = child.id().to_string();
    let (tx, ended) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match ended.recv_timeout(WAIT) {
        Ok(output) => output.expect("the binary's output"),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            panic!("socket-bridge {args:?} was still running after {WAIT:?}");
        }
    }
}

/// The binary serving as a child process; killed when dropped.
pub struct HubProcess {
    api: Api,
    process: Process,
    /// The temp data dir the process serves, if it owns one.
    _dir: Option<tempfile::TempDir>,
}

impl Deref for HubProcess {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl HubProcess {
    /// [`start`](Self::start) on a temp data dir of its own, removed when this is dropped.
    pub async fn spawn(configure: impl FnOnce(&mut Command)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut hub = Self::start(dir.path(), configure).await;
        hub._dir = Some(dir);
        hub
    }

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
            _dir: None,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Waits up to `limit` for the process to exit by itself; its exit status, if it did.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        self.process.wait_exit(limit)
    }

    /// Every line it has logged so far (JSON lines; debug ones when started with
    /// `RUST_LOG=debug`).
    pub fn output(&self) -> Vec<String> {
        self.process.output()
    }

    /// SIGKILL, and waits until it is gone.
    pub fn kill(mut self) {
        self.process.kill();
    }

    /// SIGTERM (an operator's restart), and waits until it has exited.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.process.terminate()
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
