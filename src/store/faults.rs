//! Faults injected into the committer, so that tests can see what a failing disk does to the
//! event log without filling one: a group commit fails after its `apply_batch`, before its
//! flush, as a failed flush would.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// Shared switch for injected write failures. The default injects nothing.
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<AtomicU32>);

impl Faults {
    /// Makes the next `n` group commits fail as if their flush had failed.
    pub fn fail_next_writes(&self, n: u32) {
        self.0.store(n, Ordering::SeqCst);
    }

    /// Fails if a failure is due (and counts it off).
    pub(super) fn check(&self) -> sled::Result<()> {
        let due = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if due {
            return Err(sled::Error::Io(std::io::Error::other(
                "injected write failure",
            )));
        }
        Ok(())
    }
}
