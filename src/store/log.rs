//! [`EventLog`]: opening a data dir, reads, and the append call that hands batches to the
//! committer thread.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::block;
use super::codec;
use super::commit::{self, AppendRequest, CommitListener, Committer, PreparedEvent, VisibleHeads};
use super::compact;
use super::derived::{self, Pending, WriterMessage};
use super::failure::{self, Failure};
use super::faults::Faults;
use super::free_space::ensure_room_to_open;
use super::id_runs::Filters;
use super::ids::IdIndex;
use super::keys;
use super::lock::{DirLock, LOCK_WAIT};
use super::migrate;
use super::records::StoredEvent;
use super::tree::{Corruption, durable_head, read_status, readable_events};
use super::unwritten::{self, Unwritten};
use super::{AppendError, CommittedEvent, Receipt, StoreError};
use crate::domain::{Event, EventId, PhotoId, PhotoStatus, Room, Timestamp, UserId};
use crate::telemetry::metric;

/// Tuning of an [`EventLog`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// sled's page cache size in bytes (sled's own default, 1 GiB, is too much for a sidecar).
    pub cache_capacity_bytes: u64,
    /// Most events one group commit takes before it flushes.
    pub max_group_events: usize,
    /// Append requests that may wait for the committer before `append` waits for room.
    pub queue_depth: usize,
    /// The most bytes of the event-id index's run filters (2 bytes per indexed id) the committer
    /// keeps in memory from one group commit to the next; past it, each group reads the filters
    /// its ids need from the tree again. Default 64 MiB (32M ids).
    pub id_filter_cache_bytes: usize,
    /// Faults to inject (tests).
    pub faults: Faults,
    /// Which time is kept as each event's store time.
    pub store_time: StoreTime,
    /// How long one write to sled may take before the store is failed as if it had returned an
    /// error (see `failure`): long enough for a slow disk, short enough that a full one does not
    /// hold appenders and shutdown for good.
    pub write_deadline: Duration,
}

/// How long closing waits for a thread of a failed store before leaving it behind (it is stuck
/// in a write that did not return).
const STUCK_THREAD_WAIT: Duration = Duration::from_secs(1);

/// How far a source of events (a JetStream stream's identity) is consumed: the highest position
/// (stream sequence) whose message was stored, refused or passed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedPosition {
    /// The source (see [`EventLog::consumed`]).
    pub source: String,
    /// Its position.
    pub position: u64,
}

/// Which time the store keeps as an event's store time, the one retention's age reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StoreTime {
    /// The hub's clock when the event is appended: a producer's `timestamp`, however far in the
    /// future or past, does not change how long its event is kept.
    #[default]
    Clock,
    /// The event's own `timestamp`: for tests of retention that need events of chosen ages.
    EventTimestamp,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            cache_capacity_bytes: 256 * 1024 * 1024,
            max_group_events: 4096,
            queue_depth: 4096,
            id_filter_cache_bytes: commit::FILTER_CACHE_BYTES,
            faults: Faults::default(),
            store_time: StoreTime::Clock,
            write_deadline: Duration::from_secs(10),
        }
    }
}

/// The durable per-room event log. Cheap to clone; all clones share one store.
#[derive(Clone)]
pub struct EventLog {
    shared: Arc<Shared>,
}

struct Shared {
    db: sled::Db,
    epoch: String,
    visible: Arc<VisibleHeads>,
    unwritten: Arc<Unwritten>,
    pending: Arc<Pending>,
    ids: Arc<IdIndex>,
    listener: Arc<CommitListener>,
    requests: Mutex<Option<mpsc::Sender<AppendRequest>>>,
    writer: Mutex<Option<std::sync::mpsc::SyncSender<WriterMessage>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Set once a write has failed or stalled (appends are refused until reopened).
    failure: Arc<Failure>,
    /// Dropped to stop the watchdog, once the other threads have ended.
    watchdog: Mutex<Option<std::sync::mpsc::Sender<()>>>,
    /// The corrupt records met since open.
    corruption: Arc<Corruption>,
    /// Bytes of the id filters the committer keeps (see [`EventLog::id_filter_bytes`]).
    kept_filter_bytes: Arc<AtomicUsize>,
    /// Which time is kept as each event's store time.
    store_time: StoreTime,
    /// Dropped last, after the tree.
    _lock: DirLock,
}

impl Drop for Shared {
    fn drop(&mut self) {
        close_shared(self);
    }
}

