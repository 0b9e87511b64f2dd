//! Jobs across restarts: a job queued before a stop is done after it; an attempt cut off by a
//! stop (its `started` stored, no end) is tried again, and after the last allowed attempt the
//! photo is failed, never left `processing`.

use serde_json::{Value, json};

use crate::helpers::{PhotoApi, Processing, owner};
use crate::images;
use crate::support::client::Received;
use crate::support::hub::TestHub;

/// Stores `started` events for attempts `1..=n` of `photo`, as a worker cut off by a crash
/// leaves them.
async fn cut_off_attempts(hub: &TestHub, photo: &str, n: u32) {
    for attempt in 1..=n {
        hub.publish_ok(&json!({
            "id": format!("{photo}:attempt:{attempt}:started"),
            "type": "photo.processing.started",
            "data": { "photoId": photo, "userId": "u1", "attempt": attempt, "progress": 0 },
        }))
        .await;
    }
}

/// The photo's `status` as its owner u1 reads it.
async fn status(hub: &TestHub, photo: &str) -> Value {
    let path = format!("/api/photos/{photo}/status");
    hub.get_answer(&path, &owner("u1")).await.1["status"].clone()
}

/// Stops `hub` (which runs no worker) and starts it again with the worker; returns it and the
/// processing events of `photo` as u1's socket sees them.
async fn restart_with_worker(hub: TestHub, photo: &str) -> (TestHub, Vec<Received>) {
    let hub = hub
        .stop()
        .await
        .start_with(|s| s.photos.worker = true)
        .await;
    let mut socket = hub.socket("u1").await;
    let events = socket.processing(photo).await;
    (hub, events)
}

/// A photo uploaded while no worker runs stays pending across a stop, and is processed by the
/// worker of the next start.
#[tokio::test]
async fn queued_job_survives_a_restart() {
    let hub = TestHub::spawn_with(|s| s.photos.worker = false).await;
    let photo = hub.upload("u1", "later.jpg", images::jpeg(640, 480)).await;
    assert_eq!(status(&hub, &photo).await, "pending");
    let (hub, events) = restart_with_worker(hub, &photo).await;
    let (name, completed) = events.last().expect("events");
    assert_eq!(name, "photo.processing.completed");
    assert_eq!(completed["attempt"], 1);
    hub.stop().await;
}

/// An attempt cut off in the middle (`started`, then the hub gone) is tried again at the next
/// start as attempt 2, and completes.
#[tokio::test]
async fn cut_off_attempt_is_tried_again() {
    let hub = TestHub::spawn_with(|s| s.photos.worker = false).await;
    let photo = hub.upload("u1", "again.jpg", images::jpeg(640, 480)).await;
    cut_off_attempts(&hub, &photo, 1).await;
    assert_eq!(status(&hub, &photo).await, "processing");
    let (hub, events) = restart_with_worker(hub, &photo).await;
    let attempts: Vec<_> = events
        .iter()
        .filter(|(name, _)| name == "photo.processing.started")
        .map(|(_, v)| v["attempt"].as_u64())
        .collect();
    assert_eq!(attempts, [Some(1), Some(2)]);
    assert_eq!(
        events.last().map(|(n, _)| n.as_str()),
        Some("photo.processing.completed")
    );
    hub.stop().await;
}

/// A photo whose every allowed attempt was cut off is failed at the next start, with an error
/// that says so.
#[tokio::test]
async fn photo_cut_off_too_often_is_failed() {
    let hub = TestHub::spawn_with(|s| {
        s.photos.worker = false;
        s.photos.max_attempts = 2;
    })
    .await;
    let photo = hub.upload("u1", "cursed.jpg", images::jpeg(64, 64)).await;
    cut_off_attempts(&hub, &photo, 2).await;
    let (hub, events) = restart_with_worker(hub, &photo).await;
    let (name, failed) = events.last().expect("events");
    assert_eq!(name, "photo.processing.failed");
    assert_eq!(
        failed["error"],
        "processing was cut off 2 times (the hub stopped during it)"
    );
    assert_eq!(status(&hub, &photo).await, "failed");
    hub.stop().await;
}
