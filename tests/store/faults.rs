//! A failed write never acknowledges an event that is not durable: after an injected flush
//! failure the event log refuses every append until it is reopened, and a retry after reopening
//! is answered once the event is on disk (stored, or recognised as the event that made it).

use socket_bridge::domain::{Event, EventType, PhotoId, Room};
use socket_bridge::store::{AppendError, EventLog, StoreError};

use crate::helpers::{photo_event, runtime, with_faults};

#[test]
fn a_retry_after_a_failed_flush_is_not_acknowledged_until_durable() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let (faults, options) = with_faults();
    let event = |id, event_type| photo_event(id, event_type, "p1", "u1", serde_json::json!({}));
    let first = event("ev-1", EventType::PhotoUploaded);
    let second = event("ev-2", EventType::ProcessingStarted);
    let log = EventLog::open_with(dir.path(), options.clone()).expect("open");
    rt.block_on(log.append(vec![first])).expect("first append");

    faults.fail_next_writes(1);
    let failed = rt.block_on(log.append(vec![second.clone()]));
    assert!(
        matches!(failed, Err(AppendError::Store(StoreError::CommitFailed(_)))),
        "the failing commit is an error: {failed:?}"
    );
    // The retry is refused, not answered as a duplicate of the event that was never flushed.
    let retry = rt.block_on(log.append(vec![second.clone()]));
    assert!(
        matches!(retry, Err(AppendError::Store(StoreError::Unavailable(_)))),
        "appends are refused until reopened: {retry:?}"
    );
    drop(log);

    let log = EventLog::open_with(dir.path(), options).expect("reopen");
    let receipts = rt
        .block_on(log.append(vec![second]))
        .expect("the retry after reopening");
    assert_eq!(
        p1_ids(&log),
        ["ev-1", "ev-2"],
        "ev-2 is stored exactly once"
    );
    assert_eq!(receipts[0].rooms.first().map(|(_, seq)| *seq), Some(2));
    log.close().expect("close");
}

/// A derived-state writer that falls behind (a slow disk under a burst of producer ids) holds the
/// committer back instead of letting what it has not written pile up in memory; once it catches
/// up, every append is answered, each event stored once, every id still recognised.
#[test]
fn a_writer_that_falls_behind_holds_the_committer_back() {
    const APPENDS: usize = 200;
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let (faults, options) = with_faults();
    let log = EventLog::open_with(dir.path(), options).expect("open");
    let event = |n: usize| p1_event(n, 0);

    faults.stall_writer(true);
    // One append at a time: each is a group commit of its own.
    let answered = rt.block_on(async {
        for n in 0..APPENDS {
            let append = log.append(vec![event(n)]);
            match tokio::time::timeout(std::time::Duration::from_secs(2), append).await {
                Ok(receipts) => {
                    receipts.expect("append");
                }
                Err(_) => return n,
            }
        }
        APPENDS
    });
    // The unanswered append's group is durable and its committer waits for the writer: its
    // status is readable already, and so must its event be (a status never names an event that
    // a read of the room does not give).
    let room = Room::photo(&PhotoId::parse("p1").expect("photo id"));
    let status = log
        .status(&PhotoId::parse("p1").expect("photo id"))
        .expect("status")
        .expect("a status");
    let readable = log.read(&room, 0, APPENDS + 10).expect("read");
    // Released before asserting: a failed check must not leave the log's drop waiting on it.
    faults.stall_writer(false);
    assert_eq!(
        readable.last().map(|e| e.seq),
        Some(status.last_seq),
        "the status's last event is readable"
    );
    assert!(
        (1..APPENDS).contains(&answered),
        "with the writer stalled the committer stops after a bounded backlog: {answered} of {APPENDS} appends answered"
    );
    rt.block_on(async {
        // The unanswered append was flushed before its group waited for the writer.
        for n in answered + 1..APPENDS {
            log.append(vec![event(n)])
                .await
                .expect("append after the writer caught up");
        }
    });
    let stored = log.read(&room, 0, APPENDS + 10).expect("read");
    let ids: Vec<String> = stored.iter().map(|e| e.id.as_str().to_owned()).collect();
    let expected: Vec<String> = (0..APPENDS).map(|n| format!("ev-{n}")).collect();
    assert_eq!(ids, expected, "every event stored once, in order");
    for n in [0, answered, APPENDS - 1] {
        let receipts = rt
            .block_on(log.append(vec![event(n)]))
            .expect("append again");
        assert!(receipts[0].duplicate, "ev-{n} is recognised as stored");
    }
    log.close().expect("close");
}

