//! One load client: a Socket.IO connection that checks every stored event it receives.
//!
//! A client keeps the last seq of every room it is in (from `connection:established`, the
//! `subscribe:photo` ack, and each event). An event must carry the next seq of its room: a repeat,
//! a gap, or an event of a room it never joined is a failure, recorded in [`Shared`] and reported
//! loudly by the scenario. The scenario steers all clients at once through a [`Phase`]: run, drop
//! the connection, reconnect with `resume` (and Node's recovery `pid`/`offset` when the server gave
//! them), stop.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite::Message;

use super::measure::{latency_histogram, now_us};
use super::wire::{self, EventFields, Packet, Socket};

/// How long one connect (websocket, Socket.IO connect, `connection:established` or
/// `resume:complete`, and the subscription ack) may take: socket.io-client's default `timeout`.
const CONNECT_LIMIT: Duration = Duration::from_secs(20);
/// Reconnect attempts before a client gives up (socket.io-client would go on forever).
const RECONNECT_ATTEMPTS: u32 = 8;
/// First delay between reconnect attempts, doubled after each failure up to
/// `MAX_RECONNECT_DELAY`, each randomized by ±50%: socket.io-client's defaults.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// Longest delay between reconnect attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);
/// Failure messages kept in full; later ones are only counted.
const FAILURES_KEPT: usize = 20;

/// What every client of a scenario is told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Stay connected and check what arrives.
    Run,
    /// Drop the connection at once (no close handshake), keeping the seqs.
    Drop,
    /// Reconnect with `resume`, each client after a random delay below `spread`.
    Reconnect {
        /// The reconnects are spread uniformly over this window, like socket.io-client's
        /// randomized reconnection delay.
        spread: Duration,
    },
    /// Disconnect and report.
    Stop,
}

/// State shared by a scenario and its clients.
pub struct Shared {
    /// Stored events received in order, over all clients.
    pub delivered: AtomicU64,
    /// Clients connected (and subscribed, when they subscribe).
    pub ready: AtomicUsize,
    /// Clients whose last reconnect ended with `resume:complete`.
    pub resumed: AtomicUsize,
    /// Of those, the ones Node's socket.io recovered itself (`resume:complete` says `recovered`).
    pub recovered: AtomicUsize,
    /// Reconnect attempts that failed (refused, timed out, closed) and were tried again.
    pub retries: AtomicUsize,
    /// Latency histograms (publish to receipt, µs) of the clients that measure; events go to
    /// the one at index `window`.
    latency: Mutex<Vec<Histogram<u64>>>,
    window: AtomicUsize,
    /// Reconnect start to `resume:complete`, µs, per client.
    resume: Mutex<Histogram<u64>>,
    /// When the current reconnect phase began.
    reconnect_from: Mutex<Option<Instant>>,
    failures: Mutex<Vec<String>>,
    failure_count: AtomicUsize,
}

impl Shared {
    /// Shared state with `windows` latency histograms.
    pub fn new(windows: usize) -> Arc<Self> {
        Arc::new(Self {
            delivered: AtomicU64::new(0),
            ready: AtomicUsize::new(0),
            resumed: AtomicUsize::new(0),
            recovered: AtomicUsize::new(0),
            retries: AtomicUsize::new(0),
            latency: Mutex::new((0..windows.max(1)).map(|_| latency_histogram()).collect()),
            window: AtomicUsize::new(0),
            resume: Mutex::new(latency_histogram()),
            reconnect_from: Mutex::new(None),
            failures: Mutex::new(Vec::new()),
            failure_count: AtomicUsize::new(0),
        })
    }

    /// Latencies from now on go to histogram `window`.
    pub fn record_into(&self, window: usize) {
        self.window.store(window, Ordering::Relaxed);
    }

    /// A copy of latency histogram `window`.
    pub fn latency(&self, window: usize) -> Histogram<u64> {
        self.latency.lock().expect("latency lock")[window].clone()
    }

    /// A copy of the resume-time histogram.
    pub fn resume_times(&self) -> Histogram<u64> {
        self.resume.lock().expect("resume lock").clone()
    }

    /// Marks now as the start of a reconnect phase (for resume times).
    pub fn reconnect_starts(&self) {
        *self.reconnect_from.lock().expect("reconnect lock") = Some(Instant::now());
    }

    /// Records a failure.
    pub fn fail(&self, message: String) {
        if self.failure_count.fetch_add(1, Ordering::Relaxed) < FAILURES_KEPT {
            self.failures.lock().expect("failures lock").push(message);
        }
    }

