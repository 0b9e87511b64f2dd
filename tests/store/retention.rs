//! Retention passes with a controllable clock: what is kept, what is removed, what survives.

use std::time::Duration;

use serde_json::{Map, json};
use socket_bridge::domain::{Event, EventId, EventType, PhotoId, ProcessingState, Room, Timestamp};
use socket_bridge::store::{EventLog, RetentionPolicy, StoreOptions, StoreTime};

use crate::helpers::{id_index_entries, photo_event, raw_open, runtime};

const HOUR_MS: i64 = 3_600_000;

/// A new event log in a temp dir whose events are stored at their own `timestamp` (so that
/// [`at`] chooses their age), and a runtime to append with.
fn temp_store() -> (tempfile::TempDir, tokio::runtime::Runtime, EventLog) {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = StoreOptions {
        store_time: StoreTime::EventTimestamp,
        ..StoreOptions::default()
    };
    let log = EventLog::open_with(dir.path(), options).expect("open");
    (dir, runtime(), log)
}

fn at(mut event: Event, ms: i64) -> Event {
    event.timestamp = Timestamp::from_millis(ms);
    event
}

fn seqs(log: &EventLog, room: &Room) -> Vec<u64> {
    log.read(room, 0, usize::MAX)
        .expect("read")
        .iter()
        .map(|e| e.seq)
        .collect()
}

fn policy(hours: u64, max_events: u64) -> RetentionPolicy {
    RetentionPolicy {
        max_age: Duration::from_secs(hours * 3600),
        max_events_per_room: max_events,
    }
}

/// Age-based pruning removes exactly the events older than the maximum age, as a prefix, and
/// the room's seqs keep increasing afterwards (a pruned room never reuses a seq).
#[test]
fn age_based_pruning_keeps_exactly_the_young_events() {
    let (_dir, rt, log) = temp_store();
    let photo = PhotoId::parse("p1").expect("id");
    let room = Room::photo(&photo);
    let events: Vec<Event> = (0..10)
        .map(|i| {
            at(
                photo_event(
                    &format!("e{i}"),
                    EventType::ProcessingProgress,
                    "p1",
                    "u1",
                    json!({"progress": i}),
                ),
                i * HOUR_MS,
            )
        })
        .collect();
    rt.block_on(log.append(events)).expect("append");
    // At hour 12 with a 5 h max age, events of hours 0..=6 are older than the cutoff (hour 7).
    let now = Timestamp::from_millis(12 * HOUR_MS);
    let dry = log.prune(&policy(5, 1000), now, true).expect("dry run");
    assert_eq!(dry.events_removed, 7);
    assert_eq!(
        seqs(&log, &room),
        (1..=10).collect::<Vec<_>>(),
        "a dry run removes nothing"
    );
    let report = log.prune(&policy(5, 1000), now, false).expect("prune");
    assert_eq!(report.events_removed, 7);
    assert_eq!(seqs(&log, &room), vec![8, 9, 10]);
    assert_eq!(log.oldest(&room).expect("oldest"), 8);
    assert_eq!(log.head(&room).expect("head"), 10);
    for i in 0..7 {
        let id = EventId::parse(&format!("e{i}")).expect("id");
        assert!(
            log.placement(&id).expect("lookup").is_none(),
            "index entry of pruned e{i} removed"
        );
    }
    let next = at(
        photo_event("e10", EventType::ProcessingProgress, "p1", "u1", json!({})),
        13 * HOUR_MS,
    );
    let receipts = rt
        .block_on(log.append(vec![next]))
        .expect("append after prune");
    assert_eq!(
        receipts[0].rooms,
        vec![(room.clone(), 11)],
        "seqs continue after the head"
    );
    assert_eq!(
        log.prune(&policy(5, 1000), now, false)
            .expect("again")
            .events_removed,
        0,
        "idempotent"
    );
}

