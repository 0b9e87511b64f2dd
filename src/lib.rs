//! socket-bridge: a durable real-time event hub. Photo-processing services publish events; the hub
//! stores each one per room with a gap-free sequence number and delivers it to Socket.IO clients,
//! who can resume after a disconnect without gaps or duplicates.
//!
//! # Layout
//! - [`domain`]: validated types (ids, rooms, events, routing, photo status); parse once, then trust.
//! - [`store`]: the durable per-room event log in sled (group commit, id index, migrations).

pub mod domain;
pub mod store;
