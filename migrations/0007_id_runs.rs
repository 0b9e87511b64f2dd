//! Version 7: the event-id index moves from one `i eventId` record per id into hash-sorted runs
//! (`x` records and the `m id_runs` catalog, see the store's `id_runs` module): sled's cost is
//! per record, and a record per id cost about as much as storing the event.
//!
//! An `i` record's value is already an entry's placement (the rooms and seqs, the photo room
//! first, in the record encoding), so each is moved as it is. The records are moved in slices of
//! [`SLICE`]: each slice's runs, the catalog listing them and the removal of its `i` records are
//! one batch, so a crash part way leaves every id either moved or still an `i` record, and
//! running the step again moves the rest. The writer merges the runs later, as it merges its own.

use crate::store::StoreError;
use crate::store::id_runs::{Catalog, Entry, hash};
use crate::store::keys;

/// `i` records moved per batch (a run per partition each).
const SLICE: usize = 65_536;

/// Moves every `i` record into id runs; safe to re-run after a crash.
pub(super) fn apply(db: &sled::Db) -> Result<(), StoreError> {
    let mut catalog = Catalog::load(db)?;
    loop {
        let mut batch = sled::Batch::default();
        let mut entries = Vec::new();
        for record in db.scan_prefix([keys::ID]).take(SLICE) {
            let (key, value) = record?;
            let Some(id) = key.get(1..).and_then(|id| std::str::from_utf8(id).ok()) else {
                return Err(StoreError::Corrupt {
                    key: keys::display(&key),
                    reason: "an id record whose id is not UTF-8".into(),
                });
            };
            entries.push(Entry {
                hash: hash(id),
                placement: value.to_vec(),
            });
            batch.remove(key);
        }
        if entries.is_empty() {
            return Ok(());
        }
        let next = catalog.stage_new(&mut batch, &entries)?;
        db.apply_batch(batch)?;
        catalog = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::codec;

    /// The placement the tests give id number `i`.
    fn placement(i: usize) -> Vec<u8> {
        let record: Vec<(String, u64)> = vec![
            (format!("photo:p{}", i % 7), i as u64 + 1),
            ("user:u".into(), i as u64 + 1),
        ];
        codec::encode(&record).expect("encode")
    }

    /// Writes `i` records for ids `range`.
    fn write_id_records(db: &sled::Db, range: std::ops::Range<usize>) {
        for i in range {
            db.insert(keys::id(&format!("ev-{i}")), placement(i))
                .expect("insert");
        }
    }

    /// No `i` record is left, the catalog counts `count` entries, and ids `0..count` (every 97th)
    /// are found with their placements.
    fn assert_moved(db: &sled::Db, count: usize) -> Catalog {
        assert_eq!(db.scan_prefix([keys::ID]).count(), 0, "no id record left");
        let catalog = Catalog::load(db).expect("catalog");
        assert_eq!(catalog.entries(), count as u64);
        let mut filters = crate::store::id_runs::Filters::default();
        for i in (0..count).step_by(97) {
            let found = catalog
                .find(db, &mut filters, hash(&format!("ev-{i}")))
                .expect("find");
            assert!(
                found.contains(&placement(i)),
                "ev-{i} found with its placement"
            );
        }
        catalog
    }

    /// Every `i` record becomes an entry with the same placement bytes, found by its id's hash,
    /// across several slices; no `i` record is left, and a second run changes nothing.
    #[test]
    fn moves_every_id_record_into_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::open(dir.path()).expect("open");
        write_id_records(&db, 0..SLICE + 1_000);
        apply(&db).expect("migrate");
        let catalog = assert_moved(&db, SLICE + 1_000);
        apply(&db).expect("second run");
        assert_eq!(Catalog::load(&db).expect("catalog"), catalog);
    }

    /// A crash after some slices' batches leaves their runs in the catalog and the other `i`
    /// records in place (each batch is atomic); running the step again moves the rest beside the
    /// runs already written.
    #[test]
    fn a_run_after_a_crash_part_way_moves_the_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::open(dir.path()).expect("open");
        write_id_records(&db, 0..1_000);
        apply(&db).expect("the slices before the crash");
        write_id_records(&db, 1_000..2_500);
        apply(&db).expect("the run after it");
        assert_moved(&db, 2_500);
    }
}
