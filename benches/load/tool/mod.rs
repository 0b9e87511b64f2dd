//! The load tool's engine, shared by the `load` bench binary (the command line) and the smoke
//! test in `tests/load` (tiny runs against the real binary).
//!
//! # Layout
//! - [`wire`]: Engine.IO v4 / Socket.IO v5 packets over a websocket.
//! - [`client`]: one load client that checks every seq it receives; [`fleet`]: many of them
//!   steered together, the server under load ([`fleet::Target`]), and the exactly-once check.
//! - [`publish`]: tokens and `POST /api/events`, keeping each room's head from the answers.
//! - [`measure`]: CPU (and other work on a pinned core) and RSS from `/proc`, system calls with
//!   `perf stat`, the latency clock.
//! - [`report`]: figures of a run, and the table of medians and ranges over runs.
//! - Scenarios: [`throughput`] (a) fan-out 100 and (b) fan-out 1, [`idle`] (c), [`paced`] (d),
//!   [`storm`] (e).

pub mod client;
pub mod fleet;
pub mod idle;
pub mod measure;
pub mod paced;
pub mod publish;
pub mod report;
pub mod storm;
pub mod throughput;
pub mod wire;
