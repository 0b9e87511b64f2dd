//! Schema versions: stores written by the code of older versions open through the migrations and
//! read back exactly what that code reported about them; a store from a newer schema is refused.
//!
//! The stores under `tests/fixtures/` were written once by the old code itself and are frozen (see
//! `tests/fixtures/README.md`); next to each, `store-vN.manifest.json` lists what the writing code
//! reported: every room's events, heads, each photo's status and each event id's placement.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value, json};
use socket_bridge::domain::{
    Event, EventId, EventType, PhotoId, PhotoStatus, ProcessingState, Room, Timestamp,
};
use socket_bridge::store::{EventLog, SCHEMA_VERSION, StoreError};

use crate::helpers::{copy_dir, id_index_entries, raw_open, runtime};

/// What the code that wrote a fixture reported about it (`tests/fixtures/store-vN.manifest.json`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    /// The schema version the store was written with.
    schema_version: u32,
    /// The store's epoch.
    epoch: String,
    /// Raw key counts by key tag (`e`, `h`, `i`, `m`, `s`, ...) when the writer had closed it.
    raw_key_counts: BTreeMap<String, usize>,
    /// Every room the writer was asked about, including rooms that never held an event.
    rooms: Vec<RoomEntry>,
    /// Every photo's status (`None` when the writer had none, e.g. after retention).
    statuses: Vec<StatusEntry>,
    /// Every appended event id and where the writer said it was stored (`None`: nowhere now).
    placements: Vec<PlacementEntry>,
    /// How far each source was consumed, as the writer reported it (none in older manifests).
    #[serde(default)]
    consumed: BTreeMap<String, u64>,
}

/// One room as its writer reported it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoomEntry {
    room: String,
    head: u64,
    oldest: u64,
    events: Vec<EventEntry>,
}

/// One stored event as its writer read it back.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventEntry {
    seq: u64,
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    /// The `data` object as the stored JSON text.
    data: String,
    timestamp_ms: i64,
}

impl From<socket_bridge::store::StoredEvent> for EventEntry {
    fn from(e: socket_bridge::store::StoredEvent) -> Self {
        Self {
            seq: e.seq,
            id: e.id.as_str().to_owned(),
            event_type: e.event_type.as_str().to_owned(),
            data: e.data.to_string(),
            timestamp_ms: e.timestamp.millis(),
        }
    }
}

/// One photo's status as its writer reported it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusEntry {
    photo_id: String,
    status: Option<StatusFields>,
}

/// The fields of a photo status, in the manifest's own terms.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusFields {
    user_id: String,
    state: String,
    progress: u8,
    last_event_type: String,
    last_seq: u64,
    updated_at_ms: i64,
    error: Option<String>,
}

impl From<PhotoStatus> for StatusFields {
    fn from(s: PhotoStatus) -> Self {
        let state = match s.status {
            ProcessingState::Pending => "pending",
            ProcessingState::Processing => "processing",
            ProcessingState::Completed => "completed",
            ProcessingState::Failed => "failed",
            ProcessingState::Deleted => "deleted",
        };
        Self {
            user_id: s.user_id.as_str().to_owned(),
            state: state.to_owned(),
            progress: s.progress,
            last_event_type: s.last_event_type.as_str().to_owned(),
            last_seq: s.last_seq,
            updated_at_ms: s.updated_at.millis(),
            error: s.error,
        }
    }
}

/// Where one event id was stored, as its writer reported it.
#[derive(Debug, Deserialize)]
struct PlacementEntry {
    id: String,
    rooms: Option<Vec<(String, u64)>>,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A scratch copy of the frozen store of schema `version`, and its manifest.
fn fixture(version: u32) -> (tempfile::TempDir, Manifest) {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&fixtures().join(format!("store-v{version}")), dir.path());
    let text = std::fs::read_to_string(fixtures().join(format!("store-v{version}.manifest.json")))
        .expect("manifest");
    let manifest: Manifest = serde_json::from_str(&text).expect("manifest shape");
    assert_eq!(
        manifest.schema_version, version,
        "manifest of store-v{version}"
    );
    (dir, manifest)
}

