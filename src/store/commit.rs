//! The committer: one thread that owns seq assignment and writes group commits.
//!
//! Appenders queue requests; the committer takes everything queued (up to a limit), stages each
//! request against the stored state plus what earlier requests of the same group staged, and
//! writes the whole group with one `apply_batch` and one `flush`. Concurrent appenders therefore
//! share one flush, and because a single thread assigns seqs, a room's seqs can have no gap or
//! repeat. A request that breaks a rule is dropped from the group without touching the others.
//!
//! sled's cost is per record, so the durable batch holds only what cannot be rebuilt, in as few
//! records as possible: the group's commit record (see `commit_record`), which lists the seq
//! ranges written and carries each room's block of the group (the group's events of that room,
//! see `block`) unless the block is large, and a block record of its own for each large one;
//! for a batch read from JetStream also the stream's consumed position, so that it is durable
//! exactly when the events it covers are. Packed blocks are readable from memory (`unwritten`)
//! from the flush until the writer has put them in the tree. A room's head is its last block's
//! seq (the head record only matters once retention has removed events, and retention writes
//! it). Photo statuses and event-id records are handed to memory (which every read consults) and
//! written behind the committer; after a crash, the commit records name exactly what to write
//! and derive again (see `derived`). After a failed write or flush the committer refuses every
//! append until the store is reopened: an id is only ever answered as stored once its event is
//! durable.

use foldhash::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::{mpsc, oneshot};

use super::block::BlockBuilder;
use super::codec;
use super::commit_record;
use super::derived::{DerivedJob, Pending, WriterMessage};
use super::failure::{Failure, Writer};
use super::faults::Faults;
use super::id_runs::{Entry, Filters};
use super::ids::{self, IdIndex};
use super::keys;
use super::records::CommitRecord;
use super::tree::{durable_head, read_status};
use super::unwritten::{Unwritten, UnwrittenBlock};
use super::{AppendError, CommittedEvent, Receipt, Rejection, StoreError};
use crate::domain::{Event, EventId, PhotoId, PhotoStatus, Room, UserId, rooms_for};
use crate::telemetry::{ErrorChain, metric};

/// Head seqs readers may see, for the rooms of the group being written (between its
/// `apply_batch` and its flush): a reader never sees an event that a crash could still take back.
/// For every other room, everything in the tree is durable. Holds at most one group's rooms.
pub(super) type VisibleHeads = RwLock<HashMap<String, u64>>;

/// Room heads the committer keeps in memory (about 100 bytes each); past this many it forgets
/// them all and reads heads from the tree again as rooms are written.
const HEADS_CACHED: usize = 65_536;

/// How long a group smaller than the previous one waits for more appends before committing.
const LINGER: std::time::Duration = std::time::Duration::from_micros(50);

/// An event with its stored form already encoded (on the appender's task, not the committer's).
pub(super) struct PreparedEvent {
    pub event: Event,
    /// The event's encoded block entry (the same bytes in the block of every room it goes to).
    pub entry: Vec<u8>,
}

/// One caller's batch and where to send its outcome.
pub(super) struct AppendRequest {
    pub events: Vec<PreparedEvent>,
    /// A source's consumed position to write in the same group commit, if the batch is accepted.
    pub consumed: Option<(String, u64)>,
    pub reply: oneshot::Sender<Result<Vec<Receipt>, AppendError>>,
}

/// Where committed events go for live delivery (at most one receiver).
#[derive(Default)]
pub(super) struct CommitListener(Mutex<Option<mpsc::UnboundedSender<Arc<[CommittedEvent]>>>>);

impl CommitListener {
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Arc<[CommittedEvent]>> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(tx);
        }
        rx
    }

    /// Drops the receiver's sender: the receiver sees the end of the stream.
    pub fn close(&self) {
        if let Ok(mut slot) = self.0.lock() {
            slot.take();
        }
    }

    fn publish(&self, events: Vec<CommittedEvent>) {
        if events.is_empty() {
            return;
        }
        if let Ok(mut slot) = self.0.lock()
            && let Some(tx) = slot.as_ref()
            && tx.send(Arc::from(events)).is_err()
        {
            slot.take();
        }
    }
}