    /// How many failures there were, and the first ones.
    pub fn failures(&self) -> (usize, Vec<String>) {
        (
            self.failure_count.load(Ordering::Relaxed),
            self.failures.lock().expect("failures lock").clone(),
        )
    }
}

/// Who a client is and what it does after connecting.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    /// Its name in failure messages, e.g. `c17`.
    pub name: String,
    /// Its token.
    pub token: String,
    /// `auth.clientId`.
    pub client_id: String,
    /// Photo to `subscribe:photo` to after connecting.
    pub photo: Option<String>,
    /// Whether its latencies are recorded.
    pub measure: bool,
}

/// A client's state at the end: the last seq of each of its rooms.
#[derive(Debug)]
pub struct ClientEnd {
    /// Its name.
    pub name: String,
    /// Room and last seq received, for every room it was in.
    pub rooms: Vec<(String, u64)>,
}

impl ClientEnd {
    /// The last seq received in `room`, if the client was in it.
    pub fn last(&self, room: &str) -> Option<u64> {
        self.rooms.iter().find(|(r, _)| r == room).map(|(_, s)| *s)
    }
}

/// What a connect must see before the client counts as connected.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// `connection:established` (a first connect).
    Established,
    /// `resume:complete` (a reconnect with `resume`).
    ResumeComplete,
}

/// A client's connection-independent state.
struct Client {
    spec: ClientSpec,
    shared: Arc<Shared>,
    /// Room and last seq received.
    rooms: Vec<(String, u64)>,
    epoch: Option<String>,
    /// Node's recovery session id and the last offset received.
    pid: Option<String>,
    offset: Option<String>,
    established: bool,
    resume_complete: bool,
    /// Whether the last `resume:complete` said Node's socket.io recovered the session itself.
    recovered: bool,
    /// The subscription ack, when one is awaited: its id and whether it came.
    ack: Option<(u64, bool)>,
    next_ack: u64,
}

