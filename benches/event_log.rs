//! Benchmarks of the durable event log (results and how to read them: `docs/benchmarks.md`).
//!
//! Run with `cargo bench --bench event_log`. Four groups, in one run:
//!
//! - `durable_append/{1,16,64}`: that many concurrent appenders (tokio tasks on a 2-worker
//!   runtime), each awaiting `EventLog::append` of one ~200 B `photo.processing.progress` event per
//!   call, spread over 100 photo rooms. One criterion iteration is one event, so the reported
//!   throughput is durable events/s. Each sample gets a fresh store in a temp dir; opening it,
//!   priming the 100 photos (their first event sets the owner), building the events, closing and
//!   deleting are outside the timed part.
//! - `raw_sled_baseline/{1,16,64}`: the ceiling for that design on this disk, in the same run: a
//!   bare `sled::Db`, `apply_batch` of that many event-sized records (one per event, keys over 100
//!   room prefixes) + `flush` per batch, one thread. One iteration is one record.
//! - `raw_sled_store_shape/64`: the same, but each batch also carries what the store writes per
//!   group commit besides the event records (a head and a status record per touched room, a commit
//!   record), followed by the id index batch the indexer writes. It tells the cost of the store's
//!   record layout apart from the cost of its code (staging, channels, tasks).
//! - `replay/100k_one_room_pages_of_1000`: reading back all 100k events of one room through
//!   `EventLog::read` in pages of 1000 (the store is filled once, untimed, then reopened). One
//!   iteration is a full replay; throughput is events/s.
//!
//! Criterion does not report percentiles, so each group also prints to stderr, over its measured
//! samples (warm-up excluded): events/s, per-append latency p50/p90/p99/p99.9/max, and the group
//! commits the store formed (events per commit, time per commit), which the store reports through
//! the `metrics` facade and this bench captures with a small recorder.
//!
//! Under `cargo test` (no `--bench` flag) criterion runs each benchmark once, the replayed room
//! holds 2,000 events, and no figures are printed.

// The shared test kit; this bench uses only part of it.
#[allow(dead_code)]
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use hdrhistogram::Histogram;
use serde_json::{Map, Value};
use socket_bridge::domain::{Event, EventId, EventType, PhotoId, Room, Timestamp};
use socket_bridge::store::{EventLog, StoreOptions, keys};
use support::runtime;
use tokio::runtime::Runtime;

/// The server binary's allocator, so that the store here costs what it costs in the hub (the raw
/// sled baselines use it too).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Photos (rooms) the appended events are spread over.
const PHOTOS: usize = 100;
/// Concurrent appender counts of `durable_append`.
const APPENDERS: [usize; 3] = [1, 16, 64];
/// Records per `apply_batch` + `flush` of `raw_sled_baseline`: the largest group the committer
/// can form from that many appenders of one event each.
const RAW_BATCHES: [usize; 3] = [1, 16, 64];
/// Size of the JSON `data` of every event.
const DATA_BYTES: usize = 200;
/// Events in the replayed room.
const REPLAY_EVENTS: u64 = 100_000;
/// Events in the replayed room under `cargo test`, which only checks that the bench works.
const REPLAY_EVENTS_TEST_MODE: u64 = 2_000;
/// Page size of the replay reads.
const REPLAY_PAGE: usize = 1000;
/// Samples per benchmark.
const SAMPLES: usize = 10;
/// Highest latency the histograms track, in microseconds (one minute).
const MAX_MICROS: u64 = 60_000_000;

fn micros_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds")
}

fn record_micros(histogram: &mut Histogram<u64>, elapsed: Duration) {
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(MAX_MICROS);
    histogram.saturating_record(micros.max(1));
}

/// A small deterministic mixer, so runs append the same photo sequence.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn photo_name(photo: usize) -> String {
    format!("photo-{photo:04}")
}

/// The `data` of a progress event: photo, owner (fixed per photo), progress and some realistic
/// detail, padded to about [`DATA_BYTES`] of JSON.
fn progress_data(photo: &str, owner: &str, progress: u64) -> Map<String, Value> {
    let mut data = Map::new();
    data.insert("photoId".into(), photo.into());
    data.insert("userId".into(), owner.into());
    data.insert("progress".into(), progress.into());
    data.insert("stage".into(), "resize".into());
    data.insert("worker".into(), "image-worker-3.processing.svc".into());
    data.insert("variant".into(), "1024x768.webp".into());
    let size = serde_json::to_string(&data).map_or(0, |s| s.len());
    // `,"note":""` is 10 bytes before the note itself.
    let pad = DATA_BYTES.saturating_sub(size + 10);
    data.insert("note".into(), "n".repeat(pad).into());
    data
}

