//! The event-id index: where each stored event id lives, so that an event whose id is already
//! stored is recognised instead of stored again, across restarts, for as long as the event is
//! kept.
//!
//! Only the ids producers give are indexed: an id the hub generated (128 random bits) is unique
//! by construction, one derived from a JetStream message's position is recognised by the
//! consumed position stored with its event, and indexing either would cost about as much as
//! storing the event (docs/protocol.md, "Idempotency"). On disk the index is runs of hashed
//! entries (see `id_runs`), written behind the committer by the derived-state writer, in the
//! same batch that retires the group's commit record, and merged by the same writer. Until the
//! writer has written them, a flushed group's ids are in [`IdIndex`]'s memory (bounded by what
//! the writer has not caught up with); after a crash, the commit records still present name
//! exactly the events whose ids may be missing, and opening derives them again. Every answer is
//! checked against the event record it names, so an entry for a pruned event (dropped when its
//! run is next merged) or for another id with the same hash never answers. Nothing is scanned at
//! open; what memory grows with the history is the run filters the committer keeps between
//! groups (2 bytes per id, at most 64 MiB).

use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use foldhash::{HashMap, HashMapExt};

use super::StoreError;
use super::block;
use super::codec;
use super::id_runs::{Catalog, Entry, Filters, SMALLEST_TIER};
use super::keys;
use super::tree::{Corruption, event_at};
use super::unwritten::Unwritten;
use crate::domain::{EventId, Room};

/// What errors name as the record of an index entry that does not decode.
const ENTRY: &[u8] = b"x (id run entry)";

/// Entries the memory of unwritten ids keeps room for once it is empty.
pub(super) const KEPT_CAPACITY: usize = 4096;

/// The stored value of an `i` record: `(room, seq)` pairs, the photo room first.
pub(super) type PlacementRecord = Vec<(String, u64)>;

/// The event-id index: the entries of flushed groups that the writer has not written yet, and
/// the runs on disk.
pub(super) struct IdIndex {
    /// Entries not yet in a run, by hash (two ids may share one).
    recent: Mutex<HashMap<u64, Vec<Vec<u8>>>>,
    /// The runs on disk. Lookups hold it for reading while they read runs; a merge takes it for
    /// writing to stop listing the runs it is about to remove.
    catalog: RwLock<Catalog>,
    /// Blocks not in the tree yet (lookups check an id's events there first).
    unwritten: Arc<Unwritten>,
    /// Where event records that do not decode are reported.
    corruption: Arc<Corruption>,
}

impl IdIndex {
    /// The index of the store `db`, reporting corrupt event records to `corruption`. Removes the
    /// records of runs a merge left retired (a crash before it removed them).
    pub fn open(
        db: &sled::Db,
        unwritten: Arc<Unwritten>,
        corruption: Arc<Corruption>,
    ) -> Result<Self, StoreError> {
        let mut catalog = Catalog::load(db)?;
        if !catalog.retired().is_empty() {
            let mut batch = sled::Batch::default();
            catalog = catalog.stage_retire(db, &mut batch)?;
            db.apply_batch(batch)?;
        }
        Ok(Self {
            recent: Mutex::default(),
            catalog: RwLock::new(catalog),
            unwritten,
            corruption,
        })
    }

    fn catalog(&self) -> std::sync::RwLockReadGuard<'_, Catalog> {
        self.catalog
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn replace_catalog(&self, next: Catalog) {
        *self
            .catalog
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = next;
    }

    fn recent(&self) -> MutexGuard<'_, HashMap<u64, Vec<Vec<u8>>>> {
        self.recent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes the entries of a flushed group known, until the writer has written them.
    pub fn add_recent(&self, entries: &[Entry]) {
        let mut recent = self.recent();
        for entry in entries {
            recent
                .entry(entry.hash)
                .or_default()
                .push(entry.placement.clone());
        }
    }