/// A group commit whose write does not return (sled's flush stuck after a failed log write on a
/// full disk) fails the store once its deadline has passed: its appender, the appenders queued
/// behind it and those waiting for room in the queue (one request deep here) are answered
/// `Unavailable`, later appends are refused at once, and closing the log does not wait for the
/// stuck committer. Once the write returns, a reopened store holds each event at most once.
#[test]
fn a_write_that_does_not_return_fails_the_store_after_its_deadline() {
    use std::time::{Duration, Instant};
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let (faults, mut options) = with_faults();
    options.write_deadline = Duration::from_millis(300);
    options.queue_depth = 1;
    let event = |n: usize| p1_event(n, 1);
    let log = EventLog::open_with(dir.path(), options.clone()).expect("open");
    rt.block_on(log.append(vec![event(1)]))
        .expect("first append");

    faults.stall_writes(true);
    let started = Instant::now();
    let stalled = rt.block_on(async {
        let appends = (2..=6).map(|n| log.append(vec![event(n)]));
        tokio::time::timeout(Duration::from_secs(5), futures::future::join_all(appends)).await
    });
    let waited = started.elapsed();
    let closed = {
        let started = Instant::now();
        let closed = stalled
            .as_ref()
            .ok()
            .map(|_| (log.close(), started.elapsed()));
        // Released before asserting: the stuck thread must not outlive a failed check.
        faults.stall_writes(false);
        closed
    };
    let stalled = stalled.expect("every stalled append is answered before the 5 s timeout");
    for outcome in &stalled {
        assert!(
            matches!(outcome, Err(AppendError::Store(StoreError::Unavailable(cause)))
                if matches!(cause.as_ref(), StoreError::WriteStalled { thread: "committer", .. })),
            "each append is refused as the stalled write's: {outcome:?}"
        );
    }
    assert!(
        waited >= Duration::from_millis(300),
        "not before the deadline: {waited:?}"
    );
    assert!(log.is_failing());
    let (closed, closing) = closed.expect("closed");
    assert!(
        matches!(closed, Err(StoreError::Unavailable(_))),
        "close reports the failure: {closed:?}"
    );
    assert!(
        closing < Duration::from_secs(3),
        "close does not wait for the stuck committer: {closing:?}"
    );
    drop(log);

    let log = EventLog::open_with(dir.path(), options).expect("reopen once the write returned");
    for n in 2..=6 {
        rt.block_on(log.append(vec![event(n)]))
            .expect("the retry after reopening");
    }
    let mut ids = p1_ids(&log);
    ids.sort();
    let expected: Vec<String> = (1..=6).map(|n| format!("ev-{n}")).collect();
    assert_eq!(ids, expected, "each event stored exactly once");
    log.close().expect("close");
}

/// A read that fails while a group commit is staged (sled answers the I/O error it keeps, say
/// after another thread's log write hit a full disk) fails the store as a failed write does: the
/// group is refused, and so is every later append, so that the hub stops instead of answering
/// 500 for ever.
#[test]
fn a_read_that_fails_while_staging_fails_the_store() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let (faults, options) = with_faults();
    let log = EventLog::open_with(dir.path(), options).expect("open");
    rt.block_on(log.append(vec![p1_event(1, 1)]))
        .expect("first append");

    faults.fail_next_reads(1);
    let failed = rt.block_on(log.append(vec![p1_event(2, 1)]));
    assert!(
        matches!(failed, Err(AppendError::Store(StoreError::CommitFailed(_)))),
        "the group is refused as a failed commit: {failed:?}"
    );
    assert!(log.is_failing(), "the store is failing");
    let later = rt.block_on(log.append(vec![p1_event(3, 1)]));
    assert!(
        matches!(later, Err(AppendError::Store(StoreError::Unavailable(_)))),
        "later appends are refused: {later:?}"
    );
    drop(log);
}

/// A derived-writer turn that does not return fails the store too once the deadline has passed
/// (the committer would wait for the writer once it is far enough behind): appends are refused as
/// the writer's stalled write, and a reopened store holds what was acknowledged.
#[test]
fn a_writer_turn_that_does_not_return_fails_the_store_after_its_deadline() {
    use std::time::Duration;
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let (faults, mut options) = with_faults();
    options.write_deadline = Duration::from_millis(300);
    let log = EventLog::open_with(dir.path(), options.clone()).expect("open");

    faults.stall_writer_writes(true);
    rt.block_on(log.append(vec![p1_event(1, 1)]))
        .expect("the committer does not wait for the writer");
    let refused = rt.block_on(async {
        let started = std::time::Instant::now();
        while !log.is_failing() && started.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        log.append(vec![p1_event(2, 1)]).await
    });
    let failing = log.is_failing();
    if !failing {
        // A close would wait for the stalled writer for good.
        faults.stall_writer_writes(false);
    }
    let closed = log.close();
    faults.stall_writer_writes(false);
    assert!(failing, "the writer's stalled turn fails the store");
    assert!(
        matches!(&refused, Err(AppendError::Store(StoreError::Unavailable(cause)))
            if matches!(cause.as_ref(), StoreError::WriteStalled { thread: "derived-state writer", .. })),
        "appends are refused as the writer's stalled write: {refused:?}"
    );
    assert!(
        matches!(closed, Err(StoreError::Unavailable(_))),
        "{closed:?}"
    );
    drop(log);

    let log = EventLog::open_with(dir.path(), options).expect("reopen once the write returned");
    assert_eq!(
        p1_ids(&log),
        ["ev-1"],
        "the acknowledged event is kept, once"
    );
    log.close().expect("close");
}

/// Photo p1's event `ev-<n>`: its upload when `n` is `first`, else a progress of `n % 100`.
fn p1_event(n: usize, first: usize) -> Event {
    let event_type = if n == first {
        EventType::PhotoUploaded
    } else {
        EventType::ProcessingProgress
    };
    photo_event(
        &format!("ev-{n}"),
        event_type,
        "p1",
        "u1",
        serde_json::json!({ "progress": n % 100 }),
    )
}

/// The ids of photo p1's first 10 stored events, in seq order.
fn p1_ids(log: &EventLog) -> Vec<String> {
    let room = Room::photo(&PhotoId::parse("p1").expect("photo id"));
    log.read(&room, 0, 10)
        .expect("read")
        .iter()
        .map(|e| e.id.as_str().to_owned())
        .collect()
}