fn progress_event(photo: &str, owner: &str, progress: u64) -> Event {
    Event::new(
        EventId::generate(),
        EventType::ProcessingProgress,
        progress_data(photo, owner, progress),
        Timestamp::now(),
    )
    .expect("valid bench event")
}

/// The event appender `appender` sends as its `n`th call, to a pseudo-random photo.
fn appender_event(appender: usize, n: u64) -> Event {
    let photo = (mix(((appender as u64) << 40) ^ n) % PHOTOS as u64) as usize;
    progress_event(
        &photo_name(photo),
        &format!("user-{:03}", photo % 37),
        n % 101,
    )
}

/// Group commit statistics captured from the store's metrics.
struct CommitStats {
    /// Events per group commit (`event_log_events_appended_total` increments).
    sizes: Histogram<u64>,
    /// Time per group commit, stage + `apply_batch` + `flush` (`event_log_group_commit_seconds`).
    micros: Histogram<u64>,
}

impl CommitStats {
    fn new() -> Self {
        Self {
            sizes: micros_histogram(),
            micros: micros_histogram(),
        }
    }
}

fn commit_stats() -> &'static Mutex<CommitStats> {
    static STATS: OnceLock<Mutex<CommitStats>> = OnceLock::new();
    STATS.get_or_init(|| Mutex::new(CommitStats::new()))
}

/// Takes what was recorded since the last call.
fn take_commit_stats() -> CommitStats {
    let mut stats = commit_stats().lock().expect("commit stats lock");
    std::mem::replace(&mut *stats, CommitStats::new())
}

struct GroupSizes;

impl metrics::CounterFn for GroupSizes {
    fn increment(&self, value: u64) {
        if let Ok(mut stats) = commit_stats().lock() {
            stats.sizes.saturating_record(value.max(1));
        }
    }

    fn absolute(&self, _value: u64) {}
}

struct CommitTimes;

impl metrics::HistogramFn for CommitTimes {
    fn record(&self, seconds: f64) {
        if let Ok(mut stats) = commit_stats().lock() {
            record_micros(&mut stats.micros, Duration::from_secs_f64(seconds.max(0.0)));
        }
    }
}

/// Captures the two metrics the committer records once per group commit; ignores the rest.
struct CommitRecorder;

impl metrics::Recorder for CommitRecorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }

    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }

    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }

    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        if key.name() == "event_log_events_appended_total" {
            metrics::Counter::from_arc(Arc::new(GroupSizes))
        } else {
            metrics::Counter::noop()
        }
    }

    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }

    fn register_histogram(
        &self,
        key: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        if key.name() == "event_log_group_commit_seconds" {
            metrics::Histogram::from_arc(Arc::new(CommitTimes))
        } else {
            metrics::Histogram::noop()
        }
    }
}

fn install_recorder() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        if metrics::set_global_recorder(CommitRecorder).is_err() {
            eprintln!("a metrics recorder was already set: group commit stats will be empty");
        }
    });
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("event-log-bench-")
        .tempdir()
        .expect("temp dir")
}

/// What one measured sample saw.
struct Sample {
    events: u64,
    elapsed: Duration,
    /// Per-append (durable_append) or per-batch (raw_sled_baseline) latency.
    latency: Histogram<u64>,
    commits: Option<CommitStats>,
}

