//! The store's failed state, and the watchdog that fails the store when a write does not return.
//!
//! After a failed write or flush sled 0.34 keeps the error, so the event log refuses every later
//! append until it is reopened. A write can also fail by never returning: after a log write hit a
//! full disk, sled's flush was seen waiting for good for that write to become stable. So the
//! writes appenders wait on, the committer's group commits and the derived writer's turns (the
//! committer waits for those once the writer is far enough behind), have a deadline
//! ([`StoreOptions::write_deadline`]): past it the watchdog fails the store as if the write had
//! returned an error, the appenders waiting on it are answered [`StoreError::Unavailable`], and
//! closing the log does not wait for the stuck thread.
//!
//! [`StoreOptions::write_deadline`]: super::StoreOptions::write_deadline

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::StoreError;
use crate::telemetry::ErrorChain;

/// A thread of the store whose writes the watchdog times.
#[derive(Debug, Clone, Copy)]
pub(super) enum Writer {
    /// The committer's group commits (`apply_batch` and flush).
    Committer = 0,
    /// The derived-state writer's turns (blocks, statuses and ids of the groups it took; its
    /// id index merges are not timed).
    Derived = 1,
}

impl Writer {
    const ALL: [Writer; 2] = [Writer::Committer, Writer::Derived];

    fn name(self) -> &'static str {
        match self {
            Writer::Committer => "committer",
            Writer::Derived => "derived-state writer",
        }
    }
}

/// The store's state as [`Failure`] tells it to waiters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Writing,
    /// A write returned an error (its caller answers its appenders).
    Failed,
    /// A write did not return (nobody else will answer its appenders).
    Stalled,
}

/// Whether the store has failed, why, and the writes in progress.
pub(super) struct Failure {
    cause: OnceLock<Arc<StoreError>>,
    state: watch::Sender<State>,
    /// Per [`Writer`]: when its write in progress started, in milliseconds since `epoch` plus
    /// one (0: not writing).
    writing: [AtomicU64; Writer::ALL.len()],
    epoch: Instant,
}

impl Default for Failure {
    fn default() -> Self {
        Self {
            cause: OnceLock::new(),
            state: watch::Sender::new(State::Writing),
            writing: Default::default(),
            epoch: Instant::now(),
        }
    }
}

impl Failure {
    /// Fails the store with `cause` (a write's error, which its caller reports), unless it has
    /// failed already; returns the cause it keeps (the first).
    pub fn set(&self, cause: StoreError) -> Arc<StoreError> {
        self.fail(cause, State::Failed)
    }

    fn fail(&self, cause: StoreError, state: State) -> Arc<StoreError> {
        let kept = Arc::clone(self.cause.get_or_init(|| Arc::new(cause)));
        self.state.send_if_modified(|current| {
            let first = *current == State::Writing;
            if first {
                *current = state;
            }
            first
        });
        kept
    }

    /// Why the store failed, if it has.
    pub fn cause(&self) -> Option<Arc<StoreError>> {
        self.cause.get().cloned()
    }

    /// Whether the store has failed.
    pub fn is_failing(&self) -> bool {
        *self.state.borrow() != State::Writing
    }

    /// Resolves once the store has failed (at once if it has).
    pub async fn failed(&self) {
        let mut state = self.state.subscribe();
        let _ = state.wait_for(|state| *state != State::Writing).await;
    }

    /// Resolves with the cause once the store has failed by a write that did not return (whose
    /// appenders nobody else answers).
    pub async fn stalled(&self) -> Arc<StoreError> {
        let mut state = self.state.subscribe();
        let _ = state.wait_for(|state| *state == State::Stalled).await;
        match self.cause() {
            Some(cause) => cause,
            None => Arc::new(StoreError::Closed),
        }
    }

    /// Times a write of `writer` until the guard is dropped.
    pub fn writing(&self, writer: Writer) -> Writing<'_> {
        let since = self.epoch.elapsed().as_millis() as u64 + 1;
        self.writing[writer as usize].store(since, Ordering::Release);
        Writing {
            failure: self,
            writer,
        }
    }

    /// The first write in progress for longer than `deadline`, and for how long.
    fn overdue(&self, deadline: Duration) -> Option<(Writer, Duration)> {
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        Writer::ALL.into_iter().find_map(|writer| {
            let since = self.writing[writer as usize].load(Ordering::Acquire);
            let waited = Duration::from_millis(now.saturating_sub(since));
            (since != 0 && waited > deadline).then_some((writer, waited))
        })
    }
}

/// A write in progress (see [`Failure::writing`]).
pub(super) struct Writing<'a> {
    failure: &'a Failure,
    writer: Writer,
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.failure.writing[self.writer as usize].store(0, Ordering::Release);
    }
}

/// Watches the writes of `failure` until `stop` is dropped (or sends): fails the store when one
/// has not returned within `deadline`, then ends.
pub(super) fn watch(failure: Arc<Failure>, deadline: Duration, stop: Receiver<()>) {
    let tick = (deadline / 4).clamp(Duration::from_millis(5), Duration::from_millis(250));
    loop {
        match stop.recv_timeout(tick) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        if failure.is_failing() {
            return;
        }
        if let Some((writer, waited)) = failure.overdue(deadline) {
            let cause = failure.fail(
                StoreError::WriteStalled {
                    thread: writer.name(),
                    waited,
                },
                State::Stalled,
            );
            tracing::error!(
                thread = writer.name(),
                waited_ms = waited.as_millis() as u64,
                error = %ErrorChain(cause.as_ref()),
                "a write to the store has not returned; the event log refuses appends until it is reopened"
            );
            return;
        }
    }
}
