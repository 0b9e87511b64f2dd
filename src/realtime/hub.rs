//! The hub: who is subscribed to which room, and gap-free delivery to each of them.
//!
//! Every subscription `(socket, room)` has a cursor, `delivered`: the last seq the socket was
//! handed for that room. It is either **live** (the dispatcher emits each newly committed event
//! with seq `delivered + 1`) or **catching up** (a catch-up task reads the store after `delivered`,
//! page by page, and the dispatcher leaves it alone). The dispatcher only ever emits the seq right
//! after the cursor: an older seq is skipped (no duplicate), a newer one, or a full socket queue,
//! turns the subscription into catching up (no gap). A catch-up switches back to live under the
//! hub's lock, only once its cursor has reached what the dispatcher has seen. The store is the
//! buffer: a replay, a slow client and a resume all take the same path, with bounded memory.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::json;
use socketioxide::extract::SocketRef;
use socketioxide::socket::Sid;
use socketioxide::{SendError, SocketError};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::frame::event_payload;
use crate::domain::Room;
use crate::store::{CommittedEvent, EventLog, StoreError};
use crate::telemetry::metric;

/// Events read from the store per catch-up page.
const PAGE: usize = 256;
/// Catch-ups that may read and emit at once; the rest wait their turn (a reconnect storm must
/// not starve live delivery).
const CATCH_UP_SLOTS: usize = 32;
/// Pause before retrying an emit into a full socket queue.
const FULL_QUEUE_RETRY: Duration = Duration::from_millis(5);

/// Tuning of the hub.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// How long a catching-up socket may make no progress before it is disconnected.
    pub slow_client_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Live,
    CatchingUp,
}

struct Subscription {
    socket: SocketRef,
    mode: Mode,
    delivered: u64,
    /// Bumped whenever a new catch-up takes over, so that a superseded one stops.
    generation: u64,
}

struct RoomSubs {
    /// The highest seq of the room the dispatcher has seen (or the head when the room was
    /// first subscribed).
    dispatched: u64,
    subs: HashMap<Sid, Subscription>,
}

#[derive(Default)]
struct State {
    rooms: HashMap<Room, RoomSubs>,
    by_socket: HashMap<Sid, HashSet<Room>>,
}

/// Subscriptions and delivery. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    log: EventLog,
    state: Mutex<State>,
    catch_up_slots: Semaphore,
    options: HubOptions,
}

/// A request to replay a room for a socket before it goes live.
#[derive(Debug, Clone, Copy)]
pub struct Replay {
    /// The last seq the client has (replay starts at `after + 1`).
    pub after: u64,
    /// Whether the client's seqs are from this store (its epoch matches, or it sent none).
    pub same_epoch: bool,
}

/// What catching up a subscription needs to know.
struct CatchUp {
    socket: SocketRef,
    room: Room,
    generation: u64,
    cursor: u64,
    check_epoch: Option<bool>,
    done: Option<oneshot::Sender<u64>>,
}

