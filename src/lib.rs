//! socket-bridge: a durable real-time event hub. Photo-processing services publish events; the hub
//! stores each one per room with a gap-free sequence number and delivers it to Socket.IO clients,
//! who can resume after a disconnect without gaps or duplicates.
//!
//! # Layout
//! - [`domain`]: validated types (ids, rooms, events, routing, photo status); parse once, then trust.
//! - [`store`]: the durable per-room event log in sled (group commit, id index, migrations);
//!   [`disk`]: the free space it needs before it is opened.
//! - [`auth`]: HS256 tokens, the generated secret, permissions.
//! - [`access`]: who may read which photo and room.
//! - [`realtime`]: Socket.IO handshake, handlers, and gap-free delivery (replay, resume, slow clients).
//! - [`bus`]: the event bus seam, the in-process bus, and the NATS JetStream consumer and publisher.
//! - [`ingest`]: the one path by which events enter (validate, store, broadcast live-only ones).
//! - [`photos`]: uploads kept under the data dir, the processing job queue, the embedded
//!   thumbnail worker.
//! - [`retention`]: the scheduled prune job.
//! - [`http`]: the API (health, metrics, ingest, history, status, photos) and the server that
//!   serves it with read timeouts.
//! - [`settings`]: the validated settings the hub is built from; [`config`]: flags and
//!   environment, parsed once into them.
//! - [`cli`]: the support CLI (`history`, `status`, `tail`), talking to a running hub over HTTP.
//! - `fuzzing` (tests and the `fuzzing` feature only): the bodies of the fuzz targets.
//! - [`telemetry`]: logs and metric names; [`app`]: wiring and shutdown.

pub mod access;
pub mod app;
pub mod auth;
pub mod bus;
pub mod cli;
pub mod config;
pub mod domain;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod http;
pub mod ingest;
pub mod photos;
pub mod realtime;
pub mod retention;
pub mod settings;
pub mod store;
pub mod telemetry;