/// The raw schema version record (a format byte, then the version).
fn raw_schema_version(db: &sled::Db) -> Vec<u8> {
    db.get(b"mschema_version")
        .expect("get")
        .expect("schema version record")
        .to_vec()
}

/// How many keys the tree holds per key tag (`e`, `h`, ...).
fn key_counts(db: &sled::Db) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for key in db.iter().keys() {
        let key = key.expect("key");
        *counts.entry(char::from(key[0]).to_string()).or_default() += 1;
    }
    counts
}

/// Every key and value of the tree, in order.
fn dump(dir: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    raw_open(dir)
        .iter()
        .map(|entry| {
            let (k, v) = entry.expect("entry");
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

/// The records of a dump that migrations leave alone: all but the id index, the schema version
/// and the event records (migration 5 adds their store time; what they hold is checked against
/// the manifest), and the records whose tag is in `rederived` (what open's recovery writes or
/// removes for a store an unclean stop left with commit records).
fn without_index<'a>(
    records: &'a [(Vec<u8>, Vec<u8>)],
    rederived: &[u8],
) -> Vec<&'a (Vec<u8>, Vec<u8>)> {
    records
        .iter()
        .filter(|(key, _)| {
            !matches!(key.first(), Some(b'i' | b'x' | b'e'))
                && !key.first().is_some_and(|tag| rederived.contains(tag))
                && key.as_slice() != b"mschema_version"
                && key.as_slice() != b"mid_runs"
        })
        .collect()
}

/// Opens the frozen store of `version` with today's code and checks it against its manifest:
/// every event of every room, heads, oldest kept seqs, statuses, placements, consumed positions
/// and the epoch; the schema is current afterwards, no commit record is left, the id index holds
/// exactly the ids still stored, every other record is kept byte for byte but those whose tag is
/// in `rederived` (for a crash image: the commit records open's recovery removes and the statuses
/// it writes), and a second open changes nothing.
fn opens_as_its_writer_reported(version: u32, rederived: &[u8]) {
    let (dir, manifest) = fixture(version);
    let mut expected_counts = manifest.raw_key_counts.clone();
    expected_counts.remove("schema_version_byte");
    {
        let raw = raw_open(dir.path());
        assert_eq!(
            raw_schema_version(&raw),
            vec![1, version as u8],
            "fixture schema"
        );
        assert_eq!(
            key_counts(&raw),
            expected_counts,
            "fixture holds what its manifest says"
        );
    }
    let original = dump(dir.path());

    let log = EventLog::open(dir.path()).expect("open through the migrations");
    assert_eq!(log.epoch(), manifest.epoch, "epoch kept");
    for entry in &manifest.rooms {
        let room: Room = entry.room.parse().expect("room name");
        assert_eq!(log.head(&room).expect("head"), entry.head, "head of {room}");
        assert_eq!(
            log.oldest(&room).expect("oldest"),
            entry.oldest,
            "oldest of {room}"
        );
        let events: Vec<EventEntry> = log
            .read(&room, 0, usize::MAX)
            .expect("read")
            .into_iter()
            .map(EventEntry::from)
            .collect();
        assert_eq!(events, entry.events, "events of {room}");
    }
    for entry in &manifest.statuses {
        let photo = PhotoId::parse(&entry.photo_id).expect("photo id");
        let status = log.status(&photo).expect("status").map(StatusFields::from);
        assert_eq!(status, entry.status, "status of {photo}");
    }
    for entry in &manifest.placements {
        let id = EventId::parse(&entry.id).expect("event id");
        let placement = log
            .placement(&id)
            .expect("placement")
            .map(|rooms| rooms.into_iter().map(|(r, s)| (r.to_string(), s)).collect());
        assert_eq!(placement, entry.rooms, "placement of {}", entry.id);
    }
    for (source, position) in &manifest.consumed {
        assert_eq!(
            log.consumed(source).expect("consumed"),
            *position,
            "consumed position of {source}"
        );
    }
    log.close().expect("close");
    drop(log);

    let migrated = dump(dir.path());
    {
        let raw = raw_open(dir.path());
        assert_eq!(
            raw_schema_version(&raw),
            vec![1, SCHEMA_VERSION as u8],
            "schema now current"
        );
        assert_eq!(
            key_counts(&raw).get("c").copied().unwrap_or(0),
            0,
            "no commit record left: open derived what they named"
        );
        let kept_ids = manifest
            .placements
            .iter()
            .filter(|p| p.rooms.as_ref().is_some_and(|r| !r.is_empty()))
            .count();
        assert_eq!(
            key_counts(&raw).get("i").copied().unwrap_or(0),
            0,
            "every id record moved into runs (migration 7)"
        );
        assert_eq!(
            id_index_entries(&raw),
            kept_ids as u64,
            "one index entry per event still stored (rebuilt by migration 4, moved by migration 7)"
        );
    }
    assert!(
        without_index(&original, rederived) == without_index(&migrated, rederived),
        "every record but the id index, the event records, the schema version and the rederived ones is kept byte for byte"
    );
    let again = EventLog::open(dir.path()).expect("second open");
    assert_eq!(again.epoch(), manifest.epoch);
    again.close().expect("close");
    drop(again);
    assert!(
        dump(dir.path()) == migrated,
        "a second open changes nothing"
    );
}

/// The events of the manifest by id, rebuilt as events (to send again).
fn stored_events(manifest: &Manifest) -> HashMap<&str, Event> {
    let mut events = HashMap::new();
    for room in &manifest.rooms {
        for e in &room.events {
            let data: Map<String, Value> = serde_json::from_str(&e.data).expect("data object");
            let event = Event::new(
                EventId::parse(&e.id).expect("event id"),
                e.event_type.parse::<EventType>().expect("event type"),
                data,
                Timestamp::from_millis(e.timestamp_ms),
            )
            .expect("stored event validates");
            events.insert(e.id.as_str(), event);
        }
    }
    events
}

fn event(id: String, event_type: EventType, data: Value) -> Event {
    let Value::Object(data) = data else {
        panic!("data must be an object");
    };
    Event::new(
        EventId::parse(&id).expect("event id"),
        event_type,
        data,
        Timestamp::now(),
    )
    .expect("valid event")
}

/// After migrating the frozen store of `version`: every stored id (at least `stored_ids` of them)
/// sent again is recognised as a duplicate with its stored placement, and a new event continues
/// each room at its head + 1.
fn appends_continue_after_migration(version: u32, stored_ids: usize) {
    let (dir, manifest) = fixture(version);
    let log = EventLog::open(dir.path()).expect("open through the migrations");
    let rt = runtime();

    let stored = stored_events(&manifest);
    let resent: Vec<(&str, &Vec<(String, u64)>)> = manifest
        .placements
        .iter()
        .filter_map(|p| p.rooms.as_ref().map(|rooms| (p.id.as_str(), rooms)))
        .collect();
    assert!(
        resent.len() >= stored_ids,
        "the fixture has stored events to resend"
    );
    for chunk in resent.chunks(64) {
        let batch = chunk.iter().map(|(id, _)| stored[id].clone()).collect();
        let receipts = rt.block_on(log.append(batch)).expect("resend");
        for ((id, rooms), receipt) in chunk.iter().zip(receipts) {
            assert!(receipt.duplicate, "{id} is recognised as already stored");
            let got: Vec<(String, u64)> = receipt
                .rooms
                .iter()
                .map(|(r, s)| (r.to_string(), *s))
                .collect();
            assert_eq!(&got, *rooms, "stored placement of {id}");
        }
    }

    let owners: HashMap<&str, &str> = manifest
        .statuses
        .iter()
        .filter_map(|s| Some((s.photo_id.as_str(), s.status.as_ref()?.user_id.as_str())))
        .collect();
    let mut batch = Vec::new();
    let mut expected = Vec::new();
    for (n, entry) in manifest.rooms.iter().enumerate() {
        let id = format!("after-migration-{n}");
        let next = entry.head + 1;
        match entry.room.parse::<Room>().expect("room name") {
            Room::Photo(photo) => {
                // A photo whose status retention removed has no stored owner: name one.
                let owner = owners.get(photo.as_str()).copied().unwrap_or("u-after");
                let data = json!({"photoId": photo.as_str(), "userId": owner, "progress": 1});
                batch.push(event(id, EventType::ProcessingProgress, data));
                expected.push(vec![(entry.room.clone(), next)]);
            }
            Room::User(user) => {
                let photo = format!("p-after-{n}");
                let data = json!({"photoId": photo, "userId": user.as_str()});
                batch.push(event(id, EventType::PhotoUploaded, data));
                expected.push(vec![
                    (format!("photo:{photo}"), 1),
                    (entry.room.clone(), next),
                ]);
            }
            Room::Global => {
                batch.push(event(id, EventType::SystemMaintenance, json!({})));
                expected.push(vec![(entry.room.clone(), next)]);
            }
            // Nothing is ever stored in connection rooms: they stay empty.
            Room::Client(_) | Room::Session(_) => assert_eq!(entry.head, 0),
        }
    }
    let receipts = rt.block_on(log.append(batch)).expect("append");
    for (receipt, rooms) in receipts.iter().zip(&expected) {
        assert!(!receipt.duplicate, "{} is new", receipt.event_id);
        let got: Vec<(String, u64)> = receipt
            .rooms
            .iter()
            .map(|(r, s)| (r.to_string(), *s))
            .collect();
        assert_eq!(&got, rooms, "seqs of {}", receipt.event_id);
    }
    for entry in &manifest.rooms {
        let room: Room = entry.room.parse().expect("room name");
        let grew = !matches!(room, Room::Client(_) | Room::Session(_));
        assert_eq!(
            log.head(&room).expect("head"),
            entry.head + u64::from(grew),
            "head of {room}"
        );
    }
    log.close().expect("close");
}

/// A version 1 store (events, heads, statuses; no event-id index), written by the code of that
/// time, reads back through migrations 2 and 3 exactly as its writer reported it.
#[test]
fn version_1_store_opens_as_its_writer_reported() {
    opens_as_its_writer_reported(1, &[]);
}

/// A version 2 store (with the on-disk id index, commit-era layout and retention heads), written
/// by the last version 2 code, reads back through migration 3 exactly as its writer reported it.
#[test]
fn version_2_store_opens_as_its_writer_reported() {
    opens_as_its_writer_reported(2, &[]);
}

/// After migrating a version 1 store, its ids are known and every room continues at head + 1.
#[test]
fn version_1_store_appends_after_migration() {
    appends_continue_after_migration(1, 201);
}

/// After migrating a version 2 store, its ids are known and every room continues at head + 1,
/// rooms emptied by retention included.
#[test]
fn version_2_store_appends_after_migration() {
    appends_continue_after_migration(2, 201);
}

/// A version 7 store as an unclean stop (kill -9) leaves it, written by the last version 7 code
/// with its derived-state writer stalled: 15 version 7 commit records (the ranges only, format
/// byte 1, under `c commitNo`) name the last groups' events, whose statuses and ids are on disk
/// nowhere else. Today's open reads them, derives the statuses and ids again and removes them:
/// the store reads back exactly what the live version 7 log reported (from memory) before the
/// stop. Besides the id index, only statuses and commit records may differ from the image.
#[test]
fn version_7_crash_image_opens_as_its_writer_reported() {
    let (_dir, manifest) = fixture(7);
    assert_eq!(
        manifest.raw_key_counts.get("c"),
        Some(&15),
        "the image holds the commit records of the groups the writer had not derived"
    );
    opens_as_its_writer_reported(7, b"cs");
}

/// After opening a version 7 crash image, every id is known (those named only by the commit
/// records included) and every room continues at head + 1.
#[test]
fn version_7_crash_image_appends_after_migration() {
    appends_continue_after_migration(7, 60);
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
