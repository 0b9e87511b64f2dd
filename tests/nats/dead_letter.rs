//! Refused messages are terminated, counted, and copied to the dead-letter subject with the
//! reason; the consumer goes on with the next message.

use std::time::Duration;

use futures::StreamExt;
use serde_json::json;

use crate::helpers::{IdSource, publish, publish_raw, spawn_hub};
use crate::support::WAIT;
use crate::support::nats::{HUB_CONSUMER, NatsServer, create_stream, wait_consumed};

/// Each kind of bad message (invalid JSON, unknown type, a photo event without `photoId`, a
/// `type` that differs from the subject, oversized data, an owner mismatch) lands on the
/// dead-letter subject with its reason and stream sequence, is never redelivered, and the good
/// message after it is stored. All of them are in one batch, so the owner mismatch, refused by the
/// store, also shows that the rest of the batch is appended again without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_dead_lettered_and_the_next_good_one_is_stored() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    create_stream(&js).await;
    let observer = async_nats::connect(nats.url()).await.expect("connect");
    let mut dead = observer
        .subscribe("socket-bridge.dead-letter")
        .await
        .expect("subscribe");
    observer.flush().await.expect("flush");

    let good = |n: u64| json!({ "data": { "photoId": "p1", "progress": n, "n": n } });
    let uploaded = json!({ "data": { "photoId": "p1", "userId": "u1", "n": 0 } });
    publish(&js, "photo.uploaded", uploaded, "up", IdSource::Body).await;
    let bad: Vec<(&str, Vec<u8>, &str)> = vec![
        ("photo.uploaded", b"{not json".to_vec(), "invalid_json"),
        (
            "photo.exploded",
            json!({ "data": { "photoId": "p1" } })
                .to_string()
                .into_bytes(),
            "unknown_type",
        ),
        (
            "photo.processing.progress",
            json!({ "data": { "progress": 5 } })
                .to_string()
                .into_bytes(),
            "missing_field",
        ),
        (
            "photo.processing.progress",
            json!({ "type": "photo.deleted", "data": { "photoId": "p1" } })
                .to_string()
                .into_bytes(),
            "type_mismatch",
        ),
        (
            "system.maintenance",
            json!({ "data": { "blob": "x".repeat(70_000) } })
                .to_string()
                .into_bytes(),
            "too_large",
        ),
        (
            "photo.processing.progress",
            json!({ "data": { "photoId": "p1", "userId": "u2" } })
                .to_string()
                .into_bytes(),
            "owner_mismatch",
        ),
    ];
    for (i, (subject, body, _)) in bad.iter().enumerate() {
        publish_raw(&js, subject, body.clone()).await;
        let n = i as u64 + 1;
        publish(
            &js,
            "photo.processing.progress",
            good(n),
            &format!("good-{n}"),
            IdSource::Body,
        )
        .await;
    }

    let hub = spawn_hub(&nats).await;
    hub.wait_for_stored("photo:p1", bad.len() + 1).await;
    let stored: Vec<u64> = hub
        .history("photo:p1")
        .await
        .iter()
        .filter_map(|e| e["data"]["n"].as_u64())
        .collect();
    assert_eq!(stored, (0..=bad.len() as u64).collect::<Vec<_>>());

    for (i, (subject, body, reason)) in bad.iter().enumerate() {
        let copy = tokio::time::timeout(WAIT, dead.next())
            .await
            .expect("a dead letter in time")
            .expect("subscription open");
        let headers = copy.headers.clone().expect("dead-letter headers");
        let header = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
        assert_eq!(header("Socket-Bridge-Reason").as_deref(), Some(*reason));
        assert_eq!(header("Socket-Bridge-Subject").as_deref(), Some(*subject));
        // The uploaded event is sequence 1; then bad and good messages alternate.
        let sequence = (2 + 2 * i).to_string();
        assert_eq!(
            header("Socket-Bridge-Stream-Sequence").as_deref(),
            Some(sequence.as_str())
        );
        assert!(header("Socket-Bridge-Error").is_some_and(|e| !e.is_empty()));
        assert_eq!(
            copy.payload.as_ref(),
            body.as_slice(),
            "{reason}: body copied"
        );
    }

    let metrics = hub.metrics().await;
    for (_, _, reason) in &bad {
        let line = format!("nats_messages_dead_lettered_total{{reason=\"{reason}\"}}");
        assert!(metrics.contains(&line), "{line} missing from /metrics");
    }

    // Terminated, not redelivered: nothing pending, and no second copy after the ack wait.
    wait_consumed(&js, HUB_CONSUMER, WAIT).await;
    let again = tokio::time::timeout(Duration::from_secs(3), dead.next()).await;
    assert!(again.is_err(), "a refused message was redelivered");
    hub.stop().await;
}