    /// Forgets written entries from memory (and, once none is left, the room a burst made).
    pub fn settle(&self, written: &[Entry]) {
        let mut recent = self.recent();
        for entry in written {
            if let Some(placements) = recent.get_mut(&entry.hash) {
                if let Some(at) = placements.iter().position(|p| *p == entry.placement) {
                    placements.swap_remove(at);
                }
                if placements.is_empty() {
                    recent.remove(&entry.hash);
                }
            }
        }
        if recent.is_empty() {
            recent.shrink_to(KEPT_CAPACITY);
        }
    }

    /// Where `id` is stored, checked against the event records. `filters` keeps the run filters
    /// read, for the next lookups of the same group.
    pub fn lookup(
        &self,
        db: &sled::Db,
        id: &EventId,
        filters: &mut Filters,
    ) -> Result<Option<Vec<(Room, u64)>>, StoreError> {
        let hash = super::id_runs::hash(id.as_str());
        let mut found = self.recent().get(&hash).cloned().unwrap_or_default();
        {
            let catalog = self.catalog();
            found.extend(catalog.find(db, filters, hash)?);
        }
        let mut candidates = Vec::new();
        for bytes in found {
            let placements = match decode(ENTRY, &bytes) {
                Ok(placements) => placements,
                Err(error) => {
                    self.corruption.report(ENTRY, &error);
                    continue;
                }
            };
            for placement in placements {
                if !candidates.contains(&placement) {
                    candidates.push(placement);
                }
            }
        }
        let mut kept = Vec::with_capacity(candidates.len());
        for (room, seq) in candidates {
            // A corrupt record is not this event any more: the id counts as not stored there.
            // Memory first: a block the writer moves into the tree meanwhile is found either way.
            let name = room.name();
            let event = match self.unwritten.event_at(&name, seq, &self.corruption) {
                Some(event) => Some(event),
                None => event_at(db, &name, seq, &self.corruption)?,
            };
            if event.is_some_and(|e| e.id == *id) {
                kept.push((room, seq));
            }
        }
        Ok(if kept.is_empty() { None } else { Some(kept) })
    }

    /// Drops from `filters` those of runs no longer listed (merged away).
    pub fn retain_listed(&self, filters: &mut Filters) {
        filters.retain_listed(&self.catalog());
    }

    /// Stages runs holding `entries` into `batch`; the returned catalog is
    /// [`IdIndex::settle_runs`]'s once the batch is applied.
    pub fn stage<'a>(
        &self,
        batch: &mut sled::Batch,
        entries: impl IntoIterator<Item = &'a Entry>,
    ) -> Result<Catalog, StoreError> {
        self.catalog().stage_new(batch, entries)
    }

    /// Lists the runs of an applied batch (see [`IdIndex::stage`]).
    pub fn settle_runs(&self, next: Catalog) {
        self.replace_catalog(next);
    }

    /// Merges one partition's runs of a size tier into one, if some tier is full, dropping the
    /// entries whose events are all pruned. Returns whether it merged.
    pub fn merge_once(&self, db: &sled::Db) -> Result<bool, StoreError> {
        let catalog = self.catalog().clone();
        let Some((partition, runs)) = catalog.plan_merge() else {
            return Ok(false);
        };
        let (building, no) = catalog.begin_merge(db, partition)?;
        // From here on a failure leaves the run being built retired: the next merge removes it.
        self.replace_catalog(building.clone());
        // Pruned events' entries are looked for once a merge makes a run past the smallest tier:
        // every entry gets there, and the small merges, most of them, skip the reads.
        let mut live = LiveFilter {
            db,
            prune: runs.iter().map(|run| run.entries).sum::<u64>() >= SMALLEST_TIER,
            oldest: HashMap::new(),
        };
        let merged =
            building.write_merge(db, partition, &runs, no, |placement| live.keep(placement))?;
        // Lookups from now on read the merged run; the write lock waits for those still reading
        // the runs about to be removed.
        self.replace_catalog(merged.catalog.clone());
        let mut batch = sled::Batch::default();
        let retired = merged.catalog.stage_retire(db, &mut batch)?;
        db.apply_batch(batch)?;
        tracing::debug!(
            partition,
            merged = runs.len(),
            entries = merged.entries,
            slices = merged.slices,
            indexed = retired.entries(),
            runs = retired.runs(),
            "merged event-id index runs"
        );
        self.replace_catalog(retired);
        Ok(true)
    }
}

