//! A reconnect storm: many clients replaying long histories at once must not stall live delivery
//! to another client.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{progress_batch, uploaded};
use crate::support::hub::TestHub;
use crate::support::token;

const REPLAYERS: usize = 12;
const HISTORY: usize = 3000;

/// While 12 clients each replay 3,000 events, an event published to another room reaches its live
/// subscriber within a second, before the replays are done; then every replay completes in full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_do_not_stall_live_delivery() {
    let app = TestHub::spawn().await;
    app.publish_ok(&json!([uploaded("big", "u1"), uploaded("live", "u2")]))
        .await;
    for _ in 0..HISTORY / 500 {
        app.publish_ok(&progress_batch("big", 500)).await;
    }
    let head = (HISTORY + 1) as u64;

    let mut live = app.client_for("u2").await;
    live.next_named("connection:established").await;
    let ack = live
        .ack("subscribe:photo", json!({ "photoId": "live" }))
        .await;
    assert_eq!(ack["ok"], true);

    let mut replayers = Vec::new();
    for i in 0..REPLAYERS {
        let auth = json!({ "token": token("u1", &["read:photos"]), "clientId": format!("r{i}"), "resume": { "photo:big": 0 } });
        replayers.push(app.client(auth).await);
    }
    let sent = Instant::now();
    app.publish_ok(&json!({ "type": "photo.processing.progress", "data": { "photoId": "live", "progress": 7 } })).await;
    let seqs = live.seqs_until("photo:live", 2).await;
    let live_at = live.last_received_at;
    let latency = live_at - sent;
    assert_eq!(seqs, vec![2]);

    let mut unfinished_at_live = 0;
    let mut tasks = Vec::new();
    for mut client in replayers {
        tasks.push(tokio::spawn(async move {
            let seqs = client.seqs_until("photo:big", head).await;
            let finished_at = client.last_received_at;
            client.next_named("resume:complete").await;
            client.close().await;
            (seqs, finished_at)
        }));
    }
    for task in tasks {
        let (seqs, finished_at) = task.await.expect("replayer");
        assert_eq!(
            seqs,
            (1..=head).collect::<Vec<_>>(),
            "a replay is complete and in order"
        );
        if finished_at > live_at {
            unfinished_at_live += 1;
        }
    }
    eprintln!(
        "live event after {latency:?}; {unfinished_at_live} of {REPLAYERS} replays were still running"
    );
    assert!(
        unfinished_at_live > 0,
        "the replays finished before the live event: the test showed nothing"
    );
    assert!(
        latency < Duration::from_secs(1),
        "live delivery stalled for {latency:?} during the replays"
    );
    live.close().await;
    app.stop().await;
}
