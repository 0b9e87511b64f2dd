//! The SSE endpoints: replay then live with no gap and no duplicate, `Last-Event-ID` and
//! `?after=`, `replay:truncated` after a prune, refusals, and the end of streams at shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::hub::{SseReader, progress, stream, uploaded};
use crate::support::api::Api;
use crate::support::binary::HubProcess;
use crate::support::{WAIT, token, token_for};

/// Events the publisher stores while streams resume.
const TOTAL: u64 = 400;

/// Reads `reader` until it has delivered `until`, checking every event against the seq expected
/// next; returns the last seq read.
async fn read_contiguous(reader: &mut SseReader, mut last: u64, until: u64) -> u64 {
    while last < until {
        let event = reader.next().await;
        let seq: u64 = event.id.parse().expect("a stored event has its seq as id");
        assert_eq!(seq, last + 1, "a gap or a duplicate after seq {last}");
        assert_eq!(event.event, "photo.processing.progress");
        let payload: Value = serde_json::from_str(&event.data).expect("JSON data");
        assert_eq!(payload["seq"], seq, "data.seq is the SSE id");
        assert_eq!(payload["room"], "photo:p1");
        last = seq;
    }
    last
}

/// A stream opened with `Last-Event-ID` while events keep arriving, dropped, and opened again
/// from the last seq it delivered, yields every seq once, in order, across both handovers.
#[tokio::test]
async fn resume_with_last_event_id_is_gap_free_while_events_arrive() {
    let hub = HubProcess::spawn(|_| {}).await;
    hub.publish_ok(&uploaded("p1", "u1")).await;
    let head = Arc::new(AtomicU64::new(1));
    let publisher = {
        let (publisher, head) = (Api::clone(&hub), Arc::clone(&head));
        tokio::spawn(async move {
            let mut next = 2;
            while next <= TOTAL {
                let batch: Vec<Value> = (next..next + 4).map(|i| progress("p1", i)).collect();
                publisher.publish_ok(&json!(batch)).await;
                next += 4;
                head.store(next - 1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    while head.load(Ordering::SeqCst) < 100 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let support = token("amy", &["support:read"]);
    let response = stream(&hub, "/api/photos/p1/stream", Some(&support), Some(50)).await;
    let live_at_first_open = head.load(Ordering::SeqCst);
    let mut reader = SseReader::new(response);
    let last = read_contiguous(&mut reader, 50, 200).await;
    drop(reader);
    let response = stream(&hub, "/api/photos/p1/stream", Some(&support), Some(last)).await;
    let live_at_second_open = head.load(Ordering::SeqCst);
    let mut reader = SseReader::new(response);
    read_contiguous(&mut reader, last, TOTAL + 1).await;
    publisher.await.expect("publisher");
    assert!(
        live_at_first_open < TOTAL && live_at_second_open < TOTAL,
        "the streams must open while events are still arriving (heads {live_at_first_open}, {live_at_second_open})"
    );
}

/// `?after=N` starts at `N + 1`; a `Last-Event-ID` header wins over it (a reconnecting
/// `EventSource` sends both); a room stream works the same, with each room's own seqs.
#[tokio::test]
async fn after_query_and_last_event_id() {
    let hub = HubProcess::spawn(|_| {}).await;
    hub.publish_ok(&json!([
        uploaded("p1", "u1"),
        progress("p1", 10),
        progress("p1", 20)
    ]))
    .await;
    let owner = token("u1", &["read:photos"]);
    let mut reader =
        SseReader::new(stream(&hub, "/api/photos/p1/stream?after=1", Some(&owner), None).await);
    assert_eq!(reader.next().await.id, "2");
    let mut reader =
        SseReader::new(stream(&hub, "/api/photos/p1/stream?after=0", Some(&owner), Some(2)).await);
    assert_eq!(reader.next().await.id, "3");
    let mut room = SseReader::new(
        stream(
            &hub,
            "/api/rooms/user:u1/stream?after=0",
            Some(&owner),
            None,
        )
        .await,
    );
    let first = room.next().await;
    assert_eq!(
        (first.id.as_str(), first.event.as_str()),
        ("1", "photo.uploaded")
    );
    hub.publish_ok(&json!({ "type": "photo.processing.completed", "data": { "photoId": "p1" } }))
        .await;
    let live = room.next().await;
    assert_eq!(
        (live.id.as_str(), live.event.as_str()),
        ("2", "photo.processing.completed")
    );
    let payload: Value = serde_json::from_str(&live.data).expect("JSON");
    assert_eq!(payload["room"], "user:u1");
}

/// After retention removed a prefix, a stream from the start gets `replay:truncated` (with the
/// photo's status) first, then the kept events; the overview shows the pass.
#[tokio::test]
async fn truncated_after_a_prune() {
    let hub = HubProcess::spawn(|c| {
        c.args([
            "--retention-max-events",
            "3",
            "--prune-schedule",
            "* * * * * *",
        ]);
    })
    .await;
    let mut batch = vec![uploaded("p1", "u1")];
    batch.extend((1..10).map(|i| progress("p1", i * 10)));
    hub.publish_ok(&json!(batch)).await;
    let support = token("amy", &["support:read"]);
    let until = std::time::Instant::now() + WAIT;
    loop {
        let (_, info) = hub.get_answer("/api/rooms/photo:p1", &support).await;
        if info["oldestSeq"] == 8 {
            assert_eq!(info["headSeq"], 10);
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "retention did not run: {info}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut reader =
        SseReader::new(stream(&hub, "/api/photos/p1/stream", Some(&support), Some(0)).await);
    let notice = reader.next().await;
    assert_eq!(notice.event, "replay:truncated");
    assert_eq!(notice.id, "", "a notice has no seq of its own");
    let notice: Value = serde_json::from_str(&notice.data).expect("JSON");
    assert_eq!(notice["room"], "photo:p1");
    assert_eq!(notice["requestedSeq"], 1);
    assert_eq!(notice["oldestSeq"], 8);
    assert_eq!(notice["status"]["status"], "processing");
    assert_eq!(notice["status"]["lastSeq"], 10);
    let ids: Vec<String> = [
        reader.next().await,
        reader.next().await,
        reader.next().await,
    ]
    .into_iter()
    .map(|e| e.id)
    .collect();
    assert_eq!(ids, ["8", "9", "10"]);
    let (_, overview) = hub.get_answer("/api/overview", &support).await;
    let last_run = &overview["retention"]["lastRun"];
    assert_eq!(last_run["ok"], true, "{overview}");
    assert!(last_run["eventsRemoved"].as_u64() >= Some(7), "{overview}");
    assert_eq!(overview["store"]["oldestEvent"]["room"], "photo:p1");
    assert_eq!(overview["retention"]["maxEventsPerRoom"], 3);
}

/// 401 without a token (and a hint when it came in the URL), 403 for another user's photo or
/// room, 404 for an unknown photo, 400 for a bad room or `Last-Event-ID`.
#[tokio::test]
async fn refusals() {
    let hub = HubProcess::spawn(|_| {}).await;
    hub.publish_ok(&uploaded("p1", "u1")).await;
    let other = token("u2", &["read:photos"]);
    let cases: [(&str, Option<&str>, Option<u64>, u16); 6] = [
        ("/api/photos/p1/stream", None, None, 401),
        ("/api/photos/p1/stream", Some(&other), None, 403),
        ("/api/rooms/user:u1/stream", Some(&other), None, 403),
        ("/api/photos/p9/stream", Some(&other), None, 404),
        ("/api/rooms/nowhere/stream", Some(&other), None, 400),
        ("/api/rooms/global/stream", Some(&other), Some(0), 200),
    ];
    for (path, bearer, last, expected) in cases {
        let response = stream(&hub, path, bearer, last).await;
        assert_eq!(response.status().as_u16(), expected, "{path}");
    }
    let response = stream(
        &hub,
        &format!("/api/photos/p1/stream?token={other}"),
        None,
        None,
    )
    .await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.expect("JSON");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("Authorization")),
        "{body}"
    );
    let response = hub
        .request(Method::GET, "/api/photos/p1/stream")
        .bearer_auth(token("u1", &["read:photos"]))
        .header("Last-Event-ID", "seven")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 400);
}

/// On SIGTERM an open stream ends and the hub exits 0 in time (streams do not hold shutdown).
#[tokio::test]
async fn streams_end_at_shutdown() {
    let mut hub = HubProcess::spawn(|_| {}).await;
    hub.publish_ok(&uploaded("p1", "u1")).await;
    let mut reader = SseReader::new(
        stream(
            &hub,
            "/api/photos/p1/stream",
            Some(&token("u1", &["read:photos"])),
            Some(0),
        )
        .await,
    );
    assert_eq!(reader.next().await.id, "1");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &hub.pid().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    assert!(
        reader.ends_within(Duration::from_secs(5)).await,
        "the stream ended"
    );
    let status = hub
        .wait_exit(Duration::from_secs(6))
        .expect("the hub exited");
    assert!(status.success(), "{status:?}");
}

/// A stream whose token expires (no leeway) sends `event: auth:expired` after what came before
/// and ends; a fresh token with `Last-Event-ID` goes on with the next event.
#[tokio::test]
async fn an_expired_token_ends_its_stream() {
    let hub = HubProcess::spawn(|c| {
        c.args(["--token-leeway", "0s"]);
    })
    .await;
    hub.publish_ok(&uploaded("p1", "u1")).await;
    let short = token_for("u1", &["read:photos"], Duration::from_secs(2));
    let mut reader =
        SseReader::new(stream(&hub, "/api/photos/p1/stream", Some(&short), Some(0)).await);
    assert_eq!(reader.next().await.id, "1");
    let expired = reader.next().await;
    assert_eq!(expired.event, "auth:expired", "{expired:?}");
    assert!(
        reader.ends_within(Duration::from_secs(2)).await,
        "the stream ends after auth:expired"
    );
    hub.publish_ok(&progress("p1", 10)).await;
    let fresh = token("u1", &["read:photos"]);
    let mut again =
        SseReader::new(stream(&hub, "/api/photos/p1/stream", Some(&fresh), Some(1)).await);
    assert_eq!(again.next().await.id, "2");
}