impl Hub {
    /// A hub delivering from `log`. Call [`Hub::start`] to begin dispatching.
    pub fn new(log: EventLog, options: HubOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                log,
                state: Mutex::new(State::default()),
                catch_up_slots: Semaphore::new(CATCH_UP_SLOTS),
                options,
            }),
        }
    }

    /// Starts the dispatcher: every event the log commits from now on is delivered.
    pub fn start(&self) -> tokio::task::JoinHandle<()> {
        let commits = self.inner.log.subscribe_commits();
        let hub = self.clone();
        tokio::spawn(async move { hub.dispatch(commits).await })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sockets connected and rooms with at least one subscriber.
    pub fn stats(&self) -> (usize, usize) {
        let state = self.lock();
        (state.by_socket.len(), state.rooms.len())
    }

    /// Subscribes `socket` to `room`. Without `replay` it goes live at the room's current head
    /// (a socket already subscribed stays as it is). With `replay` it first receives every
    /// stored event after `replay.after` (with `replay:truncated` first where they are gone),
    /// then goes live with no gap or duplicate. Returns the room's head at subscription and,
    /// for a replay, a receiver told the seq at which it went live.
    pub fn subscribe(
        &self,
        socket: &SocketRef,
        room: &Room,
        replay: Option<Replay>,
    ) -> Result<(u64, Option<oneshot::Receiver<u64>>), StoreError> {
        let head = self.inner.log.head(room)?;
        let mut state = self.lock();
        let state = &mut *state;
        let subs = state.rooms.entry(room.clone()).or_insert_with(|| RoomSubs {
            dispatched: head,
            subs: HashMap::new(),
        });
        state
            .by_socket
            .entry(socket.id)
            .or_default()
            .insert(room.clone());
        let Some(replay) = replay else {
            return Ok((join_live(subs, socket), None));
        };
        let sub = subs.subs.entry(socket.id).or_insert_with(|| Subscription {
            socket: socket.clone(),
            mode: Mode::CatchingUp,
            delivered: replay.after,
            generation: 0,
        });
        sub.mode = Mode::CatchingUp;
        sub.delivered = replay.after;
        sub.generation += 1;
        let (done, live_at) = oneshot::channel();
        let job = CatchUp {
            socket: socket.clone(),
            room: room.clone(),
            generation: sub.generation,
            cursor: replay.after,
            check_epoch: Some(replay.same_epoch),
            done: Some(done),
        };
        let hub = self.clone();
        tokio::spawn(async move { hub.catch_up(job).await });
        Ok((head, Some(live_at)))
    }

    /// Subscribes `socket` live to each of `rooms` at its current head, then calls `joined` with
    /// the room heads while still holding the hub's lock, so that whatever `joined` emits reaches
    /// the socket before any live event of those rooms.
    pub fn join_live_then(
        &self,
        socket: &SocketRef,
        rooms: &[Room],
        joined: impl FnOnce(&[(Room, u64)]),
    ) -> Result<(), StoreError> {
        let heads = rooms
            .iter()
            .map(|room| self.inner.log.head(room).map(|head| (room, head)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut state = self.lock();
        let state = &mut *state;
        let mut joined_at = Vec::with_capacity(heads.len());
        for (room, head) in heads {
            let subs = state.rooms.entry(room.clone()).or_insert_with(|| RoomSubs {
                dispatched: head,
                subs: HashMap::new(),
            });
            joined_at.push((room.clone(), join_live(subs, socket)));
            state
                .by_socket
                .entry(socket.id)
                .or_default()
                .insert(room.clone());
        }
        state.by_socket.entry(socket.id).or_default();
        joined(&joined_at);
        Ok(())
    }

    /// Unsubscribes `socket` from `room`.
    pub fn unsubscribe(&self, socket: Sid, room: &Room) {
        let mut state = self.lock();
        if let Some(rooms) = state.by_socket.get_mut(&socket) {
            rooms.remove(room);
        }
        remove_sub(&mut state, socket, room);
    }

    /// Forgets a disconnected socket.
    pub fn remove_socket(&self, socket: Sid) {
        let mut state = self.lock();
        for room in state.by_socket.remove(&socket).unwrap_or_default() {
            remove_sub(&mut state, socket, &room);
        }
    }

    async fn dispatch(self, mut commits: mpsc::UnboundedReceiver<Arc<[CommittedEvent]>>) {
        while let Some(batch) = commits.recv().await {
            let mut catch_ups = Vec::new();
            {
                let mut state = self.lock();
                for event in batch.iter() {
                    for (room, seq) in &event.rooms {
                        if let Some(subs) = state.rooms.get_mut(room) {
                            deliver(subs, event, room, *seq, &mut catch_ups);
                        }
                    }
                }
            }
            metrics::counter!(metric::HUB_SLOW_SUBSCRIPTIONS_TOTAL)
                .increment(catch_ups.len() as u64);
            for job in catch_ups {
                let hub = self.clone();
                tokio::spawn(async move { hub.catch_up(job).await });
            }
        }
    }

    async fn catch_up(self, mut job: CatchUp) {
        let Ok(_slot) = self.inner.catch_up_slots.acquire().await else {
            return;
        };
        metrics::counter!(metric::REPLAYS_STARTED_TOTAL).increment(1);
        let started_at = job.cursor;
        match self.run_catch_up(&mut job).await {
            Ok(Some(live_at)) => {
                metrics::histogram!(metric::REPLAY_EVENTS)
                    .record(live_at.saturating_sub(started_at) as f64);
                if let Some(done) = job.done.take() {
                    let _ = done.send(live_at);
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(room = %job.room, socket = %job.socket.id, error = %e, "catch-up stopped; disconnecting the socket (it will resume)");
                self.remove_socket(job.socket.id);
                tokio::spawn(disconnect_when_possible(job.socket.clone()));
            }
        }
    }

    /// Replays `job.room` from its cursor until it can go live. `Ok(Some(seq))` once live at
    /// `seq`, `Ok(None)` when superseded or unsubscribed.
    async fn run_catch_up(&self, job: &mut CatchUp) -> Result<Option<u64>, CatchUpError> {
        let log = &self.inner.log;
        if let Some(same_epoch) = job.check_epoch {
            let head = log.head(&job.room)?;
            if !same_epoch || job.cursor > head {
                let oldest = log.oldest(&job.room)?;
                self.truncated(job, oldest)?;
            }
        }
        loop {
            let page = log.read(&job.room, job.cursor, PAGE)?;
            if page.is_empty() {
                let head = log.head(&job.room)?;
                if job.cursor < head {
                    let oldest = log.oldest(&job.room)?;
                    self.truncated(job, oldest)?;
                    continue;
                }
                match self.try_go_live(job) {
                    GoLive::Live => return Ok(Some(job.cursor)),
                    GoLive::Gone => return Ok(None),
                    GoLive::Behind => {
                        tokio::task::yield_now().await;
                        continue;
                    }
                }
            }
            let room = job.room.to_string();
            for event in &page {
                // Retention may remove a prefix of the room while we read it: whatever is
                // missing before this event is reported, never skipped silently.
                if event.seq != job.cursor + 1 {
                    self.truncated(job, event.seq)?;
                }
                let payload = event_payload(
                    &event.data,
                    &event.id,
                    &room,
                    Some(event.seq),
                    event.timestamp,
                );
                self.emit_waiting(&job.socket, event.event_type.as_str(), &payload)
                    .await?;
                job.cursor = event.seq;
            }
            if !self.is_current(job) {
                return Ok(None);
            }
            tokio::task::yield_now().await;
        }
    }

    /// Tells the socket that events from `job.cursor + 1` up to `oldest - 1` are gone, and moves
    /// the cursor past them.
    fn truncated(&self, job: &mut CatchUp, oldest: u64) -> Result<(), CatchUpError> {
        let status = match &job.room {
            Room::Photo(photo) => self.inner.log.status(photo)?.map(|s| json!(s)),
            _ => None,
        };
        let payload = json!({
            "room": job.room.to_string(),
            "requestedSeq": job.cursor + 1,
            "oldestSeq": oldest,
            "status": status,
        });
        metrics::counter!(metric::REPLAYS_TRUNCATED_TOTAL).increment(1);
        job.socket
            .emit("replay:truncated", &payload)
            .map_err(CatchUpError::Send)?;
        job.cursor = oldest.saturating_sub(1);
        Ok(())
    }

    fn is_current(&self, job: &CatchUp) -> bool {
        let state = self.lock();
        state
            .rooms
            .get(&job.room)
            .and_then(|subs| subs.subs.get(&job.socket.id))
            .is_some_and(|sub| sub.generation == job.generation)
    }

    fn try_go_live(&self, job: &CatchUp) -> GoLive {
        let mut state = self.lock();
        let Some(subs) = state.rooms.get_mut(&job.room) else {
            return GoLive::Gone;
        };
        let dispatched = subs.dispatched;
        let Some(sub) = subs.subs.get_mut(&job.socket.id) else {
            return GoLive::Gone;
        };
        if sub.generation != job.generation {
            return GoLive::Gone;
        }
        if job.cursor < dispatched {
            return GoLive::Behind;
        }
        sub.mode = Mode::Live;
        sub.delivered = job.cursor;
        GoLive::Live
    }

    /// Emits, waiting while the socket's queue is full; gives up when the socket makes no
    /// progress for the slow-client timeout.
    async fn emit_waiting(
        &self,
        socket: &SocketRef,
        event: &str,
        payload: &serde_json::value::RawValue,
    ) -> Result<(), CatchUpError> {
        let since = Instant::now();
        loop {
            match socket.emit(event, payload) {
                Ok(()) => return Ok(()),
                Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                    if since.elapsed() > self.inner.options.slow_client_timeout {
                        return Err(CatchUpError::Stalled);
                    }
                    tokio::time::sleep(FULL_QUEUE_RETRY).await;
                }
                Err(e) => return Err(CatchUpError::Send(e)),
            }
        }
    }
}

/// How long to keep trying to disconnect a socket whose queue stays full (socketioxide queues the
/// disconnect packet like any other and refuses while the queue is full). A client that never
/// reads is closed by the engine.io heartbeat well before this runs out.
const DISCONNECT_RETRY_FOR: Duration = Duration::from_secs(120);

/// Disconnects `socket`, retrying while its outgoing queue is full. Its subscriptions are already
/// gone, so nothing new is queued for it meanwhile.
async fn disconnect_when_possible(socket: SocketRef) {
    let since = Instant::now();
    loop {
        match socket.clone().disconnect() {
            Err(SocketError::InternalChannelFull) if since.elapsed() < DISCONNECT_RETRY_FOR => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => return,
        }
    }
}

enum GoLive {
    Live,
    Behind,
    Gone,
}

#[derive(Debug, thiserror::Error)]
enum CatchUpError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("emit failed: {0}")]
    Send(SendError),
    #[error("the client made no progress for the slow-client timeout")]
    Stalled,
}

