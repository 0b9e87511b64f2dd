//! The hub: the handle the socket handlers subscribe through, and the dispatcher that hands each
//! newly committed event to the live subscribers of its rooms. The subscription rules are in
//! `subscriptions`; replays, resumes and slow clients are caught up from the store by the tasks
//! of `catch_up`. The store is the buffer: a replay, a slow client and a resume all take the same
//! path, with bounded memory.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use socketioxide::extract::SocketRef;
use socketioxide::socket::Sid;
use socketioxide::{SendError, SocketError};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::background::Background;
use super::catch_up::{self, CatchUp};
use super::dispatch::{self, Pending};
use super::follow::{Follower, Followers};
use super::frame::checked_payload;
use super::subscriptions::{CatchUpStart, Emit, GoLive, Subscriptions};
use crate::domain::Room;
use crate::store::{CommittedEvent, EventLog, StoreError};
use crate::telemetry::metric;

/// Catch-up pages that may be read and emitted at once; the rest wait their turn (a reconnect
/// storm must not starve live delivery). A catch-up takes a slot per page, and each socket runs
/// one catch-up at a time, so sockets share the slots in turn, page by page.
const CATCH_UP_SLOTS: usize = 4;

/// An event waiting for dispatch to one of its rooms: its commit, its index there, and its seq in
/// that room.
type Queued = (Arc<[CommittedEvent]>, usize, u64);

/// Why a socket could not be subscribed.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The socket has disconnected (its disconnect may already have removed its subscriptions:
    /// nothing is added for it).
    #[error("the socket has disconnected")]
    Disconnected,
}

/// Tuning of the hub.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// How long a catching-up socket may make no progress before it is disconnected.
    pub slow_client_timeout: Duration,
}

/// Subscriptions and delivery. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    log: EventLog,
    state: Mutex<Subscriptions<Sid, SocketRef>>,
    catch_up_slots: Semaphore,
    options: HubOptions,
    followers: Followers,
    /// Where catch-ups and resumes run, below live delivery.
    background: Background,
}

/// A request to replay a room for a socket before it goes live.
#[derive(Debug, Clone, Copy)]
pub struct Replay {
    /// The last seq the client has (replay starts at `after + 1`).
    pub after: u64,
    /// Whether the client's seqs are from this store (its epoch matches, or it sent none).
    pub same_epoch: bool,
}

