//! Live-only events (docs/protocol.md, "Control events" and "Photos"): one task emits what ingest
//! passes on, in order, unstored and without a seq: `global` events to every connected socket,
//! an event for another room (`photo.upload.failed` to `user:<id>`) to the sockets subscribed to
//! that room, as the hub's subscriptions say.

use std::sync::Arc;

use socketioxide::SocketIo;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::task::JoinHandle;

use super::Hub;
use super::frame::event_payload;
use crate::domain::Room;
use crate::ingest::LiveEvent;
use crate::telemetry::{ErrorChain, metric};

/// Starts emitting `events` on `io` (to the sockets `hub` knows in a room) until the sender side
/// is gone.
pub fn spawn(
    io: SocketIo,
    hub: Hub,
    mut events: broadcast::Receiver<Arc<LiveEvent>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => emit(&io, &hub, &event).await,
                Err(RecvError::Lagged(missed)) => {
                    metrics::counter!(metric::LIVE_EVENTS_DROPPED_TOTAL).increment(missed);
                    tracing::warn!(
                        missed,
                        "live-only events arrived faster than they could be broadcast; dropped the oldest"
                    );
                }
                Err(RecvError::Closed) => return,
            }
        }
    })
}

async fn emit(io: &SocketIo, hub: &Hub, event: &LiveEvent) {
    let room = event.room.name();
    let payload = event_payload(&event.data, &event.id, &room, None, event.timestamp);
    if event.room == Room::Global {
        if let Err(e) = io.emit(event.name, &*payload).await {
            tracing::debug!(error = %ErrorChain(&e), "a live event reached not every socket");
        }
        return;
    }
    for socket in hub.sockets_in(&event.room) {
        if let Err(e) = socket.emit(event.name, &*payload) {
            tracing::debug!(socket = %socket.id, room, error = %ErrorChain(&e), "a live event did not reach a socket");
        }
    }
}
