//! The durable per-room event log, kept in one sled tree.
//!
//! Every stored event belongs to one or more rooms and gets the next sequence number of each: per
//! room the seqs are 1, 2, 3, ... with no gap and no repeat. Appends are durable when they return
//! and concurrent appenders share flushes (group commit, see `commit`).
//!
//! # Layout
//! - `keys`: every key of the tree, built in one place (fixed-width big-endian numbers); public
//!   for what writes the layout without the store (the benches' raw sled baseline).
//! - `codec`: the record encoding (a version byte, then bincode); decoding never panics.
//! - `records`: what is stored and what appends answer.
//! - `block`: event blocks, the events one group commit writes to one room as one record.
//! - `tree`: reading and decoding records (events, statuses, heads); the other modules read
//!   through it.
//! - `log`: [`EventLog`], the face: opening, reads, and the public append call.
//! - `commit`: the single committer thread that assigns seqs and writes group commits.
//! - `commit_record`: a group commit's record: its seq ranges and its small blocks, packed.
//! - `unwritten`: packed blocks of flushed groups, readable from memory until the writer has put
//!   them in the tree.
//! - `ids`: the event-id index (what is stored under an id, recent ids in memory).
//! - `id_runs`: the index's records: hash-sorted runs with filters, merged LSM-style.
//! - `failure`: the store's failed state, and the watchdog that fails it when a write does not
//!   return.
//! - `faults`: write failures and stalls injected by tests.
//! - `fuzzing`: the stored record decoder's fuzz target body (tests and the `fuzzing` feature).
//! - `derived`: packed blocks, photo statuses and id records, written behind the committer and
//!   recovered at open.
//! - `prune`: retention passes (old events out in small batches; heads and live statuses stay).
//! - `survey`: rooms kept and the oldest kept event, for the hub overview.
//! - `lock`: the store directory's lock file (one process at a time).
//! - `compact`: copying a stopped store into a fresh directory that takes its place.
//! - `migrate`: schema versions and the numbered migrations in `migrations/`.

mod block;
mod codec;
mod commit;
mod commit_record;
mod compact;
mod derived;
mod error;
mod failure;
mod faults;
mod free_space;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod fuzzing;
mod id_runs;
mod ids;
pub mod keys;
mod lock;
mod log;
mod migrate;
mod prune;
mod records;
mod survey;
mod tree;
mod unwritten;

pub use compact::{CompactReport, compact, dir_size};
pub use error::{AppendError, Rejection, StoreError};
pub use faults::Faults;
pub use log::{ConsumedPosition, EventLog, StoreOptions, StoreTime};
pub use migrate::SCHEMA_VERSION;
pub use prune::{PruneReport, RetentionPolicy};
pub use records::{CommittedEvent, Receipt, StoredEvent};
pub use survey::{OldestEvent, RecordBytes, StoreSurvey};
