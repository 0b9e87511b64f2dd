//! Token expiry of connected sockets: one timer task for all of them (a task per socket cost
//! about 340 bytes of every connection; docs/benchmarks.md, idle connections).
//!
//! At its token's deadline (`exp` plus the leeway) a still-connected socket is sent
//! `auth:expired` and disconnected; the client reconnects with a fresh token and `resume`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::SystemTime;

use serde_json::json;
use socketioxide::extract::SocketRef;
use socketioxide::socket::Sid;
use tokio::sync::Notify;
use tokio::time::Instant;

/// A socket's place in the queue: its deadline, then its id (deadlines can be equal).
type Key = (Instant, Sid);

/// The sockets whose tokens expire, by deadline, and the task that disconnects them at it.
/// Clones share the queue; the task ends when the last clone is dropped.
#[derive(Clone)]
pub struct Expiries {
    shared: Arc<Shared>,
}

struct Shared {
    queue: Mutex<BTreeMap<Key, SocketRef>>,
    /// Wakes the task when an earlier deadline was added, or when `Shared` is dropped.
    wake: Arc<Notify>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.wake.notify_one();
    }
}

/// Where a socket is in the queue, kept in its extensions to take it out at its disconnect.
#[derive(Clone, Copy)]
pub struct Expiry(Key);

impl Expiries {
    /// An empty queue and its task (on the current tokio runtime).
    pub fn start() -> Self {
        let wake = Arc::new(Notify::new());
        let shared = Arc::new(Shared {
            queue: Mutex::new(BTreeMap::new()),
            wake: Arc::clone(&wake),
        });
        tokio::spawn(run(Arc::downgrade(&shared), wake));
        Self { shared }
    }

    /// Expires `socket` at `deadline`; the returned place takes it out again ([`Expiries::remove`]).
    pub fn insert(&self, socket: &SocketRef, deadline: SystemTime) -> Expiry {
        let wait = deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        let key = (Instant::now() + wait, socket.id);
        let mut queue = self.shared.lock();
        queue.insert(key, socket.clone());
        let earliest = queue
            .first_key_value()
            .is_some_and(|(first, _)| *first == key);
        drop(queue);
        if earliest {
            self.shared.wake.notify_one();
        }
        Expiry(key)
    }

    /// Takes a socket out of the queue (it disconnected); nothing if it was expired already.
    pub fn remove(&self, expiry: Expiry) {
        self.shared.lock().remove(&expiry.0);
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<Key, SocketRef>> {
        // Nothing panics while the lock is held, so a poisoned queue is still whole.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Disconnects each socket at its deadline, until the queue is dropped.
async fn run(shared: Weak<Shared>, wake: Arc<Notify>) {
    loop {
        let woken = wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let now = Instant::now();
        let (due, next) = {
            let mut queue = strong.lock();
            let later = match queue.keys().find(|(at, _)| *at > now).copied() {
                Some(key) => queue.split_off(&key),
                None => BTreeMap::new(),
            };
            let due = std::mem::replace(&mut *queue, later);
            (due, queue.first_key_value().map(|((at, _), _)| *at))
        };
        drop(strong);
        for socket in due.into_values() {
            expire(&socket);
        }
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = &mut woken => {}
                }
            }
            None => woken.await,
        }
    }
}

/// Tells a still-connected socket `auth:expired` and disconnects it.
fn expire(socket: &SocketRef) {
    if socket.connected() {
        tracing::debug!(socket = %socket.id, "token expired; disconnecting");
        let _ = socket.emit("auth:expired", &json!({}));
        let _ = socket.clone().disconnect();
    }
}