/// Hands one committed event of `room` at `seq` to the room's live subscribers.
fn deliver(
    subs: &mut RoomSubs,
    event: &CommittedEvent,
    room: &Room,
    seq: u64,
    catch_ups: &mut Vec<CatchUp>,
) {
    if seq <= subs.dispatched {
        return;
    }
    subs.dispatched = seq;
    let mut payload = None;
    let mut delivered = 0u64;
    for sub in subs.subs.values_mut() {
        if sub.mode != Mode::Live || seq <= sub.delivered {
            continue;
        }
        if seq == sub.delivered + 1 {
            let payload = payload.get_or_insert_with(|| {
                event_payload(
                    &event.data,
                    &event.id,
                    &room.to_string(),
                    Some(seq),
                    event.timestamp,
                )
            });
            match sub.socket.emit(event.event_type.as_str(), &**payload) {
                Ok(()) => {
                    sub.delivered = seq;
                    delivered += 1;
                    continue;
                }
                Err(SendError::Socket(SocketError::Closed)) => continue,
                Err(_) => {}
            }
        }
        sub.mode = Mode::CatchingUp;
        sub.generation += 1;
        catch_ups.push(CatchUp {
            socket: sub.socket.clone(),
            room: room.clone(),
            generation: sub.generation,
            cursor: sub.delivered,
            check_epoch: None,
            done: None,
        });
    }
    metrics::counter!(metric::EVENTS_DELIVERED_TOTAL).increment(delivered);
}

/// Adds a live subscription at what the room's dispatcher has seen (an existing subscription
/// stays as it is); returns the seq live delivery continues after.
fn join_live(subs: &mut RoomSubs, socket: &SocketRef) -> u64 {
    let dispatched = subs.dispatched;
    subs.subs
        .entry(socket.id)
        .or_insert_with(|| Subscription {
            socket: socket.clone(),
            mode: Mode::Live,
            delivered: dispatched,
            generation: 0,
        })
        .delivered
}

fn remove_sub(state: &mut State, socket: Sid, room: &Room) {
    if let Some(subs) = state.rooms.get_mut(room) {
        subs.subs.remove(&socket);
        if subs.subs.is_empty() {
            state.rooms.remove(room);
        }
    }
}
