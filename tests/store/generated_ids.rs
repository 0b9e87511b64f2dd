//! Ids the hub generates are unique by construction and are not written to the id index (it would
//! cost as much as the event itself); producer-given ids are, and stay recognised across a
//! restart (docs/protocol.md, "Idempotency").

use serde_json::json;
use socket_bridge::domain::{Event, EventInput, Room, Timestamp};

use crate::helpers::{id_index_entries, raw_open, temp_store};

fn input(id: Option<String>, photo: &str) -> EventInput {
    serde_json::from_value(json!({
        "id": id,
        "type": "photo.uploaded",
        "data": { "photoId": photo, "userId": "gen-user" },
    }))
    .expect("valid input")
}

#[test]
fn generated_ids_are_not_indexed_and_given_ids_are_across_a_restart() {
    let (dir, rt, log) = temp_store();
    let fresh = Event::from_input(input(None, "gen-photo"), Timestamp::now()).expect("valid");
    assert!(
        fresh.id_generated,
        "an event without id gets a generated one"
    );
    let given = Event::from_input(
        input(Some("given-1".into()), "given-photo"),
        Timestamp::now(),
    )
    .expect("valid");
    let receipts = rt
        .block_on(log.append(vec![fresh, given.clone()]))
        .expect("append");
    assert!(log.sync_statuses(std::time::Duration::from_secs(5)));
    log.close().expect("close");
    drop(log);

    let raw = raw_open(dir.path());
    assert_eq!(
        id_index_entries(&raw),
        1,
        "the index holds the producer-given id and not the generated one"
    );
    drop(raw);

    let log = socket_bridge::store::EventLog::open(dir.path()).expect("reopen");
    let again = rt.block_on(log.append(vec![given])).expect("append")[0].clone();
    assert!(
        again.duplicate,
        "the given id is recognised after a restart"
    );
    assert_eq!(again.rooms, receipts[1].rooms);
    let room: Room = "photo:given-photo".parse().expect("room");
    assert_eq!(
        log.read(&room, 0, 10).expect("read").len(),
        1,
        "stored once"
    );
}
