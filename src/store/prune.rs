//! Retention: removing old events in small batches while appends and replays go on.
//!
//! A pass walks the event records room by room and removes a prefix of each room: those stored
//! longer ago than the maximum age, by the hub's store time and not the producer's `timestamp`
//! (stopping at the first younger one, so what is kept stays contiguous), and all but the newest
//! `max_events`. The head records stay, so a room never reuses a seq; the
//! oldest kept seq moves forward by itself (it is the first seq of the room's first block; a block
//! whose older events expire is rewritten with its younger ones). The id index keeps removed
//! events' entries until their runs are next merged (a lookup checks the event, so they never
//! answer). A photo's status stays (it answers `photo:status:request`)
//! until the photo is deleted and its last status change is older than the maximum age; the
//! photos forgotten so are listed in the report, so that whoever keeps anything else per photo
//! (its files) can let it go too. The store knows nothing of those.

use std::time::{Duration, Instant};

use super::block;
use super::codec;
use super::keys;
use super::records::StatusRecord;
use super::tree::{Corruption, stored_head};
use super::unwritten::Unwritten;
use super::{EventLog, StoreError};
use crate::domain::{PhotoId, ProcessingState, Room, Timestamp};

/// Removals per `apply_batch`: small enough that a batch holds sled's writers back for well
/// under a millisecond.
const BATCH: usize = 256;
/// Pause between batches. Every removal dirties pages that the committer's next flush has to
/// write, so a prune running flat out slows durable appends; pausing bounds that cost.
const PAUSE: std::time::Duration = std::time::Duration::from_millis(2);

/// What to keep.
#[derive(Debug, Clone, Copy)]
pub struct RetentionPolicy {
    /// Events stored longer ago than this (by the hub's clock) are removed.
    pub max_age: Duration,
    /// At most this many events are kept per room.
    pub max_events_per_room: u64,
}

/// What a pass removed (or, on a dry run, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Rooms visited.
    pub rooms: u64,
    /// Rooms that lost events.
    pub rooms_pruned: u64,
    /// Events removed (one per room an event was stored in).
    pub events_removed: u64,
    /// Status snapshots removed (deleted photos past the maximum age).
    pub statuses_removed: u64,
    /// The photos whose status was removed: the store no longer knows them.
    pub photos_forgotten: Vec<PhotoId>,
    /// How long the pass took, milliseconds.
    pub duration_ms: u64,
}

impl EventLog {
    /// Runs one retention pass as of `now`. With `dry_run`, only counts. Blocking: call it from a
    /// blocking thread.
    pub fn prune(
        &self,
        policy: &RetentionPolicy,
        now: Timestamp,
        dry_run: bool,
    ) -> Result<PruneReport, StoreError> {
        let started = Instant::now();
        let cutoff = now
            .millis()
            .saturating_sub(i64::try_from(policy.max_age.as_millis()).unwrap_or(i64::MAX));
        // Statuses of recent appends are written behind the committer; let them land so that
        // this pass sees (and can remove) them.
        if !self.sync_statuses(Duration::from_secs(5)) {
            tracing::warn!(
                "photo statuses are still being written; this pass may leave some for the next"
            );
        }
        let db = self.db();
        let mut report = PruneReport::default();
        let mut from = vec![keys::EVENT];
        while let Some(room) = next_room_with_events(db, &from)? {
            report.rooms += 1;
            let removed = prune_room(
                db,
                self.unwritten(),
                self.corruption(),
                &room,
                policy.max_events_per_room,
                cutoff,
                dry_run,
            )?;
            if removed > 0 {
                report.rooms_pruned += 1;
                report.events_removed += removed;
            }
            from = keys::after_room(&room);
        }
        report.photos_forgotten = prune_statuses(db, self.corruption(), cutoff, dry_run)?;
        report.statuses_removed = report.photos_forgotten.len() as u64;
        report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(report)
    }
}

