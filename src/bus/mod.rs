//! The event bus seam: where the hub publishes its own `client.*` events, and which kind of bus
//! feeds it. The in-process bus is the default; with `--nats-url` the hub consumes NATS JetStream
//! ([`nats`]) and publishes there, behind the same trait.

mod backoff;
mod in_process;
pub mod nats;
mod publisher;

use std::future::Future;
use std::pin::Pin;

pub use backoff::Backoff;
pub use in_process::{BusMessage, InProcessBus};
pub use publisher::Publisher;

/// A publish failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The payload could not be written as JSON.
    #[error("could not encode the message")]
    Encode(#[source] serde_json::Error),
    /// NATS refused or could not take the message.
    #[error("NATS publish failed")]
    Nats(#[source] async_nats::PublishError),
}

/// A boxed future, so that the trait stays object-safe.
pub type BusFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An event bus the hub publishes to.
pub trait EventBus: Send + Sync + 'static {
    /// `"in-process"` or `"nats"`, as `/health/detailed` reports it.
    fn kind(&self) -> &'static str;
    /// Whether the bus is reachable now.
    fn is_up(&self) -> bool;
    /// Publishes `payload` (JSON) on `subject`.
    fn publish(
        &self,
        subject: &str,
        payload: serde_json::Value,
    ) -> BusFuture<'_, Result<(), BusError>>;
}
