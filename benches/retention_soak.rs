//! Retention soak and prune-latency measurements (not a CI test; run by hand):
//!
//! ```sh
//! cargo bench --bench retention_soak -- soak 600        # 10 min ingest, sizes over time
//! cargo bench --bench retention_soak -- prune-latency   # append p99 during a 1M prune
//! ```
//!
//! `soak SECONDS`: appenders write continuously into 1,000 rooms while a retention pass keeping
//! 100 events per room runs every 10 s (the production job, shortened); every 30 s it prints the
//! sled directory's size on disk, the number of live events, and the bytes of the records the
//! store keeps (keys and values: event blocks, id records, the rest) with the ratio of the
//! directory's size to them, so the curve shows whether the store levels off and how far above
//! its data.
//!
//! At the end the soak compacts the store (`socket_bridge::store::compact`, what `socket-bridge
//! compact` runs: the records copied into a new directory that takes the old one's place) and
//! prints the sizes before and after: sled's floor for the same records.
//!
//! `prune-latency`: stores 1,000,000 old events, then measures single-event append latency
//! (p50/p99/max) for 10 s without a prune (the baseline) and while a pass prunes all of them.
//!
//! Under `cargo test` (no `--bench` flag) it does nothing.

// The shared test kit; this bench uses only part of it.
#[allow(dead_code)]
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};
use socket_bridge::domain::{Event, EventId, EventType, Timestamp};
use socket_bridge::store::{EventLog, RetentionPolicy, compact, dir_size};

const ROOMS: usize = 1000;
const APPENDERS: usize = 16;
const KEEP_PER_ROOM: u64 = 100;
const PRUNE_EVERY: Duration = Duration::from_secs(10);
const SAMPLE_EVERY: Duration = Duration::from_secs(30);

fn event(id: String, photo: usize, ts: Timestamp) -> Event {
    let mut data = Map::new();
    data.insert("photoId".into(), json!(format!("p{photo}")));
    data.insert("userId".into(), json!(format!("u{}", photo % 50)));
    data.insert("progress".into(), json!(50));
    data.insert("stage".into(), Value::String("x".repeat(160)));
    Event::new(
        EventId::parse(&id).expect("id"),
        EventType::ProcessingProgress,
        data,
        ts,
    )
    .expect("valid event")
}

async fn soak(seconds: u64) {
    let root = tempfile::tempdir().expect("tempdir");
    let store = root.path().join("store");
    let log = EventLog::open(&store).expect("open");
    let stop = Arc::new(AtomicBool::new(false));
    let appended = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for a in 0..APPENDERS {
        let (log, stop, appended) = (log.clone(), Arc::clone(&stop), Arc::clone(&appended));
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let batch: Vec<Event> = (0..8)
                    .map(|i| {
                        event(
                            format!("a{a}-{n}-{i}"),
                            (a * 7919 + n as usize * 13 + i) % ROOMS,
                            Timestamp::now(),
                        )
                    })
                    .collect();
                log.append(batch).await.expect("append");
                appended.fetch_add(8, Ordering::Relaxed);
                n += 1;
            }
        }));
    }
    let policy = RetentionPolicy {
        max_age: Duration::from_secs(7 * 86_400),
        max_events_per_room: KEEP_PER_ROOM,
    };
    let started = Instant::now();
    let mut next_prune = started + PRUNE_EVERY;
    let mut next_sample = started;
    let mut removed = 0u64;
    println!(
        "elapsed_s,appended,removed,live_events,dir_bytes,sled_size_on_disk,\
         kept_event_bytes,kept_id_bytes,kept_other_bytes,dir_over_kept"
    );
    while started.elapsed() < Duration::from_secs(seconds) {
        if Instant::now() >= next_prune {
            let log = log.clone();
            let report =
                tokio::task::spawn_blocking(move || log.prune(&policy, Timestamp::now(), false))
                    .await
                    .expect("prune task")
                    .expect("prune");
            removed += report.events_removed;
            next_prune += PRUNE_EVERY;
        }
        if Instant::now() >= next_sample {
            let total = appended.load(Ordering::Relaxed);
            let dir_bytes = dir_size(&store);
            let kept = {
                let log = log.clone();
                tokio::task::spawn_blocking(move || log.record_bytes())
                    .await
                    .expect("record bytes task")
                    .expect("record bytes")
            };
            println!(
                "{},{},{},{},{},{},{},{},{},{:.1}",
                started.elapsed().as_secs(),
                total,
                removed,
                total.saturating_sub(removed),
                dir_bytes,
                log.size_on_disk().unwrap_or(0),
                kept.events,
                kept.ids,
                kept.other,
                dir_bytes as f64 / kept.total().max(1) as f64
            );
            next_sample += SAMPLE_EVERY;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("appender");
    }
    let kept = log.record_bytes().expect("record bytes").total();
    log.close().expect("close");
    drop(log);
    compacted(&store, kept);
}

