//! Tests of the durable event log against a real sled directory.

mod crash;
mod helpers;
mod migrations;
mod props;
mod retention;
