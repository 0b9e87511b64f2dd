//! Corrupt records (bytes under an event key that do not decode) are reported and skipped by
//! open, reads, replays and prune: never a refusal to start, a failed pass or a loop.

use std::time::Duration;

use serde_json::json;
use socket_bridge::domain::{EventType, PhotoId, Room, Timestamp};
use socket_bridge::store::{EventLog, RetentionPolicy, keys};

use crate::helpers::{photo_event, raw_open, runtime};
use crate::support::hub::TestHub;

/// Writes garbage under event keys `seqs` of `room` (and a garbage group-commit record, which
/// open's recovery reads) in the closed store at `dir`, with sled directly.
fn corrupt(dir: &std::path::Path, room: &str, seqs: &[u64]) {
    let db = raw_open(dir);
    for seq in seqs {
        db.insert(keys::event(room, *seq), &b"\x01\xffgarbage"[..])
            .expect("raw insert");
    }
    db.insert(keys::commit(u64::MAX, 0), &b"\x07not a commit"[..])
        .expect("raw insert");
    db.flush().expect("flush");
}

fn seqs(log: &EventLog, room: &Room, after: u64, limit: usize) -> Vec<u64> {
    let events = log.read(room, after, limit).expect("read");
    events.iter().map(|e| e.seq).collect()
}

/// Stores five events of photo `p1` (owner `u1`) in the store at `dir`, each in a block record of
/// its own: one append each, and each waits until the writer has put its block in the tree (it
/// joins a room's blocks of the groups it writes together), so that garbage under seq 3 and 5
/// leaves the others readable.
fn store_five_events(dir: &std::path::Path) {
    let rt = runtime();
    let log = EventLog::open(dir).expect("open");
    for n in 1..=5 {
        let (event_type, extra) = match n {
            1 => (EventType::PhotoUploaded, json!({})),
            _ => (EventType::ProcessingProgress, json!({ "progress": n })),
        };
        let event = photo_event(&format!("e{n}"), event_type, "p1", "u1", extra);
        rt.block_on(log.append(vec![event])).expect("append");
        assert!(log.sync_statuses(Duration::from_secs(10)), "writer synced");
    }
    log.close().expect("close");
}

/// A store with garbage in the middle and at the end of a room (and a garbage commit record)
/// opens; reads skip the corrupt records, counting each once; appends continue after the head;
/// a prune pass removes them with the events before them instead of failing.
#[test]
fn corrupt_records_are_skipped_by_open_read_and_prune() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime();
    let room = Room::photo(&PhotoId::parse("p1").expect("id"));
    store_five_events(dir.path());
    corrupt(dir.path(), "photo:p1", &[3, 5]);

    let log = EventLog::open(dir.path()).expect("a store with corrupt records opens");
    assert_eq!(seqs(&log, &room, 0, 100), [1, 2, 4]);
    assert_eq!(
        seqs(&log, &room, 2, 1),
        [4],
        "a page skips to the next readable event"
    );
    assert!(seqs(&log, &room, 4, 100).is_empty());
    assert_eq!(
        seqs(&log, &room, 0, 100),
        [1, 2, 4],
        "reading again gives the same"
    );
    assert_eq!(
        log.corrupt_records(),
        3,
        "two events and a commit record, each once"
    );
    assert_eq!(log.head(&room).expect("head"), 5);

    let next = photo_event("e6", EventType::ProcessingProgress, "p1", "u1", json!({}));
    let receipts = rt.block_on(log.append(vec![next])).expect("append after");
    assert_eq!(receipts[0].rooms, [(room.clone(), 6)]);

    let policy = RetentionPolicy {
        max_age: Duration::from_secs(3600),
        max_events_per_room: 2,
    };
    let report = log
        .prune(&policy, Timestamp::now(), false)
        .expect("a prune pass over corrupt records succeeds");
    // 1, 2 and 4 by count; 3 and 5 have no readable age and go as expired.
    assert_eq!(report.events_removed, 5);
    assert_eq!(seqs(&log, &room, 0, 100), [6]);
    assert_eq!(log.oldest(&room).expect("oldest"), 6);
}