impl Hub {
    /// A hub delivering from `log`, with its background runtime (see `background`). Call
    /// [`Hub::start`] to begin dispatching. Must be called inside a tokio runtime.
    pub fn new(log: EventLog, options: HubOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                log,
                state: Mutex::new(Subscriptions::default()),
                catch_up_slots: Semaphore::new(CATCH_UP_SLOTS),
                options,
                followers: Followers::default(),
                background: Background::start(),
            }),
        }
    }

    /// Starts the dispatcher: every event the log commits from now on is delivered.
    pub fn start(&self) -> tokio::task::JoinHandle<()> {
        let commits = self.inner.log.subscribe_commits();
        let hub = self.clone();
        tokio::spawn(async move { hub.dispatch(commits).await })
    }

    fn lock(&self) -> MutexGuard<'_, Subscriptions<Sid, SocketRef>> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sockets connected and rooms with at least one subscriber.
    pub fn stats(&self) -> (usize, usize) {
        self.lock().stats()
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
    ) -> Result<(u64, Option<oneshot::Receiver<u64>>), SubscribeError> {
        let head = self.inner.log.head(room)?;
        let mut state = self.lock_connected(socket)?;
        let Some(replay) = replay else {
            return Ok((state.join_live(room, socket.id, socket, head), None));
        };
        let (done, live_at) = oneshot::channel();
        let start = state.replay(room, socket.id, socket, head, replay.after, Some(done));
        drop(state);
        self.spawn_catch_up(CatchUp::new(start, Some(replay.same_epoch)));
        Ok((head, Some(live_at)))
    }

    /// The hub's lock, if `socket` is still connected. The socket's disconnect marks it
    /// disconnected before it removes its subscriptions under this lock, so whatever is added
    /// while holding it is removed by that disconnect.
    fn lock_connected(
        &self,
        socket: &SocketRef,
    ) -> Result<MutexGuard<'_, Subscriptions<Sid, SocketRef>>, SubscribeError> {
        let state = self.lock();
        if socket.connected() {
            Ok(state)
        } else {
            Err(SubscribeError::Disconnected)
        }
    }

    /// Subscribes `socket` live to each of `rooms` at its current head, then calls `joined` with
    /// the room heads while still holding the hub's lock, so that whatever `joined` emits reaches
    /// the socket before any live event of those rooms.
    pub fn join_live_then(
        &self,
        socket: &SocketRef,
        rooms: &[Room],
        joined: impl FnOnce(&[(Room, u64)]),
    ) -> Result<(), SubscribeError> {
        let heads = rooms
            .iter()
            .map(|room| self.inner.log.head(room).map(|head| (room, head)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut state = self.lock_connected(socket)?;
        state.add_socket(socket.id);
        let joined_at: Vec<(Room, u64)> = heads
            .into_iter()
            .map(|(room, head)| (room.clone(), state.join_live(room, socket.id, socket, head)))
            .collect();
        joined(&joined_at);
        Ok(())
    }

    /// Whether `socket` may subscribe to the photo room `room` without going over `max` photo
    /// rooms (a room it already has is always allowed).
    pub fn may_add_photo_room(&self, socket: Sid, room: &Room, max: usize) -> bool {
        let (count, has) = self.lock().photo_rooms(socket, room);
        has || count < max
    }

    /// Follows `room` for a stream (SSE): every stored event after `after`, then each new one,
    /// with no gap and no duplicate.
    pub fn follow(&self, room: Room, after: u64) -> Follower {
        self.inner
            .followers
            .follow(self.inner.log.clone(), room, after)
    }

    /// Ends every follower (at shutdown): their streams finish once they have caught up.
    pub fn stop_following(&self) {
        self.inner.followers.stop();
    }

    /// Followers (SSE streams) open now.
    pub fn followers_open(&self) -> usize {
        self.inner.followers.open()
    }

    /// The sockets subscribed to `room` now, live or catching up (for live-only events, which
    /// have no seq to keep in order with).
    pub fn sockets_in(&self, room: &Room) -> Vec<SocketRef> {
        self.lock().sockets_in(room)
    }

    /// Unsubscribes `socket` from `room`.
    pub fn unsubscribe(&self, socket: Sid, room: &Room) {
        self.lock().unsubscribe(socket, room);
    }

    /// Forgets a disconnected socket.
    pub fn remove_socket(&self, socket: Sid) {
        self.lock().remove_socket(socket);
    }

    /// Hands every committed event to the live subscribers of its rooms, in steps (see
    /// `dispatch`): between two steps the writers woken by the first run, and events committed
    /// meanwhile join the queue, where rooms with fewer subscribers go first. A backlog past
    /// [`dispatch::BACKLOG`] goes at once.
    async fn dispatch(self, mut commits: mpsc::UnboundedReceiver<Arc<[CommittedEvent]>>) {
        let mut pending = Pending::default();
        loop {
            if pending.is_empty() {
                match commits.recv().await {
                    Some(batch) => self.queue(&mut pending, batch),
                    None => return,
                }
            }
            while let Ok(batch) = commits.try_recv() {
                self.queue(&mut pending, batch);
            }
            let budget = if pending.events() > dispatch::BACKLOG {
                usize::MAX
            } else {
                dispatch::STEP
            };
            let delivered = self.step(&mut pending, budget);
            if !pending.is_empty() {
                let_writers_run(delivered, || !commits.is_empty()).await;
            }
        }
    }

    /// Queues each event of `batch` for each of its rooms (and hands the batch to the followers).
    fn queue(&self, pending: &mut Pending<Queued>, batch: Arc<[CommittedEvent]>) {
        self.inner.followers.publish(&batch);
        for (index, event) in batch.iter().enumerate() {
            for (room, seq) in &event.rooms {
                pending.push(room, (Arc::clone(&batch), index, *seq));
            }
        }
    }

    /// Delivers the next step of `pending`, of about `budget` deliveries; returns the deliveries
    /// queued for sockets.
    fn step(&self, pending: &mut Pending<Queued>, budget: usize) -> u64 {
        let mut catch_ups = Vec::new();
        let mut delivered = 0;
        {
            let mut state = self.lock();
            let step = pending.step(budget, |room| state.subscribers(room));
            for (room, events) in step {
                for (batch, index, seq) in events {
                    let (sent, starts) = deliver(&mut state, &batch[index], &room, seq);
                    delivered += sent;
                    catch_ups.extend(starts);
                }
            }
        }
        metrics::counter!(metric::EVENTS_DELIVERED_TOTAL).increment(delivered);
        metrics::counter!(metric::HUB_SLOW_SUBSCRIPTIONS_TOTAL).increment(catch_ups.len() as u64);
        for start in catch_ups {
            self.spawn_catch_up(CatchUp::new(start, None));
        }
        delivered
    }

    fn spawn_catch_up(&self, job: CatchUp) {
        self.inner
            .background
            .spawn(catch_up::run(self.clone(), job));
    }

    /// Runs `task` on the hub's background runtime, below live delivery (a resume's store
    /// lookups and waits).
    pub(super) fn spawn_background<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.inner.background.spawn(task);
    }

    /// The event log delivery reads from.
    pub(super) fn log(&self) -> &EventLog {
        &self.inner.log
    }

    /// The hub's tuning.
    pub(super) fn options(&self) -> &HubOptions {
        &self.inner.options
    }

    /// The pool a catch-up takes a slot of for each page it reads and emits.
    pub(super) fn catch_up_slots(&self) -> &Semaphore {
        &self.inner.catch_up_slots
    }

    /// Switches `job`'s subscription to live if it has caught up.
    pub(super) fn try_go_live(&self, job: &CatchUp) -> GoLive {
        self.lock()
            .try_go_live(&job.room, job.socket.id, job.generation, job.cursor)
    }
}

