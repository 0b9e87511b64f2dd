//! `spawn_app` (the real app in-process on port 0 with its own data dir), tokens, HTTP calls, and
//! a Socket.IO test client that records every event it receives.

use std::path::Path;
use std::time::{Duration, Instant};

use futures::FutureExt;
use rust_socketio::Payload;
use rust_socketio::asynchronous::{Client, ClientBuilder};
use serde_json::{Value, json};
use socket_bridge::app::Application;
use socket_bridge::auth::Permission;
use socket_bridge::auth::TokenAuthority;
use socket_bridge::settings::Settings;
use tokio::sync::{mpsc, oneshot};

/// The token secret every test app uses.
pub const SECRET: &str = "test-secret-0123456789abcdef-0123456789";

/// How long any single wait in these tests may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// A running app.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`
    pub base: String,
    /// The in-process bus, to observe what the hub publishes.
    pub bus: socket_bridge::bus::InProcessBus,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), socket_bridge::app::AppError>>>,
    http: reqwest::Client,
}

/// Settings for a test app on port 0 in `data_dir`.
pub fn settings(data_dir: &Path) -> Settings {
    let mut settings = Settings::new(data_dir);
    settings.listen = "127.0.0.1:0".parse().expect("addr");
    settings.jwt_secret = Some(SECRET.into());
    settings
}

/// Starts the app with `args`.
pub async fn spawn_app_with(args: Settings) -> TestApp {
    if std::env::var("TEST_LOG").is_ok() {
        socket_bridge::telemetry::init_logging();
    }
    let app = Application::build(&args).await.expect("app builds");
    let addr = app.local_addr().expect("addr");
    let bus = app.bus().expect("the in-process bus");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    TestApp {
        bus,
        base: format!("http://{addr}"),
        stop: Some(stop),
        task: Some(task),
        http: reqwest::Client::new(),
    }
}

/// Starts the app in `data_dir`.
pub async fn spawn_app(data_dir: &Path) -> TestApp {
    spawn_app_with(settings(data_dir)).await
}

/// A token for `user` with `permissions`, valid for an hour.
pub fn token(user: &str, permissions: &[&str]) -> String {
    let authority = TokenAuthority::new(SECRET.as_bytes()).expect("secret");
    let permissions: Vec<Permission> = permissions
        .iter()
        .map(|p| p.parse().expect("a known permission"))
        .collect();
    authority
        .mint(user, &permissions, Duration::from_secs(3600))
        .expect("mint")
}

impl TestApp {
    /// Stops the app gracefully and waits until the store is flushed.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(WAIT, task)
                .await
                .expect("stops in time")
                .expect("task")
                .expect("clean stop");
        }
    }

    /// POSTs `body` to `/api/events` as a publisher; returns the status and JSON body.
    pub async fn publish(&self, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/api/events", self.base))
            .bearer_auth(token("publisher", &["events:publish"]))
            .json(body)
            .send()
            .await
            .expect("POST /api/events");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Publishes and expects success.
    pub async fn publish_ok(&self, body: &Value) -> Value {
        let (status, body) = self.publish(body).await;
        assert_eq!(status, 200, "publish failed: {body}");
        body
    }

    /// Connects a Socket.IO client with `auth`.
    pub async fn client(&self, auth: Value) -> TestClient {
        TestClient::connect(&self.base, auth).await
    }

    /// Connects `user` with all read permissions and a client id.
    pub async fn client_for(&self, user: &str) -> TestClient {
        self.client(
            json!({ "token": token(user, &["read:photos"]), "clientId": format!("c-{user}") }),
        )
        .await
    }
}

/// A received event: its name and first argument.
pub type Received = (String, Value);

/// A `rust_socketio` client recording every event into a channel.
pub struct TestClient {
    pub client: Client,
    events: mpsc::UnboundedReceiver<(String, Value, Instant)>,
    /// When the event last returned by `next` reached the client.
    pub last_received_at: Instant,
}

impl TestClient {
    /// Connects to `base` with `auth`.
    pub async fn connect(base: &str, auth: Value) -> Self {
        let (tx, events) = mpsc::unbounded_channel();
        let client = ClientBuilder::new(base)
            .namespace("/")
            .auth(auth)
            .reconnect(false)
            .on_any(move |event, payload, _| {
                let tx = tx.clone();
                async move {
                    let value = match payload {
                        Payload::Text(mut values) if !values.is_empty() => values.swap_remove(0),
                        _ => Value::Null,
                    };
                    let _ = tx.send((String::from(event), value, Instant::now()));
                }
                .boxed()
            })
            .connect()
            .await
            .expect("socket.io connect");
        Self {
            client,
            events,
            last_received_at: Instant::now(),
        }
    }

    /// The next event, whatever it is.
    pub async fn next(&mut self) -> Received {
        let (event, value, at) = tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("an event in time")
            .expect("client open");
        self.last_received_at = at;
        (event, value)
    }

    /// The next event named `name` (others are skipped).
    pub async fn next_named(&mut self, name: &str) -> Value {
        loop {
            let (event, value) = self.next().await;
            if event == name {
                return value;
            }
        }
    }

    /// Emits `event` with `data` and waits for the ack's first argument.
    pub async fn ack(&self, event: &str, data: Value) -> Value {
        let (tx, rx) = oneshot::channel();
        let tx = std::sync::Mutex::new(Some(tx));
        self.client
            .emit_with_ack(event, data, WAIT, move |payload: Payload, _| {
                // rust_socketio hands an ack's arguments over as one JSON array.
                let value = match payload {
                    Payload::Text(mut values) if !values.is_empty() => {
                        match values.swap_remove(0) {
                            Value::Array(mut args) if args.len() == 1 => args.swap_remove(0),
                            other => other,
                        }
                    }
                    _ => Value::Null,
                };
                if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
                    let _ = tx.send(value);
                }
                async {}.boxed()
            })
            .await
            .expect("emit");
        tokio::time::timeout(WAIT, rx)
            .await
            .expect("ack in time")
            .expect("ack")
    }

    /// Collects stored events of `room` until seq `last` arrives; returns their seqs in arrival
    /// order (it stops early only by timing out, which fails the test).
    pub async fn seqs_until(&mut self, room: &str, last: u64) -> Vec<u64> {
        let mut seqs = Vec::new();
        loop {
            let (_, value) = self.next().await;
            if value.get("room").and_then(Value::as_str) != Some(room) {
                continue;
            }
            let Some(seq) = value.get("seq").and_then(Value::as_u64) else {
                continue;
            };
            seqs.push(seq);
            if seq >= last {
                return seqs;
            }
        }
    }

    /// Disconnects.
    pub async fn close(self) {
        let _ = self.client.disconnect().await;
    }
}

/// `photo.uploaded` of `photo` by `user`.
pub fn uploaded(photo: &str, user: &str) -> Value {
    json!({ "type": "photo.uploaded", "data": { "photoId": photo, "userId": user } })
}

/// `n` progress events of `photo`.
pub fn progress_batch(photo: &str, n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({ "type": "photo.processing.progress", "data": { "photoId": photo, "progress": i % 101 } }))
            .collect(),
    )
}