/// The samples of one benchmark id, in call order (criterion's warm-up calls come first).
type Samples = Mutex<Vec<Sample>>;

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// Prints the last [`SAMPLES`] samples (the measured ones) of each id to stderr; under
/// `cargo test`, where each id ran once, only that there are no figures.
fn report(group: &str, what: &str, runs: &[(String, Samples)]) {
    if !support::benching() {
        eprintln!("{group}: (test mode, no figures)");
        return;
    }
    eprintln!("\n== {group}: over the {SAMPLES} measured samples (warm-up excluded) ==");
    for (id, samples) in runs {
        let samples = samples.lock().expect("samples lock");
        let measured = &samples[samples.len().saturating_sub(SAMPLES)..];
        if measured.is_empty() {
            continue;
        }
        let events: u64 = measured.iter().map(|s| s.events).sum();
        let elapsed: Duration = measured.iter().map(|s| s.elapsed).sum();
        let mut latency = micros_histogram();
        let mut sizes = micros_histogram();
        let mut commit_micros = micros_histogram();
        for sample in measured {
            latency.add(&sample.latency).expect("same histogram bounds");
            if let Some(commits) = &sample.commits {
                sizes.add(&commits.sizes).expect("same histogram bounds");
                commit_micros
                    .add(&commits.micros)
                    .expect("same histogram bounds");
            }
        }
        let rate = events as f64 / elapsed.as_secs_f64().max(1e-9);
        eprintln!(
            "{group}/{id}: {events} events in {:.2} s = {rate:.0} events/s; {what} latency ms: \
             p50 {:.3} p90 {:.3} p99 {:.3} p99.9 {:.3} max {:.3} (n={})",
            elapsed.as_secs_f64(),
            ms(latency.value_at_quantile(0.5)),
            ms(latency.value_at_quantile(0.9)),
            ms(latency.value_at_quantile(0.99)),
            ms(latency.value_at_quantile(0.999)),
            ms(latency.max()),
            latency.len(),
        );
        if !sizes.is_empty() {
            // Share of the timed wall time the committer spent inside group commits: near 100%
            // means the committer thread is the bottleneck.
            let busy = commit_micros.mean() * commit_micros.len() as f64 / 1e6;
            eprintln!(
                "{group}/{id}: {} group commits, events per commit mean {:.1} p50 {} max {}; \
                 commit time ms mean {:.3} p50 {:.3} p99 {:.3} max {:.3}; committer busy {:.0}%",
                sizes.len(),
                sizes.mean(),
                sizes.value_at_quantile(0.5),
                sizes.max(),
                commit_micros.mean() / 1000.0,
                ms(commit_micros.value_at_quantile(0.5)),
                ms(commit_micros.value_at_quantile(0.99)),
                ms(commit_micros.max()),
                100.0 * busy / elapsed.as_secs_f64().max(1e-9),
            );
        }
    }
}

/// A fresh store with each photo's first event (carrying the owner) already stored. The store
/// is closed and reopened after priming: closing joins the committer, so the priming commit's
/// metrics are recorded before the sample's commit statistics are reset.
fn primed_store(rt: &Runtime) -> (tempfile::TempDir, EventLog) {
    let dir = temp_dir();
    let log = EventLog::open_with(dir.path(), StoreOptions::default()).expect("open store");
    let firsts = (0..PHOTOS)
        .map(|photo| progress_event(&photo_name(photo), &format!("user-{:03}", photo % 37), 0))
        .collect();
    rt.block_on(log.append(firsts)).expect("prime photos");
    log.close().expect("close primed store");
    drop(log);
    let log = EventLog::open_with(dir.path(), StoreOptions::default()).expect("reopen store");
    (dir, log)
}

/// One sample of `durable_append`: `events` events from `appenders` concurrent appenders.
fn append_sample(rt: &Runtime, appenders: usize, events: u64) -> Sample {
    let (dir, log) = primed_store(rt);
    let per_appender = events / appenders as u64;
    let extra = events % appenders as u64;
    let work: Vec<Vec<Event>> = (0..appenders)
        .map(|a| {
            let n = per_appender + u64::from((a as u64) < extra);
            (0..n).map(|i| appender_event(a, i)).collect()
        })
        .collect();
    take_commit_stats();

    let (elapsed, histograms) = rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = work
            .into_iter()
            .map(|events| {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut latency = micros_histogram();
                    for event in events {
                        let sent = Instant::now();
                        let receipts = log.append(vec![event]).await.expect("durable append");
                        record_micros(&mut latency, sent.elapsed());
                        assert!(
                            receipts.len() == 1 && !receipts[0].duplicate,
                            "one new event stored per append"
                        );
                    }
                    latency
                })
            })
            .collect();
        let mut histograms = Vec::with_capacity(tasks.len());
        for task in tasks {
            histograms.push(task.await.expect("appender task"));
        }
        (start.elapsed(), histograms)
    });

    // Closing joins the committer: every commit of the sample has recorded its metrics.
    log.close().expect("close store");
    drop(log);
    drop(dir);
    let commits = take_commit_stats();
    let mut latency = micros_histogram();
    for histogram in &histograms {
        latency.add(histogram).expect("same histogram bounds");
    }
    Sample {
        events,
        elapsed,
        latency,
        commits: Some(commits),
    }
}