/// Runs a client until `phase` says stop; `gate` bounds how many clients connect at once.
pub async fn run(
    spec: ClientSpec,
    base: Arc<str>,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
    gate: Arc<Semaphore>,
) -> ClientEnd {
    let mut client = Client {
        spec,
        shared,
        rooms: Vec::new(),
        epoch: None,
        pid: None,
        offset: None,
        established: false,
        resume_complete: false,
        recovered: false,
        ack: None,
        next_ack: 1,
    };
    let mut socket = match client.connect(&base, &gate, Expect::Established).await {
        Ok(socket) => {
            client.shared.ready.fetch_add(1, Ordering::Relaxed);
            Some(socket)
        }
        Err(e) => {
            client.fail(format!("connect: {e:#}"));
            None
        }
    };
    loop {
        let next = async {
            match socket.as_mut() {
                Some(socket) => socket.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = phase.changed() => {
                if changed.is_err() {
                    break;
                }
                let now = *phase.borrow_and_update();
                match now {
                    Phase::Run => {}
                    Phase::Stop => break,
                    Phase::Drop => socket = None,
                    Phase::Reconnect { spread } => {
                        socket = client.reconnect(&base, &gate, spread).await;
                    }
                }
            }
            message = next => match message {
                Some(Ok(Message::Text(text))) => {
                    if let Some(reply) = client.on_text(&text) {
                        let sent = match socket.as_mut() {
                            Some(s) => wire::send(s, reply).await,
                            None => Ok(()),
                        };
                        if let Err(e) = sent {
                            client.fail(format!("{e:#}"));
                            socket = None;
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | None => {
                    client.fail("the server closed the connection".to_owned());
                    socket = None;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    client.fail(format!("reading: {e}"));
                    socket = None;
                }
            },
        }
    }
    ClientEnd {
        name: client.spec.name,
        rooms: client.rooms,
    }
}

impl Client {
    fn fail(&self, message: String) {
        self.shared.fail(format!("{}: {message}", self.spec.name));
    }

    /// Reconnects after a random delay below `spread`, resuming every room; a failed attempt is
    /// tried again after socket.io-client's backoff, up to `RECONNECT_ATTEMPTS`; `None` when
    /// they all failed. Events received during a failed attempt count (their seqs are kept), so
    /// the next attempt resumes after them.
    async fn reconnect(
        &mut self,
        base: &str,
        gate: &Semaphore,
        spread: Duration,
    ) -> Option<Socket> {
        tokio::time::sleep(spread.mul_f64(rand::random::<f64>())).await;
        let mut backoff = RECONNECT_DELAY;
        let mut attempt = 1;
        let connected = loop {
            self.resume_complete = false;
            match self.connect(base, gate, Expect::ResumeComplete).await {
                Ok(socket) => break Ok(socket),
                Err(e) if attempt >= RECONNECT_ATTEMPTS => break Err(e),
                Err(_) => {
                    self.shared.retries.fetch_add(1, Ordering::Relaxed);
                    attempt += 1;
                    tokio::time::sleep(backoff.mul_f64(0.5 + rand::random::<f64>())).await;
                    backoff = (backoff * 2).min(MAX_RECONNECT_DELAY);
                }
            }
        };
        match connected {
            Ok(socket) => {
                let from = *self.shared.reconnect_from.lock().expect("reconnect lock");
                if let Some(from) = from {
                    let micros = u64::try_from(from.elapsed().as_micros()).unwrap_or(u64::MAX);
                    self.shared
                        .resume
                        .lock()
                        .expect("resume lock")
                        .saturating_record(micros.max(1));
                }
                self.shared.resumed.fetch_add(1, Ordering::Relaxed);
                if self.recovered {
                    self.shared.recovered.fetch_add(1, Ordering::Relaxed);
                }
                Some(socket)
            }
            Err(e) => {
                self.fail(format!("reconnect, {RECONNECT_ATTEMPTS} attempts: {e:#}"));
                None
            }
        }
    }

    /// The `auth` of a connect: with `resume` (every room and its last seq, the epoch, and
    /// Node's `pid`/`offset`) when `expect` is a resume.
    fn auth(&self, expect: Expect) -> Value {
        let mut auth = json!({ "token": self.spec.token, "clientId": self.spec.client_id });
        if expect == Expect::ResumeComplete {
            let resume: Map<String, Value> = self
                .rooms
                .iter()
                .map(|(room, seq)| (room.clone(), json!(seq)))
                .collect();
            auth["resume"] = Value::Object(resume);
            if let Some(epoch) = &self.epoch {
                auth["epoch"] = json!(epoch);
            }
            if let (Some(pid), Some(offset)) = (&self.pid, &self.offset) {
                auth["pid"] = json!(pid);
                auth["offset"] = json!(offset);
            }
        }
        auth
    }

    /// Connects (holding a permit of `gate`), waits for what `expect` names and, on a first
    /// connect, subscribes to the spec's photo. Events that arrive meanwhile are checked as usual.
    async fn connect(
        &mut self,
        base: &str,
        gate: &Semaphore,
        expect: Expect,
    ) -> anyhow::Result<Socket> {
        let _permit = gate.acquire().await.context("connect gate closed")?;
        let handshake = async {
            let mut socket = wire::open(base, CONNECT_LIMIT).await?;
            wire::send(&mut socket, wire::connect_packet(&self.auth(expect))).await?;
            let done = |c: &Client| match expect {
                Expect::Established => c.established,
                Expect::ResumeComplete => c.resume_complete,
            };
            self.read_until(&mut socket, done).await?;
            if let (Expect::Established, Some(photo)) = (expect, &self.spec.photo) {
                let id = self.next_ack;
                self.next_ack += 1;
                self.ack = Some((id, false));
                let request = json!({ "photoId": photo });
                wire::send(
                    &mut socket,
                    wire::event_with_ack(id, "subscribe:photo", &request),
                )
                .await?;
                self.read_until(&mut socket, |c| c.ack.is_some_and(|(_, got)| got))
                    .await?;
            }
            Ok::<_, anyhow::Error>(socket)
        };
        tokio::time::timeout(CONNECT_LIMIT, handshake)
            .await
            .with_context(|| format!("not connected within {CONNECT_LIMIT:?}"))?
    }

    /// Reads and handles packets until `done` holds.
    async fn read_until(
        &mut self,
        socket: &mut Socket,
        done: impl Fn(&Client) -> bool,
    ) -> anyhow::Result<()> {
        while !done(self) {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    if let Packet::Refused(why) = Packet::parse(&text) {
                        bail!("refused: {why}");
                    }
                    if let Some(reply) = self.on_text(&text) {
                        wire::send(socket, reply).await?;
                    }
                }
                Some(Ok(Message::Close(_))) | None => bail!("the server closed the connection"),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e).context("reading"),
            }
        }
        Ok(())
    }

    /// Handles one text frame; returns a frame to send back (the pong).
    fn on_text(&mut self, text: &str) -> Option<String> {
        match Packet::parse(text) {
            Packet::Ping => return Some("3".to_owned()),
            Packet::Connected { pid } => self.pid = pid.map(str::to_owned),
            Packet::Event(array) => self.on_event(array),
            Packet::Ack { id, args } => self.on_ack(id, args),
            Packet::Refused(why) => self.fail(format!("refused: {why}")),
            Packet::Closed => self.fail("disconnected by the server".to_owned()),
            Packet::Other => {}
        }
        None
    }

    fn on_event(&mut self, array: &str) {
        let Some(event) = EventFields::scan(array) else {
            self.fail(format!("unreadable event {array}"));
            return;
        };
        if let Some(offset) = event.offset {
            match &mut self.offset {
                Some(kept) => {
                    kept.clear();
                    kept.push_str(offset);
                }
                None => self.offset = Some(offset.to_owned()),
            }
        }
        match (event.room, event.seq) {
            (Some(room), Some(seq)) => self.on_stored(room, seq, event.sent_us),
            _ => self.on_control(event.name, array),
        }
    }

    /// A stored event: it must be the next seq of a room the client is in.
    fn on_stored(&mut self, room: &str, seq: u64, sent_us: Option<u64>) {
        let Some((_, last)) = self.rooms.iter_mut().find(|(r, _)| r == room) else {
            self.fail(format!("seq {seq} of {room}, a room it never joined"));
            return;
        };
        let checked = next_seq(*last, seq);
        *last = (*last).max(seq);
        if let Err(what) = checked {
            self.fail(format!("{what}: seq {seq} of {room}"));
            return;
        }
        self.shared.delivered.fetch_add(1, Ordering::Relaxed);
        if let (true, Some(sent)) = (self.spec.measure, sent_us) {
            let micros = now_us().saturating_sub(sent).max(1);
            let window = self.shared.window.load(Ordering::Relaxed);
            if let Some(h) = self
                .shared
                .latency
                .lock()
                .expect("latency lock")
                .get_mut(window)
            {
                h.saturating_record(micros);
            }
        }
    }

    /// A control event (no seq).
    fn on_control(&mut self, name: &str, array: &str) {
        match name {
            "connection:established" => {
                let Some(payload) = second_element(array) else {
                    self.fail("unreadable connection:established".to_owned());
                    return;
                };
                self.epoch = payload["epoch"].as_str().map(str::to_owned);
                for (room, head) in payload["rooms"].as_object().into_iter().flatten() {
                    if !self.rooms.iter().any(|(r, _)| r == room) {
                        self.rooms.push((room.clone(), head.as_u64().unwrap_or(0)));
                    }
                }
                self.established = true;
            }
            "resume:complete" => {
                let payload = second_element(array).unwrap_or(Value::Null);
                if let Value::Object(refused) = &payload["refused"]
                    && !refused.is_empty()
                {
                    self.fail(format!("resume refused rooms: {refused:?}"));
                }
                self.recovered = payload["recovered"] == Value::Bool(true);
                self.resume_complete = true;
            }
            "replay:truncated" => self.fail(format!("unexpected {array}")),
            _ => {}
        }
    }

    /// The ack of `subscribe:photo`: the room is joined at `headSeq`.
    fn on_ack(&mut self, id: u64, args: &str) {
        match &mut self.ack {
            Some((awaited, got)) if *awaited == id => *got = true,
            _ => return,
        }
        let answer: Value = serde_json::from_str(args).unwrap_or(Value::Null);
        let answer = &answer[0];
        match (answer["ok"].as_bool(), answer["room"].as_str()) {
            (Some(true), Some(room)) => {
                let head = answer["headSeq"].as_u64().unwrap_or(0);
                if !self.rooms.iter().any(|(r, _)| r == room) {
                    self.rooms.push((room.to_owned(), head));
                }
            }
            _ => self.fail(format!("subscribe:photo refused: {args}")),
        }
    }
}

/// Checks that `seq` follows `last` in a room: a repeat or a gap is an error saying which.
pub fn next_seq(last: u64, seq: u64) -> Result<(), String> {
    if seq == last + 1 {
        Ok(())
    } else if seq <= last {
        Err(format!("repeated (last was {last})"))
    } else {
        Err(format!("gap of {} (last was {last})", seq - last - 1))
    }
}

/// The second element of an event array (the payload), parsed.
fn second_element(array: &str) -> Option<Value> {
    match serde_json::from_str::<Value>(array).ok()? {
        Value::Array(mut items) if items.len() >= 2 => Some(items.swap_remove(1)),
        _ => None,
    }
}
