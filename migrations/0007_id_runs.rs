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

    /// Every `i` record becomes an entry with the same placement bytes, found by its id's hash,
    /// across several slices; no `i` record is left, and a second run changes nothing.
    #[test]
    fn moves_every_id_record_into_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::open(dir.path()).expect("open");
        let ids: Vec<String> = (0..SLICE + 1_000).map(|i| format!("ev-{i}")).collect();
        for (i, id) in ids.iter().enumerate() {
            let placement: Vec<(String, u64)> = vec![
                (format!("photo:p{}", i % 7), i as u64 + 1),
                ("user:u".into(), i as u64 + 1),
            ];
            db.insert(keys::id(id), codec::encode(&placement).expect("encode"))
                .expect("insert");
        }
        apply(&db).expect("migrate");
        assert_eq!(db.scan_prefix([keys::ID]).count(), 0, "no id record left");
        let catalog = Catalog::load(&db).expect("catalog");
        assert_eq!(catalog.entries(), ids.len() as u64);
        let mut filters = crate::store::id_runs::Filters::default();
        for (i, id) in ids.iter().enumerate().step_by(97) {
            let expected: Vec<(String, u64)> = vec![
                (format!("photo:p{}", i % 7), i as u64 + 1),
                ("user:u".into(), i as u64 + 1),
            ];
            let found = catalog.find(&db, &mut filters, hash(id)).expect("find");
            assert!(
                found.contains(&codec::encode(&expected).expect("encode")),
                "{id} found with its placement"
            );
        }
        apply(&db).expect("second run");
        assert_eq!(Catalog::load(&db).expect("catalog"), catalog);
    }
}