/// Run filters the committer keeps from one group to the next, at most, by default (2 bytes per
/// id of the runs they cover: 32M ids; [`StoreOptions::id_filter_cache_bytes`]). Beyond it each
/// group reads the filters it needs again (from sled's page cache, or from disk when the cache is
/// small against the index).
///
/// [`StoreOptions::id_filter_cache_bytes`]: super::StoreOptions::id_filter_cache_bytes
pub(super) const FILTER_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// What a group has staged on top of the stored state.
#[derive(Default)]
struct Overlay {
    /// Room -> head after the staged events.
    heads: HashMap<String, u64>,
    /// Room -> head before the group.
    originals: HashMap<String, u64>,
    statuses: HashMap<PhotoId, PhotoStatus>,
    /// Placements of the producer-given ids (generated ones are not indexed).
    ids: HashMap<EventId, Vec<(Room, u64)>>,
    /// Their index entries.
    entries: Vec<Entry>,
    /// Room -> the block of the group's events in that room.
    blocks: HashMap<String, BlockBuilder>,
    /// Source -> the consumed position its accepted requests recorded.
    positions: HashMap<String, u64>,
    committed: Vec<CommittedEvent>,
    /// The id runs' filters the lookups have read (kept across groups up to
    /// [`Committer::filter_cache_bytes`]).
    filters: Filters,
}

/// The committer thread's state.
pub(super) struct Committer {
    /// The tree.
    pub db: sled::Db,
    /// Heads readers may see: updated after each flush.
    pub visible: Arc<VisibleHeads>,
    /// Packed blocks of flushed groups not in the tree yet.
    pub unwritten: Arc<Unwritten>,
    /// Statuses derived but not yet written by the status writer.
    pub pending: Arc<Pending>,
    /// The event-id index.
    pub ids: Arc<IdIndex>,
    /// Where durable events go (the hub).
    pub listener: Arc<CommitListener>,
    /// The status writer's queue (bounded: the committer waits when the writer is that far
    /// behind).
    pub writer: std::sync::mpsc::SyncSender<WriterMessage>,
    /// Most events one group commit takes.
    pub max_group_events: usize,
    /// The id runs' filters kept from the last group.
    pub filters: Filters,
    /// The most bytes of filters kept from one group to the next (see [`FILTER_CACHE_BYTES`]).
    pub filter_cache_bytes: usize,
    /// The bytes of `filters`, for the log's readers (memory the index holds between groups).
    pub kept_filter_bytes: Arc<AtomicUsize>,
    /// The number of the next commit record.
    pub next_commit_no: u64,
    /// Heads of rooms written recently (at most [`HEADS_CACHED`]): the committer is their only
    /// writer, so these are exact.
    pub heads: HashMap<String, u64>,
    /// Faults injected by tests.
    pub faults: Faults,
    /// The store's failed state: set by a failed write here, or by the watchdog.
    pub failure: Arc<Failure>,
}

impl Committer {
    /// Serves append requests until every sender is gone.
    pub fn run(mut self, mut requests: mpsc::Receiver<AppendRequest>) {
        let mut last_group = 0;
        while let Some(first) = requests.blocking_recv() {
            let mut queued = first.events.len();
            let mut group = vec![first];
            self.drain(&mut requests, &mut group, &mut queued);
            // Appenders answered by the last commit are still on their way back: a group smaller
            // than the last one waits for them a moment, so that it shares the flush.
            let lingering = std::time::Instant::now();
            while queued < last_group && lingering.elapsed() < LINGER {
                std::thread::yield_now();
                self.drain(&mut requests, &mut group, &mut queued);
            }
            last_group = queued;
            self.commit(group);
        }
    }

