//! End-to-end tests of the photo flow (docs/protocol.md, "Photos"): real images made here are
//! uploaded to the app on port 0, and the processing events are watched over a real Socket.IO
//! client; the files are read back over HTTP.

// The shared test kit; this suite uses only part of it.
#[allow(dead_code)]
#[path = "../support/mod.rs"]
mod support;

mod crash;
mod files;
mod helpers;
mod images;
mod nats;
mod refusals;
mod restart;
mod upload;
