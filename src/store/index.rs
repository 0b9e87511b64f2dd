//! Records derived from the events, written behind the committer: the event-id index (where each
//! stored event id lives, for idempotent appends) and the photo status snapshots.
//!
//! Both are derivable, so they stay out of the durable group commit (each record there costs
//! about as much as an event). After a group is flushed its ids and statuses go to [`Pending`]
//! (consulted by every read) and to the indexer thread, which writes them and deletes the group's
//! commit record in one atomic batch. After a crash, the commit records still present name exactly
//! the events whose derived records may be missing: [`recover`] derives them again at open.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::mpsc::Receiver;

use serde_json::Value;

use super::StoreError;
use super::codec;
use super::keys;
use super::log::{decode_event, read_status};
use super::records::{CommitRecord, Placement, StatusRecord};
use crate::domain::{Event, EventId, PhotoId, PhotoStatus, Room};

/// What the indexer is asked to do.
pub(super) enum IndexerMessage {
    /// Write a flushed group's derived records.
    Derived(IndexJob),
    /// Answer once everything queued before has been written.
    Sync(std::sync::mpsc::Sender<()>),
}

/// A flushed group's derived records, for the indexer.
pub(super) struct IndexJob {
    pub commit_no: u64,
    pub ids: Vec<(EventId, Vec<(Room, u64)>)>,
    pub statuses: Vec<PhotoStatus>,
}

#[derive(Default)]
struct PendingState {
    ids: HashMap<EventId, Vec<(Room, u64)>>,
    statuses: HashMap<PhotoId, PhotoStatus>,
}

/// Derived records of flushed groups that the indexer has not written yet.
#[derive(Default)]
pub(super) struct Pending(Mutex<PendingState>);

impl Pending {
    fn state(&self) -> std::sync::MutexGuard<'_, PendingState> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes a group's derived records visible to reads.
    pub fn add(&self, job: &IndexJob) {
        let mut state = self.state();
        state.ids.extend(job.ids.iter().cloned());
        for status in &job.statuses {
            state
                .statuses
                .insert(status.photo_id.clone(), status.clone());
        }
    }

    /// The pending status of a photo.
    pub fn status(&self, photo: &PhotoId) -> Option<PhotoStatus> {
        self.state().statuses.get(photo).cloned()
    }

    fn placement(&self, id: &EventId) -> Option<Vec<(Room, u64)>> {
        self.state().ids.get(id).cloned()
    }

    /// Forgets what the indexer has written (a status only if no later group replaced it).
    fn settle(&self, jobs: &[IndexJob]) {
        let mut state = self.state();
        for job in jobs {
            for (id, _) in &job.ids {
                state.ids.remove(id);
            }
            for status in &job.statuses {
                if state
                    .statuses
                    .get(&status.photo_id)
                    .is_some_and(|s| s.last_seq == status.last_seq)
                {
                    state.statuses.remove(&status.photo_id);
                }
            }
        }
    }
}

