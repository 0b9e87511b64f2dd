//! Tests of the durable event log against a real sled directory.

mod crash;
mod faults;
mod helpers;
mod migrations;
mod props;
mod reopen;
mod retention;