    fn drain(
        &self,
        requests: &mut mpsc::Receiver<AppendRequest>,
        group: &mut Vec<AppendRequest>,
        queued: &mut usize,
    ) {
        while *queued < self.max_group_events {
            match requests.try_recv() {
                Ok(request) => {
                    *queued += request.events.len();
                    group.push(request);
                }
                Err(_) => break,
            }
        }
    }

    fn commit(&mut self, group: Vec<AppendRequest>) {
        if let Some(failure) = self.failure.cause() {
            refuse(group, || StoreError::Unavailable(Arc::clone(&failure)));
            return;
        }
        let started = std::time::Instant::now();
        self.ids.retain_listed(&mut self.filters);
        let mut state = Overlay {
            filters: std::mem::take(&mut self.filters),
            ..Overlay::default()
        };
        let mut outcomes: Vec<Result<Vec<Receipt>, AppendError>> = Vec::with_capacity(group.len());
        for request in &group {
            let outcome = self.stage_request(&mut state, &request.events);
            if let Err(AppendError::Store(StoreError::Sled(e))) = &outcome {
                // sled keeps an I/O error (a log write that hit a full disk, maybe another
                // thread's): the reads this group needs fail, and so would every later write.
                tracing::error!(error = %ErrorChain(e), "the store failed while staging a group commit; the event log refuses appends until it is reopened");
                let failure = self.failure.set(StoreError::Sled(e.clone()));
                refuse(group, || StoreError::CommitFailed(Arc::clone(&failure)));
                return;
            }
            if outcome.is_err() {
                // Refusals are rare: undo the refused request by staging the accepted ones again
                // (same store, same order, same result).
                state = Overlay {
                    filters: std::mem::take(&mut state.filters),
                    ..Overlay::default()
                };
                for (earlier, accepted) in group.iter().zip(outcomes.iter_mut()) {
                    if accepted.is_ok() {
                        *accepted = self.stage_request(&mut state, &earlier.events);
                    }
                }
            }
            outcomes.push(outcome);
        }
        for (request, outcome) in group.iter().zip(&outcomes) {
            if let (Some((source, position)), Ok(_)) = (&request.consumed, outcome) {
                let recorded = state.positions.entry(source.clone()).or_default();
                *recorded = (*recorded).max(*position);
            }
        }

        if !state.heads.is_empty()
            && let Err(e) = self.write(&mut state)
        {
            tracing::error!(error = %ErrorChain(&e), "group commit failed; the event log refuses appends until it is reopened");
            let failure = Arc::new(e);
            refuse(group, || StoreError::CommitFailed(Arc::clone(&failure)));
            return;
        }

        if state.filters.bytes() <= self.filter_cache_bytes {
            self.filters = std::mem::take(&mut state.filters);
        }
        self.kept_filter_bytes
            .store(self.filters.bytes(), Ordering::Relaxed);
        let events = state.committed.len();
        for (request, outcome) in group.into_iter().zip(outcomes) {
            let _ = request.reply.send(outcome);
        }
        metrics::histogram!(metric::EVENT_LOG_GROUP_COMMIT_SECONDS)
            .record(started.elapsed().as_secs_f64());
        metrics::counter!(metric::EVENT_LOG_EVENTS_APPENDED_TOTAL).increment(events as u64);
        self.listener.publish(std::mem::take(&mut state.committed));
    }

