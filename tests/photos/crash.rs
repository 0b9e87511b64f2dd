//! A real crash: the `socket-bridge` binary is killed (SIGKILL) in the middle of processing a
//! photo; started again on the same data dir, it processes the photo again as attempt 2.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{PhotoApi, owner};
use crate::images;
use crate::support::WAIT;
use crate::support::api::Api;
use crate::support::binary::HubProcess;

/// Waits until the photo's status is `wanted`.
async fn wait_for(hub: &Api, photo: &str, wanted: &str) -> Value {
    let path = format!("/api/photos/{photo}/status");
    let started = Instant::now();
    loop {
        let (_, status) = hub.get_answer(&path, &owner("u1")).await;
        if status["status"] == wanted {
            return status;
        }
        assert!(started.elapsed() < WAIT * 2, "never {wanted}: {status}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// SIGKILL while the photo is `processing`: after the restart the cut-off attempt is followed by
/// attempt 2, which completes.
#[tokio::test]
async fn killed_mid_job_then_completed_after_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let hub = HubProcess::start(dir.path(), |_| {}).await;
    let photo = hub.upload("u1", "big.jpg", images::jpeg(4000, 3000)).await;
    wait_for(&hub, &photo, "processing").await;
    hub.kill();

    let hub = HubProcess::start(dir.path(), |_| {}).await;
    wait_for(&hub, &photo, "completed").await;
    let page = hub
        .get_json(&format!("/api/photos/{photo}/events"), &owner("u1"))
        .await;
    let events = page["events"].as_array().expect("events");
    let attempts: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "photo.processing.started")
        .map(|e| e["data"]["attempt"].as_u64())
        .collect();
    assert_eq!(attempts, [Some(1), Some(2)], "{events:?}");
    let completed = events.last().expect("an event");
    assert_eq!(completed["type"], "photo.processing.completed");
    assert_eq!(completed["data"]["attempt"], 2);
}
