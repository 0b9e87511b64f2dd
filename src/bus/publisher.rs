//! Ordered, non-blocking publishing of the hub's own events: socket handlers hand messages to one
//! task that publishes them in order, so a slow bus never holds up a socket.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::EventBus;
use crate::telemetry::{ErrorChain, metric};

/// Messages that may wait for the bus before new ones are dropped (and counted).
const QUEUE: usize = 10_000;

/// A handle to the publishing task. Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    queue: mpsc::Sender<(&'static str, serde_json::Value)>,
}

impl Publisher {
    /// Starts the task publishing to `bus`.
    pub fn spawn(bus: Arc<dyn EventBus>) -> Self {
        let (queue, mut messages) = mpsc::channel::<(&'static str, serde_json::Value)>(QUEUE);
        tokio::spawn(async move {
            while let Some((subject, payload)) = messages.recv().await {
                if let Err(e) = bus.publish(subject, payload).await {
                    metrics::counter!(metric::BUS_PUBLISH_FAILURES_TOTAL).increment(1);
                    tracing::warn!(subject, error = %ErrorChain(&e), "could not publish a hub event");
                }
            }
        });
        Self { queue }
    }

    /// Queues `payload` for `subject`; drops it (counted) when the queue is full.
    pub fn publish(&self, subject: &'static str, payload: serde_json::Value) {
        if self.queue.try_send((subject, payload)).is_err() {
            metrics::counter!(metric::BUS_PUBLISH_DROPPED_TOTAL).increment(1);
        }
    }
}
