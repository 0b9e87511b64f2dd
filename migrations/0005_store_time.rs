//! Version 5: every event record carries its store time (`stored_ms`, the hub's clock when it was
//! appended), which retention's age reads instead of the producer's `timestamp` (docs/protocol.md,
//! "Faults"). Records written before have none: each gets its `timestamp`, capped at the time of
//! the migration (a producer time in the future cannot keep an event past its age). Safe to re-run
//! after a crash: a record that already has the version 5 layout is left alone. A record of
//! neither layout (corrupt) is left for the store's reads to report and skip.
//!
//! The records are read and written with the types below, frozen as versions 1 to 4 and version
//! 5 store them.

use serde::{Deserialize, Serialize};

use crate::domain::Timestamp;
use crate::store::StoreError;
use crate::store::codec;
use crate::store::keys;

/// An event record as versions 1 to 4 stored it.
#[derive(Deserialize)]
struct EventRecordV4 {
    id: String,
    type_code: u8,
    data: String,
    timestamp_ms: i64,
}

/// An event record as version 5 stores it.
#[derive(Serialize, Deserialize)]
struct EventRecordV5 {
    id: String,
    type_code: u8,
    data: String,
    timestamp_ms: i64,
    stored_ms: i64,
}

/// Rewrites every version 4 event record with a store time, in batches of 10,000.
pub(super) fn apply(db: &sled::Db) -> Result<(), StoreError> {
    rewrite(db, Timestamp::now().millis())
}

fn rewrite(db: &sled::Db, now_ms: i64) -> Result<(), StoreError> {
    let mut batch = sled::Batch::default();
    let mut pending = 0;
    let mut skipped = 0u64;
    for entry in db.scan_prefix([keys::EVENT]) {
        let (key, value) = entry?;
        if codec::decode::<EventRecordV5>(&key, &value).is_ok() {
            continue;
        }
        let Ok(old) = codec::decode::<EventRecordV4>(&key, &value) else {
            skipped += 1;
            continue;
        };
        let record = EventRecordV5 {
            stored_ms: old.timestamp_ms.min(now_ms),
            id: old.id,
            type_code: old.type_code,
            data: old.data,
            timestamp_ms: old.timestamp_ms,
        };
        batch.insert(key, codec::encode(&record)?);
        pending += 1;
        if pending == 10_000 {
            db.apply_batch(std::mem::take(&mut batch))?;
            pending = 0;
        }
    }
    db.apply_batch(batch)?;
    if skipped > 0 {
        tracing::warn!(
            skipped,
            "event records of neither layout were left as they are (reads report and skip them)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read fixture dir") {
            let entry = entry.expect("fixture dir entry");
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy fixture file");
        }
    }

    /// On the frozen version 2 store (`tests/fixtures/store-v2`, whose event records have the
    /// layout of versions 1 to 4), every event record gets its timestamp as its store time,
    /// capped at the migration's time, and keeps everything else; running again changes nothing.
    #[test]
    fn gives_every_event_its_timestamp_capped_at_now() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let dir = tempfile::tempdir().expect("tempdir");
        copy_dir(&fixtures.join("store-v2"), dir.path());
        let db = sled::open(dir.path()).expect("open fixture");
        let before: Vec<(Vec<u8>, EventRecordV4)> = db
            .scan_prefix([keys::EVENT])
            .map(|e| {
                let (k, v) = e.expect("entry");
                let record = codec::decode(&k, &v).expect("a version 4 record");
                (k.to_vec(), record)
            })
            .collect();
        assert!(before.len() > 300, "the fixture holds its events");
        // A "now" inside the fixture's time range, so that both sides of the cap are seen.
        let mut times: Vec<i64> = before.iter().map(|(_, r)| r.timestamp_ms).collect();
        times.sort_unstable();
        let now = times[times.len() / 2];
        rewrite(&db, now).expect("migrate");
        let mut capped = 0;
        for (key, old) in &before {
            let value = db.get(key).expect("get").expect("still there");
            let new: EventRecordV5 = codec::decode(key, &value).expect("a version 5 record");
            assert_eq!(new.id, old.id);
            assert_eq!(new.type_code, old.type_code);
            assert_eq!(new.data, old.data);
            assert_eq!(new.timestamp_ms, old.timestamp_ms);
            assert_eq!(new.stored_ms, old.timestamp_ms.min(now));
            capped += usize::from(old.timestamp_ms > now);
        }
        assert!(capped > 0, "some timestamps were past the migration's time");
        let dump: Vec<_> = db.iter().map(|e| e.expect("entry")).collect();
        rewrite(&db, now + 1_000_000).expect("migrate again");
        let again: Vec<_> = db.iter().map(|e| e.expect("entry")).collect();
        assert_eq!(dump, again, "a second run changes nothing");
    }
}
