//! A real `nats-server -js` per test (a free port and its own store dir; it can be stopped and
//! started again on the same port and dir), the hub in-process or as the real binary, JetStream
//! publishing, and reads of what the hub stored.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};
use serde_json::{Value, json};
use socket_bridge::app::Application;
use socket_bridge::bus::nats::NatsSettings;
use socket_bridge::settings::Settings;
use tokio::sync::oneshot;

use crate::bridge::{self, SECRET, TestClient, WAIT, token};

/// What to do when `nats-server` is missing.
const INSTALL_HINT: &str = "nats-server is not installed, and these tests need a real one: \
     install it (Debian/Ubuntu: `apt-get install -y nats-server`; elsewhere see \
     https://docs.nats.io/running-a-nats-service/introduction/installation) or run ./scripts/test, \
     which installs it";

/// The ack wait the tests' hubs use, so that redeliveries after a crash come quickly.
pub const ACK_WAIT: Duration = Duration::from_secs(2);

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A `nats-server -js` on its own port and store dir, killed when dropped.
pub struct NatsServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a server on a free port and waits until JetStream answers.
    pub async fn start() -> Self {
        let mut server = Self::unstarted();
        server.launch().await;
        server
    }

    /// A server with a port and a store dir that is not running yet.
    pub fn unstarted() -> Self {
        Self {
            port: free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
        }
    }

    /// Starts the server (again) on the same port and store dir; waits until JetStream answers.
    pub async fn launch(&mut self) {
        assert!(self.child.is_none(), "already running");
        let store = self.dir.path().join("jetstream");
        let log = self.dir.path().join("nats-server.log");
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string()])
            .arg("-sd")
            .arg(&store)
            .arg("-l")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{INSTALL_HINT}"),
            Err(e) => panic!("cannot start nats-server: {e}"),
        };
        self.child = Some(child);
        let started = Instant::now();
        loop {
            // Any answer from the JetStream API means JetStream is up.
            if let Ok(client) = async_nats::connect(self.url()).await
                && client.request("$JS.API.INFO", "".into()).await.is_ok()
            {
                return;
            }
            assert!(
                started.elapsed() < WAIT,
                "nats-server did not come up on port {} (log: {})",
                self.port,
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `nats://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops the server the way an operator restarting it would (SIGTERM, then wait).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let terminated = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if !terminated {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }

    /// A client and JetStream context.
    pub async fn jetstream(&self) -> jetstream::Context {
        let client = async_nats::connect(self.url())
            .await
            .expect("connect to NATS");
        jetstream::new(client)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Creates the producers' stream the way a producer's deployment would, before any hub ran.
pub async fn create_stream(js: &jetstream::Context) {
    js.create_stream(stream::Config {
        name: "PHOTO_EVENTS".into(),
        subjects: vec!["photo.>".into(), "system.>".into()],
        ..Default::default()
    })
    .await
    .expect("create the stream");
}

/// Where an event's id comes from when it is published.
#[derive(Debug, Clone, Copy)]
pub enum IdSource {
    /// The body's `id`.
    Body,
    /// The `Nats-Msg-Id` header.
    Header,
    /// Neither: the hub derives it from the stream and sequence.
    Derived,
}

impl IdSource {
    /// The three sources in turn, by `n`.
    pub fn nth(n: usize) -> Self {
        match n % 3 {
            0 => IdSource::Body,
            1 => IdSource::Header,
            _ => IdSource::Derived,
        }
    }
}

/// Publishes `body` on `subject` with its id from `source` (`id` is used for body and header);
/// returns once JetStream has stored it.
pub async fn publish(
    js: &jetstream::Context,
    subject: &str,
    mut body: Value,
    id: &str,
    source: IdSource,
) {
    let mut headers = HeaderMap::new();
    match source {
        IdSource::Body => body["id"] = json!(id),
        IdSource::Header => headers.insert("Nats-Msg-Id", id),
        IdSource::Derived => {}
    }
    js.publish_with_headers(subject.to_owned(), headers, body.to_string().into())
        .await
        .expect("publish")
        .await
        .expect("JetStream stored the message");
}

/// Publishes raw bytes on `subject`; returns once JetStream has stored them.
pub async fn publish_raw(js: &jetstream::Context, subject: &str, body: impl Into<Vec<u8>>) {
    js.publish(subject.to_owned(), body.into().into())
        .await
        .expect("publish")
        .await
        .expect("JetStream stored the message");
}

/// One event of a test workload: its subject and body, numbered `n` in publish order.
pub fn workload_event(n: usize, photos: usize) -> (String, Value) {
    let photo = format!("p{}", n % photos);
    let round = n / photos;
    if round == 0 {
        let body = json!({ "data": { "photoId": photo, "userId": "u1", "n": n } });
        ("photo.uploaded".into(), body)
    } else if n % 7 == 3 {
        ("system.maintenance".into(), json!({ "data": { "n": n } }))
    } else {
        let body = json!({ "data": { "photoId": photo, "progress": round % 101, "n": n } });
        ("photo.processing.progress".into(), body)
    }
}

/// Publishes events `0..count` of the workload with ids from every source, in order.
pub async fn publish_workload(js: &jetstream::Context, count: usize, photos: usize) {
    let mut acks = Vec::with_capacity(count);
    for n in 0..count {
        let (subject, mut body) = workload_event(n, photos);
        let mut headers = HeaderMap::new();
        match IdSource::nth(n) {
            IdSource::Body => body["id"] = json!(format!("body-{n}")),
            IdSource::Header => headers.insert("Nats-Msg-Id", format!("header-{n}").as_str()),
            IdSource::Derived => {}
        }
        let ack = js
            .publish_with_headers(subject, headers, body.to_string().into())
            .await
            .expect("publish");
        acks.push(ack);
    }
    for ack in acks {
        ack.await.expect("JetStream stored the message");
    }
}

/// Checks that the hub stored workload events `0..count` exactly once: every room's seqs are
/// 1, 2, 3, ... with no gap, each `n` appears once in each room it belongs to, in publish order.
pub async fn assert_workload_stored(hub: &Api, count: usize, photos: usize) {
    let mut expected: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for n in 0..count {
        let (subject, body) = workload_event(n, photos);
        let photo = body["data"]["photoId"].as_str().map(str::to_owned);
        let n = n as u64;
        match (subject.as_str(), photo) {
            ("photo.uploaded", Some(p)) => {
                expected.entry(format!("photo:{p}")).or_default().push(n);
                expected.entry("user:u1".into()).or_default().push(n);
            }
            (_, Some(p)) => expected.entry(format!("photo:{p}")).or_default().push(n),
            (_, None) => expected.entry("global".into()).or_default().push(n),
        }
    }
    for (room, ns) in expected {
        let events = hub.history(&room).await;
        let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
        let want_seqs: Vec<u64> = (1..=ns.len() as u64).collect();
        assert_eq!(
            seqs,
            want_seqs,
            "{room}: seqs must be 1..={} with no gap",
            ns.len()
        );
        let got: Vec<u64> = events
            .iter()
            .filter_map(|e| e["data"]["n"].as_u64())
            .collect();
        assert_eq!(got, ns, "{room}: every event once, in publish order");
    }
}

/// A hub's HTTP API, for reading what it stored and how it is.
pub struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    fn new(base: String) -> Self {
        Self {
            base,
            http: reqwest::Client::new(),
        }
    }

    /// Every stored event of `room`, in seq order.
    pub async fn history(&self, room: &str) -> Vec<Value> {
        let url = format!("{}/api/rooms/{room}/events", self.base);
        let auth = token("support", &["support:read"]);
        let mut events = Vec::new();
        let mut after = 0u64;
        // Each page holds up to 1000 events; a test room never holds more than 100 pages.
        for _ in 0..100 {
            let page: Value = self
                .http
                .get(&url)
                .query(&[("after", after), ("limit", 1000)])
                .bearer_auth(&auth)
                .send()
                .await
                .expect("GET history")
                .json()
                .await
                .expect("history JSON");
            events.extend(page["events"].as_array().cloned().unwrap_or_default());
            match page["nextAfter"].as_u64() {
                Some(next) => after = next,
                None => return events,
            }
        }
        panic!("{url}: more than 100 pages");
    }

    /// How many events `room` holds.
    pub async fn stored(&self, room: &str) -> usize {
        self.history(room).await.len()
    }

    /// `GET /health/detailed`
    pub async fn health(&self) -> Value {
        self.http
            .get(format!("{}/health/detailed", self.base))
            .send()
            .await
            .expect("GET /health/detailed")
            .json()
            .await
            .expect("health JSON")
    }

    /// `GET /metrics`
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// Waits until the bus in `/health/detailed` has `status` (`"up"` or `"down"`).
    pub async fn wait_for_bus(&self, status: &str) {
        let started = Instant::now();
        loop {
            let health = self.health().await;
            if health["details"]["bus"]["status"] == status {
                assert_eq!(health["details"]["bus"]["type"], "nats");
                return;
            }
            assert!(
                started.elapsed() < WAIT,
                "bus never became {status}: {health}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `room` holds at least `count` events.
    pub async fn wait_for_stored(&self, room: &str, count: usize) {
        let started = Instant::now();
        loop {
            let stored = self.stored(room).await;
            if stored >= count {
                return;
            }
            assert!(
                started.elapsed() < WAIT * 3,
                "{room}: {stored} of {count} events stored in time"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Settings for an in-process hub on port 0 in `data_dir`, consuming the NATS at `url`.
pub fn hub_settings(data_dir: &Path, url: &str) -> Settings {
    let mut settings = bridge::settings(data_dir);
    let mut nats = NatsSettings::new(url, settings.socket.max_payload_bytes);
    nats.ack_wait = ACK_WAIT;
    settings.nats = Some(nats);
    settings
}

/// The NATS settings of hub settings made by [`hub_settings`].
pub fn nats_of(settings: &mut Settings) -> &mut NatsSettings {
    settings.nats.as_mut().expect("hub_settings sets NATS")
}

/// The hub running in this process.
pub struct Hub {
    api: Api,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), socket_bridge::app::AppError>>>,
}

impl std::ops::Deref for Hub {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

/// Builds and runs the hub with `args`.
pub async fn spawn_hub(args: Settings) -> Hub {
    if std::env::var("TEST_LOG").is_ok() {
        socket_bridge::telemetry::init_logging();
    }
    let app = Application::build(&args).await.expect("app builds");
    let addr = app.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    Hub {
        api: Api::new(format!("http://{addr}")),
        stop: Some(stop),
        task: Some(task),
    }
}

impl Hub {
    /// Stops the hub gracefully and waits until it has stopped.
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

    /// Connects `user` (with `read:photos`) as a Socket.IO client.
    pub async fn client_for(&self, user: &str) -> TestClient {
        TestClient::connect(
            &self.api.base,
            json!({ "token": token(user, &["read:photos"]), "clientId": format!("c-{user}") }),
        )
        .await
    }
}

/// The real `socket-bridge` binary, serving on its own port.
pub struct HubProcess {
    api: Api,
    child: Child,
}

impl std::ops::Deref for HubProcess {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl HubProcess {
    /// Starts the binary on a free port with `data_dir`, consuming the NATS at `url` in batches of
    /// `batch`; waits until it answers HTTP.
    pub async fn start(data_dir: &Path, url: &str, batch: usize) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_socket-bridge"))
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--jwt-secret", SECRET, "--nats-url", url])
            .args(["--nats-batch-size", &batch.to_string()])
            .args(["--nats-ack-wait", &format!("{}s", ACK_WAIT.as_secs())])
            // HUB_LOG=info shows the hub's logs (it logs to stdout).
            .env("RUST_LOG", std::env::var("HUB_LOG").unwrap_or_default())
            .stdout(match std::env::var("HUB_LOG") {
                Ok(_) => Stdio::inherit(),
                Err(_) => Stdio::null(),
            })
            .spawn()
            .expect("start socket-bridge");
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while reqwest::get(format!("{base}/health")).await.is_err() {
            assert!(started.elapsed() < WAIT, "socket-bridge did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            api: Api::new(base),
            child,
        }
    }

    /// SIGKILL, and wait until it is gone.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The hub's consumer as JetStream sees it: (delivered but unacked, not yet delivered).
pub async fn consumer_backlog(js: &jetstream::Context) -> (usize, u64) {
    let stream = js.get_stream("PHOTO_EVENTS").await.expect("stream");
    let info = stream
        .consumer_info("socket-bridge")
        .await
        .expect("consumer info");
    (info.num_ack_pending, info.num_pending)
}
