//! End-to-end tests of the bridge: the app on port 0 with a temp data dir, driven by the
//! `rust_socketio` client, HTTP, and raw websockets.

// The shared test kit; this suite uses only part of it.
#[allow(dead_code)]
#[path = "../support/mod.rs"]
mod support;

mod abuse;
mod fairness;
mod fanout;
mod handover;
mod hardening;
mod helpers;
mod ingest_bounds;
mod protocol;
mod resume;
mod retention;
mod slow_client;
mod slowloris;
mod storm;
