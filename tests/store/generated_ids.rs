//! Ids the hub generates skip the duplicate lookup when stored, but are indexed like any other:
//! a producer that later sends such an id (read from a receipt) gets the stored placement back.

use serde_json::json;
use socket_bridge::domain::{Event, EventInput, Room, Timestamp};
use socket_bridge::store::EventLog;

use crate::helpers::{raw_open, temp_store};

fn input(id: Option<String>) -> EventInput {
    serde_json::from_value(json!({
        "id": id,
        "type": "photo.uploaded",
        "data": { "photoId": "gen-photo", "userId": "gen-user" },
    }))
    .expect("valid input")
}

#[test]
fn a_generated_id_sent_back_later_is_a_duplicate_across_a_restart() {
    let (dir, rt, log) = temp_store();
    let fresh = Event::from_input(input(None), Timestamp::now()).expect("valid event");
    assert!(
        fresh.id_generated,
        "an event without id gets a generated one"
    );
    let first = rt.block_on(log.append(vec![fresh])).expect("append")[0].clone();
    assert!(!first.duplicate);

    // Before the restart (the id may still be in memory only) and after it (from disk).
    let again = Event::from_input(input(Some(first.event_id.to_string())), Timestamp::now())
        .expect("valid event");
    assert!(!again.id_generated);
    let before = rt
        .block_on(log.append(vec![again.clone()]))
        .expect("append")[0]
        .clone();
    assert!(
        before.duplicate,
        "the generated id is recognised before a restart"
    );
    assert_eq!(before.rooms, first.rooms);
    log.close().expect("close");
    drop(log);
    drop(raw_open(dir.path()));

    let log = EventLog::open(dir.path()).expect("reopen");
    let after = rt.block_on(log.append(vec![again])).expect("append")[0].clone();
    assert!(
        after.duplicate,
        "the generated id is recognised after a restart"
    );
    assert_eq!(after.rooms, first.rooms);
    let room: Room = "photo:gen-photo".parse().expect("room");
    assert_eq!(
        log.read(&room, 0, 10).expect("read").len(),
        1,
        "stored once"
    );
}