/// What a merge keeps of each entry's placement: the `(room, seq)` pairs still stored. A pair
/// below its room's oldest kept event is gone (retention removes events oldest first), and an
/// entry with none left is dropped.
struct LiveFilter<'a> {
    db: &'a sled::Db,
    /// Whether to look at all (otherwise every placement is kept).
    prune: bool,
    /// The oldest kept seq of each room looked at.
    oldest: HashMap<String, u64>,
}

impl LiveFilter<'_> {
    fn keep(&mut self, bytes: Vec<u8>) -> Result<Option<Vec<u8>>, StoreError> {
        if !self.prune {
            return Ok(Some(bytes));
        }
        // An entry that does not decode is kept as it is (lookups report it).
        let Ok(placement) = codec::decode::<PlacementRecord>(ENTRY, &bytes) else {
            return Ok(Some(bytes));
        };
        let mut kept = Vec::with_capacity(placement.len());
        for (room, seq) in &placement {
            let floor = match self.oldest.get(room) {
                Some(floor) => *floor,
                None => {
                    let floor = oldest_kept(self.db, room)?;
                    self.oldest.insert(room.clone(), floor);
                    floor
                }
            };
            if *seq >= floor {
                kept.push((room.clone(), *seq));
            }
        }
        Ok(if kept.len() == placement.len() {
            Some(bytes)
        } else if kept.is_empty() {
            None
        } else {
            Some(codec::encode(&kept)?)
        })
    }
}

/// The seq of `room`'s oldest kept event (`u64::MAX` when it keeps none; 0 when its first block
/// does not decode, so that nothing is dropped on its account). The tree alone answers: an id
/// reaches a run in the same batch as its packed block reaches the tree, or after it.
fn oldest_kept(db: &sled::Db, room: &str) -> Result<u64, StoreError> {
    let Some(first) = db.scan_prefix(keys::event_prefix(room)).next() else {
        return Ok(u64::MAX);
    };
    let (key, value) = first?;
    Ok(block::first_seq(&key, &value).unwrap_or(0))
}

/// The placements of an encoded placement record.
fn decode(key: &[u8], bytes: &[u8]) -> Result<Vec<(Room, u64)>, StoreError> {
    let record: PlacementRecord = codec::decode(key, bytes)?;
    record
        .into_iter()
        .map(|(room, seq)| {
            room.parse::<Room>()
                .map(|room| (room, seq))
                .map_err(|_| StoreError::Corrupt {
                    key: keys::display(key),
                    reason: format!("invalid room name `{room}`"),
                })
        })
        .collect()
}

