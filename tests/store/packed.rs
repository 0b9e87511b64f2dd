//! Small blocks packed into group commit records (schema version 8): durable when the append
//! returns, read from memory until the writer has put them in the tree, never missed or repeated
//! while it moves them, and written again from the commit records after a crash.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use socket_bridge::domain::{EventType, PhotoId, Room, Timestamp, UserId};
use socket_bridge::store::{EventLog, RetentionPolicy, keys};

use crate::helpers::{copy_dir, photo_event, raw_open, runtime, with_faults};

const PHOTOS: usize = 5;
const ROUNDS: usize = 6;

fn photo_room(p: usize) -> Room {
    Room::photo(&PhotoId::parse(&format!("p{p}")).expect("photo id"))
}

fn user_room() -> Room {
    Room::user(&UserId::parse("u1").expect("user id"))
}

/// The event of photo `p` in round `round`: its upload first, then progress.
fn event(p: usize, round: usize) -> socket_bridge::domain::Event {
    let event_type = match round {
        0 => EventType::PhotoUploaded,
        _ => EventType::ProcessingProgress,
    };
    let extra = json!({ "progress": round });
    photo_event(
        &format!("p{p}-{round}"),
        event_type,
        &format!("p{p}"),
        "u1",
        extra,
    )
}

fn ids(log: &EventLog, room: &Room, after: u64, limit: usize) -> Vec<(u64, String)> {
    let events = log.read(room, after, limit).expect("read");
    events
        .iter()
        .map(|e| (e.seq, e.id.as_str().to_owned()))
        .collect()
}

/// Every photo room holds its six events in order, the user room the five uploads; pages, heads,
/// the oldest seq and duplicate ids answer the same.
fn assert_all_stored(log: &EventLog, rt: &tokio::runtime::Runtime, when: &str) {
    for p in 0..PHOTOS {
        let room = photo_room(p);
        let expected: Vec<(u64, String)> = (0..ROUNDS)
            .map(|round| (round as u64 + 1, format!("p{p}-{round}")))
            .collect();
        assert_eq!(ids(log, &room, 0, 100), expected, "{when}: p{p}");
        assert_eq!(
            ids(log, &room, 3, 2),
            expected[3..5].to_vec(),
            "{when}: page"
        );
        assert_eq!(log.head(&room).expect("head"), ROUNDS as u64, "{when}");
        assert_eq!(log.oldest(&room).expect("oldest"), 1, "{when}");
    }
    let uploads: Vec<(u64, String)> = (0..PHOTOS)
        .map(|p| (p as u64 + 1, format!("p{p}-0")))
        .collect();
    assert_eq!(ids(log, &user_room(), 0, 100), uploads, "{when}: user room");
    let again = rt
        .block_on(log.append(vec![event(2, 3)]))
        .expect("append a stored id again");
    assert!(again[0].duplicate, "{when}: the id is recognised");
    assert_eq!(again[0].rooms, [(photo_room(2), 4)], "{when}");
}

/// Keys of the tree by their first byte.
fn key_counts(dir: &std::path::Path) -> HashMap<u8, usize> {
    let db = raw_open(dir);
    let mut counts = HashMap::new();
    for key in db.iter().keys() {
        let key = key.expect("key");
        *counts.entry(key[0]).or_default() += 1;
    }
    counts
}

/// With the writer stalled, single-event appends are read back from memory (the tree holds no
/// event record yet: a crash image taken then has only commit records); once the writer runs,
/// the same reads come from the tree. The crash image opens with every event in place, and
/// appends go on after it.
#[test]
fn packed_blocks_are_read_from_memory_and_written_again_after_a_crash() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let (faults, options) = with_faults();
    let log = EventLog::open_with(dir.path(), options).expect("open");
    faults.stall_writer(true);
    for round in 0..ROUNDS {
        for p in 0..PHOTOS {
            rt.block_on(log.append(vec![event(p, round)]))
                .expect("append");
        }
    }
    assert_all_stored(&log, &rt, "in memory");

    // What a kill -9 now would leave on disk: every append was flushed.
    let crashed = tempfile::tempdir().expect("tempdir");
    copy_dir(dir.path(), crashed.path());

    faults.stall_writer(false);
    assert!(log.sync_statuses(Duration::from_secs(10)), "writer synced");
    assert_all_stored(&log, &rt, "in the tree");
    log.close().expect("close");
    drop(log);
    let closed = key_counts(dir.path());
    assert_eq!(closed.get(&keys::COMMIT), None, "written: {closed:?}");
    // One record per room: each room's blocks of the groups the writer took at once are joined.
    assert_eq!(closed.get(&keys::EVENT), Some(&(PHOTOS + 1)), "{closed:?}");

    let image = key_counts(crashed.path());
    assert_eq!(
        image.get(&keys::EVENT),
        None,
        "no event record yet: {image:?}"
    );
    assert_eq!(
        image.get(&keys::COMMIT),
        Some(&(PHOTOS * ROUNDS)),
        "one commit record per group: {image:?}"
    );
    let log = EventLog::open(crashed.path()).expect("open the crash image");
    assert_all_stored(&log, &rt, "after the crash");
    let next = rt
        .block_on(log.append(vec![event(0, ROUNDS)]))
        .expect("append after the crash");
    assert_eq!(next[0].rooms, [(photo_room(0), ROUNDS as u64 + 1)]);
    log.close().expect("close");
    drop(log);
    let reopened = key_counts(crashed.path());
    assert_eq!(reopened.get(&keys::COMMIT), None, "{reopened:?}");
}

