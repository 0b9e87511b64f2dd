//! Following one room for a stream (the SSE endpoints, docs/protocol.md "Server-Sent Events"):
//! every stored event after a cursor, read from the store page by page, then each new event as
//! the hub dispatches it, with no gap and no duplicate at the handover.
//!
//! The invariant, as for a socket's catch-up: a follower subscribes to the hub's committed
//! batches *before* it reads the store, so every event is either visible in the store when it
//! reads or arrives on the subscription afterwards (the committer makes a group visible before
//! the hub dispatches it). Live events at or below the cursor are dropped (duplicates); a live
//! event beyond `cursor + 1`, or a subscription that fell behind (`Lagged`), sends the follower
//! back to the store, which is the buffer: a slow reader costs one page of memory, never a queue
//! that grows. Missing history is reported with `replay:truncated`, never skipped silently.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::broadcast;

use super::frame::{event_payload, truncation_notice};
use crate::domain::{EventType, Room};
use crate::store::{CommittedEvent, EventLog, StoreError};
use crate::telemetry::metric;

/// Events read from the store per page.
const PAGE: usize = 256;
/// Committed batches the hub keeps for followers that are behind; one that falls further behind
/// reads the store instead.
const LIVE_BACKLOG: usize = 1024;

/// What a follower yields, in order.
#[derive(Debug)]
pub enum Followed {
    /// A stored event of the room.
    Event {
        /// Its seq in the room.
        seq: u64,
        /// Its type.
        event_type: EventType,
        /// `{ ...data, eventId, room, seq, timestamp }`, as a Socket.IO client gets it.
        payload: Box<RawValue>,
    },
    /// Events from the cursor on are gone: the `replay:truncated` payload.
    Truncated(Value),
}

/// The hub's side of following: the batch broadcast and the count of open followers.
pub(super) struct Followers {
    commits: Mutex<Option<broadcast::Sender<Arc<[CommittedEvent]>>>>,
    open: Arc<AtomicUsize>,
}

impl Default for Followers {
    fn default() -> Self {
        Self {
            commits: Mutex::new(Some(broadcast::channel(LIVE_BACKLOG).0)),
            open: Arc::default(),
        }
    }
}

impl Followers {
    /// A follower of `room` from after `after`, subscribed to live batches from now on.
    pub fn follow(&self, log: EventLog, room: Room, after: u64) -> Follower {
        let commits = match self.commits.lock() {
            Ok(sender) => sender.as_ref().map(broadcast::Sender::subscribe),
            Err(_) => None,
        };
        // After `stop`, a follower still replays what is stored, then ends.
        let commits = commits.unwrap_or_else(|| broadcast::channel(1).1);
        metrics::counter!(metric::REPLAYS_STARTED_TOTAL).increment(1);
        Follower::new(log, room, after, commits, OpenGuard::new(&self.open))
    }

    /// Hands a dispatched batch to every follower.
    pub fn publish(&self, batch: &Arc<[CommittedEvent]>) {
        if let Ok(sender) = self.commits.lock()
            && let Some(sender) = sender.as_ref()
            && sender.receiver_count() > 0
        {
            let _ = sender.send(Arc::clone(batch));
        }
    }

    /// Closes the broadcast: followers end once they have read what is stored.
    pub fn stop(&self) {
        if let Ok(mut sender) = self.commits.lock() {
            sender.take();
        }
    }

