//! Socket.IO: the handshake, the client events of docs/protocol.md, and gap-free delivery.
//!
//! - `handshake`: parsing and authenticating the `auth` payload.
//! - `budget`: each socket's request budget (the per-socket rate limit).
//! - `handlers`: connect, subscribe/unsubscribe, status, ping, disconnect.
//! - `expiry`: disconnecting sockets whose tokens expire, from one timer task.
//! - `request`: photo request payloads, their refusals ([`RequestError`]) and answers.
//! - `background`: the low-priority runtime catch-ups and resumes run on.
//! - `hub`: the subscription handle and the dispatcher of live events.
//! - `dispatch`: the dispatcher's queue, taken in steps, small rooms first.
//! - `subscriptions`: the pure subscription state and its delivery rules.
//! - `catch_up`: replaying a room from the store to one socket (replay, resume, slow clients).
//! - [`follow`]: the same replay-then-live handover for a stream (SSE) instead of a socket.
//! - `frame`: the payload of a delivered event.
//! - [`live`]: broadcasting the live-only events ingest passes on.

mod background;
mod budget;
mod catch_up;
mod dispatch;
mod expiry;
pub mod follow;
mod frame;
mod handlers;
pub(crate) mod handshake;
mod hub;
pub mod live;
pub(crate) mod request;
mod subscriptions;

pub use expiry::Expiries;
pub use follow::{Followed, Follower};
pub use frame::{event_payload, truncation_notice};
pub use handlers::register;
pub use handshake::{Handshake, HandshakeError};
pub use hub::{Hub, HubOptions, Replay, SubscribeError};
pub use request::RequestError;

use crate::auth::TokenAuthority;
use crate::bus::Publisher;
use crate::store::EventLog;

/// What the Socket.IO handlers need.
#[derive(Clone)]
pub struct Realtime {
    /// The event log.
    pub log: EventLog,
    /// Subscriptions and delivery.
    pub hub: Hub,
    /// Verifies handshake tokens.
    pub tokens: TokenAuthority,
    /// Disconnects sockets whose tokens expire.
    pub expiries: Expiries,
    /// Where `client.*` events are published.
    pub bus: Publisher,
    /// Whether the original design's unauthenticated handshake is accepted.
    pub insecure_dev_auth: bool,
    /// Connection and subscription limits.
    pub limits: crate::settings::Limits,
}