/// The first room, from `from` on, that holds an event (rooms are visited by jumping from one
/// room's key range to the next, not by reading every event).
fn next_room_with_events(db: &sled::Db, from: &[u8]) -> Result<Option<String>, StoreError> {
    let Some(entry) = db.range(from.to_vec()..).keys().next() else {
        return Ok(None);
    };
    let key = entry?;
    if key.first() != Some(&keys::EVENT) {
        return Ok(None);
    }
    let (room, _) = keys::parse_event(&key).ok_or_else(|| StoreError::Corrupt {
        key: keys::display(&key),
        reason: "malformed event key".into(),
    })?;
    Ok(Some(room.to_owned()))
}

/// Removes the prefix of `room` that retention lets go; returns how many events that is.
fn prune_room(
    db: &sled::Db,
    unwritten: &Unwritten,
    corruption: &Corruption,
    room: &str,
    max_events: u64,
    cutoff: i64,
    dry_run: bool,
) -> Result<u64, StoreError> {
    room.parse::<Room>().map_err(|_| StoreError::Corrupt {
        key: keys::display(&keys::event_prefix(room)),
        reason: "invalid room name".into(),
    })?;
    let head = stored_head(db, room)?;
    let by_count = head.saturating_sub(max_events);
    let mut removed = 0;
    let mut batch = sled::Batch::default();
    // The head is the last event's seq unless a head record says more: keep it recorded before
    // any event goes, so that a room emptied by retention never reuses a seq.
    batch.insert(keys::head(room), codec::encode(&head)?);
    let mut pending = 0;
    for entry in db.scan_prefix(keys::event_prefix(room)) {
        let (key, value) = entry?;
        // A block holding events whose commit record the writer has not removed yet stays (read
        // after the block: the writer forgets them from memory only once the record is gone);
        // after a crash, open must find it whole (see `derived`).
        let last = keys::parse_event(&key).map_or(0, |(_, last)| last);
        if unwritten.first(room).is_some_and(|floor| last >= floor) {
            break;
        }
        // A block that does not decode has no readable age: it is taken as expired and removed
        // (its ids cannot be read, so their id records stay until the ids are stored again).
        let decoded = match block::decode(&key, &value) {
            Ok(decoded) => Some(decoded),
            Err(error) => {
                corruption.report(&key, &error);
                None
            }
        };
        let events = decoded.as_ref().map_or(&[][..], |b| b.events.as_slice());
        let expired = events
            .iter()
            .take_while(|event| event.seq <= by_count || event.stored_at.millis() < cutoff)
            .count();
        if decoded.is_some() && expired == 0 {
            break;
        }
        removed += if decoded.is_some() { expired as u64 } else { 1 };
        if dry_run {
            if expired < events.len() {
                break;
            }
            continue;
        }
        // A block whose older events expired keeps its younger ones, under the same key.
        let kept = match &decoded {
            Some(decoded) if expired < events.len() => decoded.suffix(&value, expired)?,
            _ => None,
        };
        let partial = kept.is_some();
        match kept {
            Some(kept) => batch.insert(key, kept),
            None => batch.remove(key),
        }
        pending += 1;
        if pending == BATCH {
            db.apply_batch(std::mem::take(&mut batch))?;
            pending = 0;
            std::thread::sleep(PAUSE);
        }
        if partial {
            break;
        }
    }
    if pending > 0 {
        db.apply_batch(batch)?;
    }
    Ok(removed)
}

/// Removes the status of deleted photos whose last status change is older than `cutoff`; returns
/// those photos.
fn prune_statuses(
    db: &sled::Db,
    corruption: &Corruption,
    cutoff: i64,
    dry_run: bool,
) -> Result<Vec<PhotoId>, StoreError> {
    let mut removed = Vec::new();
    let mut batch = sled::Batch::default();
    for entry in db.scan_prefix([keys::STATUS]) {
        let (key, value) = entry?;
        let decoded = codec::decode::<StatusRecord>(&key, &value).and_then(|record| {
            record.into_status().map_err(|reason| StoreError::Corrupt {
                key: keys::display(&key),
                reason: reason.into(),
            })
        });
        let status = match decoded {
            Ok(status) => status,
            Err(error) => {
                corruption.report(&key, &error);
                continue;
            }
        };
        if status.status == ProcessingState::Deleted && status.updated_at.millis() < cutoff {
            removed.push(status.photo_id);
            batch.remove(key);
        }
    }
    if !dry_run && !removed.is_empty() {
        db.apply_batch(batch)?;
    }
    Ok(removed)
}