/// A hub on a store with corrupt records serves: HTTP history skips them, `/health/detailed`
/// says the store is degraded with the count, and a Socket.IO replay from 0 reports each hole with
/// `replay:truncated`, ends (a corrupt last record does not make it loop) and goes live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_serves_around_corrupt_records() {
    let stopped = TestHub::spawn().await.stop().await;
    let store = stopped.data_dir().join("store");
    let writing = store.clone();
    std::thread::spawn(move || {
        store_five_events(&writing);
        corrupt(&writing, "photo:p1", &[3, 5]);
    })
    .join()
    .expect("the store written");
    let hub = stopped.start().await;

    assert_eq!(hub.stored_seqs("photo:p1").await, [1, 2, 4]);
    let health = hub.health().await;
    assert_eq!(health["details"]["store"]["status"], "degraded", "{health}");
    assert_eq!(health["details"]["store"]["corruptRecords"], 3, "{health}");
    assert_eq!(health["status"], "degraded");
    // The counter is process-wide (other tests of this binary may add to it): at least these 3.
    let metrics = hub.metrics().await;
    let corrupt_total = metrics
        .lines()
        .find_map(|line| line.strip_prefix("store_corrupt_records_total "))
        .and_then(|value| value.trim().parse::<f64>().ok());
    assert!(corrupt_total >= Some(3.0), "{metrics}");

    let mut client = hub.client_for("u1").await;
    client.next_named("connection:established").await;
    let ack = client
        .ack("subscribe:photo", json!({ "photoId": "p1", "since": 0 }))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let mut truncations = Vec::new();
    let mut seqs = Vec::new();
    hub.publish_ok(
        &json!({ "id": "e6", "type": "photo.processing.progress", "data": { "photoId": "p1" } }),
    )
    .await;
    while seqs.last() != Some(&6) {
        let (name, value) = client.next().await;
        if name == "replay:truncated" {
            truncations.push((value["requestedSeq"].clone(), value["oldestSeq"].clone()));
        } else if value["room"] == "photo:p1"
            && let Some(seq) = value["seq"].as_u64()
        {
            seqs.push(seq);
        }
    }
    assert_eq!(seqs, [1, 2, 4, 6]);
    assert_eq!(truncations, [(json!(3), json!(4)), (json!(5), json!(6))]);
    client.close().await;
    hub.stop().await;
}

/// A photo whose status record does not decode answers 500 `internal` with the API's words (the
/// hub's log has the cause): never the codec's text, the key or the store's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_status_answers_500_without_internals() {
    let hub = TestHub::spawn().await;
    hub.publish_ok(&json!({ "id": "e1", "type": "photo.uploaded", "data": { "photoId": "p1", "userId": "u1" } }))
        .await;
    let stopped = hub.stop().await;
    {
        let db = raw_open(&stopped.data_dir().join("store"));
        db.insert(keys::status("p1"), &b"\x01\xffgarbage"[..])
            .expect("raw insert");
        db.flush().expect("flush");
    }
    let hub = stopped.start().await;
    let reader = crate::support::token("u1", &["read:photos"]);
    for path in ["/api/photos/p1/status", "/api/photos/p1/events"] {
        let (status, answer) = hub.get_answer(path, &reader).await;
        assert_eq!(status, 500, "{path}: {answer}");
        assert_eq!(answer["error"], "internal", "{answer}");
        let detail = answer["detail"].as_str().unwrap_or_default();
        assert!(!detail.is_empty(), "{answer}");
        for internal in [
            "sled", "bincode", "corrupt", "Corrupt", "p1", "garbage", "decode",
        ] {
            assert!(!detail.contains(internal), "{internal} in {answer}");
        }
    }
    hub.stop().await;
}
