//! A real `nats-server -js` ([`NatsServer`]) with its own store dir, on a port it picks itself and
//! reports in its log, stopped and started again on that port; the producers' stream, and the
//! hub's consumer as JetStream sees it.

use std::process::Command;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use socket_bridge::bus::nats::NatsSettings;
use socket_bridge::settings::Settings;

use super::process::Process;

/// What to do when `nats-server` is missing.
const INSTALL_HINT: &str = "nats-server is not installed, and these tests need a real one: \
     install it (Debian/Ubuntu: `apt-get install -y nats-server`; elsewhere see \
     https://docs.nats.io/running-a-nats-service/introduction/installation) or run ./scripts/test, \
     which installs it";

/// The stream the producers publish to.
pub const STREAM: &str = "PHOTO_EVENTS";

/// The durable consumer the hub reads the stream with.
pub const HUB_CONSUMER: &str = "socket-bridge";

/// The stream the hub keeps refused messages in.
pub const DEAD_LETTER_STREAM: &str = "PHOTO_EVENTS_DLQ";

/// A `nats-server -js` on its own port and store dir, killed when dropped. `NATS_LOG` shows its
/// log.
pub struct NatsServer {
    port: u16,
    dir: tempfile::TempDir,
    process: Option<Process>,
}

impl NatsServer {
    /// Starts a server on a port of its choosing; returns once it is ready (JetStream included).
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (process, port) = launch(&dir, None).await;
        Self {
            port,
            dir,
            process: Some(process),
        }
    }

    /// Starts it again after [`stop`](Self::stop), on the same port and store dir.
    pub async fn restart(&mut self) {
        assert!(self.process.is_none(), "already running");
        let (process, _) = launch(&self.dir, Some(self.port)).await;
        self.process = Some(process);
    }

    /// Stops it the way an operator restarting it would (SIGTERM, then wait).
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.terminate();
        }
    }

    /// `nats://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// A new client's JetStream context.
    pub async fn jetstream(&self) -> jetstream::Context {
        let client = async_nats::connect(self.url())
            .await
            .expect("connect to NATS");
        jetstream::new(client)
    }

    /// Makes `settings` consume this server, with the hub's NATS defaults; returns the NATS
    /// settings to adjust.
    pub fn attach<'a>(&self, settings: &'a mut Settings) -> &'a mut NatsSettings {
        let max_message_bytes = settings.socket.max_payload_bytes;
        settings
            .nats
            .insert(NatsSettings::new(self.url(), max_message_bytes))
    }
}

/// Runs `nats-server -js` with its store in `dir`, on `port` or (`None`) one it picks; returns
/// the process and its port once it logs that it is ready.
async fn launch(dir: &tempfile::TempDir, port: Option<u16>) -> (Process, u16) {
    let mut command = Command::new("nats-server");
    command
        .args(["-js", "-a", "127.0.0.1", "-p"])
        .arg(port.map_or_else(|| "-1".to_owned(), |p| p.to_string()))
        .arg("-sd")
        .arg(dir.path());
    let mut bound = None;
    let started = Process::start(command, std::env::var("NATS_LOG").is_ok(), move |line| {
        if let Some((_, addr)) = line.split_once("Listening for client connections on ") {
            bound = addr.rsplit(':').next().and_then(|p| p.trim().parse().ok());
        }
        // Logged once the listener and JetStream are up.
        line.ends_with("Server is ready").then_some(bound).flatten()
    })
    .await;
    match started {
        Ok(started) => started,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{INSTALL_HINT}"),
        Err(e) => panic!("cannot start nats-server: {e}"),
    }
}

/// Creates the producers' stream the way a producer's deployment would, before any hub ran.
pub async fn create_stream(js: &jetstream::Context) -> stream::Stream {
    js.create_stream(stream::Config {
        name: STREAM.into(),
        subjects: vec!["photo.>".into(), "system.>".into()],
        ..Default::default()
    })
    .await
    .expect("create the stream")
}

/// The hub's consumer as JetStream sees it: (delivered but unacked, not yet delivered).
pub async fn consumer_backlog(js: &jetstream::Context) -> (usize, u64) {
    let info = consumer_info(&stream(js).await, HUB_CONSUMER).await;
    (info.num_ack_pending, info.num_pending)
}

/// The last stream sequence up to which the hub's consumer has acked every message.
pub async fn consumer_ack_floor(js: &jetstream::Context) -> u64 {
    consumer_info(&stream(js).await, HUB_CONSUMER)
        .await
        .ack_floor
        .stream_sequence
}

/// Waits (up to `limit`) until `consumer` has been delivered something and has nothing pending
/// or unacked.
pub async fn wait_consumed(js: &jetstream::Context, consumer: &str, limit: Duration) {
    let stream = stream(js).await;
    let started = Instant::now();
    loop {
        let info = consumer_info(&stream, consumer).await;
        if info.num_pending == 0 && info.num_ack_pending == 0 && info.delivered.stream_sequence > 0
        {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "{consumer} did not consume the stream within {limit:?}: {} unacked, {} not delivered",
            info.num_ack_pending,
            info.num_pending
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn stream(js: &jetstream::Context) -> stream::Stream {
    js.get_stream(STREAM).await.expect("stream")
}

async fn consumer_info(stream: &stream::Stream, consumer: &str) -> jetstream::consumer::Info {
    stream.consumer_info(consumer).await.expect("consumer info")
}

/// Every message kept in the dead-letter stream, oldest first (none when it does not exist).
pub async fn dead_letters(js: &jetstream::Context) -> Vec<jetstream::message::StreamMessage> {
    let Ok(mut stream) = js.get_stream(DEAD_LETTER_STREAM).await else {
        return Vec::new();
    };
    let state = stream
        .info()
        .await
        .expect("dead-letter stream info")
        .state
        .clone();
    let mut kept = Vec::new();
    if state.messages == 0 {
        return kept;
    }
    for sequence in state.first_sequence..=state.last_sequence {
        if let Ok(message) = stream.get_raw_message(sequence).await {
            kept.push(message);
        }
    }
    kept
}

/// Waits (up to the kit's wait) until the dead-letter stream holds `count` messages; returns them.
pub async fn wait_dead_letters(
    js: &jetstream::Context,
    count: usize,
) -> Vec<jetstream::message::StreamMessage> {
    let started = Instant::now();
    loop {
        let kept = dead_letters(js).await;
        if kept.len() >= count {
            return kept;
        }
        assert!(
            started.elapsed() < super::WAIT,
            "{} of {count} dead letters kept in time",
            kept.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
