//! What is written behind the committer: the event blocks packed into commit records, photo
//! status snapshots and the event-id index's runs (see `ids`), and the merging of those runs.
//!
//! A record per room of a group, or a status or id record per event, in the durable group commit
//! would cost about as much as the event, and all of them are in or derivable from the commit
//! record. So after a group is flushed its packed blocks go to [`Unwritten`] and its statuses to
//! [`Pending`] (every read consults them first), its ids to the id index's memory, and all to the
//! writer thread, which gathers groups for a short while, writes each room's blocks of those
//! groups as one record, each photo's latest status once and the groups' ids as index runs, and
//! deletes the groups' commit records in the same atomic batch; then it merges index runs if a
//! size tier is full. After a crash, the commit records still present name exactly the blocks
//! and derived records that may be missing: [`recover`] writes and derives them again at open (a
//! block is written again under the same key, a status records its `lastSeq`, and an id indexed
//! twice with the same placement is one entry once its runs are merged).

use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use foldhash::{HashMap, HashMapExt};
use serde_json::Value;

use super::StoreError;
use super::block;
use super::codec;
use super::commit_record::{self, CommitContents};
use super::failure::{Failure, Writer};
use super::faults::Faults;
use super::id_runs::{Entry, PARTITIONS};
use super::ids::{self, IdIndex};
use super::keys;
use super::records::StatusRecord;
use super::records::StoredEvent;
use super::tree::{Corruption, read_status, readable_events};
use super::unwritten::{Unwritten, UnwrittenBlock};
use crate::domain::{Event, EventId, PhotoId, PhotoStatus, Room};
use crate::telemetry::ErrorChain;

/// How long the writer gathers flushed groups before writing their statuses.
const GATHER: Duration = Duration::from_millis(20);

/// The most records one batch of the writer holds: sled's `apply_batch` holds a store-wide lock
/// (and keeps the log from being made durable past it) for its whole length, so one long batch
/// would hold up the committer's group commits behind it.
const SLICE: usize = 32;

/// Flushed groups that may wait for the writer. When it falls this far behind (a burst of
/// producer ids, one record each, on a slow disk), the committer waits for it: what waits is
/// held in memory ([`Pending`], the id index's recent ids) and must stay bounded.
pub(super) const WRITER_BACKLOG: usize = 32;

/// What a flushed group derives, for the writer.
pub(super) struct DerivedJob {
    /// The group's commit record number (removed once this is written).
    pub commit_no: u64,
    /// How many parts its commit record has.
    pub parts: usize,
    /// The blocks packed into the commit record, which the writer puts in the tree.
    pub blocks: Vec<(String, UnwrittenBlock)>,
    /// The latest status of each photo the group touched.
    pub statuses: Vec<PhotoStatus>,
    /// The index entries of the newly stored event ids.
    pub ids: Vec<Entry>,
}

/// What the writer is asked to do.
pub(super) enum WriterMessage {
    /// Write what a flushed group derives.
    Derived(DerivedJob),
    /// Answer once everything queued before has been written.
    Sync(std::sync::mpsc::Sender<()>),
}

/// Statuses of flushed groups that the writer has not written yet.
#[derive(Default)]
pub(super) struct Pending(Mutex<HashMap<PhotoId, PhotoStatus>>);

impl Pending {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<PhotoId, PhotoStatus>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes a group's statuses visible to reads.
    pub fn add(&self, job: &DerivedJob) {
        let mut map = self.map();
        for status in &job.statuses {
            map.insert(status.photo_id.clone(), status.clone());
        }
    }

    /// The pending status of a photo.
    pub fn status(&self, photo: &PhotoId) -> Option<PhotoStatus> {
        self.map().get(photo).cloned()
    }

    /// Forgets what the writer has written, unless a later group replaced it.
    fn settle(&self, written: &HashMap<PhotoId, PhotoStatus>) {
        let mut map = self.map();
        for (photo, status) in written {
            if map
                .get(photo)
                .is_some_and(|s| s.last_seq == status.last_seq)
            {
                map.remove(photo);
            }
        }
        if map.is_empty() {
            map.shrink_to(ids::KEPT_CAPACITY);
        }
    }
}