/// Count-based pruning keeps the newest `max_events` of every room, and an event stored in two
/// rooms stays known by id while one of its copies is kept.
#[test]
fn count_based_pruning_keeps_the_newest_per_room() {
    let (_dir, rt, log) = temp_store();
    let now = Timestamp::now().millis();
    let mut events = vec![at(
        photo_event("up-a", EventType::PhotoUploaded, "a", "u1", json!({})),
        now,
    )];
    events.extend((0..6).map(|i| {
        at(
            photo_event(
                &format!("a{i}"),
                EventType::ProcessingProgress,
                "a",
                "u1",
                json!({}),
            ),
            now,
        )
    }));
    events.push(at(
        photo_event("up-b", EventType::PhotoUploaded, "b", "u1", json!({})),
        now,
    ));
    let maintenance = Event::new(
        EventId::parse("m1").expect("id"),
        EventType::SystemMaintenance,
        Map::new(),
        Timestamp::from_millis(now),
    )
    .expect("valid");
    events.push(maintenance);
    rt.block_on(log.append(events)).expect("append");
    let report = log
        .prune(&policy(24, 3), Timestamp::from_millis(now), false)
        .expect("prune");
    let room_a = Room::photo(&PhotoId::parse("a").expect("id"));
    let user = "user:u1".parse::<Room>().expect("room");
    assert_eq!(seqs(&log, &room_a), vec![5, 6, 7], "newest 3 of photo:a");
    // The batch was one block per room: the photo room's block now starts at its 5th event.
    assert_eq!(log.oldest(&room_a).expect("oldest"), 5);
    assert_eq!(seqs(&log, &user), vec![1, 2], "user:u1 had only 2");
    assert_eq!(seqs(&log, &Room::Global), vec![1]);
    assert_eq!(report.events_removed, 4);
    assert_eq!(report.rooms_pruned, 1);
    // up-a was pruned from photo:a but is still in user:u1: it stays known, with the kept copy.
    let placement = log
        .placement(&EventId::parse("up-a").expect("id"))
        .expect("lookup")
        .expect("still indexed");
    assert_eq!(placement, vec![(user.clone(), 1)]);
    let again = photo_event("up-a", EventType::PhotoUploaded, "a", "u1", json!({}));
    let receipt = rt.block_on(log.append(vec![again])).expect("append");
    assert!(receipt[0].duplicate, "a kept id is still recognised");
}

/// A photo's status survives pruning of all its events; a deleted photo's status goes once its
/// deletion is older than the maximum age.
#[test]
fn status_survives_pruning_until_deleted_and_old() {
    let (_dir, rt, log) = temp_store();
    let kept = PhotoId::parse("kept").expect("id");
    let gone = PhotoId::parse("gone").expect("id");
    rt.block_on(log.append(vec![
        at(
            photo_event("k1", EventType::PhotoUploaded, "kept", "u1", json!({})),
            0,
        ),
        at(
            photo_event(
                "k2",
                EventType::ProcessingCompleted,
                "kept",
                "u1",
                json!({}),
            ),
            HOUR_MS,
        ),
        at(
            photo_event("g1", EventType::PhotoUploaded, "gone", "u1", json!({})),
            0,
        ),
        at(
            photo_event("g2", EventType::PhotoDeleted, "gone", "u1", json!({})),
            HOUR_MS,
        ),
    ]))
    .expect("append");
    let report = log
        .prune(
            &policy(1, 1000),
            Timestamp::from_millis(100 * HOUR_MS),
            false,
        )
        .expect("prune");
    assert_eq!(
        seqs(&log, &Room::photo(&kept)),
        Vec::<u64>::new(),
        "all events of kept pruned"
    );
    let status = log
        .status(&kept)
        .expect("status")
        .expect("status survives pruning");
    assert_eq!(status.status, ProcessingState::Completed);
    assert_eq!(status.last_seq, 2);
    assert_eq!(
        log.oldest(&Room::photo(&kept)).expect("oldest"),
        3,
        "head + 1 when nothing is kept"
    );
    assert!(
        log.status(&gone).expect("status").is_none(),
        "a deleted photo past the max age is forgotten"
    );
    assert_eq!(report.statuses_removed, 1);
}

/// Appends go on while a large prune runs, and nothing appended during it is lost.
#[test]
fn appends_continue_during_a_prune() {
    let (_dir, rt, log) = temp_store();
    let old: Vec<Event> = (0..20_000)
        .map(|i| {
            at(
                photo_event(
                    &format!("old{i}"),
                    EventType::ProcessingProgress,
                    "p",
                    "u1",
                    json!({}),
                ),
                0,
            )
        })
        .collect();
    for chunk in old.chunks(2000) {
        rt.block_on(log.append(chunk.to_vec())).expect("append old");
    }
    let pruner = {
        let log = log.clone();
        std::thread::spawn(move || {
            log.prune(
                &policy(1, 1_000_000),
                Timestamp::from_millis(10 * HOUR_MS),
                false,
            )
        })
    };
    let now = 10 * HOUR_MS;
    for i in 0..200 {
        let event = at(
            photo_event(
                &format!("new{i}"),
                EventType::ProcessingProgress,
                "p",
                "u1",
                json!({}),
            ),
            now,
        );
        rt.block_on(log.append(vec![event]))
            .expect("append during prune");
    }
    let report = pruner.join().expect("pruner").expect("prune");
    assert_eq!(report.events_removed, 20_000);
    let room = Room::photo(&PhotoId::parse("p").expect("id"));
    assert_eq!(seqs(&log, &room), (20_001..=20_200).collect::<Vec<_>>());
}