/// Tasks tokio runs between two looks at its I/O driver and timers, when it also wakes the tasks
/// that yielded (`event_interval`, 61 by default): a task that yields gets its next turn after at
/// most about this many other tasks, or sooner when none is left.
const TASKS_PER_TURN: u64 = 61;
/// A turn given away that came back this fast found the runtime's queue empty.
const QUEUE_EMPTY: Duration = Duration::from_micros(100);
/// The longest the dispatcher waits for a step's writers: when the runtime is busy with other
/// work too (a storm of handshakes), waiting longer only delays the next step.
const LONGEST_WAIT: Duration = Duration::from_millis(5);

/// Gives the runtime to the writers a step woke (`delivered` of them) and whatever else is queued,
/// until a turn comes back at once (the queue is empty), as many tasks as the step woke have had
/// a turn, [`LONGEST_WAIT`] has passed, or new events were committed (`committed`): their rooms
/// may be smaller than the rest of the queue. An event committed meanwhile then waits for no more
/// than one step's writes.
async fn let_writers_run(delivered: u64, committed: impl Fn() -> bool) {
    let since = Instant::now();
    for _ in 0..=delivered / TASKS_PER_TURN {
        let asked = Instant::now();
        tokio::task::yield_now().await;
        if asked.elapsed() < QUEUE_EMPTY || since.elapsed() > LONGEST_WAIT || committed() {
            return;
        }
    }
}

/// Hands one committed event of `room` at `seq` to the room's live subscribers. Its Socket.IO
/// packet is encoded once, on the first socket that takes it, with the event's data as the text
/// ingest checked, and every socket's queue gets the same bytes (all sockets are in the one
/// namespace the packet is encoded for).
fn deliver(
    state: &mut Subscriptions<Sid, SocketRef>,
    event: &CommittedEvent,
    room: &Room,
    seq: u64,
) -> (u64, Vec<CatchUpStart<SocketRef>>) {
    let mut packet = None;
    state.dispatch(room, seq, |socket| {
        let packet = packet.get_or_insert_with(|| {
            let payload = checked_payload(
                &event.data,
                &event.id,
                &room.name(),
                Some(seq),
                event.timestamp,
            );
            socket.encode_event_json(event.event_type.as_str(), &payload)
        });
        let Ok(packet) = packet else {
            return Emit::Refused;
        };
        match socket.send_encoded(packet) {
            Ok(()) => Emit::Sent,
            Err(SendError::Socket(SocketError::Closed)) => Emit::Closed,
            Err(_) => Emit::Refused,
        }
    })
}
