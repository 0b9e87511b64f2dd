//! The events stream and retention agree: JetStream keeps a message no longer than the hub keeps
//! its event, and an event retention pruned never comes back by redelivery.

use std::time::Duration;

use serde_json::json;
use socket_bridge::domain::Timestamp;
use socket_bridge::store::{EventLog, RetentionPolicy};

use crate::helpers::{IdSource, publish, spawn_hub};
use crate::support::WAIT;
use crate::support::nats::{HUB_CONSUMER, NatsServer, STREAM, create_stream, wait_consumed};

/// The hub sets the existing stream's max age to the retention age. Events stored from NATS and
/// then pruned are not stored again when JetStream redelivers every message (the consumer deleted
/// and created again, delivering from the start): the photo room keeps only what retention left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruned_events_do_not_come_back_by_redelivery() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    create_stream(&js).await;
    let uploaded = json!({ "data": { "photoId": "p1", "userId": "u1" } });
    publish(&js, "photo.uploaded", uploaded, "up", IdSource::Body).await;
    for n in 1..=3 {
        let body = json!({ "data": { "photoId": "p1", "progress": n * 10 } });
        let source = IdSource::nth(n);
        publish(
            &js,
            "photo.processing.progress",
            body,
            &format!("pr-{n}"),
            source,
        )
        .await;
    }
    let hub = spawn_hub(&nats).await;
    hub.wait_for_stored("photo:p1", 4).await;
    wait_consumed(&js, HUB_CONSUMER, WAIT).await;
    let config = js
        .get_stream(STREAM)
        .await
        .expect("stream")
        .cached_info()
        .config
        .clone();
    assert_eq!(
        config.max_age,
        Duration::from_secs(7 * 24 * 3600),
        "the retention age"
    );
    let stopped = hub.stop().await;

    let log = EventLog::open(stopped.data_dir().join("store")).expect("open the store");
    let policy = RetentionPolicy {
        max_age: Duration::from_secs(7 * 24 * 3600),
        max_events_per_room: 1,
    };
    let report = log.prune(&policy, Timestamp::now(), false).expect("prune");
    assert_eq!(report.events_removed, 3, "photo:p1 keeps its newest event");
    log.close().expect("close");
    drop(log);

    js.delete_consumer_from_stream(HUB_CONSUMER, STREAM)
        .await
        .expect("delete the consumer");
    let hub = stopped.start().await;
    wait_consumed(&js, HUB_CONSUMER, WAIT).await;
    // The hub has acked (or terminated) every redelivered message: nothing is on its way.
    let seqs = hub.stored_seqs("photo:p1").await;
    assert_eq!(seqs, [4], "the pruned events came back");
    assert_eq!(hub.stored("user:u1").await, 1);
    hub.stop().await;
}