/// The index entry of `id` stored at `placement` (room names and seqs): its hash and its encoded
/// placement (as a version 6 `i` record held it), the photo room first.
pub(super) fn entry(id: &EventId, mut placement: PlacementRecord) -> Result<Entry, StoreError> {
    placement.sort_by_key(|(room, _)| !room.starts_with("photo:"));
    Ok(Entry {
        hash: super::id_runs::hash(id.as_str()),
        placement: codec::encode(&placement)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::id_runs::tests::{finds_all, write_runs};

    /// A merge that fails part way (here its `keep` errs; a crash does the same) has written
    /// slices of a run no catalog lists: the catalog names that run retired, so opening removes
    /// its records, and every id is still found in the runs it was merging.
    #[test]
    fn opening_removes_what_a_merge_cut_short_wrote() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::open(dir.path()).expect("open");
        let mut catalog = Catalog::load(&db).expect("load");
        let all = write_runs(&db, &mut catalog, 5, 4, 20_000);
        let records = |db: &sled::Db| db.scan_prefix([keys::ID_RUN]).count();
        let before_merge = records(&db);
        let (partition, runs) = catalog.plan_merge().expect("four runs of a tier");
        let (building, no) = catalog.begin_merge(&db, partition).expect("begin");
        let mut seen = 0;
        let failed = building.write_merge(&db, partition, &runs, no, |placement| {
            seen += 1;
            if seen > 70_000 {
                return Err(StoreError::Corrupt {
                    key: "test".into(),
                    reason: "injected".into(),
                });
            }
            Ok(Some(placement))
        });
        assert!(failed.is_err());
        assert!(
            db.scan_prefix(keys::id_run(partition, no)).count() > 0,
            "a slice of the unfinished run was written"
        );
        assert!(
            Catalog::load(&db)
                .expect("catalog")
                .retired()
                .contains(&(partition, no))
        );

        let index = IdIndex::open(&db, Arc::default(), Arc::new(Corruption::default()))
            .expect("open index");
        let catalog = Catalog::load(&db).expect("reload");
        assert!(catalog.retired().is_empty(), "nothing left retired");
        assert_eq!(db.scan_prefix(keys::id_run(partition, no)).count(), 0);
        assert_eq!(records(&db), before_merge);
        assert_eq!(catalog.entries(), all.len() as u64);
        finds_all(&db, &catalog, &all);
        drop(index);
    }

    /// A merge that wrote its run but stopped before removing the merged runs (a crash between
    /// its two batches) leaves them retired in the catalog: opening removes their records, and
    /// the merged run answers for every id.
    #[test]
    fn opening_removes_the_runs_a_merge_left_retired() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::open(dir.path()).expect("open");
        let ids: Vec<EventId> = (0..400)
            .map(|n| EventId::parse(&format!("id-{n}")).expect("id"))
            .collect();
        let mut catalog = Catalog::load(&db).expect("load");
        for round in ids.chunks(100) {
            let entries = round
                .iter()
                .map(|id| entry(id, vec![("photo:p".into(), 1)]))
                .collect::<Result<Vec<_>, _>>()
                .expect("entries");
            let mut batch = sled::Batch::default();
            catalog = catalog.stage_new(&mut batch, &entries).expect("stage");
            db.apply_batch(batch).expect("apply");
        }
        let (partition, runs) = catalog.plan_merge().expect("four runs of a tier");
        let (building, no) = catalog.begin_merge(&db, partition).expect("begin");
        let after = building
            .write_merge(&db, partition, &runs, no, |placement| Ok(Some(placement)))
            .expect("merge")
            .catalog;
        assert_eq!(after.retired().len(), runs.len());
        let records = |db: &sled::Db| db.scan_prefix([keys::ID_RUN]).count();
        let before_open = records(&db);

        let index = IdIndex::open(&db, Arc::default(), Arc::new(Corruption::default()))
            .expect("open index");
        let catalog = Catalog::load(&db).expect("reload");
        assert!(catalog.retired().is_empty(), "nothing left retired");
        assert_eq!(catalog.entries(), ids.len() as u64);
        for run in &runs {
            assert_eq!(db.scan_prefix(keys::id_run(partition, run.no)).count(), 0);
        }
        assert!(
            records(&db) < before_open,
            "the retired runs' records are gone"
        );
        let mut filters = Filters::default();
        for id in &ids {
            let hash = super::super::id_runs::hash(id.as_str());
            assert!(
                !catalog
                    .find(&db, &mut filters, hash)
                    .expect("find")
                    .is_empty(),
                "{id} still indexed"
            );
        }
        drop(index);
    }
}
