//! The hub's limits and failure answers (docs/protocol.md): connections beyond
//! `--max-connections` are refused `overloaded`, photo subscriptions beyond
//! `--max-subscriptions-per-socket` answer `too_many_subscriptions`, batches beyond
//! `--max-batch-events` answer 413 `batch_too_large`, a failing event log answers 503 and stops
//! the hub, seqs up to 2^64-1 are resumed without overflow, an expired token ends its socket (each
//! on time, whatever the order they came in), and
//! `--metrics-listen` keeps `/metrics` off the public listener.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use socket_bridge::app::{AppError, Application};
use socket_bridge::store::Faults;

use crate::helpers::{progress_batch, uploaded};
use crate::support::api::{Api, answer};
use crate::support::client::{CONNECT_ERROR, DISCONNECT, TestClient};
use crate::support::hub::TestHub;
use crate::support::{WAIT, token, token_for};

/// A `system.maintenance` event: stored in `global`, which every socket is in.
fn maintenance(message: &str) -> Value {
    json!({ "type": "system.maintenance", "data": { "message": message } })
}

/// Connects `user` (client id `c-<user>`); returns the client and its first event.
async fn connect(hub: &Api, user: &str) -> (TestClient, (String, Value)) {
    let mut client = hub.client_for(user).await;
    let first = client.next().await;
    (client, first)
}

