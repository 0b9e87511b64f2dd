//! Live-only events (`system.health`, docs/protocol.md "Control events"): one task broadcasts
//! what ingest passes on to every connected socket, in order, unstored and without a seq.

use std::sync::Arc;

use socketioxide::SocketIo;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::task::JoinHandle;

use super::frame::event_payload;
use crate::domain::Event;
use crate::telemetry::{ErrorChain, metric};

/// Starts broadcasting `events` on `io` until the sender side is gone.
pub fn spawn(io: SocketIo, mut events: broadcast::Receiver<Arc<Event>>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => {
                    let data = serde_json::to_string(&event.data).unwrap_or_else(|_| "{}".into());
                    let payload = event_payload(&data, &event.id, "global", None, event.timestamp);
                    if let Err(e) = io.emit(event.event_type.as_str(), &*payload).await {
                        tracing::debug!(error = %ErrorChain(&e), "a live event reached not every socket");
                    }
                }
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
