//! NATS going away: the hub keeps serving, reports the bus down, and consumes again by itself
//! when NATS is back, losing nothing.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::bridge::WAIT;
use crate::helpers::{
    IdSource, NatsServer, assert_workload_stored, consumer_backlog, hub_settings, nats_of, publish,
    publish_workload, spawn_hub, workload_event,
};

/// A NATS restart while the hub is consuming loses nothing: the events published before and
/// after it are all stored once, in order, and `/health/detailed` shows the bus down, then up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restart_while_the_hub_runs_loses_nothing() {
    let mut nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = hub_settings(dir.path(), &nats.url());
    nats_of(&mut args).batch_size = 20;
    let hub = spawn_hub(args).await;
    hub.wait_for_bus("up").await;
    let js = nats.jetstream().await;
    let (first, photos) = (1000, 4);
    publish_workload(&js, first, photos).await;
    hub.wait_for_stored("photo:p0", 2).await;

    nats.stop();
    hub.wait_for_bus("down").await;
    let health = hub.health().await;
    assert_eq!(health["details"]["websocket"]["status"], "healthy");
    nats.launch().await;
    hub.wait_for_bus("up").await;

    // Publish the rest of the workload on a fresh connection, after the restart.
    let js = nats.jetstream().await;
    let total = 1200;
    for n in first..total {
        let (subject, body) = workload_event(n, photos);
        publish(&js, &subject, body, &format!("body-{n}"), IdSource::Body).await;
    }
    let started = Instant::now();
    while consumer_backlog(&js).await != (0, 0) {
        assert!(started.elapsed() < WAIT * 2, "not consumed in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_workload_stored(&hub, total, photos).await;
    hub.stop().await;
}

/// With NATS down at start the hub still starts and serves HTTP, reports the bus down, and
/// creates the stream and consumes as soon as NATS is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_starts_without_nats_and_consumes_once_it_is_up() {
    let mut nats = NatsServer::unstarted();
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = spawn_hub(hub_settings(dir.path(), &nats.url())).await;
    let health = hub.health().await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(
        health["details"]["bus"],
        json!({ "type": "nats", "status": "down" })
    );

    nats.launch().await;
    hub.wait_for_bus("up").await;
    let js = nats.jetstream().await;
    let body = json!({ "data": { "photoId": "p1", "userId": "u1" } });
    publish(&js, "photo.uploaded", body, "up-1", IdSource::Header).await;
    hub.wait_for_stored("photo:p1", 1).await;
    let events = hub.history("photo:p1").await;
    assert_eq!(events[0]["eventId"], "up-1");
    hub.stop().await;
}