    /// Followers alive now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

/// Counts a follower as open for as long as it lives.
struct OpenGuard(Arc<AtomicUsize>);

impl OpenGuard {
    fn new(open: &Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(open))
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One room followed from a cursor. Pull items with [`Follower::next`].
pub struct Follower {
    log: EventLog,
    room: Room,
    room_name: String,
    /// The last seq yielded (or skipped as truncated).
    cursor: u64,
    commits: broadcast::Receiver<Arc<[CommittedEvent]>>,
    /// Whether the next items come from the store (else from live batches).
    from_store: bool,
    /// Whether the cursor was checked against the head (a cursor beyond it is truncated).
    checked: bool,
    ready: VecDeque<Followed>,
    _open: OpenGuard,
}

impl Follower {
    fn new(
        log: EventLog,
        room: Room,
        after: u64,
        commits: broadcast::Receiver<Arc<[CommittedEvent]>>,
        open: OpenGuard,
    ) -> Self {
        Self {
            log,
            room_name: room.name(),
            room,
            cursor: after,
            commits,
            from_store: true,
            checked: false,
            ready: VecDeque::new(),
            _open: open,
        }
    }

    /// The room followed.
    pub fn room(&self) -> &Room {
        &self.room
    }

    /// The next item, waiting for a new event when caught up; `None` once the hub stops.
    pub async fn next(&mut self) -> Result<Option<Followed>, StoreError> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Ok(Some(item));
            }
            if self.from_store {
                self.read_page()?;
                continue;
            }
            match self.commits.recv().await {
                Ok(batch) => self.take_live(&batch),
                Err(broadcast::error::RecvError::Lagged(_)) => self.from_store = true,
                Err(broadcast::error::RecvError::Closed) => return Ok(None),
            }
        }
    }

    /// Reads the next page after the cursor; an empty one, at the head, hands over to live.
    fn read_page(&mut self) -> Result<(), StoreError> {
        if !self.checked {
            self.checked = true;
            if self.cursor > self.log.head(&self.room)? {
                let oldest = self.log.oldest(&self.room)?;
                self.truncated(oldest)?;
            }
        }
        // The head before the page: one read after it may have grown with a new commit.
        let head = self.log.head(&self.room)?;
        let page = self.log.read(&self.room, self.cursor, PAGE)?;
        if page.is_empty() {
            if self.cursor < head {
                // Nothing readable up to the head: pruned, or corrupt records the store skipped.
                let resume_at = self.log.after_hole(&self.room, self.cursor, head)?;
                self.truncated(resume_at)?;
            } else {
                self.from_store = false;
            }
            return Ok(());
        }
        for event in page {
            // Retention may remove a prefix while we read: report it, never skip it silently.
            if event.seq != self.cursor.saturating_add(1) {
                self.truncated(event.seq)?;
            }
            let payload = event_payload(
                &event.data,
                &event.id,
                &self.room_name,
                Some(event.seq),
                event.timestamp,
            );
            self.push(event.seq, event.event_type, payload);
        }
        Ok(())
    }

    /// Takes this room's events of a live batch: older seqs are duplicates, a newer one than
    /// the next means something was missed, and the store has it.
    fn take_live(&mut self, batch: &[CommittedEvent]) {
        for event in batch {
            for (room, seq) in &event.rooms {
                if room != &self.room || *seq <= self.cursor {
                    continue;
                }
                if *seq != self.cursor.saturating_add(1) {
                    self.from_store = true;
                    return;
                }
                let payload = event_payload(
                    &event.data,
                    &event.id,
                    &self.room_name,
                    Some(*seq),
                    event.timestamp,
                );
                self.push(*seq, event.event_type, payload);
            }
        }
    }

    fn push(&mut self, seq: u64, event_type: EventType, payload: Box<RawValue>) {
        self.cursor = seq;
        self.ready.push_back(Followed::Event {
            seq,
            event_type,
            payload,
        });
    }

    /// Reports that the events from the cursor up to `oldest - 1` are gone, and moves past them.
    fn truncated(&mut self, oldest: u64) -> Result<(), StoreError> {
        let notice =
            truncation_notice(&self.log, &self.room, self.cursor.saturating_add(1), oldest)?;
        metrics::counter!(metric::REPLAYS_TRUNCATED_TOTAL).increment(1);
        self.ready.push_back(Followed::Truncated(notice));
        self.cursor = oldest.saturating_sub(1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::Map;

    use super::*;
    use crate::domain::{Event, EventId, Timestamp};

    fn maintenance(id: &str) -> Event {
        Event::new(
            EventId::parse(id).expect("id"),
            EventType::SystemMaintenance,
            Map::new(),
            Timestamp::now(),
        )
        .expect("event")
    }

    /// Appends `id` to `global` and returns the batch the committer published for it.
    async fn append(
        log: &EventLog,
        commits: &mut tokio::sync::mpsc::UnboundedReceiver<Arc<[CommittedEvent]>>,
        id: &str,
    ) -> Arc<[CommittedEvent]> {
        log.append(vec![maintenance(id)]).await.expect("append");
        commits.recv().await.expect("a committed batch")
    }

    async fn next(follower: &mut Follower) -> Option<Followed> {
        tokio::time::timeout(Duration::from_secs(5), follower.next())
            .await
            .expect("an item in time")
            .expect("no store error")
    }

    async fn next_seq(follower: &mut Follower) -> u64 {
        match next(follower).await {
            Some(Followed::Event { seq, .. }) => seq,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    /// Stored events first, then live ones; a live copy of what the store gave is dropped, a live
    /// seq past the next one sends the follower back to the store, and so does falling behind.
    #[tokio::test]
    async fn store_then_live_without_gap_or_duplicate() {
        let dir = tempfile::tempdir().expect("dir");
        let log = EventLog::open(dir.path()).expect("open");
        let mut commits = log.subscribe_commits();
        let followers = Followers::default();
        let early = append(&log, &mut commits, "e1").await;
        append(&log, &mut commits, "e2").await;

        let mut follower = followers.follow(log.clone(), Room::Global, 0);
        assert_eq!(followers.open(), 1);
        assert_eq!(next_seq(&mut follower).await, 1);
        assert_eq!(next_seq(&mut follower).await, 2);
        // The hub hands over a batch the store already gave: dropped.
        followers.publish(&early);
        let third = append(&log, &mut commits, "e3").await;
        followers.publish(&third);
        assert_eq!(next_seq(&mut follower).await, 3);

        // e4's batch never reaches the follower; e5's does: the gap is read from the store.
        append(&log, &mut commits, "e4").await;
        let fifth = append(&log, &mut commits, "e5").await;
        followers.publish(&fifth);
        assert_eq!(next_seq(&mut follower).await, 4);
        assert_eq!(next_seq(&mut follower).await, 5);

        // Falling further behind than the live backlog: back to the store, nothing repeated.
        for _ in 0..LIVE_BACKLOG + 8 {
            followers.publish(&fifth);
        }
        let sixth = append(&log, &mut commits, "e6").await;
        followers.publish(&sixth);
        assert_eq!(next_seq(&mut follower).await, 6);

        followers.stop();
        assert!(
            next(&mut follower).await.is_none(),
            "ends once the hub stops"
        );
        drop(follower);
        assert_eq!(followers.open(), 0);
    }

    /// A cursor beyond the head is reported truncated, then the room is replayed from its start.
    #[tokio::test]
    async fn cursor_beyond_the_head_is_truncated() {
        let dir = tempfile::tempdir().expect("dir");
        let log = EventLog::open(dir.path()).expect("open");
        let mut commits = log.subscribe_commits();
        append(&log, &mut commits, "e1").await;
        let followers = Followers::default();
        let mut follower = followers.follow(log.clone(), Room::Global, 10);
        match next(&mut follower).await {
            Some(Followed::Truncated(notice)) => {
                assert_eq!(notice["requestedSeq"], 11);
                assert_eq!(notice["oldestSeq"], 1);
                assert_eq!(notice["room"], "global");
                assert!(notice["status"].is_null());
            }
            other => panic!("expected replay:truncated, got {other:?}"),
        }
        assert_eq!(next_seq(&mut follower).await, 1);
    }
}
