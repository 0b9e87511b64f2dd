//! What the event-id index costs in sled alone, per id, for candidate layouts, next to the same
//! writes without an index in the same run (docs/benchmarks.md, "Event-id index layouts").
//!
//! `cargo bench --bench id_index` (pin it with `taskset -c 0` to count one core). Each layout gets
//! a fresh sled dir (the store's cache size) and writes `ID_BENCH_GROUPS` (default 200; 5 under
//! `cargo test`, which prints no figures) groups of 1,000 events the way the store does for HTTP
//! batches of 1,000 over 100 photo rooms: one ~2.5 KB block record per room and a commit record,
//! `apply_batch` + `flush` (the committer), then the group's index records and the commit record's
//! removal in one unflushed `apply_batch` (the derived writer; the next flush writes them). The
//! process' CPU time (all of sled's threads) and the wall time are reported per event.
//! `ID_BENCH_LAYOUT=<name>` runs one layout only (for `valgrind --tool=callgrind`, whose
//! instruction counts compare layouts on a busy machine).
//!
//! Layouts:
//! - `none`: no index records (the baseline).
//! - `per_id_counter_ids`: `i <id>` per event, ids `ev-<n>` (those of `benches/http_ingest.py`).
//! - `per_id_random_ids`: `i <id>` per event, 32 random hex digits (UUID-like producer ids).
//! - `per_id_clustered`: `i <group no> <id>` per event: the same records, with keys in write order
//!   (what a time-clustered layout would cost; a lookup would then need to know the group).
//! - `per_group`: one record per group holding every (id, placement) of it (the floor: a lookup
//!   would need an in-memory filter to find the group).

// The shared test kit; this bench uses only part of it.
#[allow(dead_code)]
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use socket_bridge::store::keys;

/// Events per group commit (an HTTP batch).
const GROUP: usize = 1000;
/// Photo rooms a group's events are spread over.
const ROOMS: usize = 100;
/// Bytes of one event's block entry.
const ENTRY_BYTES: usize = 250;
/// Bytes of one encoded placement (two rooms and seqs).
const PLACEMENT_BYTES: usize = 40;
/// The store's sled cache.
const CACHE_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Clone, Copy, PartialEq)]
enum Layout {
    None,
    PerIdCounterIds,
    PerIdRandomIds,
    PerIdClustered,
    PerGroup,
}

impl Layout {
    const ALL: [Layout; 5] = [
        Layout::None,
        Layout::PerIdCounterIds,
        Layout::PerIdRandomIds,
        Layout::PerIdClustered,
        Layout::PerGroup,
    ];

    fn name(self) -> &'static str {
        match self {
            Layout::None => "none",
            Layout::PerIdCounterIds => "per_id_counter_ids",
            Layout::PerIdRandomIds => "per_id_random_ids",
            Layout::PerIdClustered => "per_id_clustered",
            Layout::PerGroup => "per_group",
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let groups = std::env::var("ID_BENCH_GROUPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if support::benching() { 200 } else { 5 });
    let only = std::env::var("ID_BENCH_LAYOUT").ok();
    let mut baseline = None;
    for layout in Layout::ALL {
        if only.as_deref().is_some_and(|name| name != layout.name()) {
            continue;
        }
        let (cpu_us, wall_us) = run(layout, groups)?;
        if !support::benching() {
            continue;
        }
        let events = (groups * GROUP) as f64;
        let (cpu, wall) = (cpu_us / events, wall_us / events);
        let extra = baseline.map_or(String::new(), |(base_cpu, _)| {
            format!("  (+{:.2} us CPU per id)", cpu - base_cpu)
        });
        println!(
            "{:<20} {cpu:>6.2} us CPU, {wall:>6.2} us wall per event, {:>7.0} events/s{extra}",
            layout.name(),
            1e6 / wall
        );
        if layout == Layout::None {
            baseline = Some((cpu, wall));
        }
    }
    if !support::benching() {
        println!("id_index: {groups} groups per layout written (test mode, no figures)");
    }
    Ok(())
}

/// Writes `groups` groups in `layout` into a fresh tree; returns (process CPU, wall) in us.
fn run(layout: Layout, groups: usize) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(CACHE_BYTES)
        .open()?;
    let entry = vec![7u8; ENTRY_BYTES];
    let placement = vec![3u8; PLACEMENT_BYTES];
    let mut heads = vec![0u64; ROOMS];
    let mut random = 0x9e37_79b9_7f4a_7c15u64;
    let cpu_before = cpu_us()?;
    let started = Instant::now();
    for group in 0..groups {
        let mut blocks = sled::Batch::default();
        let per_room = GROUP / ROOMS;
        for (room, head) in heads.iter_mut().enumerate() {
            *head += per_room as u64;
            let block: Vec<u8> = entry.repeat(per_room);
            blocks.insert(keys::event(&format!("photo:p{room}"), *head), block);
        }
        blocks.insert(keys::commit(group as u64, 0), vec![0u8; 8 * ROOMS]);
        db.apply_batch(blocks)?;
        db.flush()?;

        let mut index = sled::Batch::default();
        let ids = (0..GROUP).map(|i| match layout {
            Layout::PerIdRandomIds => {
                random = random
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let low = random.rotate_left(17) ^ 0x5851_f42d_4c95_7f2d;
                format!("{random:016x}{low:016x}")
            }
            _ => format!("ev-{}", group * GROUP + i),
        });
        match layout {
            Layout::None => {}
            Layout::PerIdCounterIds | Layout::PerIdRandomIds => {
                for id in ids {
                    index.insert(keys::id(&id), placement.clone());
                }
            }
            Layout::PerIdClustered => {
                for id in ids {
                    let mut key = vec![keys::ID];
                    key.extend_from_slice(&(group as u64).to_be_bytes());
                    key.extend_from_slice(id.as_bytes());
                    index.insert(key, placement.clone());
                }
            }
            Layout::PerGroup => {
                let mut record = Vec::with_capacity(GROUP * (PLACEMENT_BYTES + 12));
                for id in ids {
                    record.extend_from_slice(id.as_bytes());
                    record.extend_from_slice(&placement);
                }
                let mut key = vec![keys::ID];
                key.extend_from_slice(&(group as u64).to_be_bytes());
                index.insert(key, record);
            }
        }
        index.remove(keys::commit(group as u64, 0));
        db.apply_batch(index)?;
    }
    db.flush()?;
    let wall = started.elapsed().as_secs_f64() * 1e6;
    let cpu = cpu_us()? - cpu_before;
    drop(db);
    Ok((cpu, wall))
}

/// This process' CPU time (user + system, every thread) in microseconds.
fn cpu_us() -> Result<f64, Box<dyn std::error::Error>> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| -> Result<f64, Box<dyn std::error::Error>> {
        Ok(fields
            .get(i)
            .ok_or("short /proc/self/stat")?
            .parse::<f64>()?)
    };
    // utime and stime are fields 14 and 15 (1-based), clock ticks of 10 ms.
    Ok((ticks(11)? + ticks(12)?) * 10_000.0)
}