/// Runs the group `name`, flat-sampled and measured for `measurement`: one benchmark per
/// parameter in `params`, each sample taken by `sample(param, iterations)`; then reports the
/// measured samples, naming the latency `what`.
fn sampled_group(
    c: &mut Criterion,
    name: &str,
    what: &str,
    params: &[usize],
    measurement: Duration,
    sample: impl Fn(usize, u64) -> Sample,
) {
    let runs: Vec<(String, Samples)> = params
        .iter()
        .map(|n| (n.to_string(), Samples::default()))
        .collect();
    let mut group = c.benchmark_group(name);
    group
        .sample_size(SAMPLES)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(measurement)
        .throughput(Throughput::Elements(1));
    for (param, (_, samples)) in params.iter().zip(&runs) {
        group.bench_function(BenchmarkId::from_parameter(param), |b| {
            b.iter_custom(|iterations| {
                let sample = sample(*param, iterations);
                let elapsed = sample.elapsed;
                samples.lock().expect("samples lock").push(sample);
                elapsed
            });
        });
    }
    group.finish();
    report(name, what, &runs);
}

fn bench_durable_append(c: &mut Criterion) {
    install_recorder();
    let rt = runtime();
    sampled_group(
        c,
        "durable_append",
        "per-append",
        &APPENDERS,
        Duration::from_secs(8),
        |appenders, events| append_sample(&rt, appenders, events),
    );
}

/// Value size of the store's event record for the bench events (version byte + bincode of id,
/// type, ~200 B data, timestamp), as found by reading a store written with these events.
const RAW_VALUE_BYTES: usize = 247;
/// Value size of a stored photo status record, measured the same way.
const RAW_STATUS_BYTES: usize = 35;
/// Value size of an id index record for a one-room event, measured the same way.
const RAW_ID_BYTES: usize = 20;

/// What a raw batch holds besides one event record per event.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    /// Event records only: the baseline of the issue.
    EventsOnly,
    /// What the store writes per group commit: event records, plus a head and a status record
    /// per touched room and a commit record in the flushed batch, then the id index records
    /// (and the commit record's removal) in a second, unflushed batch as the indexer does.
    Store,
}

fn filler(len: usize, seed: u64) -> Vec<u8> {
    let mut value: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let seed = seed.to_be_bytes();
    let n = seed.len().min(len);
    value[..n].copy_from_slice(&seed[..n]);
    value
}

/// One sample of a raw sled baseline: `records` events in `apply_batch` + `flush` batches.
fn raw_sample(shape: Shape, batch: usize, records: u64) -> Sample {
    let dir = temp_dir();
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(StoreOptions::default().cache_capacity_bytes)
        .open()
        .expect("open sled");
    let rooms: Vec<String> = (0..PHOTOS)
        .map(|photo| format!("photo:{}", photo_name(photo)))
        .collect();
    let mut seqs = [0u64; PHOTOS];
    let mut latency = micros_histogram();

    let start = Instant::now();
    let mut written = 0u64;
    let mut commit_no = 0u64;
    while written < records {
        let n = (records - written).min(batch as u64);
        let sent = Instant::now();
        let mut writes = sled::Batch::default();
        let mut touched = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let room = (mix(written) % PHOTOS as u64) as usize;
            seqs[room] += 1;
            let key = keys::event(&rooms[room], seqs[room]);
            writes.insert(key, filler(RAW_VALUE_BYTES, written));
            touched.push(room);
            written += 1;
        }
        let ids = touched.len();
        if shape == Shape::Store {
            touched.sort_unstable();
            touched.dedup();
            let mut ranges = Vec::with_capacity(touched.len() * 20);
            for &room in &touched {
                let photo = &rooms[room]["photo:".len()..];
                writes.insert(keys::head(&rooms[room]), filler(2, seqs[room]));
                writes.insert(keys::status(photo), filler(RAW_STATUS_BYTES, seqs[room]));
                ranges.extend_from_slice(&filler(20, seqs[room]));
            }
            commit_no += 1;
            writes.insert(keys::commit(commit_no, 0), ranges);
        }
        db.apply_batch(writes).expect("apply_batch");
        db.flush().expect("flush");
        record_micros(&mut latency, sent.elapsed());
        if shape == Shape::Store {
            let mut index = sled::Batch::default();
            for i in 0..ids as u64 {
                let id = format!("{:032x}", mix(written - i));
                index.insert(keys::id(&id), filler(RAW_ID_BYTES, i));
            }
            index.remove(keys::commit(commit_no, 0));
            db.apply_batch(index).expect("apply index batch");
        }
    }
    let elapsed = start.elapsed();

    drop(db);
    drop(dir);
    Sample {
        events: records,
        elapsed,
        latency,
        commits: None,
    }
}

