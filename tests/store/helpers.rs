//! Event builders and stores shared by the store tests.

use serde_json::{Map, Value, json};
use socket_bridge::domain::{Event, EventId, EventType, Timestamp};
use socket_bridge::store::EventLog;
use tokio::runtime::Runtime;

pub use crate::support::runtime;

/// A validated event of `event_type` for `photo` owned by `user` (both in `data`).
pub fn photo_event(
    id: &str,
    event_type: EventType,
    photo: &str,
    user: &str,
    extra: Value,
) -> Event {
    let mut data = Map::new();
    data.insert("photoId".into(), json!(photo));
    data.insert("userId".into(), json!(user));
    if let Value::Object(extra) = extra {
        data.extend(extra);
    }
    Event::new(
        EventId::parse(id).expect("valid id"),
        event_type,
        data,
        Timestamp::now(),
    )
    .expect("valid event")
}

/// A `system.maintenance` event (stored in `global`).
pub fn maintenance(id: &str) -> Event {
    Event::new(
        EventId::parse(id).expect("valid id"),
        EventType::SystemMaintenance,
        Map::new(),
        Timestamp::now(),
    )
    .expect("valid event")
}

/// A new event log in a temp dir, and a runtime to append with.
pub fn temp_store() -> (tempfile::TempDir, Runtime, EventLog) {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime();
    let log = EventLog::open(dir.path()).expect("open");
    (dir, rt, log)
}

/// Entries in the id index's run chunks (`x` records whose key names a chunk; each starts with a
/// format byte and the little-endian entry count).
pub fn id_index_entries(raw: &sled::Db) -> u64 {
    let chunk_key = socket_bridge::store::keys::id_chunk(0, 0, 0).len();
    raw.scan_prefix([socket_bridge::store::keys::ID_RUN])
        .map(|record| record.expect("read"))
        .filter(|(key, _)| key.len() == chunk_key)
        .map(|(_, value)| u64::from(u32::from_le_bytes(value[1..5].try_into().expect("count"))))
        .sum()
}

/// Opens a store directory with bare sled, waiting for a just-closed `EventLog` to let go of the
/// directory lock (sled releases it from a background thread a few milliseconds later).
pub fn raw_open(dir: &std::path::Path) -> sled::Db {
    let started = std::time::Instant::now();
    loop {
        match sled::open(dir) {
            Ok(db) => return db,
            Err(_) if started.elapsed() < std::time::Duration::from_secs(5) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("raw open of {}: {e}", dir.display()),
        }
    }
}

/// Copies the directory `from` into `to`, recursively.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy file");
        }
    }
}

/// Default store options with a switch for injected faults.
pub fn with_faults() -> (
    socket_bridge::store::Faults,
    socket_bridge::store::StoreOptions,
) {
    let faults = socket_bridge::store::Faults::default();
    let options = socket_bridge::store::StoreOptions {
        faults: faults.clone(),
        ..socket_bridge::store::StoreOptions::default()
    };
    (faults, options)
}
