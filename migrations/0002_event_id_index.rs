//! Version 2: the event-id index (`i eventId` -> rooms and seqs), so that an event whose id is
//! already stored is recognised instead of stored again. Built from the event records that a
//! version 1 store holds; safe to re-run after a crash (adding a placement is idempotent).
//!
//! The records are read and written with the types below, frozen as versions 1 and 2 stored
//! them, not with the store's current record types: this step has to read version 1 stores
//! whatever later versions do to those types.

use serde::Deserialize;

use crate::store::StoreError;
use crate::store::codec;
use crate::store::keys;

/// An event record (`e room NUL seq`) as versions 1 and 2 stored it: these fields, in this order,
/// in the record encoding of `codec`. Decoded in full, so that a record of another layout is an
/// error instead of a misread id.
#[derive(Deserialize)]
struct EventRecordV1 {
    /// The event id.
    id: String,
    /// The event type's one-byte code.
    #[expect(dead_code, reason = "decoded only to check the record's layout")]
    type_code: u8,
    /// The `data` object as JSON text.
    #[expect(dead_code, reason = "decoded only to check the record's layout")]
    data: String,
    /// Milliseconds since the Unix epoch.
    #[expect(dead_code, reason = "decoded only to check the record's layout")]
    timestamp_ms: i64,
}

/// The value of an `i eventId` record in version 2: the rooms and seqs the event is stored at,
/// the photo room first.
type PlacementV2 = Vec<(String, u64)>;

/// Adds every event record's room and seq to the index record of its id.
pub(super) fn apply(db: &sled::Db) -> Result<(), StoreError> {
    for entry in db.scan_prefix([keys::EVENT]) {
        let (key, value) = entry?;
        let event: EventRecordV1 = codec::decode(&key, &value)?;
        let (room, seq) = keys::parse_event(&key).ok_or_else(|| StoreError::Corrupt {
            key: keys::display(&key),
            reason: "malformed event key".into(),
        })?;
        add_placement(db, &event.id, room, seq)?;
    }
    Ok(())
}

/// Adds `(room, seq)` to the index record of `id`, keeping the photo room first. Idempotent.
fn add_placement(db: &sled::Db, id: &str, room: &str, seq: u64) -> Result<(), StoreError> {
    let key = keys::id(id);
    let mut placement: PlacementV2 = match db.get(&key)? {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read fixture dir") {
            let entry = entry.expect("fixture dir entry");
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy fixture file");
        }
    }

    /// Every `i` record of the tree, decoded.
    fn index(db: &sled::Db) -> BTreeMap<String, PlacementV2> {
        db.scan_prefix([keys::ID])
            .map(|entry| {
                let (key, value) = entry.expect("entry");
                let id = String::from_utf8(key[1..].to_vec()).expect("utf-8 id");
                (id, codec::decode(&key, &value).expect("index record"))
            })
            .collect()
    }

    /// On the frozen version 1 store (`tests/fixtures/store-v1`), the step writes exactly the
    /// placements that the store's writer reported for its events, and running it again changes
    /// nothing.
    #[test]
    fn builds_the_index_its_writer_reported() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let dir = tempfile::tempdir().expect("tempdir");
        copy_dir(&fixtures.join("store-v1"), dir.path());
        let manifest: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(fixtures.join("store-v1.manifest.json")).expect("manifest"),
        )
        .expect("manifest json");
        let expected: BTreeMap<String, PlacementV2> = manifest["placements"]
            .as_array()
            .expect("placements")
            .iter()
            .map(|p| {
                let id = p["id"].as_str().expect("id").to_owned();
                (
                    id,
                    serde_json::from_value(p["rooms"].clone()).expect("rooms"),
                )
            })
            .collect();

        let db = sled::open(dir.path()).expect("open fixture");
        assert!(index(&db).is_empty(), "a version 1 store has no id index");
        apply(&db).expect("migrate");
        let built = index(&db);
        assert_eq!(built, expected);
        apply(&db).expect("migrate again");
        assert_eq!(index(&db), built, "a second run changes nothing");
    }
}