/// Writes what flushed groups derive until every sender is gone.
pub(super) fn run_writer(
    db: sled::Db,
    unwritten: Arc<Unwritten>,
    pending: Arc<Pending>,
    ids: Arc<IdIndex>,
    messages: Receiver<WriterMessage>,
    faults: Faults,
    failure: &Failure,
) {
    while let Ok(first) = messages.recv() {
        faults.writer_turn();
        let mut jobs = Vec::new();
        let mut syncs = Vec::new();
        let deadline = Instant::now() + GATHER;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                WriterMessage::Derived(job) => jobs.push(job),
                WriterMessage::Sync(done) => syncs.push(done),
            }
            next = if syncs.is_empty() {
                messages
                    .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                    .ok()
            } else {
                messages.try_recv().ok()
            };
        }
        let mut latest: HashMap<PhotoId, PhotoStatus> = HashMap::new();
        for job in &jobs {
            for status in &job.statuses {
                latest.insert(status.photo_id.clone(), status.clone());
            }
        }
        // On failure the blocks, statuses and ids stay in memory (reads still find them) and the
        // commit records stay, so the next open writes and derives them again.
        let written = {
            let _timed = failure.writing(Writer::Derived);
            write(&db, &ids, &jobs, &latest, &faults)
        };
        match written {
            Ok(written) => {
                unwritten.settle(&written);
                pending.settle(&latest);
                for job in &jobs {
                    ids.settle(&job.ids);
                }
            }
            Err(e) => {
                tracing::error!(error = %ErrorChain(&e), "could not write photo statuses and ids; they will be derived again at next open")
            }
        }
        for done in syncs {
            let _ = done.send(());
        }
        // Each partition may have a full tier after a turn's runs: up to one merge per partition.
        for _ in 0..PARTITIONS {
            // Not timed: a merge of the largest runs is long by nature (it reads and writes
            // them whole), and nothing waits on it.
            match ids.merge_once(&db) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    tracing::error!(error = %ErrorChain(&e), "could not merge event-id index runs; lookups read more runs until a later merge succeeds");
                    break;
                }
            }
        }
    }
}

/// Writes the jobs' packed blocks (each room's consecutive blocks joined into one record) and
/// latest statuses, then their ids as index runs, then removes their commit records, in batches of
/// at most [`SLICE`] records. Returns the blocks written, as `(room, first seq, last seq)`.
///
/// A crash part way leaves commit records whose blocks may be in the tree already, joined: open
/// writes a packed block only where no block holds it yet (see [`recover`]), and retention leaves
/// blocks alone until their commit records are gone (their memory copies are forgotten only then).
/// Ids reach the index after their blocks reach the tree, and before their commit records go.
fn write(
    db: &sled::Db,
    ids: &IdIndex,
    jobs: &[DerivedJob],
    latest: &HashMap<PhotoId, PhotoStatus>,
    faults: &Faults,
) -> Result<Vec<(String, u64, u64)>, StoreError> {
    let mut records = Vec::new();
    let mut written = Vec::new();
    for (room, first, last, value) in joined_blocks(jobs)? {
        records.push((keys::event(room, last), value));
        written.push((room.to_owned(), first, last));
    }
    for (photo, status) in latest {
        records.push((
            keys::status(photo.as_str()),
            codec::encode(&StatusRecord::from(status))?,
        ));
    }
    for slice in records.chunks(SLICE) {
        let mut batch = sled::Batch::default();
        for (key, value) in slice {
            batch.insert(&key[..], &value[..]);
        }
        db.apply_batch(batch)?;
    }
    let mut batch = sled::Batch::default();
    let runs = ids.stage(&mut batch, jobs.iter().flat_map(|job| &job.ids))?;
    db.apply_batch(batch)?;
    ids.settle_runs(runs);
    let commit_keys: Vec<Vec<u8>> = jobs
        .iter()
        .flat_map(|job| {
            (0..job.parts)
                .map(|part| keys::commit(job.commit_no, u16::try_from(part).unwrap_or(u16::MAX)))
        })
        .collect();
    for slice in commit_keys.chunks(SLICE) {
        let mut batch = sled::Batch::default();
        for key in slice {
            batch.remove(&key[..]);
        }
        db.apply_batch(batch)?;
        faults.writer_cleanup()?;
    }
    Ok(written)
}

/// A block record for the tree: its room, its first and last seq and its value.
type BlockRecord<'a> = (&'a str, u64, u64, Vec<u8>);

/// The tree records of the jobs' packed blocks: a room's blocks whose seqs follow on from each
/// other are joined into one record (sled's cost is per record).
fn joined_blocks(jobs: &[DerivedJob]) -> Result<Vec<BlockRecord<'_>>, StoreError> {
    let mut rooms: HashMap<&str, Vec<&UnwrittenBlock>> = HashMap::new();
    for job in jobs {
        for (room, block) in &job.blocks {
            rooms.entry(room.as_str()).or_default().push(block);
        }
    }
    let mut records = Vec::new();
    for (room, blocks) in rooms {
        for run in blocks.chunk_by(|a, b| a.last + 1 == b.first) {
            let first = run.first().map_or(0, |block| block.first);
            let last = run.last().map_or(0, |block| block.last);
            let value = match run {
                [one] => one.value.to_vec(),
                _ => {
                    let values: Vec<&[u8]> = run.iter().map(|block| &block.value[..]).collect();
                    block::join(&keys::event(room, last), &values)?
                }
            };
            records.push((room, first, last, value));
        }
    }
    Ok(records)
}