impl EventLog {
    /// Opens (or creates) the store in `dir` with default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(dir, StoreOptions::default())
    }

    /// Opens (or creates) the store in `dir`: removes what an interrupted compaction left beside
    /// it, runs pending migrations (refusing a store written by a newer schema), derives again
    /// the statuses and index entries a crash left unwritten, and starts the committer.
    pub fn open_with(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Self, StoreError> {
        let lock = DirLock::acquire(dir.as_ref())?;
        compact::finish_interrupted(dir.as_ref())?;
        let db = open_tree(dir.as_ref(), options.cache_capacity_bytes)?;
        let corruption = Arc::new(Corruption::default());
        migrate::run(&db)?;
        let unwritten = Arc::new(Unwritten::default());
        let ids = Arc::new(IdIndex::open(
            &db,
            Arc::clone(&unwritten),
            Arc::clone(&corruption),
        )?);
        let recovered = derived::recover(&db, &ids, &corruption)?;
        if recovered > 0 {
            tracing::info!(
                recovered,
                "derived photo statuses and event ids of group commits left by an unclean stop"
            );
        }
        let epoch_key = keys::meta(keys::META_EPOCH);
        let epoch: String = match db.get(&epoch_key)? {
            Some(bytes) => codec::decode(&epoch_key, &bytes)?,
            None => {
                return Err(StoreError::Corrupt {
                    key: keys::display(&epoch_key),
                    reason: "the store has no epoch".into(),
                });
            }
        };

        let visible = Arc::new(VisibleHeads::default());
        let failure = Arc::new(Failure::default());
        let pending = Arc::new(Pending::default());
        let listener = Arc::new(CommitListener::default());
        let (request_tx, request_rx) = mpsc::channel(options.queue_depth.max(1));
        let (writer_tx, writer_rx) = std::sync::mpsc::sync_channel(derived::WRITER_BACKLOG);
        let writer = {
            let db = db.clone();
            let (pending, ids) = (Arc::clone(&pending), Arc::clone(&ids));
            let unwritten = Arc::clone(&unwritten);
            let faults = options.faults.clone();
            let failure = Arc::clone(&failure);
            std::thread::Builder::new()
                .name("event-log-derived-writer".into())
                .spawn(move || {
                    derived::run_writer(db, unwritten, pending, ids, writer_rx, faults, &failure)
                })
                .map_err(|source| StoreError::Thread {
                    name: "status writer",
                    source,
                })?
        };
        let kept_filter_bytes = Arc::new(AtomicUsize::new(0));
        let committer = Committer {
            db: db.clone(),
            visible: Arc::clone(&visible),
            unwritten: Arc::clone(&unwritten),
            pending: Arc::clone(&pending),
            ids: Arc::clone(&ids),
            listener: Arc::clone(&listener),
            writer: writer_tx.clone(),
            max_group_events: options.max_group_events.max(1),
            filters: Filters::default(),
            filter_cache_bytes: options.id_filter_cache_bytes,
            kept_filter_bytes: Arc::clone(&kept_filter_bytes),
            next_commit_no: 1,
            heads: Default::default(),
            faults: options.faults.clone(),
            failure: Arc::clone(&failure),
        };
        let committer = std::thread::Builder::new()
            .name("event-log-committer".into())
            .spawn(move || committer.run(request_rx))
            .map_err(|source| StoreError::Thread {
                name: "committer",
                source,
            })?;
        let (watchdog_tx, watchdog_rx) = std::sync::mpsc::channel();
        {
            let failure = Arc::clone(&failure);
            let deadline = options.write_deadline;
            std::thread::Builder::new()
                .name("event-log-watchdog".into())
                .spawn(move || failure::watch(failure, deadline, watchdog_rx))
                .map_err(|source| StoreError::Thread {
                    name: "watchdog",
                    source,
                })?;
        }

        Ok(Self {
            shared: Arc::new(Shared {
                db,
                epoch,
                visible,
                unwritten,
                pending,
                ids,
                listener,
                requests: Mutex::new(Some(request_tx)),
                writer: Mutex::new(Some(writer_tx)),
                threads: Mutex::new(vec![committer, writer]),
                failure,
                watchdog: Mutex::new(Some(watchdog_tx)),
                corruption,
                kept_filter_bytes,
                store_time: options.store_time,
                _lock: lock,
            }),
        })
    }

    /// The store's identity: a random id made when the data dir was created.
    pub fn epoch(&self) -> &str {
        &self.shared.epoch
    }

    /// Appends a batch atomically and durably: when it returns `Ok`, every event of the batch is
    /// flushed to disk with the next seq of each of its rooms, together with the rooms' heads and
    /// the photos' status. An event whose id is already stored is not written again; its receipt
    /// repeats the stored rooms and seqs. If any event breaks a rule, nothing is stored.
    pub async fn append(&self, events: Vec<Event>) -> Result<Vec<Receipt>, AppendError> {
        self.send(events, None).await
    }

    /// [`append`](Self::append)s a batch read from `consumed.source` and, in the same durable
    /// group commit, records that the source is consumed up to `consumed.position` (never moving
    /// it back): after a crash, the position on disk covers exactly the events that are. Nothing
    /// is recorded when the batch is refused or holds only duplicates.
    pub async fn append_consumed(
        &self,
        events: Vec<Event>,
        consumed: ConsumedPosition,
    ) -> Result<Vec<Receipt>, AppendError> {
        self.send(events, Some((consumed.source, consumed.position)))
            .await
    }

    async fn send(
        &self,
        events: Vec<Event>,
        consumed: Option<(String, u64)>,
    ) -> Result<Vec<Receipt>, AppendError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let sender = self
            .shared
            .requests
            .lock()
            .map_err(|_| StoreError::Closed)?
            .clone()
            .ok_or(StoreError::Closed)?;
        let started = std::time::Instant::now();
        let now = Timestamp::now();
        let store_time = self.shared.store_time;
        let events = events
            .into_iter()
            .map(|event| {
                let stored = match store_time {
                    StoreTime::Clock => now,
                    StoreTime::EventTimestamp => event.timestamp,
                };
                prepare(event, stored)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (reply, answer) = oneshot::channel();
        let exchange = async {
            sender
                .send(AppendRequest {
                    events,
                    consumed,
                    reply,
                })
                .await
                .map_err(|_| StoreError::Closed)?;
            answer.await.map_err(|_| StoreError::Closed)?
        };
        // A write that does not return fails the store (see `failure`), and the appenders
        // waiting on it, queued behind it or waiting for room in the queue are answered then.
        let outcome = tokio::select! {
            biased;
            outcome = exchange => outcome,
            cause = self.shared.failure.stalled() => Err(StoreError::Unavailable(cause).into()),
        };
        metrics::histogram!(metric::EVENT_LOG_APPEND_SECONDS)
            .record(started.elapsed().as_secs_f64());
        outcome
    }

    /// Receives every event as it becomes durable, in commit order. One receiver at a time: a new
    /// call replaces the previous receiver. Events committed before the call are not sent. The
    /// stream ends when the log is closed.
    pub fn subscribe_commits(&self) -> mpsc::UnboundedReceiver<Arc<[CommittedEvent]>> {
        self.shared.listener.subscribe()
    }

    /// The last seq assigned in `room` that is durable (0 for a room that never had an event).
    pub fn head(&self, room: &Room) -> Result<u64, StoreError> {
        self.head_by_name(&room.name())
    }

    /// The durable head of `room`. Memory and the tree are read before the visible heads: the
    /// committer marks a room before it writes a block into the tree and unmarks it after the
    /// flush, so a tree head read first is durable unless the room is marked by then (the other
    /// order could read the tree in the middle of a group and answer a head that a crash could
    /// take back). Packed blocks reach memory only after their flush.
    fn head_by_name(&self, room: &str) -> Result<u64, StoreError> {
        let durable = durable_head(&self.shared.db, &self.shared.unwritten, room)?;
        Ok(self
            .shared
            .visible
            .read()
            .ok()
            .and_then(|v| v.get(room).copied())
            .unwrap_or(durable))
    }

    /// Where a reader continues whose page after `cursor` came back empty below `head` (read
    /// before the page): the oldest kept seq when retention removed what followed the cursor,
    /// else past the head (what is left up to it are corrupt records the store skipped).
    pub fn after_hole(&self, room: &Room, cursor: u64, head: u64) -> Result<u64, StoreError> {
        let oldest = self.oldest(room)?;
        Ok(if oldest > cursor {
            oldest
        } else {
            head.saturating_add(1)
        })
    }

    /// The oldest seq still kept in `room`, or `head + 1` when none is kept (a new room gives 1).
    /// Memory is read before the tree: a block the writer moves meanwhile is found either way.
    pub fn oldest(&self, room: &Room) -> Result<u64, StoreError> {
        let name = room.name();
        let head = self.head_by_name(&name)?;
        let unwritten = self.shared.unwritten.first(&name).unwrap_or(u64::MAX);
        let prefix = keys::event_prefix(&name);
        let in_tree = match self.shared.db.scan_prefix(&prefix).next() {
            Some(entry) => {
                let (key, value) = entry?;
                match block::first_seq(&key, &value) {
                    Ok(seq) => seq,
                    // A first block that does not decode is skipped by readers: the oldest
                    // readable seq is after it.
                    Err(error) => {
                        self.shared.corruption.report(&key, &error);
                        keys::parse_event(&key).map_or(head, |(_, last)| last) + 1
                    }
                }
            }
            None => u64::MAX,
        };
        let seq = in_tree.min(unwritten);
        Ok(if seq > head { head + 1 } else { seq })
    }

    /// Up to `limit` events of `room` with seq greater than `after`, in seq order, durable ones
    /// only. A record that does not decode is reported and skipped: the events after it come
    /// with a gap in their seqs, which replays report as `replay:truncated`.
    pub fn read(
        &self,
        room: &Room,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let name = room.name();
        let head = self.head_by_name(&name)?;
        if after >= head || limit == 0 {
            return Ok(Vec::new());
        }
        // Blocks not in the tree yet are read from memory after the head (each one durable by
        // then, and still in memory or already in the tree).
        let unwritten: Vec<StoredEvent> = self
            .shared
            .unwritten
            .after(&name, after)
            .iter()
            .flat_map(|block| block.events(&name, &self.shared.corruption))
            .filter(|event| event.seq > after && event.seq <= head)
            .collect();
        // The block holding `after + 1` is the first key at or after its seq's; a block ending
        // past the head belongs to a group not flushed yet, and is not read.
        let start = keys::event(&name, after + 1);
        let end = keys::event(&name, head);
        let wanted = limit.min((head - after) as usize);
        let mut in_tree = Vec::with_capacity(wanted);
        for entry in self.shared.db.range(start..=end) {
            let (key, value) = entry?;
            let events = readable_events(&key, &value, &self.shared.corruption);
            in_tree.extend(events.into_iter().filter(|event| event.seq > after));
            if in_tree.len() >= limit {
                break;
            }
        }
        let mut out = unwritten::merge(in_tree, unwritten);
        out.truncate(limit);
        Ok(out)
    }

    /// The status of a photo, if it has any stored event.
    pub fn status(&self, photo_id: &PhotoId) -> Result<Option<PhotoStatus>, StoreError> {
        if let Some(status) = self.shared.pending.status(photo_id) {
            return Ok(Some(status));
        }
        read_status(&self.shared.db, photo_id)
    }

    /// The owner of a photo: the `userId` of its first stored event that carried one.
    pub fn owner(&self, photo_id: &PhotoId) -> Result<Option<UserId>, StoreError> {
        Ok(self.status(photo_id)?.map(|s| s.user_id))
    }

    /// Where an event id is stored, if it is.
    pub fn placement(&self, id: &EventId) -> Result<Option<Vec<(Room, u64)>>, StoreError> {
        self.shared
            .ids
            .lookup(&self.shared.db, id, &mut Filters::default())
    }

    /// How far `source` (a JetStream stream's identity) has been consumed: the position last
    /// given to [`record_consumed`](Self::record_consumed), 0 if none.
    pub fn consumed(&self, source: &str) -> Result<u64, StoreError> {
        let key = keys::position(source);
        match self.shared.db.get(&key)? {
            Some(bytes) => codec::decode(&key, &bytes),
            None => Ok(0),
        }
    }

    /// Records that `source` is consumed up to `position` (never moves back), for batches that
    /// stored nothing: [`append_consumed`](Self::append_consumed) records it with the events of
    /// those that do.
    /// Written without a flush of its own: it reaches the disk with the next group commit or
    /// sled's background flush, and it covers no stored event that a crash could take back
    /// without it.
    pub fn record_consumed(&self, source: &str, position: u64) -> Result<(), StoreError> {
        if position <= self.consumed(source)? {
            return Ok(());
        }
        self.shared
            .db
            .insert(keys::position(source), codec::encode(&position)?)?;
        Ok(())
    }

    /// Waits (up to `limit`) until the blocks packed into commit records, the photo statuses and
    /// the event ids of every append that has returned are written to the tree. Returns whether
    /// they are.
    pub fn sync_statuses(&self, limit: std::time::Duration) -> bool {
        let (done, wait) = std::sync::mpsc::channel();
        let sent = self
            .shared
            .writer
            .lock()
            .ok()
            .and_then(|writer| {
                writer
                    .as_ref()
                    .map(|tx| tx.send(WriterMessage::Sync(done)).is_ok())
            })
            .unwrap_or(false);
        sent && wait.recv_timeout(limit).is_ok()
    }

    /// Bytes of the event-id index's run filters the committer keeps between group commits (at
    /// most [`StoreOptions::id_filter_cache_bytes`]), as of the last group.
    pub fn id_filter_bytes(&self) -> usize {
        self.shared.kept_filter_bytes.load(Ordering::Relaxed)
    }

    /// The underlying tree, for the store's own modules.
    pub(super) fn db(&self) -> &sled::Db {
        &self.shared.db
    }

    /// How many distinct corrupt records reads, prune and open have met (and skipped) since open.
    pub fn corrupt_records(&self) -> usize {
        self.shared.corruption.count()
    }

    /// The packed blocks not in the tree yet, for the store's own modules.
    pub(super) fn unwritten(&self) -> &Unwritten {
        &self.shared.unwritten
    }

    /// Where corrupt records are reported, for the store's own modules.
    pub(super) fn corruption(&self) -> &Corruption {
        &self.shared.corruption
    }

    /// Whether a write has failed: appends are refused until the store is reopened.
    pub fn is_failing(&self) -> bool {
        self.shared.failure.is_failing()
    }

    /// Resolves once a write has failed or has not returned within
    /// [`StoreOptions::write_deadline`] (at once if one already has).
    pub async fn failed(&self) {
        self.shared.failure.failed().await;
    }

    /// Bytes the store takes on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.shared.db.size_on_disk()?)
    }

    /// Stops the committer after the appends already queued, and flushes. Later appends fail with
    /// [`StoreError::Closed`]; reads keep working. On a failed store nothing is flushed (the
    /// failure is returned), and a thread stuck in a write that did not return is left behind.
    pub fn close(&self) -> Result<(), StoreError> {
        close_shared(&self.shared);
        if let Some(cause) = self.shared.failure.cause() {
            return Err(StoreError::Unavailable(cause));
        }
        self.shared.db.flush()?;
        Ok(())
    }
}