    /// Writes the group durably, then makes it visible to readers and hands what it derives
    /// (packed blocks, statuses, ids) to memory and to the writer. A write or flush error poisons
    /// the committer: sled keeps the error, so every later append is refused until the store is
    /// reopened.
    fn write(&mut self, state: &mut Overlay) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        let mut direct: CommitRecord = Vec::new();
        let mut packed: Vec<(String, UnwrittenBlock)> = Vec::with_capacity(state.blocks.len());
        for (room, mut block) in std::mem::take(&mut state.blocks) {
            let last = state.heads.get(&room).copied().unwrap_or(0);
            let first = state.originals.get(&room).copied().unwrap_or(0) + 1;
            let value = block.finish()?;
            if value.len() <= commit_record::PACKED_MAX {
                let value = Arc::from(value);
                packed.push((room, UnwrittenBlock { first, last, value }));
            } else {
                batch.insert(keys::event(&room, last), value);
                direct.push((room, first, last));
            }
        }
        let commit_no = self.next_commit_no;
        let parts = commit_record::encode(&direct, &packed)?;
        let part_count = parts.len();
        for (part, value) in parts.into_iter().enumerate() {
            let part = u16::try_from(part).map_err(|_| StoreError::Corrupt {
                key: keys::display(&keys::commit(commit_no, u16::MAX)),
                reason: "a group commit of more parts than a key can number".into(),
            })?;
            batch.insert(keys::commit(commit_no, part), value);
        }
        for (source, position) in &state.positions {
            let key = keys::position(source);
            let recorded: u64 = match self.db.get(&key)? {
                Some(bytes) => codec::decode(&key, &bytes)?,
                None => 0,
            };
            if *position > recorded {
                batch.insert(key, codec::encode(position)?);
            }
        }