/// Writes again the packed blocks, and derives again the statuses and index entries, of every
/// group commit whose commit record is still present (its blocks and derived records may be
/// missing), in commit order; then writes the blocks and the ids as index runs with the removal
/// of the commit records, and flushes. Returns how many commit records it processed. A corrupt
/// commit or event record is reported to `corruption` and skipped: nothing is derived from it.
pub(super) fn recover(
    db: &sled::Db,
    ids: &IdIndex,
    corruption: &Corruption,
) -> Result<usize, StoreError> {
    let mut recovered = 0;
    let mut placements: HashMap<EventId, Vec<(Room, u64)>> = HashMap::new();
    let mut batch = sled::Batch::default();
    for entry in db.scan_prefix([keys::COMMIT]) {
        let (commit_key, value) = entry?;
        let contents = match commit_record::decode(&commit_key, &value) {
            Ok(contents) => contents,
            Err(error) => {
                corruption.report(&commit_key, &error);
                CommitContents::default()
            }
        };
        for (name, first, last) in contents.direct {
            let Some(room) = room_of(&commit_key, &name, corruption) else {
                continue;
            };
            // The group wrote one block ending at `last` (or, before schema version 6, one
            // record per seq from `first`).
            for block in db.range(keys::event(&name, first)..=keys::event(&name, last)) {
                let (key, value) = block?;
                for stored in readable_events(&key, &value, corruption) {
                    if stored.seq >= first {
                        derive(db, &room, &stored, &key, &mut placements, corruption)?;
                    }
                }
            }
        }
        for (name, block) in contents.packed {
            let Some(room) = room_of(&commit_key, &name, corruption) else {
                continue;
            };
            let key = keys::event(&name, block.last);
            for stored in readable_events(&key, &block.value, corruption) {
                derive(db, &room, &stored, &key, &mut placements, corruption)?;
            }
            if !in_tree(db, &name, &block)? {
                batch.insert(key, &block.value[..]);
            }
        }
        batch.remove(commit_key);
        recovered += 1;
    }
    if recovered > 0 {
        let entries = placements
            .iter()
            .map(|(id, placement)| {
                let names = placement
                    .iter()
                    .map(|(room, seq)| (room.name(), *seq))
                    .collect();
                ids::entry(id, names)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let runs = ids.stage(&mut batch, &entries)?;
        db.apply_batch(batch)?;
        ids.settle_runs(runs);
        db.flush()?;
    }
    Ok(recovered)
}

/// Whether a block in the tree holds the packed `block` of `room` already: the writer wrote it,
/// joined with others, before a crash kept it from removing the commit record. (Retention does
/// not touch such a block, so it holds all of the packed block or none of it.)
fn in_tree(db: &sled::Db, room: &str, packed: &UnwrittenBlock) -> Result<bool, StoreError> {
    let Some(entry) = db
        .range(keys::event(room, packed.last)..keys::after_room(room))
        .next()
    else {
        return Ok(false);
    };
    let (key, value) = entry?;
    Ok(block::first_seq(&key, &value).is_ok_and(|first| first <= packed.first))
}

/// The room a commit record names, or `None` (reported to `corruption`) for an invalid name.
fn room_of(commit_key: &[u8], name: &str, corruption: &Corruption) -> Option<Room> {
    let room = name.parse::<Room>().ok();
    if room.is_none() {
        let error = StoreError::Corrupt {
            key: keys::display(commit_key),
            reason: format!("invalid room name `{name}`"),
        };
        corruption.report(commit_key, &error);
    }
    room
}

/// Derives again what one recovered event of `room` (read from the block at `key`) gives: its id
/// placement, and for a photo room the photo's status.
fn derive(
    db: &sled::Db,
    room: &Room,
    stored: &StoredEvent,
    key: &[u8],
    placements: &mut HashMap<EventId, Vec<(Room, u64)>>,
    corruption: &Corruption,
) -> Result<(), StoreError> {
    if !stored.id_generated {
        placements
            .entry(stored.id.clone())
            .or_default()
            .push((room.clone(), stored.seq));
    }
    if let Room::Photo(photo) = room {
        match derive_status(db, photo, stored) {
            Err(error @ StoreError::Corrupt { .. }) => corruption.report(key, &error),
            other => other?,
        }
    }
    Ok(())
}

/// Applies a photo room's event to the stored status unless the status already includes it.
fn derive_status(db: &sled::Db, photo: &PhotoId, stored: &StoredEvent) -> Result<(), StoreError> {
    let before = read_status(db, photo)?;
    if before.as_ref().is_some_and(|s| s.last_seq >= stored.seq) {
        return Ok(());
    }
    let corrupt = |reason: String| StoreError::Corrupt {
        key: keys::display(&keys::event(&Room::photo(photo).name(), stored.seq)),
        reason,
    };
    let data = match serde_json::from_str(&stored.data) {
        Ok(Value::Object(map)) => map,
        _ => return Err(corrupt("event data is not a JSON object".into())),
    };
    let event = Event::new(stored.id.clone(), stored.event_type, data, stored.timestamp)
        .map_err(|e| corrupt(format!("stored event no longer validates: {e}")))?;
    let Some(owner) = before
        .as_ref()
        .map(|s| s.user_id.clone())
        .or_else(|| event.user_id.clone())
    else {
        return Err(corrupt("photo event without a known owner".into()));
    };
    let status = PhotoStatus::apply(before.as_ref(), &event, photo, &owner, stored.seq);
    db.insert(
        keys::status(photo.as_str()),
        codec::encode(&StatusRecord::from(&status))?,
    )?;
    Ok(())
}
