//! Reopening a large store: nothing is scanned and nothing per event is held in memory, so open
//! time and memory do not grow with the history, and ids of old events are still recognised.
//! The reopen runs in a child process (this test binary again), which reports its open time and
//! resident memory; the parent prints them and checks that old ids are duplicates.

use std::process::Command;
use std::time::Instant;

use serde_json::json;
use socket_bridge::domain::EventType;
use socket_bridge::store::EventLog;

use crate::helpers::{photo_event, runtime};

const CHILD_DIR: &str = "SOCKET_BRIDGE_REOPEN_CHILD_DIR";
const EVENTS: usize = 200_000;
const PHOTOS: usize = 2_000;
const BATCH: usize = 1_000;

/// The event `n` of the test's history (photo rooms and their owners' user rooms).
fn event(n: usize) -> socket_bridge::domain::Event {
    let photo = format!("p{}", n % PHOTOS);
    let user = format!("u{}", n % PHOTOS % 50);
    let kind = if n < PHOTOS {
        EventType::PhotoUploaded
    } else {
        EventType::ProcessingProgress
    };
    photo_event(
        &format!("ev-{n}"),
        kind,
        &photo,
        &user,
        json!({ "progress": n % 100, "note": "x".repeat(120) }),
    )
}

/// Resident memory of this process, KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The child's job: open the store, re-send a sample of old ids, report figures.
#[test]
fn reopen_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let before = rss_kib();
    let started = Instant::now();
    let log = EventLog::open(&dir).expect("child open");
    let open_ms = started.elapsed().as_millis();
    let after = rss_kib();
    let rt = runtime();
    let sample: Vec<_> = (0..EVENTS).step_by(997).map(event).collect();
    let count = sample.len();
    let receipts = rt.block_on(log.append(sample)).expect("re-send");
    let duplicates = receipts.iter().filter(|r| r.duplicate).count();
    println!(
        "OPEN_MS={open_ms} RSS_BEFORE_KIB={before} RSS_AFTER_OPEN_KIB={after} SENT={count} DUPLICATES={duplicates}"
    );
    log.close().expect("close");
}

#[test]
fn reopening_a_large_store_is_fast_lean_and_still_deduplicates() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = runtime();
    {
        let log = EventLog::open(dir.path()).expect("open");
        let started = Instant::now();
        rt.block_on(async {
            for start in (0..EVENTS).step_by(BATCH) {
                let batch = (start..start + BATCH).map(event).collect();
                log.append(batch).await.expect("append");
            }
        });
        eprintln!(
            "wrote {EVENTS} events in {PHOTOS} photo rooms in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        log.close().expect("close");
    }
    let output = Command::new(std::env::current_exe().expect("test binary"))
        .args(["reopen::reopen_child", "--exact", "--nocapture"])
        .env(CHILD_DIR, dir.path())
        .output()
        .expect("child runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "child failed: {stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("OPEN_MS="))
        .expect("the child's figures");
    eprintln!("reopen of {EVENTS} events: {line}");
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .expect("a figure")
    };
    assert_eq!(
        field("DUPLICATES="),
        field("SENT="),
        "every re-sent old id is recognised after reopening"
    );
}