/// Retention reads the hub's store time, not the producer's `timestamp` (kept for display): events
/// whose producer said they happen in the year 2100 are pruned once they were stored longer ago
/// than the maximum age, and events the producer dated 1970 are kept while they are young.
#[test]
fn retention_ages_events_by_store_time_not_producer_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime();
    let log = EventLog::open(dir.path()).expect("open");
    let future = Timestamp::parse_rfc3339("2100-01-01T00:00:00Z").expect("time");
    let past = Timestamp::from_millis(0);
    let dated = |id: &str, photo: &str, when: Timestamp| {
        let mut event = photo_event(id, EventType::ProcessingProgress, photo, "u1", json!({}));
        event.timestamp = when;
        event
    };
    let events = vec![
        dated("f1", "future", future),
        dated("f2", "future", future),
        dated("p1", "past", past),
        dated("p2", "past", past),
    ];
    rt.block_on(log.append(events)).expect("append");
    let future_room = Room::photo(&PhotoId::parse("future").expect("id"));
    let past_room = Room::photo(&PhotoId::parse("past").expect("id"));

    let young = log
        .prune(&policy(1, 1000), Timestamp::now(), false)
        .expect("prune");
    assert_eq!(young.events_removed, 0, "nothing was stored an hour ago");
    assert_eq!(
        seqs(&log, &past_room),
        [1, 2],
        "old producer times do not age events"
    );
    let read = log.read(&past_room, 0, 10).expect("read");
    assert_eq!(
        read[0].timestamp, past,
        "the producer's timestamp is kept for display"
    );

    let later = Timestamp::from_millis(Timestamp::now().millis() + 2 * HOUR_MS);
    let aged = log.prune(&policy(1, 1000), later, false).expect("prune");
    assert_eq!(aged.events_removed, 4);
    assert!(
        seqs(&log, &future_room).is_empty(),
        "future producer times do not keep events"
    );
}

/// `record_bytes` counts what the kept records hold, by kind: it grows with appends (blocks and
/// producer ids) and its blocks shrink with what a pass removes, as the retention soak's ratio of
/// disk size to kept data needs. The index entries of pruned events stay until their run is
/// merged (`merged_id_runs_drop_the_entries_of_pruned_events`), and no longer answer.
#[test]
fn record_bytes_follow_appends_and_prunes() {
    let (_dir, rt, log) = temp_store();
    let empty = log.record_bytes().expect("record bytes");
    assert_eq!(
        (empty.events, empty.ids),
        (0, 0),
        "a new store keeps no event"
    );
    let now = Timestamp::now().millis();
    let events: Vec<Event> = (0..50)
        .map(|i| {
            at(
                photo_event(
                    &format!("e{i}"),
                    EventType::ProcessingProgress,
                    "p1",
                    "u1",
                    json!({"note": "x".repeat(200)}),
                ),
                now,
            )
        })
        .collect();
    rt.block_on(log.append(events)).expect("append");
    assert!(log.sync_statuses(Duration::from_secs(5)), "ids written");
    let full = log.record_bytes().expect("record bytes");
    // Every event is kept at least in its photo room, with 200 bytes of data.
    assert!(full.events > 50 * 200, "blocks counted: {full:?}");
    assert!(full.ids > 50 * 2, "id records counted: {full:?}");
    assert_eq!(full.total(), full.events + full.ids + full.other);

    log.prune(&policy(24, 5), Timestamp::from_millis(now), false)
        .expect("prune");
    let pruned = log.record_bytes().expect("record bytes");
    assert!(
        pruned.events < full.events / 5,
        "a pass keeping 5 of 50 events per room leaves a tenth of the blocks' bytes: {pruned:?} after {full:?}"
    );
    assert_eq!(pruned.ids, full.ids, "index entries wait for a merge");
    for i in 0..50 {
        let id = EventId::parse(&format!("e{i}")).expect("id");
        assert_eq!(
            log.placement(&id).expect("placement").is_some(),
            i >= 45,
            "e{i}: only the kept events' ids answer"
        );
    }
}

/// When the writer merges index runs past the smallest size tier, the entries of events
/// retention removed are dropped: four rounds of producer ids make every partition's fourth run
/// (about 300 entries each, 1,200 merged), after a pass that kept 5 of each photo's 288 events.
#[test]
fn merged_id_runs_drop_the_entries_of_pruned_events() {
    const ROUND: usize = 4_800;
    let (dir, rt, log) = temp_store();
    let now = Timestamp::now().millis();
    let round = |r: usize| -> Vec<Event> {
        (0..ROUND)
            .map(|i| {
                at(
                    photo_event(
                        &format!("r{r}-{i}"),
                        EventType::ProcessingProgress,
                        &format!("p{}", i % 50),
                        "u1",
                        json!({}),
                    ),
                    now,
                )
            })
            .collect()
    };
    for r in 0..3 {
        rt.block_on(log.append(round(r))).expect("append");
        assert!(log.sync_statuses(Duration::from_secs(5)), "ids written");
    }
    log.prune(&policy(24, 5), Timestamp::from_millis(now), false)
        .expect("prune");
    rt.block_on(log.append(round(3))).expect("append");
    assert!(log.sync_statuses(Duration::from_secs(5)), "ids written");
    log.close().expect("close (the writer finishes its merges)");
    drop(log);
    let raw = raw_open(dir.path());
    assert_eq!(
        id_index_entries(&raw),
        50 * 5 + ROUND as u64,
        "entries of the kept events only"
    );
}
