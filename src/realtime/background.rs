//! The hub's background runtime: catch-up replays and the store lookups of a resume run on threads
//! of their own, 5 nice levels below the process. Live events to caught-up sockets then never
//! wait in one run queue behind replays, and when the core is saturated (a reconnect storm) the
//! kernel gives the main runtime's threads (HTTP ingest, the dispatcher, the sockets' writers)
//! about three quarters of it (docs/protocol.md, "Limits"). Not the lowest priority: at nice 19,
//! other busy processes on the machine starved the replays (under a load of 8 from builds, no
//! resume of a reconnect storm completed in 120 s).

use std::future::Future;

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::task::JoinHandle;

use crate::telemetry::ErrorChain;

/// Nice levels the background threads are below the process: a CPU weight of 335 against the
/// main threads' 1024.
const NICER: libc::c_int = 5;
/// The highest nice value (the lowest priority).
const MAX_NICE: libc::c_int = 19;

/// Where the hub's background work runs.
pub(super) struct Background {
    /// The runtime, owned here (none when it could not be built: the work then runs on the
    /// caller's runtime, as before there was one).
    runtime: Option<Runtime>,
    handle: Handle,
}

impl Background {
    /// A background runtime with as many worker threads as the process may use cores, each
    /// [`NICER`] levels below the calling thread. Must be called inside a tokio runtime (its
    /// handle is the fallback).
    pub fn start() -> Self {
        // SAFETY: `getpriority` reads only its two integer arguments; `PRIO_PROCESS` with `who`
        // 0 is the calling thread. It cannot fail with these (-1 is then a nice value).
        let nice = (unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) } + NICER).min(MAX_NICE);
        let built = Builder::new_multi_thread()
            .thread_name("hub-background")
            // Set, not lowered, on every thread: a blocking thread inherits the nice value of the
            // background thread that started it.
            .on_thread_start(move || set_priority(nice))
            .enable_all()
            .build();
        match built {
            Ok(runtime) => Self {
                handle: runtime.handle().clone(),
                runtime: Some(runtime),
            },
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "could not start the background runtime; replays share the main one");
                Self {
                    runtime: None,
                    handle: Handle::current(),
                }
            }
        }
    }

    /// Runs `task` on the background runtime.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(task)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // Without waiting for its tasks: the hub may be dropped inside another runtime.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Sets the calling thread's nice value (on Linux, nice values are per thread).
fn set_priority(nice: libc::c_int) {
    // SAFETY: `setpriority` reads only its three integer arguments; `PRIO_PROCESS` with `who` 0
    // is the calling thread.
    let failed = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } != 0;
    if failed {
        let e = std::io::Error::last_os_error();
        tracing::debug!(error = %ErrorChain(&e), "could not lower a background thread's priority");
    }
}
