//! The replay-to-live handover: no gap and no duplicate while events are appended during it.

use serde_json::json;

use crate::helpers::{progress_batch, uploaded};
use crate::support::api::Api;
use crate::support::hub::TestHub;

const ROUNDS: usize = 15;
const BATCHES: usize = 12;
const BATCH: usize = 25;

/// A client subscribes with `since: 0` while another task appends hundreds of events to the room
/// in batches; it must receive seq 1..n exactly, in order. Repeated with the subscribe landing at
/// different moments of the append stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_with_since_during_appends_is_gap_free() {
    let app = TestHub::spawn().await;
    let mut client = app.client_for("u1").await;
    client.next_named("connection:established").await;
    for round in 0..ROUNDS {
        let photo = format!("h{round}");
        app.publish_ok(&uploaded(&photo, "u1")).await;
        let publisher = {
            let api = Api::clone(&app);
            let photo = photo.clone();
            tokio::spawn(async move {
                for _ in 0..BATCHES {
                    api.publish_ok(&progress_batch(&photo, BATCH)).await;
                }
            })
        };
        // Land the subscribe somewhere inside the append stream.
        tokio::time::sleep(std::time::Duration::from_millis((round as u64 * 7) % 40)).await;
        let ack = client
            .ack("subscribe:photo", json!({ "photoId": photo, "since": 0 }))
            .await;
        assert_eq!(ack["ok"], true, "{ack}");
        publisher.await.expect("publisher");
        let n = (1 + BATCHES * BATCH) as u64;
        let seqs = client.seqs_until(&format!("photo:{photo}"), n).await;
        assert_eq!(
            seqs,
            (1..=n).collect::<Vec<_>>(),
            "round {round}: seqs must be 1..{n} exactly once, in order"
        );
        let ack = client
            .ack("unsubscribe:photo", json!({ "photoId": photo }))
            .await;
        assert_eq!(ack["ok"], true);
    }
    client.close().await;
    app.stop().await;
}
