//! Catch-up tasks: replaying a room from the store to one socket, page by page, until it can go
//! live (a replay, a resume, or a live socket that fell behind). Missing history is reported
//! with `replay:truncated` (docs/protocol.md, "Truncation"), never skipped silently; a socket
//! that makes no progress for the slow-client timeout is disconnected (it will resume).
//!
//! Fairness (docs/protocol.md, "Limits"): a socket runs one catch-up at a time (its others wait
//! for its turn), each page takes a slot of the hub's pool and gives it back, so sockets take the
//! pool in turns; a catch-up that is superseded or whose subscription ends stops before its next
//! event, whether it is waiting or emitting.

use std::sync::Arc;
use std::time::{Duration, Instant};

use socketioxide::extract::SocketRef;
use socketioxide::{SendError, SocketError};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_util::sync::CancellationToken;

use super::frame::{event_payload, truncation_notice};
use super::hub::Hub;
use super::subscriptions::{CatchUpStart, GoLive};
use crate::domain::Room;
use crate::store::StoreError;
use crate::telemetry::{ErrorChain, metric};

/// Events read from the store per catch-up page.
const PAGE: usize = 256;
/// Events a catch-up emits between two turns of the runtime given to the tasks queued behind it
/// (frames a socket's writer can put in one write).
const GIVE_WAY_EVERY: usize = 32;
/// A turn given away that took longer than this means the runtime is busy: the catch-up pauses.
const RUNTIME_BUSY: Duration = Duration::from_millis(2);
/// The longest pause of a catch-up when the runtime is busy.
const LONGEST_PAUSE: Duration = Duration::from_millis(20);
/// Pause before retrying an emit into a full socket queue.
const FULL_QUEUE_RETRY: Duration = Duration::from_millis(5);
/// How long to keep trying to disconnect a socket whose queue stays full (socketioxide queues the
/// disconnect packet like any other and refuses while the queue is full). A client that never
/// reads is closed by the engine.io heartbeat well before this runs out.
const DISCONNECT_RETRY_FOR: Duration = Duration::from_secs(120);

/// One catch-up of one subscription.
pub(super) struct CatchUp {
    /// The socket.
    pub socket: SocketRef,
    /// The room.
    pub room: Room,
    /// The subscription's generation this catch-up runs as.
    pub generation: u64,
    /// The last seq the socket has.
    pub cursor: u64,
    /// For a replay the client asked for: whether its seqs are of this store's epoch (else its
    /// history is reported truncated first).
    pub check_epoch: Option<bool>,
    /// Cancelled once this catch-up is superseded or its subscription ends.
    pub stop: CancellationToken,
    /// The socket's turn (one catch-up per socket at a time).
    pub turn: Arc<Semaphore>,
}

