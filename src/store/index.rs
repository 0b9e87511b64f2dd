//! The event-id index: where each stored event id lives, for idempotent appends.
//!
//! The index is derivable from the event records, so it stays out of the durable group commit
//! (each record there costs about as much as an event). After a group is flushed its ids go to
//! [`PendingIds`] (consulted by lookups) and to the indexer thread, which writes the index records
//! and deletes the group's commit record in one atomic batch. After a crash, the commit records
//! still present name exactly the events whose index records may be missing: [`recover`]
//! re-indexes them at open.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::mpsc::Receiver;

use super::StoreError;
use super::codec;
use super::keys;
use super::log::decode_event;
use super::records::{CommitRecord, Placement};
use crate::domain::{EventId, Room};

/// Ids flushed by the committer whose index records are not written yet.
pub(super) type PendingIds = Mutex<HashMap<EventId, Vec<(Room, u64)>>>;

/// A flushed group's ids, for the indexer.
pub(super) struct IndexJob {
    pub commit_no: u64,
    pub entries: Vec<(EventId, Vec<(Room, u64)>)>,
}

/// Where `id` is stored: pending ids first, then the index records. Every placement is checked
/// against the event record it names, so an entry left behind by a prune that raced the indexer
/// never answers for an event that is gone.
pub(super) fn lookup(
    db: &sled::Db,
    pending: &PendingIds,
    id: &EventId,
) -> Result<Option<Vec<(Room, u64)>>, StoreError> {
    let candidates = match pending.lock().ok().and_then(|p| p.get(id).cloned()) {
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

/// Writes index records for flushed groups until the committer is gone.
pub(super) fn run_indexer(
    db: sled::Db,
    pending: std::sync::Arc<PendingIds>,
    jobs: Receiver<IndexJob>,
) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        group.extend(jobs.try_iter());
        let mut batch = sled::Batch::default();
        let mut encoded = true;
        for job in &group {
            for (id, rooms) in &job.entries {
                let placement: Placement = rooms.iter().map(|(r, s)| (r.to_string(), *s)).collect();
                match codec::encode(&placement) {
                    Ok(value) => batch.insert(keys::id(id.as_str()), value),
                    Err(_) => encoded = false,
                }
            }
            batch.remove(keys::commit(job.commit_no));
        }
        // On failure the ids stay pending (lookups still find them) and the commit records stay,
        // so the next open re-indexes them.
        if !encoded {
            tracing::error!("could not encode id index records; they will be rebuilt at next open");
            continue;
        }
        if let Err(e) = db.apply_batch(batch) {
            tracing::error!(error = %e, "could not write id index records; they will be rebuilt at next open");
            continue;
        }
        if let Ok(mut pending) = pending.lock() {
            for job in &group {
                for (id, _) in &job.entries {
                    pending.remove(id);
                }
            }
        }
    }
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

/// Re-indexes the events of every group commit whose index records may be missing (those whose
/// commit record is still present), then removes the commit records and flushes. Returns how many
/// commit records it processed.
pub(super) fn recover(db: &sled::Db) -> Result<usize, StoreError> {
    let mut recovered = 0;
    for entry in db.scan_prefix([keys::COMMIT]) {
        let (commit_key, value) = entry?;
        let ranges: CommitRecord = codec::decode(&commit_key, &value)?;
        for (room, first, last) in ranges {
            let start = keys::event(&room, first);
            let end = keys::event(&room, last);
            for event in db.range(start..=end) {
                let (key, value) = event?;
                let event = decode_event(&key, &value)?;
                add_placement(db, event.id.as_str(), &room, event.seq)?;
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
