//! Schema versions: an older-format store opens through the migrations; a newer one is refused.

use std::path::Path;

use serde_json::json;
use socket_bridge::domain::{EventType, PhotoId, Room};
use socket_bridge::store::{EventLog, SCHEMA_VERSION, StoreError};

use crate::helpers::{photo_event, raw_open, runtime};

const FIXTURE_V1: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/store-v1");
/// The epoch recorded in the v1 fixture when it was made.
const FIXTURE_V1_EPOCH_FILE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/store-v1.epoch");

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read fixture dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// A version 1 store (events, heads, statuses, no event-id index) written by the layout of that
/// version opens through migrations 2 and 3: its events and status read back, its epoch is kept,
/// its ids are recognised as already stored, and no on-disk id index is left behind.
#[test]
fn version_1_fixture_opens_through_the_migrations() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(Path::new(FIXTURE_V1), dir.path());
    let raw = raw_open(dir.path());
    assert_eq!(
        raw.get(b"mschema_version").expect("get").as_deref(),
        Some(&[1u8, 1][..]),
        "fixture is v1"
    );
    assert_eq!(raw.scan_prefix(b"i").count(), 0, "fixture has no id index");
    drop(raw);

    let log = EventLog::open(dir.path()).expect("open through migrations");
    let epoch = std::fs::read_to_string(FIXTURE_V1_EPOCH_FILE).expect("epoch file");
    assert_eq!(log.epoch(), epoch.trim());
    let p1 = PhotoId::parse("p1").expect("id");
    let events = log.read(&Room::photo(&p1), 0, 100).expect("read");
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(events[0].id.as_str(), "fixture-1");
    let rt = runtime();
    let again = photo_event(
        "fixture-2",
        EventType::ProcessingStarted,
        "p1",
        "u1",
        json!({}),
    );
    let receipts = rt.block_on(log.append(vec![again])).expect("append");
    assert!(receipts[0].duplicate, "the ids of v1 events are known");
    assert_eq!(receipts[0].rooms, vec![(Room::photo(&p1), 2)]);
    let next = photo_event(
        "new-1",
        EventType::ProcessingProgress,
        "p1",
        "u1",
        json!({"progress": 80}),
    );
    let receipts = rt.block_on(log.append(vec![next])).expect("append");
    assert_eq!(
        receipts[0].rooms,
        vec![(Room::photo(&p1), 4)],
        "seqs continue after the v1 head"
    );
    let status = log.status(&p1).expect("status").expect("v1 status kept");
    assert_eq!((status.last_seq, status.progress), (4, 80));
    log.close().expect("close");
    drop(log);
    let raw = raw_open(dir.path());
    let version = raw.get(b"mschema_version").expect("get").expect("version");
    assert_eq!(version.as_ref(), &[1u8, SCHEMA_VERSION as u8][..]);
    assert_eq!(
        raw.scan_prefix(b"i").count(),
        0,
        "migration 3 removed the on-disk id index"
    );
}

/// A new store with one record then overwritten behind the store's back.
fn store_with_raw_record(key: &[u8], value: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    EventLog::open(dir.path())
        .expect("create")
        .close()
        .expect("close");
    let raw = raw_open(dir.path());
    raw.insert(key, value).expect("insert");
    raw.flush().expect("flush");
    dir
}

/// A store whose schema version is newer than this build's is refused with a clear error.
#[test]
fn newer_schema_is_refused() {
    let dir = store_with_raw_record(b"mschema_version", &[1u8, SCHEMA_VERSION as u8 + 1]);
    let err = EventLog::open(dir.path()).err().expect("must refuse");
    assert!(
        matches!(err, StoreError::SchemaTooNew { found, supported } if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION)
    );
    assert!(
        err.to_string().contains("newer than this build supports"),
        "{err}"
    );
}

/// A corrupt record is reported as an error naming its key, not a panic.
#[test]
fn corrupt_record_is_an_error_naming_the_key() {
    let dir = store_with_raw_record(b"hphoto:p1", &[9u8, 9, 9]);
    let log = EventLog::open(dir.path()).expect("open");
    let err = log
        .head(&"photo:p1".parse().expect("room"))
        .expect_err("corrupt head");
    assert!(err.to_string().contains("hphoto:p1"), "{err}");
}

/// Writes `tests/fixtures/store-v1`: a store in the version 1 layout. Run by hand only
/// (`cargo test --test store -- --ignored write_v1_fixture`); the fixture is committed.
#[test]
#[ignore = "regenerates a committed fixture"]
fn write_v1_fixture() {
    let target = Path::new(FIXTURE_V1);
    let _ = std::fs::remove_dir_all(target);
    let rt = runtime();
    let log = EventLog::open(target).expect("create");
    let events = vec![
        photo_event(
            "fixture-1",
            EventType::PhotoUploaded,
            "p1",
            "u1",
            json!({"filename": "cat.jpg"}),
        ),
        photo_event(
            "fixture-2",
            EventType::ProcessingStarted,
            "p1",
            "u1",
            json!({}),
        ),
        photo_event(
            "fixture-3",
            EventType::ProcessingProgress,
            "p1",
            "u1",
            json!({"progress": 40}),
        ),
    ];
    rt.block_on(log.append(events)).expect("append");
    std::fs::write(FIXTURE_V1_EPOCH_FILE, log.epoch()).expect("epoch file");
    log.close().expect("close");
    drop(log);
    let raw = raw_open(target);
    for key in raw.scan_prefix(b"i").keys() {
        raw.remove(key.expect("key")).expect("remove index record");
    }
    raw.insert(b"mschema_version", &[1u8, 1][..])
        .expect("version 1");
    raw.flush().expect("flush");
}