/// With `--max-connections 2`, a third socket is refused `overloaded` while the two connected
/// ones still receive events; once one of them leaves, a new socket gets in.
#[tokio::test]
async fn connections_beyond_the_limit_are_refused_overloaded() {
    let hub = TestHub::spawn_with(|s| s.limits.max_connections = 2).await;
    let (mut first, established) = connect(&hub, "u1").await;
    assert_eq!(established.0, "connection:established");
    let (mut second, established) = connect(&hub, "u2").await;
    assert_eq!(established.0, "connection:established");

    let (_third, refused) = connect(&hub, "u3").await;
    assert_eq!(
        refused,
        (
            CONNECT_ERROR.to_owned(),
            json!({ "message": "overloaded", "data": { "reason": "max_connections" } })
        )
    );

    hub.publish_ok(&maintenance("still served")).await;
    for client in [&mut first, &mut second] {
        let event = client.next_named("system.maintenance").await;
        assert_eq!(event["message"], "still served");
    }

    first.close().await;
    let started = Instant::now();
    loop {
        let (client, first_event) = connect(&hub, "u4").await;
        if first_event.0 == "connection:established" {
            client.close().await;
            break;
        }
        assert_eq!(first_event.0, CONNECT_ERROR, "{first_event:?}");
        assert!(started.elapsed() < WAIT, "no slot freed after a disconnect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.close().await;
}

/// With `--max-subscriptions-per-socket 2`, the third photo a socket subscribes to answers
/// `too_many_subscriptions` (a photo it already has is still fine); unsubscribing frees a slot.
#[tokio::test]
async fn photo_subscriptions_beyond_the_limit_are_refused() {
    let hub = TestHub::spawn_with(|s| s.limits.max_subscriptions = 2).await;
    for photo in ["p1", "p2", "p3"] {
        hub.publish_ok(&uploaded(photo, "u1")).await;
    }
    let mut client = hub.client_for("u1").await;
    client.next_named("connection:established").await;
    let subscribe = |photo: &str| json!({ "photoId": photo });

    for photo in ["p1", "p2", "p1"] {
        let ack = client.ack("subscribe:photo", subscribe(photo)).await;
        assert_eq!(ack["ok"], true, "{photo}: {ack}");
    }
    let refused = client.ack("subscribe:photo", subscribe("p3")).await;
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(refused["error"], "too_many_subscriptions", "{refused}");

    let left = client.ack("unsubscribe:photo", subscribe("p1")).await;
    assert_eq!(left["ok"], true, "{left}");
    let ack = client.ack("subscribe:photo", subscribe("p3")).await;
    assert_eq!(ack["ok"], true, "a freed slot: {ack}");
    client.close().await;
}

/// With `--max-batch-events 3`, a batch of 4 answers 413 `batch_too_large` and stores none of
/// its events; a batch of 3 is stored whole.
#[tokio::test]
async fn batches_beyond_the_limit_are_refused_whole() {
    let hub = TestHub::spawn_with(|s| s.limits.max_batch_events = 3).await;
    hub.publish_ok(&uploaded("p1", "u1")).await;

    let (status, body) = hub.publish(&progress_batch("p1", 4)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"], "batch_too_large", "{body}");
    assert_eq!(
        hub.stored("photo:p1").await,
        1,
        "nothing of the batch stored"
    );

    hub.publish_ok(&progress_batch("p1", 3)).await;
    assert_eq!(hub.stored("photo:p1").await, 4);
}

/// When the event log cannot write, ingest answers 503 `store_unavailable`,
/// `/health/detailed` answers 503 with the store `failing`, and the hub's run ends with
/// `AppError::StoreFailed` (so that a supervisor restarts it).
#[tokio::test]
async fn a_failing_store_answers_503_and_stops_the_hub() {
    let faults = Faults::default();
    let hub = TestHub::spawn_with(|s| s.store.faults = faults.clone()).await;
    hub.publish_ok(&uploaded("p1", "u1")).await;

    faults.fail_next_writes(1);
    let (status, body) = hub.publish(&progress_batch("p1", 1)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "store_unavailable", "{body}");

    let (status, health) = answer(hub.request(Method::GET, "/health/detailed")).await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["details"]["store"]["status"], "failing", "{health}");

    let ended = hub.ended().await;
    assert!(matches!(ended, Err(AppError::StoreFailed)), "{ended:?}");
}

/// A write that does not return (sled's flush stuck on a full disk) is a failure once
/// `--store-write-deadline` has passed: the waiting publish answers 503 `store_unavailable`,
/// `/health/detailed` says `failing`, and the hub's run ends with `AppError::StoreFailed` without
/// waiting for the stuck write.
#[tokio::test]
async fn a_write_that_does_not_return_answers_503_and_stops_the_hub() {
    let faults = Faults::default();
    let hub = TestHub::spawn_with(|s| {
        s.store.faults = faults.clone();
        s.store.write_deadline = Duration::from_millis(500);
    })
    .await;
    hub.publish_ok(&uploaded("p1", "u1")).await;

    faults.stall_writes(true);
    let published = tokio::time::timeout(
        Duration::from_secs(5),
        hub.publish(&progress_batch("p1", 1)),
    )
    .await;
    let ended = match &published {
        Ok(_) => Some(hub.ended().await),
        Err(_) => None,
    };
    // Released before asserting: the stuck thread must not outlive a failed check.
    faults.stall_writes(false);
    let (status, body) = published.expect("the publish is answered once the deadline has passed");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "store_unavailable", "{body}");
    let ended = ended.expect("ended");
    assert!(matches!(ended, Err(AppError::StoreFailed)), "{ended:?}");
}

/// `subscribe:photo` with `since` 2^64-1 (beyond any head) and a handshake `resume` with that
/// seq are answered as docs/protocol.md ("Truncation") says: `replay:truncated` with
/// `requestedSeq` 2^64-1 (no overflow), then the room from its oldest event; the connection
/// stands.
#[tokio::test]
async fn the_largest_seq_is_replayed_as_beyond_the_head() {
    let hub = TestHub::spawn().await;
    hub.publish_ok(&uploaded("p1", "u1")).await;
    hub.publish_ok(&progress_batch("p1", 2)).await;

    let mut client = hub.client_for("u1").await;
    client.next_named("connection:established").await;
    let ack = client
        .ack(
            "subscribe:photo",
            json!({ "photoId": "p1", "since": u64::MAX }),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let truncated = client.next_named("replay:truncated").await;
    assert_eq!(truncated["room"], "photo:p1");
    assert_eq!(truncated["requestedSeq"], u64::MAX, "{truncated}");
    assert_eq!(truncated["oldestSeq"], 1, "{truncated}");
    assert_eq!(client.seqs_until("photo:p1", 3).await, [1, 2, 3]);
    hub.publish_ok(&progress_batch("p1", 1)).await;
    assert_eq!(client.seqs_until("photo:p1", 4).await, [4], "still live");
    client.close().await;

    let mut resumed = hub
        .client(json!({
            "token": token("u1", &["read:photos"]),
            "clientId": "c-again",
            "resume": { "photo:p1": u64::MAX },
        }))
        .await;
    let truncated = resumed.next_named("replay:truncated").await;
    assert_eq!(truncated["requestedSeq"], u64::MAX, "{truncated}");
    assert_eq!(resumed.seqs_until("photo:p1", 4).await, [1, 2, 3, 4]);
    let complete = resumed.next_named("resume:complete").await;
    assert_eq!(complete["rooms"]["photo:p1"], 4, "{complete}");
    let pong = resumed.ack("ping", json!({})).await;
    assert!(
        pong["timestamp"].is_string(),
        "the connection stands: {pong}"
    );
    resumed.close().await;
}

/// A socket whose token expires (no leeway) is sent `auth:expired` and disconnected; with a
/// fresh token and `resume` it gets everything stored in the meantime.
#[tokio::test]
async fn an_expired_token_ends_its_socket_and_resume_catches_up() {
    let hub = TestHub::spawn_with(|s| s.token_leeway = Duration::ZERO).await;
    let short = token_for("u1", &["read:photos"], Duration::from_secs(2));
    let mut client = hub
        .client(json!({ "token": short, "clientId": "c-u1" }))
        .await;
    let established = client.next_named("connection:established").await;
    let epoch = established["epoch"].as_str().expect("epoch").to_owned();
    hub.publish_ok(&uploaded("p1", "u1")).await;
    assert_eq!(client.seqs_until("user:u1", 1).await, [1]);

    let expired = client
        .receives("auth:expired", Duration::from_secs(5))
        .await;
    assert!(expired.is_some(), "auth:expired within 5 s");
    assert!(
        client.receives(DISCONNECT, WAIT).await.is_some(),
        "disconnected after auth:expired"
    );
    hub.publish_ok(&uploaded("p2", "u1")).await;
    hub.publish_ok(&uploaded("p3", "u1")).await;

    let mut again = hub
        .client(json!({
            "token": token("u1", &["read:photos"]),
            "clientId": "c-u1",
            "epoch": epoch,
            "resume": { "user:u1": 1 },
        }))
        .await;
    assert_eq!(again.seqs_until("user:u1", 3).await, [2, 3]);
    again.close().await;
}

/// Expiries share one timer: a socket whose token expires sooner, connected after one whose
/// token expires later, is still expired on time; a socket that left before its expiry changes
/// nothing; and the later one stays connected.
#[tokio::test]
async fn a_sooner_expiry_connected_later_is_kept_on_time() {
    let hub = TestHub::spawn_with(|s| s.token_leeway = Duration::ZERO).await;
    let connect = |user: &str, ttl: u64| {
        let token = token_for(user, &["read:photos"], Duration::from_secs(ttl));
        let client = hub.client(json!({ "token": token, "clientId": format!("c-{user}") }));
        async move {
            let mut client = client.await;
            client.next_named("connection:established").await;
            client
        }
    };
    let mut later = connect("u1", 60).await;
    let left = connect("u2", 1).await;
    left.close().await;
    let started = Instant::now();
    let mut sooner = connect("u3", 2).await;

    let expired = sooner
        .receives("auth:expired", Duration::from_secs(5))
        .await;
    assert!(expired.is_some(), "auth:expired within 5 s");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "expired on time, not after {:?}",
        started.elapsed()
    );
    assert!(
        sooner.receives(DISCONNECT, WAIT).await.is_some(),
        "disconnected after auth:expired"
    );
    let pong = later.ack("ping", json!({})).await;
    assert!(
        pong["timestamp"].is_string(),
        "the later one stands: {pong}"
    );
    assert!(
        later
            .receives("auth:expired", Duration::from_millis(200))
            .await
            .is_none(),
        "not expired with the sooner one"
    );
    later.close().await;
}

/// With `--metrics-listen`, `/metrics` is served on that address only: the public listener
/// answers 404 for it, the metrics listener serves the counters.
#[tokio::test]
async fn metrics_listen_moves_metrics_off_the_public_listener() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = crate::support::hub::settings(dir.path());
    settings.metrics_listen = Some("127.0.0.1:0".parse().expect("addr"));
    let app = Application::build(&settings).await.expect("the app builds");
    let metrics_addr = app.metrics_addr().expect("a metrics listener");
    let hub = TestHub::run(app, settings);

    let public = hub
        .request(Method::GET, "/metrics")
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(public.status(), 404, "no metrics on the public listener");
    let internal = Api::new(format!("http://{metrics_addr}")).metrics().await;
    assert!(
        internal.contains("event_log_events_appended_total"),
        "metrics on the metrics listener: {internal}"
    );
    assert_eq!(
        hub.health().await["status"],
        "ok",
        "the API is still served"
    );
    hub.stop().await;
}
