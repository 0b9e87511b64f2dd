//! Protocol details not covered by the JavaScript suite: bus events, oversized packets and the
//! websocket heartbeat.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::uploaded;
use crate::support::hub::TestHub;
use crate::support::raw::open_websocket;
use crate::support::{WAIT, token};

/// The hub publishes `client.connected`, `client.subscribed` and `client.disconnected` on its bus
/// with the original design's fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_lifecycle_events_reach_the_bus() {
    let app = TestHub::spawn().await;
    let mut bus = app.bus().subscribe();
    app.publish_ok(&uploaded("p1", "u1")).await;
    let mut client = app
        .client(
            json!({ "token": token("u1", &["read:photos"]), "clientId": "c1", "sessionId": "s1" }),
        )
        .await;
    let established = client.next_named("connection:established").await;
    let ack = client
        .ack("subscribe:photo", json!({ "photoId": "p1" }))
        .await;
    assert_eq!(ack["ok"], true);
    client.close().await;

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let message = tokio::time::timeout(WAIT, bus.recv())
            .await
            .expect("bus message in time")
            .expect("bus open");
        seen.push((message.subject, message.payload));
    }
    let (subject, connected) = &seen[0];
    assert_eq!(subject, "client.connected");
    assert_eq!(connected["clientId"], "c1");
    assert_eq!(connected["userId"], "u1");
    assert_eq!(connected["sessionId"], "s1");
    assert_eq!(connected["socketId"], established["socketId"]);
    assert!(connected["timestamp"].is_string());
    assert_eq!(seen[1].0, "client.subscribed");
    assert_eq!(seen[1].1["photoId"], "p1");
    assert_eq!(seen[1].1["clientId"], "c1");
    assert_eq!(seen[2].0, "client.disconnected");
    assert_eq!(seen[2].1["userId"], "u1");
    assert!(seen[2].1["reason"].is_string());
    app.stop().await;
}

/// A packet over the size limit (`SOCKET_MAX_BUFFER_SIZE`, 1 MiB by default) is refused on the
/// websocket transport (the connection is closed) and on the polling transport (not accepted),
/// and the hub keeps serving others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_packets_are_refused_on_both_transports() {
    let app = TestHub::spawn().await;
    let auth = json!({ "token": token("u1", &["read:photos"]), "clientId": "big" });
    let huge = "x".repeat(2 * 1024 * 1024);

    let mut ws = open_websocket(&app.base, &auth).await;
    let oversized = format!("42[\"subscribe:photo\",{{\"photoId\":\"{huge}\"}}]");
    let _ = ws.send(Message::text(oversized)).await;
    let closed = tokio::time::timeout(WAIT, async {
        while let Some(message) = ws.next().await {
            if matches!(message, Ok(Message::Close(_)) | Err(_)) {
                return true;
            }
        }
        true
    })
    .await
    .expect("the websocket is closed in time");
    assert!(closed);

    let http = reqwest::Client::new();
    let open = http
        .get(format!("{}/socket.io/?EIO=4&transport=polling", app.base))
        .send()
        .await
        .expect("polling open");
    let body = open.text().await.expect("body");
    let handshake: Value = serde_json::from_str(body.trim_start_matches('0')).expect("open packet");
    let sid = handshake["sid"].as_str().expect("sid");
    let url = format!("{}/socket.io/?EIO=4&transport=polling&sid={sid}", app.base);
    let response = http
        .post(&url)
        .body(format!("40{auth}"))
        .send()
        .await
        .expect("connect");
    assert!(response.status().is_success());
    let response = http
        .post(&url)
        .body(format!("42[\"ping\",\"{huge}\"]"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("oversized post answered");
    assert!(
        !response.status().is_success(),
        "an oversized polling packet must be refused, got {}",
        response.status()
    );

    let mut client = app.client_for("u1").await;
    client.next_named("connection:established").await;
    client.client.emit("ping", json!({})).await.expect("ping");
    client.next_named("pong").await;
    client.close().await;
    app.stop().await;
}

/// A websocket client that answers pings stays connected; once it stops answering, the hub
/// drops it within the ping interval plus the ping timeout (the heartbeat runs in the socket's
/// own task, beside its writer: patches/engineioxide/PATCH.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_answering_pings_is_dropped_in_time() {
    const INTERVAL: Duration = Duration::from_millis(300);
    const TIMEOUT: Duration = Duration::from_millis(200);
    let app = TestHub::spawn_with(|s| {
        s.socket.ping_interval = INTERVAL;
        s.socket.ping_timeout = TIMEOUT;
    })
    .await;
    let auth = json!({ "token": token("u1", &["read:photos"]), "clientId": "beat" });
    let mut ws = open_websocket(&app.base, &auth).await;

    // Dropped: a close packet, a close frame, or the end of the stream.
    let is_drop = |message: &Option<Result<Message, _>>| match message {
        Some(Ok(Message::Text(text))) => text.as_str() == "1",
        Some(Ok(Message::Close(_)) | Err(_)) | None => true,
        Some(Ok(_)) => false,
    };
    let answering_until = tokio::time::Instant::now() + INTERVAL * 5;
    let mut pings = 0;
    while let Ok(message) = tokio::time::timeout_at(answering_until, ws.next()).await {
        assert!(!is_drop(&message), "dropped while answering pings");
        if let Some(Ok(Message::Text(text))) = message
            && text.as_str() == "2"
        {
            pings += 1;
            ws.send(Message::text("3")).await.expect("pong");
        }
    }
    assert!(pings >= 4, "a ping every interval, got {pings}");

    let silent_from = tokio::time::Instant::now();
    let dropped = tokio::time::timeout(INTERVAL + TIMEOUT + Duration::from_secs(2), async {
        loop {
            if is_drop(&ws.next().await) {
                return silent_from.elapsed();
            }
        }
    })
    .await
    .expect("dropped once it stops answering");
    assert!(
        dropped + Duration::from_millis(50) >= TIMEOUT
            && dropped <= INTERVAL + TIMEOUT + Duration::from_millis(250),
        "dropped {dropped:?} after the last pong (interval {INTERVAL:?}, timeout {TIMEOUT:?})"
    );
    app.stop().await;
}
