//! Catch-up tasks: replaying a room from the store to one socket, page by page, until it can go
//! live (a replay, a resume, or a live socket that fell behind). Missing history is reported
//! with `replay:truncated` (docs/protocol.md, "Truncation"), never skipped silently; a socket
//! that makes no progress for the slow-client timeout is disconnected (it will resume).

use std::time::{Duration, Instant};

use socketioxide::extract::SocketRef;
use socketioxide::{SendError, SocketError};
use tokio::sync::oneshot;

use super::frame::{event_payload, truncation_notice};
use super::hub::Hub;
use super::subscriptions::GoLive;
use crate::domain::Room;
use crate::store::StoreError;
use crate::telemetry::{ErrorChain, metric};

/// Events read from the store per catch-up page.
const PAGE: usize = 256;
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
    /// Told the seq at which the subscription went live.
    pub done: Option<oneshot::Sender<u64>>,
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

/// Runs `job` once a slot of the hub's catch-up pool is free.
pub(super) async fn run(hub: Hub, mut job: CatchUp) {
    let Ok(_slot) = hub.catch_up_slots().acquire().await else {
        return;
    };
    metrics::counter!(metric::REPLAYS_STARTED_TOTAL).increment(1);
    let started_at = job.cursor;
    match replay(&hub, &mut job).await {
        Ok(Some(live_at)) => {
            metrics::histogram!(metric::REPLAY_EVENTS)
                .record(live_at.saturating_sub(started_at) as f64);
            if let Some(done) = job.done.take() {
                let _ = done.send(live_at);
            }
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
    if let Some(same_epoch) = job.check_epoch {
        let head = log.head(&job.room)?;
        if !same_epoch || job.cursor > head {
            let oldest = log.oldest(&job.room)?;
            truncated(hub, job, oldest)?;
        }
    }
    loop {
        let page = log.read(&job.room, job.cursor, PAGE)?;
        if page.is_empty() {
            let head = log.head(&job.room)?;
            if job.cursor < head {
                // Nothing readable up to the head: pruned, or corrupt records the store skipped
                // (then the oldest kept seq is not past the cursor, and the rest is gone).
                let oldest = log.oldest(&job.room)?;
                let resume_at = if oldest > job.cursor {
                    oldest
                } else {
                    head + 1
                };
                truncated(hub, job, resume_at)?;
                continue;
            }
            match hub.try_go_live(job) {
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
                truncated(hub, job, event.seq)?;
            }
            let payload = event_payload(
                &event.data,
                &event.id,
                &room,
                Some(event.seq),
                event.timestamp,
            );
            emit_waiting(hub, &job.socket, event.event_type.as_str(), &payload).await?;
            job.cursor = event.seq;
        }
        if !hub.is_current(job) {
            return Ok(None);
        }
        tokio::task::yield_now().await;
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

/// Emits, waiting while the socket's queue is full; gives up when the socket makes no
/// progress for the slow-client timeout.
async fn emit_waiting(
    hub: &Hub,
    socket: &SocketRef,
    event: &str,
    payload: &serde_json::value::RawValue,
) -> Result<(), CatchUpError> {
    let since = Instant::now();
    loop {
        match socket.emit(event, payload) {
            Ok(()) => return Ok(()),
            Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                if since.elapsed() > hub.options().slow_client_timeout {
                    return Err(CatchUpError::Stalled);
                }
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