/// Where `id` is stored: pending ids first, then the index records. Every placement is checked
/// against the event record it names, so an entry left behind by a prune that raced the indexer
/// never answers for an event that is gone.
pub(super) fn lookup(
    db: &sled::Db,
    pending: &Pending,
    id: &EventId,
) -> Result<Option<Vec<(Room, u64)>>, StoreError> {
    let candidates = match pending.placement(id) {
        Some(rooms) => rooms,
        None => {
            let key = keys::id(id.as_str());
            let Some(bytes) = db.get(&key)? else {
                return Ok(None);
            };
            let placement: Placement = codec::decode(&key, &bytes)?;
            placement
                .into_iter()
                .map(|(room, seq)| {
                    room.parse::<Room>()
                        .map(|r| (r, seq))
                        .map_err(|_| StoreError::Corrupt {
                            key: keys::display(&key),
                            reason: format!("invalid room `{room}`"),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    let mut kept = Vec::with_capacity(candidates.len());
    for (room, seq) in candidates {
        let key = keys::event(&room.to_string(), seq);
        if let Some(value) = db.get(&key)?
            && decode_event(&key, &value)?.id == *id
        {
            kept.push((room, seq));
        }
    }
    Ok(if kept.is_empty() { None } else { Some(kept) })
}

/// Writes derived records of flushed groups until every sender is gone.
pub(super) fn run_indexer(
    db: sled::Db,
    pending: std::sync::Arc<Pending>,
    messages: Receiver<IndexerMessage>,
) {
    while let Ok(first) = messages.recv() {
        let mut group = Vec::new();
        let mut syncs = Vec::new();
        for message in std::iter::once(first).chain(messages.try_iter()) {
            match message {
                IndexerMessage::Derived(job) => group.push(job),
                IndexerMessage::Sync(done) => syncs.push(done),
            }
        }
        // On failure the records stay pending (reads still find them) and the commit records
        // stay, so the next open derives them again.
        match write_derived(&db, &group) {
            Ok(()) => pending.settle(&group),
            Err(e) => {
                tracing::error!(error = %e, "could not write derived records; they will be rebuilt at next open")
            }
        }
        for done in syncs {
            let _ = done.send(());
        }
    }
}

fn write_derived(db: &sled::Db, group: &[IndexJob]) -> Result<(), StoreError> {
    let mut batch = sled::Batch::default();
    let mut statuses: HashMap<&PhotoId, &PhotoStatus> = HashMap::new();
    for job in group {
        for (id, rooms) in &job.ids {
            let placement: Placement = rooms.iter().map(|(r, s)| (r.to_string(), *s)).collect();
            batch.insert(keys::id(id.as_str()), codec::encode(&placement)?);
        }
        for status in &job.statuses {
            statuses.insert(&status.photo_id, status);
        }
        batch.remove(keys::commit(job.commit_no));
    }
    for (photo, status) in statuses {
        batch.insert(
            keys::status(photo.as_str()),
            codec::encode(&StatusRecord::from(status))?,
        );
    }
    db.apply_batch(batch)?;
    Ok(())
}

/// Adds `(room, seq)` to the index record of `id`, keeping the photo room first. Idempotent.
pub(super) fn add_placement(
    db: &sled::Db,
    id: &str,
    room: &str,
    seq: u64,
) -> Result<(), StoreError> {
    let key = keys::id(id);
    let mut placement: Placement = match db.get(&key)? {
        Some(bytes) => codec::decode(&key, &bytes)?,
        None => Vec::new(),
    };
    if placement.iter().any(|(r, s)| r == room && *s == seq) {
        return Ok(());
    }
    placement.push((room.to_owned(), seq));
    placement.sort_by_key(|(r, _)| !r.starts_with("photo:"));
    db.insert(key, codec::encode(&placement)?)?;
    Ok(())
}

/// Derives again the records of every group commit whose derived records may be missing (those
/// whose commit record is still present), in commit order, then removes the commit records and
/// flushes. Returns how many commit records it processed.
pub(super) fn recover(db: &sled::Db) -> Result<usize, StoreError> {
    let mut recovered = 0;
    for entry in db.scan_prefix([keys::COMMIT]) {
        let (commit_key, value) = entry?;
        let ranges: CommitRecord = codec::decode(&commit_key, &value)?;
        for (room, first, last) in ranges {
            let photo = match room.parse::<Room>() {
                Ok(Room::Photo(photo)) => Some(photo),
                _ => None,
            };
            for event in db.range(keys::event(&room, first)..=keys::event(&room, last)) {
                let (key, value) = event?;
                let stored = decode_event(&key, &value)?;
                add_placement(db, stored.id.as_str(), &room, stored.seq)?;
                if let Some(photo) = &photo {
                    derive_status(db, photo, &key, &stored)?;
                }
            }
        }
        db.remove(&commit_key)?;
        recovered += 1;
    }
    if recovered > 0 {
        db.flush()?;
    }
    Ok(recovered)
}

/// Applies a photo room's event to the stored status unless the status already includes it.
fn derive_status(
    db: &sled::Db,
    photo: &PhotoId,
    key: &[u8],
    stored: &super::StoredEvent,
) -> Result<(), StoreError> {
    let before = read_status(db, photo)?;
    if before.as_ref().is_some_and(|s| s.last_seq >= stored.seq) {
        return Ok(());
    }
    let corrupt = |reason: String| StoreError::Corrupt {
        key: keys::display(key),
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
