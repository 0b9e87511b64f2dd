//! Faults injected into the event log's threads, so that tests can see what a failing or slow
//! disk does without having one: a group commit fails after its `apply_batch`, before its flush,
//! as a failed flush would, or does not return there, as a flush stuck on a full disk; the
//! derived-state writer stalls, as behind a slow disk, or fails after its first batch of commit
//! record removals, leaving the tree as a crash in the middle of its turn would.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

/// Shared switches for injected faults. The default injects nothing.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    failing_writes: Arc<AtomicU32>,
    failing_reads: Arc<AtomicU32>,
    writer_stalled: Arc<AtomicBool>,
    writes_stalled: Arc<AtomicBool>,
    writer_failing: Arc<AtomicBool>,
    writer_writes_stalled: Arc<AtomicBool>,
}

impl Faults {
    /// Makes the next `n` group commits fail as if their flush had failed.
    pub fn fail_next_writes(&self, n: u32) {
        self.failing_writes.store(n, Ordering::SeqCst);
    }

    /// Makes the committer's next `n` stagings fail as if a read of the tree had failed (sled
    /// answers its kept I/O error to reads too).
    pub fn fail_next_reads(&self, n: u32) {
        self.failing_reads.store(n, Ordering::SeqCst);
    }

    /// Fails if a read failure is due (and counts it off).
    pub(super) fn check_read(&self) -> sled::Result<()> {
        count_off(&self.failing_reads, "injected read failure")
    }

    /// Stalls (`true`) or releases the derived-state writer: while stalled it writes nothing.
    pub fn stall_writer(&self, stalled: bool) {
        self.writer_stalled.store(stalled, Ordering::SeqCst);
    }

    /// Stalls (`true`) or releases group commits: while stalled a group commit waits after its
    /// `apply_batch`, before its flush.
    pub fn stall_writes(&self, stalled: bool) {
        self.writes_stalled.store(stalled, Ordering::SeqCst);
    }

    /// Makes (`true`) or stops making the writer's turns fail after their blocks, statuses and ids
    /// and their first batch of commit record removals.
    pub fn fail_writer_cleanup(&self, failing: bool) {
        self.writer_failing.store(failing, Ordering::SeqCst);
    }

    /// Stalls (`true`) or releases the derived-state writer in the middle of its writes: while
    /// stalled a turn waits after its first batch of commit record removals, as behind a write
    /// that does not return.
    pub fn stall_writer_writes(&self, stalled: bool) {
        self.writer_writes_stalled.store(stalled, Ordering::SeqCst);
    }

    /// Waits while the writer's writes are stalled, then fails if the writer's turns are to fail
    /// after their first removals.
    pub(super) fn writer_cleanup(&self) -> sled::Result<()> {
        wait_while(&self.writer_writes_stalled);
        if self.writer_failing.load(Ordering::SeqCst) {
            return Err(sled::Error::Io(std::io::Error::other(
                "injected writer failure",
            )));
        }
        Ok(())
    }

    /// Waits while the writer is stalled.
    pub(super) fn writer_turn(&self) {
        wait_while(&self.writer_stalled);
    }

    /// Waits while group commits are stalled, then fails if a failure is due (and counts it off).
    pub(super) fn check(&self) -> sled::Result<()> {
        wait_while(&self.writes_stalled);
        count_off(&self.failing_writes, "injected write failure")
    }
}

/// Waits while `stalled` is set.
fn wait_while(stalled: &AtomicBool) {
    while stalled.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Fails with `what` if `due` is above zero, and counts one off.
fn count_off(due: &AtomicU32, what: &'static str) -> sled::Result<()> {
    if due
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return Err(sled::Error::Io(std::io::Error::other(what)));
    }
    Ok(())
}