fn close_shared(shared: &Shared) {
    if let Ok(mut requests) = shared.requests.lock() {
        requests.take();
    }
    if let Ok(mut writer) = shared.writer.lock() {
        writer.take();
    }
    let threads = shared
        .threads
        .lock()
        .map(|mut t| std::mem::take(&mut *t))
        .unwrap_or_default();
    for thread in threads {
        join_unless_stuck(thread, &shared.failure);
    }
    if let Ok(mut watchdog) = shared.watchdog.lock() {
        watchdog.take();
    }
    shared.listener.close();
}

/// Waits for `thread` to end; once the store has failed, for at most [`STUCK_THREAD_WAIT`] more.
fn join_unless_stuck(thread: JoinHandle<()>, failure: &Failure) {
    let mut failed_at = None;
    while !thread.is_finished() {
        if failure.is_failing() {
            let since = *failed_at.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() > STUCK_THREAD_WAIT {
                tracing::error!(
                    thread = thread.thread().name().unwrap_or("unnamed"),
                    "an event log thread is stuck in a write that did not return; left behind"
                );
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    if thread.join().is_err() {
        tracing::error!("an event log thread panicked");
    }
}

/// Opens the tree in `dir` with a page cache of `cache_bytes`, only with room on its disk for
/// sled's recovery ([`ensure_room_to_open`]: running out of space while sled opens left a store
/// unreadable for good); every opener of a store comes here. The directory is already locked by
/// this process, so a sled lock that is still held can only be a handle of this process being
/// closed (sled lets go from a background thread a few milliseconds after the last handle is
/// dropped): wait for it.
pub(super) fn open_tree(dir: &Path, cache_bytes: u64) -> Result<sled::Db, StoreError> {
    ensure_room_to_open(dir)?;
    let config = sled::Config::new().path(dir).cache_capacity(cache_bytes);
    let started = std::time::Instant::now();
    loop {
        match config.open() {
            Err(sled::Error::Io(e))
                if e.kind() == std::io::ErrorKind::Other && started.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

/// Encodes an event's stored form (stored at `stored`) on the caller's task, so the committer
/// only assigns seqs and copies bytes.
fn prepare(event: Event, stored: Timestamp) -> Result<PreparedEvent, StoreError> {
    let entry = block::encode_entry(
        &event.id,
        event.id_generated,
        event.event_type,
        &event.data_json,
        event.timestamp,
        stored,
    )?;
    Ok(PreparedEvent { event, entry })
}