/// A writer turn cut short after it wrote the joined blocks and removed some of the commit records
/// (as a crash in the middle of it, here after the first 32 of 37): reads give each event once
/// although it is both in the tree and in memory; retention leaves those blocks alone; and the
/// image of the store then opens with each event once (the packed blocks of the commit records
/// left are in the joined blocks already: writing them again would replace a joined block with
/// its last part).
#[test]
fn a_writer_turn_cut_short_leaves_every_event_once() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let (faults, options) = with_faults();
    let log = EventLog::open_with(dir.path(), options).expect("open");
    faults.fail_writer_cleanup(true);
    // Stalled, so that the writer takes every group in one turn: two groups of 12 photos with
    // ~1 KB each (3 commit record parts each), then 30 single-event groups. The first 32 removals
    // leave the commit records of the last round: their blocks are the last part of each photo
    // room's joined block.
    faults.stall_writer(true);
    for batch in 0..2 {
        let note = "n".repeat(1000);
        let events = (0..12)
            .map(|q| {
                let extra = json!({ "note": note });
                let photo = format!("q{batch}-{q}");
                let id = format!("{photo}-0");
                photo_event(&id, EventType::ProcessingProgress, &photo, "u1", extra)
            })
            .collect();
        rt.block_on(log.append(events)).expect("append a batch");
    }
    for round in 0..ROUNDS {
        for p in 0..PHOTOS {
            rt.block_on(log.append(vec![event(p, round)]))
                .expect("append");
        }
    }
    faults.stall_writer(false);
    assert!(log.sync_statuses(Duration::from_secs(10)), "writer synced");
    // The next group commit's flush makes the writer's batches before it durable.
    let flushing = photo_event("p9-0", EventType::ProcessingProgress, "p9", "u1", json!({}));
    rt.block_on(log.append(vec![flushing])).expect("append");
    let crashed = tempfile::tempdir().expect("tempdir");
    copy_dir(dir.path(), crashed.path());
    assert_all_stored(&log, &rt, "in the tree and in memory");

    let policy = RetentionPolicy {
        max_age: Duration::from_secs(3600),
        max_events_per_room: 2,
    };
    let report = log.prune(&policy, Timestamp::now(), false).expect("prune");
    assert_eq!(
        report.events_removed, 0,
        "blocks whose commit records remain stay"
    );
    assert_all_stored(&log, &rt, "after a prune pass");
    faults.fail_writer_cleanup(false);
    log.close().expect("close");
    drop(log);

    let image = key_counts(crashed.path());
    assert!(
        image.contains_key(&keys::EVENT),
        "blocks written: {image:?}"
    );
    assert!(
        image.contains_key(&keys::COMMIT),
        "commit records left: {image:?}"
    );
    let log = EventLog::open(crashed.path()).expect("open the crash image");
    assert_all_stored(&log, &rt, "after the crash");
    log.close().expect("close");
}

/// Readers of rooms whose blocks the writer is moving into the tree (joined across groups) see
/// each room as 1..=head with no gap and no repeat, and never a head that goes back.
#[test]
fn reads_never_miss_or_repeat_an_event_while_the_writer_moves_blocks() {
    const ROOMS: usize = 4;
    const APPENDERS: usize = 8;
    const PER_APPENDER: usize = 300;
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = EventLog::open(dir.path()).expect("open");
    for p in 0..ROOMS {
        rt.block_on(log.append(vec![event(p, 0)])).expect("upload");
    }
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (log, done) = (log.clone(), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut heads = [0u64; ROOMS];
            let mut reads = 0u64;
            while !done.load(Ordering::SeqCst) {
                for (p, last_head) in heads.iter_mut().enumerate() {
                    let room = photo_room(p);
                    let head = log.head(&room).expect("head");
                    assert!(head >= *last_head, "head of p{p} went back");
                    *last_head = head;
                    // In pages of 7, as replays read.
                    let mut seqs = Vec::new();
                    loop {
                        let page = log.read(&room, seqs.len() as u64, 7).expect("read");
                        if page.is_empty() {
                            break;
                        }
                        seqs.extend(page.iter().map(|e| e.seq));
                    }
                    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
                    assert_eq!(seqs, expected, "p{p}: a gap or a repeat");
                    assert!(
                        seqs.len() as u64 >= head,
                        "p{p}: fewer events than its head"
                    );
                    reads += 1;
                }
            }
            reads
        })
    };
    let started = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..APPENDERS)
            .map(|a| {
                let log = log.clone();
                tokio::spawn(async move {
                    for n in 0..PER_APPENDER {
                        let p = (a + n) % ROOMS;
                        let id = format!("a{a}-{n}");
                        let e = photo_event(
                            &id,
                            EventType::ProcessingProgress,
                            &format!("p{p}"),
                            "u1",
                            json!({}),
                        );
                        log.append(vec![e]).await.expect("append");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("appender");
        }
    });
    done.store(true, Ordering::SeqCst);
    let reads = reader.join().expect("the reader saw no gap");
    assert!(reads > 10, "the reader ran while appends went on: {reads}");
    let total: u64 = (0..ROOMS)
        .map(|p| log.head(&photo_room(p)).expect("head"))
        .sum();
    assert_eq!(total, (ROOMS + APPENDERS * PER_APPENDER) as u64);
    assert!(started.elapsed() < Duration::from_secs(120));
    log.close().expect("close");
}
