//! End-to-end tests of the NATS JetStream bus against a real `nats-server -js` that each test
//! starts on a free port with its own store dir (docs/protocol.md, "Producers: NATS JetStream").

// The bridge suite's Socket.IO client, tokens and settings; this suite uses only part of them.
#[allow(dead_code)]
#[path = "../bridge/helpers.rs"]
mod bridge;

mod consume;
mod dead_letter;
mod durability;
mod helpers;
mod outage;
mod setup;
