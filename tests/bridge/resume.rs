//! Resume after a disconnect, and status across a restart of the app.

use serde_json::{Value, json};

use crate::helpers::{progress_batch, uploaded};
use crate::support::hub::TestHub;
use crate::support::token;

/// A client that disconnects and resumes with its last seqs gets exactly the missed seqs of each
/// room, then `resume:complete` with the heads; a room it may not read is refused, and it stays
/// connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_replays_exactly_the_missed_seqs() {
    let app = TestHub::spawn().await;
    app.publish_ok(&json!([uploaded("p1", "u1"), uploaded("other", "u2")]))
        .await;
    app.publish_ok(&progress_batch("p1", 4)).await;

    let mut first = app.client_for("u1").await;
    let established = first.next_named("connection:established").await;
    let epoch = established["epoch"].as_str().expect("epoch").to_owned();
    assert_eq!(
        established["rooms"],
        json!({ "user:u1": 1, "client:c-u1": 0, "global": 0 }),
        "the default rooms' heads, where live delivery starts"
    );
    let ack = first
        .ack("subscribe:photo", json!({ "photoId": "p1", "since": 0 }))
        .await;
    assert_eq!(ack["ok"], true);
    assert_eq!(first.seqs_until("photo:p1", 5).await, vec![1, 2, 3, 4, 5]);
    first.close().await;

    app.publish_ok(&progress_batch("p1", 3)).await;
    app.publish_ok(&json!({ "type": "photo.processing.completed", "data": { "photoId": "p1" } }))
        .await;

    let mut resumed = app
        .client(json!({
            "token": token("u1", &["read:photos"]),
            "clientId": "c-u1",
            "epoch": epoch,
            "resume": { "photo:p1": 5, "user:u1": 1, "photo:other": 0, "user:u2": 0 },
        }))
        .await;
    let mut photo_seqs = Vec::new();
    let mut user_seqs = Vec::new();
    let complete = loop {
        let (event, value) = resumed.next().await;
        if event == "resume:complete" {
            break value;
        }
        match (
            value.get("room").and_then(Value::as_str),
            value.get("seq").and_then(Value::as_u64),
        ) {
            (Some("photo:p1"), Some(seq)) => photo_seqs.push(seq),
            (Some("user:u1"), Some(seq)) => user_seqs.push(seq),
            _ => {}
        }
    };
    assert_eq!(
        photo_seqs,
        vec![6, 7, 8, 9],
        "missed photo seqs, in order, once"
    );
    assert_eq!(user_seqs, vec![2], "the completed event in the user room");
    assert_eq!(complete["rooms"], json!({ "photo:p1": 9, "user:u1": 2 }));
    assert_eq!(
        complete["refused"],
        json!({ "photo:other": "forbidden", "user:u2": "forbidden" })
    );

    resumed.client.emit("ping", json!({})).await.expect("ping");
    resumed.next_named("pong").await;
    resumed.close().await;
    app.stop().await;
}

/// `photo:status:request` is answered from the store, also after the app restarts on the same
/// data dir; and a resume after the restart only gets newer events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_seqs_survive_a_restart() {
    let app = TestHub::spawn().await;
    app.publish_ok(&uploaded("p1", "u1")).await;
    app.publish_ok(&json!({ "type": "photo.processing.progress", "data": { "photoId": "p1", "progress": 40 } })).await;
    let mut client = app.client_for("u1").await;
    client.next_named("connection:established").await;
    let before = client
        .ack("photo:status:request", json!({ "photoId": "p1" }))
        .await;
    assert_eq!(before["status"], "processing");
    assert_eq!(before["progress"], 40);
    assert_eq!(before["lastSeq"], 2);
    client.close().await;
    let app = app.restart().await;
    let mut client = app.client(json!({ "token": token("u1", &["read:photos"]), "clientId": "c1", "resume": { "photo:p1": 2 } })).await;
    client.next_named("connection:established").await;
    let after = client
        .ack("photo:status:request", json!({ "photoId": "p1" }))
        .await;
    assert_eq!(after, before, "the same status after a restart");
    app.publish_ok(&json!({ "type": "photo.processing.completed", "data": { "photoId": "p1" } }))
        .await;
    assert_eq!(
        client.seqs_until("photo:p1", 3).await,
        vec![3],
        "only the new event"
    );
    client.close().await;
    app.stop().await;
}

/// A catch-up that reaches the head while new events are being committed goes live without
/// announcing a gap: `replay:truncated` is only for events that are really gone (none here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_ups_racing_commits_announce_no_false_gap() {
    let app = TestHub::spawn_with(|s| {
        s.limits.socket_request_burst = 100_000;
        s.limits.socket_requests_per_second = 100_000;
    })
    .await;
    app.publish_ok(&uploaded("race", "u1")).await;
    let api = (*app).clone();
    let publisher = tokio::spawn(async move {
        for _ in 0..300 {
            api.publish_ok(&progress_batch("race", 1)).await;
        }
    });
    let mut client = app.client_for("u1").await;
    client.next_named("connection:established").await;
    let mut since = 0;
    while !publisher.is_finished() {
        // Short catch-ups that end at the head while the publisher commits.
        let ack = client
            .ack(
                "subscribe:photo",
                json!({ "photoId": "race", "since": since }),
            )
            .await;
        assert_eq!(ack["ok"], true, "{ack}");
        since = ack["headSeq"].as_u64().expect("headSeq").saturating_sub(2);
    }
    publisher.await.expect("the publisher");
    assert_eq!(
        client
            .receives("replay:truncated", std::time::Duration::from_secs(3))
            .await,
        None,
        "no event was pruned, so no gap may be announced"
    );
}