/// Compacts the store in `path` and prints its size before and after: what sled needs for the
/// same records without the space its log holds for what was overwritten or removed, the floor
/// of the ratio to the kept bytes.
fn compacted(path: &Path, kept: u64) {
    let report = compact(path).expect("compact the soak's store");
    println!(
        "compacted in {} ms: {} -> {} bytes; kept {kept} bytes; dir/kept {:.1} -> {:.1}",
        report.duration_ms,
        report.bytes_before,
        report.bytes_after,
        report.bytes_before as f64 / kept.max(1) as f64,
        report.bytes_after as f64 / kept.max(1) as f64
    );
}

/// Appends single events (ids `tag-<n>`) one after another while `going_on()`; returns their
/// latencies, microseconds.
async fn measure_appends(log: &EventLog, tag: &str, going_on: impl Fn() -> bool) -> Histogram<u64> {
    let mut histogram = Histogram::<u64>::new(3).expect("histogram");
    let mut n = 0u64;
    while going_on() {
        let t = Instant::now();
        log.append(vec![event(
            format!("{tag}-{n}"),
            (n as usize) % ROOMS,
            Timestamp::now(),
        )])
        .await
        .expect("append");
        histogram
            .record(t.elapsed().as_micros() as u64)
            .expect("record");
        n += 1;
    }
    histogram
}

fn report(label: &str, h: &Histogram<u64>) {
    println!(
        "{label}: {} appends, p50 {} us, p99 {} us, p99.9 {} us, max {} us",
        h.len(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    );
}

async fn prune_latency() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = EventLog::open(dir.path()).expect("open");
    let old = Timestamp::from_millis(Timestamp::now().millis() - 30 * 86_400_000);
    let total = 1_000_000usize;
    let fill = Instant::now();
    for chunk in 0..total / 5000 {
        let batch: Vec<Event> = (0..5000)
            .map(|i| event(format!("old-{chunk}-{i}"), (chunk * 5000 + i) % ROOMS, old))
            .collect();
        log.append(batch).await.expect("fill");
    }
    println!(
        "stored {total} old events in {:.1} s",
        fill.elapsed().as_secs_f64()
    );
    let until = Instant::now() + Duration::from_secs(10);
    let baseline = measure_appends(&log, "base", || Instant::now() < until).await;
    report("appends without a prune (baseline)", &baseline);
    let pruning = {
        let log = log.clone();
        let policy = RetentionPolicy {
            max_age: Duration::from_secs(7 * 86_400),
            max_events_per_room: 1_000_000,
        };
        tokio::task::spawn_blocking(move || log.prune(&policy, Timestamp::now(), false))
    };
    let started = Instant::now();
    let during = measure_appends(&log, "during", || !pruning.is_finished()).await;
    let pass = pruning.await.expect("prune task").expect("prune");
    println!(
        "prune removed {} events in {:.1} s ({:.0} events/s)",
        pass.events_removed,
        started.elapsed().as_secs_f64(),
        pass.events_removed as f64 / started.elapsed().as_secs_f64()
    );
    report("appends during the prune", &during);
    log.close().expect("close");
}

fn main() {
    if !support::benching() {
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let runtime = support::runtime();
    let mode = args
        .iter()
        .find(|a| *a == "soak" || *a == "prune-latency")
        .cloned()
        .unwrap_or_default();
    match mode.as_str() {
        "soak" => {
            let seconds = args
                .iter()
                .skip_while(|a| *a != "soak")
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(600);
            runtime.block_on(soak(seconds));
        }
        "prune-latency" => runtime.block_on(prune_latency()),
        _ => eprintln!(
            "usage: cargo bench --bench retention_soak -- (soak [SECONDS] | prune-latency)"
        ),
    }
}