fn bench_raw_sled(c: &mut Criterion, name: &str, shape: Shape, batches: &[usize]) {
    sampled_group(
        c,
        name,
        "per-batch (apply_batch + flush)",
        batches,
        Duration::from_secs(6),
        |batch, records| raw_sample(shape, batch, records),
    );
}

/// Reads every event of `room` in pages; returns how many.
fn replay(log: &EventLog, room: &Room) -> u64 {
    let mut after = 0;
    let mut read = 0;
    loop {
        let page = log.read(room, after, REPLAY_PAGE).expect("read page");
        let Some(last) = page.last() else { break };
        after = last.seq;
        read += page.len() as u64;
        black_box(&page);
    }
    read
}

/// A store whose room `photo:photo-0000` holds `events` events, reopened after filling (as a
/// restarted hub would serve a resuming client).
fn replay_store(room: &Room, events: u64) -> (tempfile::TempDir, EventLog) {
    let rt = runtime();
    let dir = temp_dir();
    let photo = photo_name(0);
    let log = EventLog::open_with(dir.path(), StoreOptions::default()).expect("open store");
    let filled = Instant::now();
    let mut appended = 0;
    while appended < events {
        let batch = (appended..appended + REPLAY_PAGE as u64)
            .map(|i| progress_event(&photo, "user-000", i % 101))
            .collect();
        rt.block_on(log.append(batch)).expect("fill replay room");
        appended += REPLAY_PAGE as u64;
    }
    log.close().expect("close store");
    drop(log);
    let filled = filled.elapsed();
    let log = EventLog::open_with(dir.path(), StoreOptions::default()).expect("reopen store");
    assert_eq!(log.head(room).expect("head"), events);
    let first = Instant::now();
    assert_eq!(replay(&log, room), events);
    let first = first.elapsed();
    if support::benching() {
        eprintln!(
            "replay setup: appended {events} events to {room} in batches of {REPLAY_PAGE} in {:.2} s",
            filled.as_secs_f64()
        );
        eprintln!(
            "replay: first replay after reopen {:.1} ms = {:.0} events/s",
            first.as_secs_f64() * 1000.0,
            events as f64 / first.as_secs_f64()
        );
    }
    (dir, log)
}

fn bench_replay(c: &mut Criterion) {
    let room = Room::photo(&PhotoId::parse(&photo_name(0)).expect("photo id"));
    let events = if support::benching() {
        REPLAY_EVENTS
    } else {
        REPLAY_EVENTS_TEST_MODE
    };
    // Filled on first use only, so a run filtered to other benchmarks skips it.
    let mut store: Option<(tempfile::TempDir, EventLog)> = None;
    let mut group = c.benchmark_group("replay");
    group
        .sample_size(SAMPLES)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(events));
    group.bench_function("100k_one_room_pages_of_1000", |b| {
        let (_, log) = store.get_or_insert_with(|| replay_store(&room, events));
        b.iter(|| {
            let read = replay(log, &room);
            assert_eq!(read, events);
            read
        });
    });
    group.finish();
    if let Some((_dir, log)) = store {
        log.close().expect("close store");
    }
}

/// Checks that the bench events look as documented (about 200 B of data).
fn check_payload() {
    let event = appender_event(0, 0);
    let size = event.data_json.len();
    assert!(
        (DATA_BYTES - 5..=DATA_BYTES + 5).contains(&size),
        "bench event data is {size} B"
    );
    let mut photos = HashMap::new();
    for i in 0..10_000 {
        let event = appender_event(i % 64, i as u64);
        *photos
            .entry(event.photo_id.expect("photo event"))
            .or_insert(0u32) += 1;
    }
    assert_eq!(photos.len(), PHOTOS, "events reach every photo");
}

fn benches(c: &mut Criterion) {
    check_payload();
    bench_durable_append(c);
    bench_raw_sled(c, "raw_sled_baseline", Shape::EventsOnly, &RAW_BATCHES);
    bench_raw_sled(c, "raw_sled_store_shape", Shape::Store, &[64]);
    bench_replay(c);
}

criterion_group!(event_log, benches);
criterion_main!(event_log);
