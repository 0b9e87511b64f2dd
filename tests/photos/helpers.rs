//! The app in-process on port 0 with its own data dir (stopped and started again on it), tokens,
//! the photo endpoints over HTTP, and a Socket.IO client that records what it receives. Kept in
//! one file until the shared test kit replaces it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::FutureExt;
use reqwest::multipart::{Form, Part};
use rust_socketio::Payload;
use rust_socketio::asynchronous::{Client, ClientBuilder};
use serde_json::{Value, json};
use socket_bridge::app::{AppError, Application};
use socket_bridge::auth::{Permission, TokenAuthority};
use socket_bridge::settings::Settings;
use tokio::sync::{mpsc, oneshot};

/// The token secret of every test hub.
pub const SECRET: &str = "test-secret-0123456789abcdef-0123456789";
/// How long any single wait may take.
pub const WAIT: Duration = Duration::from_secs(30);

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

/// A token that may upload, read and delete `user`'s photos.
pub fn owner(user: &str) -> String {
    token(user, &["read:photos", "write:photos"])
}

/// A running hub and its data dir.
pub struct Hub {
    /// `http://127.0.0.1:<port>`
    pub base: String,
    settings: Settings,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), AppError>>,
    http: reqwest::Client,
}

/// A stopped hub's settings (its data dir is the caller's).
pub struct Stopped(pub Settings);

impl Hub {
    /// Starts a hub in `dir` with the test settings changed by `tune`.
    pub async fn start_in(dir: &Path, tune: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = Settings::new(dir);
        settings.listen = "127.0.0.1:0".parse().expect("addr");
        settings.jwt_secret = Some(SECRET.into());
        tune(&mut settings);
        Stopped(settings).start().await
    }

    /// Stops gracefully and waits until the store is flushed.
    pub async fn stop(self) -> Stopped {
        let _ = self.stop.send(());
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("stops in time")
            .expect("task")
            .expect("clean stop");
        Stopped(self.settings)
    }

    /// The photos directory of the data dir.
    pub fn photos_dir(&self) -> PathBuf {
        self.settings.data_dir.join("photos")
    }

    /// Uploads `bytes` as the file `filename` in field `field` with `token` (none: no header).
    pub async fn upload_as(
        &self,
        token: Option<&str>,
        field: &str,
        filename: &str,
        bytes: Vec<u8>,
    ) -> (u16, Value) {
        let form = Form::new().part(
            field.to_owned(),
            Part::bytes(bytes).file_name(filename.to_owned()),
        );
        let mut request = self
            .http
            .post(format!("{}/api/photos", self.base))
            .multipart(form);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("POST /api/photos");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Uploads as `user` (owner token) and expects 202; returns the photo id.
    pub async fn upload(&self, user: &str, filename: &str, bytes: Vec<u8>) -> String {
        let (status, body) = self
            .upload_as(Some(&owner(user)), "photo", filename, bytes)
            .await;
        assert_eq!(status, 202, "{body}");
        body["photoId"].as_str().expect("photoId").to_owned()
    }

    /// GETs `path` with `token`: status, headers and bytes.
    pub async fn get(
        &self,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let mut request = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("GET");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (
            status,
            headers,
            response.bytes().await.expect("body").to_vec(),
        )
    }

    /// GETs `path` as JSON with `token`.
    pub async fn get_json(&self, path: &str, token: &str) -> (u16, Value) {
        let (status, _, body) = self.get(path, token, &[]).await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// DELETEs `path` with `token`.
    pub async fn delete(&self, path: &str, token: &str) -> (u16, Value) {
        let response = self
            .http
            .delete(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("DELETE");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// POSTs events to `/api/events` as a publisher and expects 200.
    pub async fn publish(&self, body: &Value) {
        let response = self
            .http
            .post(format!("{}/api/events", self.base))
            .bearer_auth(token("publisher", &["events:publish"]))
            .json(body)
            .send()
            .await
            .expect("POST /api/events");
        assert_eq!(response.status().as_u16(), 200);
    }

    /// A socket of `user` (with `read:photos`).
    pub async fn socket(&self, user: &str) -> Socket {
        Socket::connect(
            &self.base,
            json!({ "token": token(user, &["read:photos"]), "clientId": format!("c-{user}") }),
        )
        .await
    }
}

impl Stopped {
    /// Starts the hub again, with its settings changed by `tune`.
    pub async fn start_with(mut self, tune: impl FnOnce(&mut Settings)) -> Hub {
        tune(&mut self.0);
        self.start().await
    }

    /// Starts the hub again.
    pub async fn start(self) -> Hub {
        if std::env::var("TEST_LOG").is_ok() {
            socket_bridge::telemetry::init_logging();
        }
        let app = Application::build(&self.0).await.expect("the app builds");
        let addr = app.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        Hub {
            base: format!("http://{addr}"),
            settings: self.0,
            stop,
            task,
            http: reqwest::Client::new(),
        }
    }
}

/// A received event: its name and payload.
pub type Received = (String, Value);

/// A `rust_socketio` client recording every event.
pub struct Socket {
    client: Client,
    events: mpsc::UnboundedReceiver<Received>,
}

impl Socket {
    async fn connect(base: &str, auth: Value) -> Self {
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
                    let _ = tx.send((String::from(event), value));
                }
                .boxed()
            })
            .connect()
            .await
            .expect("socket.io connect");
        let mut socket = Self { client, events };
        socket.next_named("connection:established").await;
        socket
    }

    /// The next event.
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("an event in time")
            .expect("client open")
    }

    /// The next event named `name` (others skipped).
    pub async fn next_named(&mut self, name: &str) -> Value {
        loop {
            let (event, value) = self.next().await;
            if event == name {
                return value;
            }
        }
    }

    /// Whether an event named `name` arrives within `within`.
    pub async fn receives(&mut self, name: &str, within: Duration) -> Option<Value> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.events.recv()).await {
                Ok(Some((event, value))) if event == name => return Some(value),
                Ok(Some(_)) => {}
                _ => return None,
            }
        }
    }

    /// Subscribes to `photo` from its first event (the photo's whole history is replayed).
    pub async fn subscribe(&self, photo: &str) {
        self.client
            .emit("subscribe:photo", json!({ "photoId": photo, "since": 0 }))
            .await
            .expect("emit");
    }

    /// Subscribes to `photo` and collects its room's events up to and including the first
    /// `photo.processing.completed` or `photo.processing.failed`.
    pub async fn processing(&mut self, photo: &str) -> Vec<Received> {
        self.subscribe(photo).await;
        let room = format!("photo:{photo}");
        let mut seen = Vec::new();
        loop {
            let (event, value) = self.next().await;
            if value.get("room").and_then(Value::as_str) != Some(room.as_str()) {
                continue;
            }
            let end = matches!(
                event.as_str(),
                "photo.processing.completed" | "photo.processing.failed"
            );
            seen.push((event, value));
            if end {
                return seen;
            }
        }
    }
}
