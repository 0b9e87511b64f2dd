//! The binary serving on a port it picks (`--listen 127.0.0.1:0`, its address read from its JSON
//! log), tokens for it, publishing, and an SSE reader. One small file, to be replaced by the
//! shared test kit's `HubProcess` once it lands.

use std::io::{BufRead, BufReader};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use eventsource_stream::{Event, Eventsource};
use futures::{Stream, StreamExt};
use serde_json::Value;
use socket_bridge::auth::{Permission, TokenAuthority};

/// The token secret of every hub here.
pub const SECRET: &str = "support-tools-test-secret-0123456789";
/// How long any single wait may take.
pub const WAIT: Duration = Duration::from_secs(20);
/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_socket-bridge");

/// A hub process with its own data dir; killed when dropped.
pub struct Hub {
    /// `http://127.0.0.1:<port>`
    pub base: String,
    child: Child,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Hub {
    /// Starts the binary with `extra` flags; returns once it listens.
    pub fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(BIN)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--jwt-secret",
                SECRET,
                "--data-dir",
            ])
            .arg(dir.path().join("data"))
            .args(extra)
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env_remove("RETENTION_MAX_EVENTS")
            .env_remove("PRUNE_SCHEDULE")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start socket-bridge");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the log to its end, so that the hub never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let log: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                if log["fields"]["message"] == "socket-bridge listening"
                    && let Some(addr) = log["fields"]["addr"].as_str()
                {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let addr = rx.recv_timeout(WAIT).expect("the hub logs its address");
        Self {
            base: format!("http://{addr}"),
            child,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit; its exit status.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let until = std::time::Instant::now() + limit;
        while std::time::Instant::now() < until {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// POSTs `body` to `/api/events` as a publisher and expects 200.
    pub async fn publish(&self, body: &Value) -> Value {
        self.publisher().publish(body).await
    }

    /// A publisher to this hub that a task can own.
    pub fn publisher(&self) -> Publisher {
        Publisher {
            base: self.base.clone(),
            http: self.http.clone(),
        }
    }

    /// GET `path` with `bearer`: the status and the JSON body (null when not JSON).
    pub async fn get(&self, path: &str, bearer: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(bearer)
            .send()
            .await
            .expect("GET");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Opens an SSE stream at `path`, with `Last-Event-ID` when given.
    pub async fn stream(
        &self,
        path: &str,
        bearer: Option<&str>,
        last_event_id: Option<u64>,
    ) -> reqwest::Response {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        request.send().await.expect("GET stream")
    }
}

/// Publishes events to a hub.
#[derive(Clone)]
pub struct Publisher {
    base: String,
    http: reqwest::Client,
}

impl Publisher {
    /// POSTs `body` to `/api/events` as a publisher and expects 200.
    pub async fn publish(&self, body: &Value) -> Value {
        let response = self
            .http
            .post(format!("{}/api/events", self.base))
            .bearer_auth(token("publisher", &["events:publish"]))
            .json(body)
            .send()
            .await
            .expect("POST /api/events");
        assert_eq!(response.status(), 200, "publish refused");
        response.json().await.expect("JSON answer")
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A token for `user` with `permissions`, valid for an hour.
pub fn token(user: &str, permissions: &[&str]) -> String {
    let permissions: Vec<Permission> = permissions
        .iter()
        .map(|p| p.parse().expect("a known permission"))
        .collect();
    TokenAuthority::new(SECRET.as_bytes())
        .expect("secret")
        .mint(user, &permissions, Duration::from_secs(3600))
        .expect("mint")
}

/// The SSE events of a response, one at a time.
pub struct SseReader {
    events: Pin<Box<dyn Stream<Item = Event> + Send>>,
}

impl SseReader {
    /// Reads `response` (a 200 `text/event-stream`).
    pub fn new(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200, "stream refused");
        let events = response
            .bytes_stream()
            .eventsource()
            .take_while(|event| std::future::ready(event.is_ok()))
            .filter_map(|event| std::future::ready(event.ok()));
        Self {
            events: Box::pin(events),
        }
    }

    /// The next event; panics after [`WAIT`] or at the end of the stream.
    pub async fn next(&mut self) -> Event {
        tokio::time::timeout(WAIT, self.events.next())
            .await
            .expect("an SSE event in time")
            .expect("the stream goes on")
    }

    /// Whether the stream ends within `limit`.
    pub async fn ends_within(&mut self, limit: Duration) -> bool {
        matches!(
            tokio::time::timeout(limit, self.events.next()).await,
            Ok(None)
        )
    }
}

/// `photo.uploaded` of `photo` by `user`.
pub fn uploaded(photo: &str, user: &str) -> Value {
    serde_json::json!({ "type": "photo.uploaded", "data": { "photoId": photo, "userId": user } })
}

/// `photo.processing.progress` of `photo` at `progress`.
pub fn progress(photo: &str, progress: u64) -> Value {
    serde_json::json!({ "type": "photo.processing.progress",
                        "data": { "photoId": photo, "progress": progress % 101, "stage": "resize" } })
}
