//! Tests of the durable event log against a real sled directory.

// The shared test kit; this suite uses only part of it.
#[allow(dead_code)]
#[path = "../support/mod.rs"]
mod support;

mod compact;
mod consumed;
mod corrupt;
mod crash;
mod disk_full;
mod faults;
mod generated_ids;
mod helpers;
mod id_index;
mod migrations;
mod packed;
mod props;
mod reopen;
mod retention;
mod tmpfs;
