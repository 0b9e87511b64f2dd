//! The real `socket-bridge` binary as a child process: started on port 0 with a temp data dir
//! and a known token secret, its address read back from its `socket-bridge listening` log line,
//! killed when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The token secret the hub is started with.
pub const SECRET: &str = "load-smoke-secret-0123456789abcdef";

/// How long the hub may take to listen.
const START_LIMIT: Duration = Duration::from_secs(20);

/// The environment variables the binary reads settings from: none may leak in from this shell.
const SETTINGS_ENV: [&str; 10] = [
    "LISTEN_ADDR",
    "DATA_DIR",
    "JWT_SECRET",
    "NATS_URL",
    "SOCKET_QUEUE_PACKETS",
    "MAX_CONNECTIONS",
    "MAX_SUBSCRIPTIONS_PER_SOCKET",
    "MAX_BATCH_EVENTS",
    "RUST_LOG",
    "LOG_FORMAT",
];

/// A running hub.
pub struct Hub {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    child: Child,
    _data: tempfile::TempDir,
}

impl Hub {
    /// Starts the binary and waits until it listens.
    pub async fn start() -> Self {
        tokio::task::spawn_blocking(Self::start_blocking)
            .await
            .expect("hub start task")
    }

    fn start_blocking() -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let mut command = Command::new(env!("CARGO_BIN_EXE_socket-bridge"));
        for var in SETTINGS_ENV {
            command.env_remove(var);
        }
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0", "--jwt-secret", SECRET])
            .arg("--data-dir")
            .arg(data.path())
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start socket-bridge");
        let stdout = child.stdout.take().expect("piped stdout");
        let (addr_tx, addr_rx) = mpsc::channel();
        // Reads the log to its end so that the hub never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(log) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                if log["fields"]["message"] == "socket-bridge listening"
                    && let Some(addr) = log["fields"]["addr"].as_str()
                {
                    let _ = addr_tx.send(addr.to_owned());
                }
            }
        });
        let hub = |base| Self {
            base,
            child,
            _data: data,
        };
        match addr_rx.recv_timeout(START_LIMIT) {
            Ok(addr) => hub(format!("http://{addr}")),
            Err(e) => {
                drop(hub(String::new()));
                panic!("socket-bridge did not log its address within {START_LIMIT:?}: {e}");
            }
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
