//! NATS going away: the hub keeps serving, reports the bus down, and consumes again by itself
//! when NATS is back, losing nothing.

use serde_json::json;

use crate::helpers::{
    IdSource, assert_workload_stored, consume, publish, publish_workload, spawn_hub, workload_event,
};
use crate::support::WAIT;
use crate::support::hub::TestHub;
use crate::support::nats::{HUB_CONSUMER, NatsServer, wait_consumed};

/// A NATS restart while the hub is consuming loses nothing: the events published before and
/// after it are all stored once, in order, and `/health/detailed` shows the bus down, then up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restart_while_the_hub_runs_loses_nothing() {
    let mut nats = NatsServer::start().await;
    let hub = TestHub::spawn_with(|settings| consume(&nats, settings).batch_size = 20).await;
    hub.wait_for_bus("up").await;
    let js = nats.jetstream().await;
    let (first, photos) = (1000, 4);
    publish_workload(&js, first, photos).await;
    hub.wait_for_stored("photo:p0", 2).await;

    nats.stop();
    hub.wait_for_bus("down").await;
    let health = hub.health().await;
    assert_eq!(health["details"]["websocket"]["status"], "healthy");
    nats.restart().await;
    hub.wait_for_bus("up").await;

    // Publish the rest of the workload on a fresh connection, after the restart.
    let js = nats.jetstream().await;
    let total = 1200;
    for n in first..total {
        let (subject, body) = workload_event(n, photos);
        publish(&js, &subject, body, &format!("body-{n}"), IdSource::Body).await;
    }
    wait_consumed(&js, HUB_CONSUMER, WAIT * 2).await;
    assert_workload_stored(&hub, total, photos).await;
    hub.stop().await;
}

/// With NATS down at start the hub still starts and serves HTTP, reports the bus down, and
/// creates the stream and consumes as soon as NATS is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_starts_without_nats_and_consumes_once_it_is_up() {
    // A first run gives the server its port; it is down when the hub starts.
    let mut nats = NatsServer::start().await;
    nats.stop();
    let hub = spawn_hub(&nats).await;
    let health = hub.health().await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(
        health["details"]["bus"],
        json!({ "type": "nats", "status": "down" })
    );

    nats.restart().await;
    hub.wait_for_bus("up").await;
    let js = nats.jetstream().await;
    let body = json!({ "data": { "photoId": "p1", "userId": "u1" } });
    publish(&js, "photo.uploaded", body, "up-1", IdSource::Header).await;
    hub.wait_for_stored("photo:p1", 1).await;
    let events = hub.history("photo:p1").await;
    assert_eq!(events[0]["eventId"], "up-1");
    hub.stop().await;
}