impl CatchUp {
    /// The catch-up of `start`; `check_epoch` for a replay the client asked for.
    pub fn new(start: CatchUpStart<SocketRef>, check_epoch: Option<bool>) -> Self {
        Self {
            socket: start.socket,
            room: start.room,
            generation: start.generation,
            cursor: start.cursor,
            check_epoch,
            stop: start.stop,
            turn: start.turn,
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum CatchUpError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("emit failed")]
    Send(#[source] SendError),
    #[error("the client made no progress for the slow-client timeout")]
    Stalled,
}

/// Runs `job` once it is its socket's turn, unless it is stopped first.
pub(super) async fn run(hub: Hub, mut job: CatchUp) {
    let turn = Arc::clone(&job.turn);
    let _turn = tokio::select! {
        turn = turn.acquire_owned() => match turn {
            Ok(turn) => turn,
            Err(_) => return,
        },
        () = job.stop.cancelled() => return,
    };
    metrics::counter!(metric::REPLAYS_STARTED_TOTAL).increment(1);
    let started_at = job.cursor;
    match replay(&hub, &mut job).await {
        Ok(Some(live_at)) => {
            metrics::histogram!(metric::REPLAY_EVENTS)
                .record(live_at.saturating_sub(started_at) as f64);
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(room = %job.room, socket = %job.socket.id, error = %ErrorChain(&e), "catch-up stopped; disconnecting the socket (it will resume)");
            hub.remove_socket(job.socket.id);
            tokio::spawn(disconnect_when_possible(job.socket.clone()));
        }
    }
}

/// Replays `job.room` from its cursor until it can go live. `Ok(Some(seq))` once live at
/// `seq`, `Ok(None)` when superseded or unsubscribed.
async fn replay(hub: &Hub, job: &mut CatchUp) -> Result<Option<u64>, CatchUpError> {
    let log = hub.log();
    let mut slot = None;
    if let Some(same_epoch) = job.check_epoch {
        let head = log.head(&job.room)?;
        if !same_epoch || job.cursor > head {
            let oldest = log.oldest(&job.room)?;
            truncated(hub, job, oldest)?;
        }
    }
    let mut emitted = 0usize;
    loop {
        if slot.is_none() {
            slot = take_slot(hub, &job.stop).await;
            if slot.is_none() {
                return Ok(None);
            }
        }
        // The head is read before the page: an empty page below a head known beforehand is a
        // hole, where a head read after it may only have grown meanwhile (a new commit).
        let head = log.head(&job.room)?;
        let page = log.read(&job.room, job.cursor, PAGE)?;
        if page.is_empty() {
            if job.cursor < head {
                // Nothing readable up to the head: pruned, or corrupt records the store skipped.
                let resume_at = log.after_hole(&job.room, job.cursor, head)?;
                truncated(hub, job, resume_at)?;
                continue;
            }
            match hub.try_go_live(job) {
                GoLive::Live => return Ok(Some(job.cursor)),
                GoLive::Gone => return Ok(None),
                GoLive::Behind => {
                    slot = None;
                    tokio::task::yield_now().await;
                    continue;
                }
            }
        }
        let room = job.room.name();
        for event in &page {
            if job.stop.is_cancelled() {
                return Ok(None);
            }
            // Retention may remove a prefix of the room while we read it: whatever is
            // missing before this event is reported, never skipped silently.
            if event.seq != job.cursor + 1 {
                truncated(hub, job, event.seq)?;
            }
            let payload = event_payload(
                &event.data,
                &event.id,
                &room,
                Some(event.seq),
                event.timestamp,
            );
            let sent = emit_waiting(hub, job, event.event_type.as_str(), &payload, &mut slot);
            if !sent.await? {
                return Ok(None);
            }
            job.cursor = event.seq;
            emitted += 1;
            if emitted.is_multiple_of(GIVE_WAY_EVERY) {
                give_way(&mut slot).await;
            }
        }
        // Back to the end of the pool's queue: the other sockets' catch-ups take their turn.
        slot = None;
        tokio::task::yield_now().await;
    }
}

/// Lets the tasks queued behind this catch-up run (docs/protocol.md, "Limits": live events to
/// caught-up sockets never wait behind replays). If the turn took long, the runtime has more
/// work queued than live delivery can wait behind (the live path's HTTP handlers, dispatcher and
/// writers, and the writers of what replays emitted): the catch-up gives its slot back and pauses
/// as long again, so that replays only use the time the live path leaves.
async fn give_way(slot: &mut Option<SemaphorePermit<'_>>) {
    let asked = Instant::now();
    tokio::task::yield_now().await;
    let waited = asked.elapsed();
    if waited > RUNTIME_BUSY {
        *slot = None;
        metrics::counter!(metric::REPLAY_PAUSES_TOTAL).increment(1);
        tokio::time::sleep(waited.min(LONGEST_PAUSE)).await;
    }
}

/// A slot of the hub's catch-up pool, or `None` once `stop` is cancelled.
async fn take_slot<'a>(hub: &'a Hub, stop: &CancellationToken) -> Option<SemaphorePermit<'a>> {
    tokio::select! {
        slot = hub.catch_up_slots().acquire() => slot.ok(),
        () = stop.cancelled() => None,
    }
}

/// Tells the socket that events from `job.cursor + 1` up to `oldest - 1` are gone, and moves
/// the cursor past them.
fn truncated(hub: &Hub, job: &mut CatchUp, oldest: u64) -> Result<(), CatchUpError> {
    let payload = truncation_notice(hub.log(), &job.room, job.cursor.saturating_add(1), oldest)?;
    metrics::counter!(metric::REPLAYS_TRUNCATED_TOTAL).increment(1);
    job.socket
        .emit("replay:truncated", &payload)
        .map_err(CatchUpError::Send)?;
    job.cursor = oldest.saturating_sub(1);
    Ok(())
}

/// Emits to `job`'s socket, waiting (without its pool slot) while the socket's queue is full.
/// `Ok(false)` when the catch-up was stopped first; gives up when the socket makes no progress
/// for the slow-client timeout.
async fn emit_waiting(
    hub: &Hub,
    job: &CatchUp,
    event: &str,
    payload: &serde_json::value::RawValue,
    slot: &mut Option<SemaphorePermit<'_>>,
) -> Result<bool, CatchUpError> {
    let since = Instant::now();
    loop {
        if job.stop.is_cancelled() {
            return Ok(false);
        }
        match job.socket.emit(event, payload) {
            Ok(()) => return Ok(true),
            Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                if since.elapsed() > hub.options().slow_client_timeout {
                    return Err(CatchUpError::Stalled);
                }
                *slot = None;
                tokio::time::sleep(FULL_QUEUE_RETRY).await;
            }
            Err(e) => return Err(CatchUpError::Send(e)),
        }
    }
}

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
