//! Events from JetStream reach clients in order; live-only events are not stored; the hub's own
//! `client.*` events appear on NATS.

use async_nats::jetstream;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::helpers::{IdSource, publish, spawn_hub, spawn_hub_up};
use crate::support::WAIT;
use crate::support::client::TestClient;
use crate::support::hub::TestHub;
use crate::support::nats::NatsServer;

/// Publishes the upload of photo `p1` by `u1` on JetStream, waits until the hub stored it, and
/// subscribes a client of `u1` to it; returns the client and the subscribe ack (checked `ok`).
async fn subscribed_to_p1(hub: &TestHub, js: &jetstream::Context) -> (TestClient, Value) {
    let uploaded = json!({ "data": { "photoId": "p1", "userId": "u1" } });
    publish(js, "photo.uploaded", uploaded, "up-1", IdSource::Body).await;
    hub.wait_for_stored("photo:p1", 1).await;
    let mut client = hub.client_for("u1").await;
    client.next_named("connection:established").await;
    let ack = client
        .ack("subscribe:photo", json!({ "photoId": "p1" }))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    (client, ack)
}

/// Events published on JetStream reach a subscribed Socket.IO client in publish order, with
/// gap-free seqs and the producers' ids; `system.health` reaches it live and is not stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_events_reach_a_subscribed_client_in_order() {
    let nats = NatsServer::start().await;
    let hub = spawn_hub_up(&nats).await;
    let js = nats.jetstream().await;

    let (mut client, ack) = subscribed_to_p1(&hub, &js).await;
    assert_eq!(ack["headSeq"], 1);

    let count = 120;
    for i in 0..count {
        let body = json!({ "data": { "photoId": "p1", "progress": i % 101 } });
        publish(
            &js,
            "photo.processing.progress",
            body,
            &format!("progress-{i}"),
            IdSource::nth(i),
        )
        .await;
    }
    let mut received = Vec::new();
    while received.len() < count {
        let (name, payload) = client.next().await;
        if name == "photo.processing.progress" {
            received.push(payload);
        }
    }
    let seqs: Vec<u64> = received.iter().filter_map(|p| p["seq"].as_u64()).collect();
    assert_eq!(seqs, (2..=count as u64 + 1).collect::<Vec<_>>());
    let progress: Vec<u64> = received
        .iter()
        .filter_map(|p| p["progress"].as_u64())
        .collect();
    assert_eq!(
        progress,
        (0..count as u64).map(|i| i % 101).collect::<Vec<_>>()
    );
    for (i, payload) in received.iter().enumerate() {
        let id = payload["eventId"].as_str().expect("eventId");
        match IdSource::nth(i) {
            IdSource::Body | IdSource::Header => assert_eq!(id, format!("progress-{i}")),
            IdSource::Derived => assert!(id.starts_with("nats:PHOTO_EVENTS:"), "{id}"),
        }
        assert_eq!(payload["room"], "photo:p1");
    }

    publish(
        &js,
        "system.health",
        json!({ "data": { "cpu": 0.5 } }),
        "health-1",
        IdSource::Body,
    )
    .await;
    let health = client.next_named("system.health").await;
    assert_eq!(health["room"], "global");
    assert_eq!(health["eventId"], "health-1");
    assert_eq!(health["cpu"], 0.5);
    assert!(health.get("seq").is_none(), "live-only: no seq: {health}");
    assert_eq!(hub.stored("global").await, 0, "system.health is not stored");

    client.close().await;
    hub.stop().await;
}

/// The hub publishes `client.connected`, `client.subscribed` and `client.disconnected` on NATS
/// with the original design's fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_events_appear_on_nats() {
    let nats = NatsServer::start().await;
    let hub = spawn_hub(&nats).await;
    let js = nats.jetstream().await;
    let observer = async_nats::connect(nats.url()).await.expect("connect");
    let mut events = observer.subscribe("client.>").await.expect("subscribe");
    observer.flush().await.expect("flush");

    let (client, _) = subscribed_to_p1(&hub, &js).await;
    client.close().await;

    let mut seen: Vec<(String, Value)> = Vec::new();
    while seen.len() < 3 {
        let message = tokio::time::timeout(WAIT, events.next())
            .await
            .expect("a client event in time")
            .expect("subscription open");
        let payload: Value = serde_json::from_slice(&message.payload).expect("JSON payload");
        seen.push((message.subject.to_string(), payload));
    }
    let subjects: Vec<&str> = seen.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "client.connected",
            "client.subscribed",
            "client.disconnected"
        ]
    );
    let (_, connected) = &seen[0];
    assert_eq!(connected["clientId"], "c-u1");
    assert_eq!(connected["userId"], "u1");
    assert!(connected["socketId"].is_string() && connected["timestamp"].is_string());
    let (_, subscribed) = &seen[1];
    assert_eq!(subscribed["clientId"], "c-u1");
    assert_eq!(subscribed["photoId"], "p1");
    let (_, disconnected) = &seen[2];
    assert_eq!(disconnected["userId"], "u1");
    assert!(disconnected["reason"].is_string());

    hub.stop().await;
}
