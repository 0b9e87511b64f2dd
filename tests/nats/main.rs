//! End-to-end tests of the NATS JetStream bus against a real `nats-server -js` that each test
//! starts with its own store dir (docs/protocol.md, "Producers: NATS JetStream").

// The shared test kit; this suite uses only part of it.
#[allow(dead_code)]
#[path = "../support/mod.rs"]
mod support;

mod consume;
mod dead_letter;
mod durability;
mod helpers;
mod outage;
mod quiet;
mod retention;
mod setup;
