//! The event-id index while its runs are merged: lookups from other threads go on during the
//! writer's merges and never miss an id that is stored (a merge stops listing the runs it merged
//! before it removes their records, and waits for the lookups still reading them). And the run
//! filters the committer keeps in memory between groups stay within their bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use socket_bridge::domain::{Event, EventId, EventType};
use socket_bridge::store::{EventLog, StoreOptions};

use crate::helpers::{photo_event, runtime, temp_store};

/// Ids stored before the readers start, and ids stored while they read.
const SEEDED: usize = 2_000;
const ROUNDS: usize = 40;
const PER_ROUND: usize = 500;

/// Events `from..to`, each with its own producer id, over 64 photos.
fn batch(from: usize, to: usize) -> Vec<Event> {
    (from..to)
        .map(|n| {
            photo_event(
                &format!("id-{n}"),
                EventType::ProcessingProgress,
                &format!("p{}", n % 64),
                "u",
                json!({}),
            )
        })
        .collect()
}

#[test]
fn lookups_during_merges_never_miss_a_stored_id() {
    let (_dir, rt, log) = temp_store();
    for start in (0..SEEDED).step_by(PER_ROUND) {
        rt.block_on(log.append(batch(start, start + PER_ROUND)))
            .expect("append");
        assert!(log.sync_statuses(Duration::from_secs(5)), "ids written");
    }
    let done = Arc::new(AtomicBool::new(false));
    let lookups = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..2)
        .map(|reader| {
            let (log, done, lookups) = (log.clone(), Arc::clone(&done), Arc::clone(&lookups));
            std::thread::spawn(move || {
                let mut n = reader;
                while !done.load(Ordering::Relaxed) {
                    let id = EventId::parse(&format!("id-{}", n % SEEDED)).expect("id");
                    let placement = log.placement(&id).expect("lookup");
                    assert!(placement.is_some(), "{id} stored, not found during merges");
                    lookups.fetch_add(1, Ordering::Relaxed);
                    n += 7;
                }
            })
        })
        .collect();
    // Each round is its own writer batch (a run per partition): every fourth merges a tier.
    for round in 0..ROUNDS {
        let start = SEEDED + round * PER_ROUND;
        let receipts = rt
            .block_on(log.append(batch(start, start + PER_ROUND)))
            .expect("append");
        assert!(receipts.iter().all(|r| !r.duplicate), "new ids are new");
        assert!(log.sync_statuses(Duration::from_secs(5)), "ids written");
    }
    done.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.join().expect("a reader never missed");
    }
    assert!(
        lookups.load(Ordering::Relaxed) > 1_000,
        "the readers ran alongside the merges"
    );
    let again = rt
        .block_on(log.append(batch(0, SEEDED + ROUNDS * PER_ROUND)))
        .expect("append");
    assert!(
        again.iter().all(|r| r.duplicate),
        "every id is recognised after the merges"
    );
}

/// With the default bound the committer keeps the filters a group read for the next group; with
/// a bound below them it keeps none, and every id is still recognised (each group reads the
/// filters it needs again).
#[test]
fn kept_id_filters_stay_within_their_bound() {
    let rt = runtime();
    for bound in [StoreOptions::default().id_filter_cache_bytes, 1] {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = StoreOptions {
            id_filter_cache_bytes: bound,
            ..StoreOptions::default()
        };
        let log = EventLog::open_with(dir.path(), options).expect("open");
        for start in (0..SEEDED).step_by(PER_ROUND) {
            rt.block_on(log.append(batch(start, start + PER_ROUND)))
                .expect("append");
            assert!(log.sync_statuses(Duration::from_secs(5)), "ids written");
        }
        // New ids: their lookups read the filters of the runs written above.
        let fresh = rt
            .block_on(log.append(batch(SEEDED, SEEDED + PER_ROUND)))
            .expect("append");
        assert!(fresh.iter().all(|r| !r.duplicate), "new ids are new");
        let kept = log.id_filter_bytes();
        assert!(kept <= bound, "{kept} bytes kept, bound {bound}");
        if bound > 1 {
            assert!(kept > 0, "the filters read are kept for the next group");
        } else {
            assert_eq!(kept, 0, "filters past the bound are not kept");
        }
        let again = rt
            .block_on(log.append(batch(0, SEEDED + PER_ROUND)))
            .expect("append");
        assert!(
            again.iter().all(|r| r.duplicate),
            "every id is recognised, filters kept or not (bound {bound})"
        );
    }
}