        // Until the flush, readers of the rooms written directly stop at the heads they had.
        if !direct.is_empty()
            && let Ok(mut visible) = self.visible.write()
        {
            for (room, first, _) in &direct {
                visible.insert(room.clone(), first - 1);
            }
        }
        let written = {
            let _timed = self.failure.writing(Writer::Committer);
            self.db
                .apply_batch(batch)
                .and_then(|()| self.faults.check())
                .and_then(|()| self.db.flush().map(drop))
        };
        if let Err(e) = written {
            return Err(StoreError::CommitFailed(
                self.failure.set(StoreError::from(e)),
            ));
        }
        // Durable now: the packed blocks are readable from memory until the writer has put them
        // in the tree, and the tree itself says where the other rooms end. Before the group's
        // statuses are readable, so that a status never names an event a read of its room does
        // not give.
        self.unwritten.add(&packed);
        if !direct.is_empty()
            && let Ok(mut visible) = self.visible.write()
        {
            for (room, _, _) in &direct {
                visible.remove(room);
            }
        }
        self.next_commit_no += 1;
        if self.heads.len() + state.heads.len() > HEADS_CACHED {
            self.heads.clear();
        }
        self.heads
            .extend(state.heads.iter().map(|(room, head)| (room.clone(), *head)));
        let job = DerivedJob {
            commit_no,
            parts: part_count,
            blocks: packed,
            statuses: state.statuses.drain().map(|(_, status)| status).collect(),
            ids: std::mem::take(&mut state.entries),
        };
        self.ids.add_recent(&job.ids);
        self.pending.add(&job);
        let _ = self.writer.send(WriterMessage::Derived(job));
        Ok(())
    }

    fn stage_request(
        &self,
        stage: &mut Overlay,
        events: &[PreparedEvent],
    ) -> Result<Vec<Receipt>, AppendError> {
        self.faults.check_read().map_err(StoreError::from)?;
        let mut receipts = Vec::with_capacity(events.len());
        for (index, event) in events.iter().enumerate() {
            let receipt = self
                .stage_event(stage, event)?
                .map_err(|rejection| AppendError::Rejected { index, rejection })?;
            receipts.push(receipt);
        }
        Ok(receipts)
    }

    fn stage_event(
        &self,
        stage: &mut Overlay,
        prepared: &PreparedEvent,
    ) -> Result<Result<Receipt, Rejection>, StoreError> {
        let event = &prepared.event;
        if !event.event_type.is_stored() {
            return Ok(Err(Rejection::LiveOnly(event.event_type.as_str())));
        }
        let stored = if event.id_generated {
            None
        } else {
            self.stored_placement(stage, &event.id)?
        };
        if let Some(rooms) = stored {
            return Ok(Ok(Receipt {
                event_id: event.id.clone(),
                rooms,
                duplicate: true,
            }));
        }
        let before = match &event.photo_id {
            Some(photo) => self.staged_status(stage, photo)?,
            None => None,
        };
        let owner = match resolve_owner(event, before.as_ref()) {
            Ok(owner) => owner,
            Err(rejection) => return Ok(Err(rejection)),
        };
        let rooms = rooms_for(event.event_type, event.photo_id.as_ref(), owner.as_ref());
        let mut placement = Vec::with_capacity(rooms.len());
        let mut names = Vec::with_capacity(if event.id_generated { 0 } else { rooms.len() });
        for room in rooms {
            let name = room.name();
            let seq = self.staged_head(stage, &name)? + 1;
            if !event.id_generated {
                names.push((name.clone(), seq));
            }
            match stage.blocks.get_mut(&name) {
                Some(block) => block.push(&prepared.entry),
                None => {
                    stage
                        .blocks
                        .insert(name.clone(), BlockBuilder::starting_with(&prepared.entry));
                }
            }
            stage.heads.insert(name, seq);
            placement.push((room, seq));
        }
        if let (Some(photo), Some(owner)) = (&event.photo_id, &owner) {
            let photo_seq = placement
                .iter()
                .find(|(room, _)| matches!(room, Room::Photo(_)))
                .map_or(0, |(_, seq)| *seq);
            let status = PhotoStatus::apply(before.as_ref(), event, photo, owner, photo_seq);
            stage.statuses.insert(photo.clone(), status);
        }
        if !event.id_generated {
            stage.entries.push(ids::entry(&event.id, names)?);
            stage.ids.insert(event.id.clone(), placement.clone());
        }
        stage.committed.push(CommittedEvent {
            id: event.id.clone(),
            event_type: event.event_type,
            data: Arc::clone(&event.data_json),
            timestamp: event.timestamp,
            rooms: placement.clone(),
        });
        Ok(Ok(Receipt {
            event_id: event.id.clone(),
            rooms: placement,
            duplicate: false,
        }))
    }

    fn stored_placement(
        &self,
        stage: &mut Overlay,
        id: &EventId,
    ) -> Result<Option<Vec<(Room, u64)>>, StoreError> {
        if let Some(rooms) = stage.ids.get(id) {
            return Ok(Some(rooms.clone()));
        }
        self.ids.lookup(&self.db, id, &mut stage.filters)
    }

    fn staged_status(
        &self,
        stage: &Overlay,
        photo: &PhotoId,
    ) -> Result<Option<PhotoStatus>, StoreError> {
        if let Some(status) = stage.statuses.get(photo) {
            return Ok(Some(status.clone()));
        }
        if let Some(status) = self.pending.status(photo) {
            return Ok(Some(status));
        }
        read_status(&self.db, photo)
    }

    fn staged_head(&self, stage: &mut Overlay, room: &str) -> Result<u64, StoreError> {
        if let Some(head) = stage.heads.get(room) {
            return Ok(*head);
        }
        let head = match self.heads.get(room) {
            Some(head) => *head,
            None => durable_head(&self.db, &self.unwritten, room)?,
        };
        stage.originals.insert(room.to_owned(), head);
        Ok(head)
    }
}

/// Answers every request of `group` with the error `error` makes.
fn refuse(group: Vec<AppendRequest>, error: impl Fn() -> StoreError) {
    for request in group {
        let _ = request.reply.send(Err(error().into()));
    }
}

/// The owner a photo event is stored under: the stored owner, or the event's `userId` for a
/// photo's first event. `None` for events that are not about a photo.
fn resolve_owner(event: &Event, before: Option<&PhotoStatus>) -> Result<Option<UserId>, Rejection> {
    let Some(photo_id) = &event.photo_id else {
        return Ok(None);
    };
    match (before.map(|s| &s.user_id), &event.user_id) {
        (Some(owner), Some(given)) if owner != given => Err(Rejection::OwnerMismatch {
            photo_id: photo_id.clone(),
            owner: owner.clone(),
            given: given.clone(),
        }),
        (Some(owner), _) => Ok(Some(owner.clone())),
        (None, Some(given)) => Ok(Some(given.clone())),
        (None, None) => Err(Rejection::NoOwner {
            photo_id: photo_id.clone(),
        }),
    }
}
