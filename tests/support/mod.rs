//! The one test kit of the integration suites (`tests/bridge`, `tests/cli`, `tests/nats`,
//! `tests/photos`, `tests/store`, `tests/support_tools`) and the benches, which include it with
//! `#[path = ".../support/mod.rs"] mod support;`.
//!
//! - [`hub`]: the app in-process on port 0 ([`hub::TestHub`]), stopped and started again on its
//!   data dir.
//! - [`api`]: a running hub's HTTP API and Socket.IO clients for it ([`api::Api`]).
//! - [`client`]: the Socket.IO test client that records what it receives.
//! - [`binary`]: the real `socket-bridge` binary as a child process.
//! - [`nats`]: a real `nats-server -js` and what the tests read from JetStream.
//! - [`process`]: child processes that are ready when their output says so.
//! - [`raw`]: a hand-written Socket.IO client for tests that misbehave on purpose.
//!
//! This module owns what they all share: the token secret, the longest wait, tokens, the
//! runtime the store is driven with, and whether a bench is measuring.

pub mod api;
pub mod binary;
pub mod client;
pub mod hub;
pub mod nats;
pub mod process;
pub mod raw;

use std::time::Duration;

use socket_bridge::auth::{Permission, TokenAuthority};

/// The token secret of every hub the kit starts.
pub const SECRET: &str = "test-secret-0123456789abcdef-0123456789";

/// How long any single wait of the kit may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// A token for `user` with `permissions` (as written in tokens, e.g. `read:photos`), valid for an
/// hour.
pub fn token(user: &str, permissions: &[&str]) -> String {
    token_for(user, permissions, Duration::from_secs(3600))
}

/// A token for `user` with `permissions`, valid for `ttl` (whole seconds).
pub fn token_for(user: &str, permissions: &[&str], ttl: Duration) -> String {
    let authority = TokenAuthority::new(SECRET.as_bytes()).expect("secret");
    let permissions: Vec<Permission> = permissions
        .iter()
        .map(|p| p.parse().expect("a known permission"))
        .collect();
    authority.mint(user, &permissions, ttl).expect("mint")
}

/// A multi-threaded runtime like the server's (two workers).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Whether a bench binary is measuring: `cargo bench` passes `--bench`; `cargo test --benches`
/// (and `--all-targets`) runs it without, once, to check that it works. Figures from such a run
/// mean nothing, so a bench prints none then.
pub fn benching() -> bool {
    std::env::args().any(|a| a == "--bench")
}
