//! NATS going away: the hub keeps serving, reports the bus down, and consumes again by itself
//! when NATS is back, losing nothing.

use async_nats::jetstream;
use serde_json::json;
use socket_bridge::app::AppError;
use socket_bridge::store::Faults;

use crate::helpers::{
    IdSource, assert_workload_stored, consume, kept_header, publish, publish_raw, publish_workload,
    spawn_hub, upload_p1, workload_event,
};
use crate::support::WAIT;
use crate::support::hub::{TestHub, settings};
use crate::support::nats::{
    HUB_CONSUMER, NatsServer, consumer_ack_floor, wait_consumed, wait_dead_letters,
};

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

/// When the event log cannot write, the hub acks nothing it could not store: it stops for its
/// supervisor (`AppError::StoreFailed`) with the consumer's ack floor still at the last stored
/// message, and the next run on the same data dir stores each of the refused messages once, in
/// order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_fault_acks_nothing_and_the_next_run_stores_it() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut hub_settings = settings(dir.path());
    consume(&nats, &mut hub_settings);
    let faults = Faults::default();
    let mut faulty = hub_settings.clone();
    faulty.store.faults = faults.clone();
    let hub = TestHub::start(faulty).await;
    hub.wait_for_bus("up").await;

    let js = nats.jetstream().await;
    let uploaded = json!({ "data": { "photoId": "p1", "userId": "u1" } });
    publish(&js, "photo.uploaded", uploaded, "up-1", IdSource::Body).await;
    hub.wait_for_stored("photo:p1", 1).await;
    wait_consumed(&js, HUB_CONSUMER, WAIT).await;
    let floor = consumer_ack_floor(&js).await;

    faults.fail_next_writes(1);
    let ids = ["pr-1", "pr-2", "pr-3"];
    for (n, id) in ids.iter().enumerate() {
        let body = json!({ "data": { "photoId": "p1", "userId": "u1", "progress": n * 10 } });
        publish(&js, "photo.processing.progress", body, id, IdSource::Body).await;
    }
    ends_with_nothing_settled(hub, &js, floor, "nothing acked after the failed write").await;

    let hub = TestHub::start(hub_settings).await;
    wait_consumed(&js, HUB_CONSUMER, WAIT * 2).await;
    let events = hub.history("photo:p1").await;
    let stored: Vec<(&str, u64)> = events
        .iter()
        .map(|e| {
            (
                e["eventId"].as_str().unwrap_or(""),
                e["seq"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        stored,
        [("up-1", 1), ("pr-1", 2), ("pr-2", 3), ("pr-3", 4)],
        "each refused message stored once, in order"
    );
    hub.stop().await;
}

/// A refused message in a batch whose write fails is not terminated either: under ack-all its
/// termination would settle the events before it, which were not stored. The ack floor stays at
/// the last stored message, and the next run stores the events, in order, and dead-letters the
/// refused message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_fault_settles_no_refusal_of_its_batch() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut hub_settings = settings(dir.path());
    consume(&nats, &mut hub_settings);
    let hub = TestHub::start(hub_settings.clone()).await;
    hub.wait_for_bus("up").await;
    let js = nats.jetstream().await;
    let floor = upload_p1(&js, &hub).await;
    hub.stop().await;

    // Published while no hub runs, so that the three come in one batch.
    for (n, id) in ["pr-1", "pr-2"].iter().enumerate() {
        if n == 1 {
            publish_raw(&js, "photo.uploaded", b"{not json".to_vec()).await;
        }
        let body = json!({ "data": { "photoId": "p1", "progress": n * 10 } });
        publish(&js, "photo.processing.progress", body, id, IdSource::Body).await;
    }
    let faults = Faults::default();
    faults.fail_next_writes(1);
    let mut faulty = hub_settings.clone();
    faulty.store.faults = faults;
    let hub = TestHub::start(faulty).await;
    ends_with_nothing_settled(hub, &js, floor, "nothing of the failed batch settled").await;

    let hub = TestHub::start(hub_settings).await;
    wait_consumed(&js, HUB_CONSUMER, WAIT * 2).await;
    let ids: Vec<String> = hub
        .history("photo:p1")
        .await
        .iter()
        .filter_map(|e| e["eventId"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        ids,
        ["up", "pr-1", "pr-2"],
        "each event stored once, in order"
    );
    let kept = wait_dead_letters(&js, 1).await;
    assert_eq!(
        kept_header(&kept[0], "Socket-Bridge-Reason"),
        "invalid_json"
    );
    hub.stop().await;
}

/// The hub ends on its failed store write, and the ack floor is still `floor`.
async fn ends_with_nothing_settled(hub: TestHub, js: &jetstream::Context, floor: u64, why: &str) {
    let ended = hub.ended().await;
    assert!(matches!(ended, Err(AppError::StoreFailed)), "{ended:?}");
    assert_eq!(consumer_ack_floor(js).await, floor, "{why}");
}
