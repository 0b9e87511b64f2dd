//! The in-process bus: a broadcast channel inside the hub's process, for single-node deployments
//! and tests. Observers (tests, diagnostics) subscribe to see what the hub publishes.

use tokio::sync::broadcast;

use super::{BusError, BusFuture, EventBus};

/// One message on the in-process bus.
#[derive(Debug, Clone)]
pub struct BusMessage {
    /// The subject, e.g. `client.connected`.
    pub subject: String,
    /// The JSON payload.
    pub payload: serde_json::Value,
}

/// The default bus: publishes to whoever subscribed in the same process.
#[derive(Debug, Clone)]
pub struct InProcessBus {
    sender: broadcast::Sender<BusMessage>,
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(1024).0,
        }
    }
}

impl InProcessBus {
    /// Receives every message published from now on (a slow observer loses the oldest).
    pub fn subscribe(&self) -> broadcast::Receiver<BusMessage> {
        self.sender.subscribe()
    }
}

impl EventBus for InProcessBus {
    fn kind(&self) -> &'static str {
        "in-process"
    }

    fn is_up(&self) -> bool {
        true
    }

    fn publish(
        &self,
        subject: &str,
        payload: serde_json::Value,
    ) -> BusFuture<'_, Result<(), BusError>> {
        let message = BusMessage {
            subject: subject.to_owned(),
            payload,
        };
        // No observer is not an error: in-process publishing is fire-and-forget.
        let _ = self.sender.send(message);
        Box::pin(std::future::ready(Ok(())))
    }
}
