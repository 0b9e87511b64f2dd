//! Replay fairness (docs/protocol.md, "Limits"): one socket flooding `subscribe:photo` with
//! `since: 0` cannot delay another socket's resume or live delivery, and a subscribe that
//! supersedes a resume's replay still lets the resume complete.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{progress_batch, uploaded};
use crate::support::hub::TestHub;
use crate::support::raw::RawSocket;
use crate::support::token;

const FLOOD_ROOMS: usize = 100;
const EVENTS_PER_FLOOD_ROOM: usize = 300;
const FLOOD_SUBSCRIBES: usize = 3000;

/// While one socket sends 3,000 `subscribe:photo { since: 0 }` over 100 rooms of 300 events
/// each, another socket's resume completes within a second of its `connection:established` and a
/// live event reaches it within a second, and the flood was still being replayed when both were
/// measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_socket_does_not_delay_another_sockets_resume() {
    let app = TestHub::spawn_with(|settings| {
        // The rate limit would stop the flood early: this test is about the replay pool.
        settings.limits.socket_requests_per_second = 1_000_000;
        settings.limits.socket_request_burst = 1_000_000;
    })
    .await;
    let photos: Vec<String> = (0..FLOOD_ROOMS).map(|i| format!("f{i}")).collect();
    let uploads: Vec<Value> = photos.iter().map(|p| uploaded(p, "flooder")).collect();
    app.publish_ok(&Value::Array(uploads)).await;
    for chunk in photos.chunks(3) {
        let batch: Vec<Value> = chunk
            .iter()
            .flat_map(|p| match progress_batch(p, EVENTS_PER_FLOOD_ROOM - 1) {
                Value::Array(events) => events,
                _ => Vec::new(),
            })
            .collect();
        app.publish_ok(&Value::Array(batch)).await;
    }
    app.publish_ok(&json!([
        uploaded("v", "victim"),
        uploaded("vlive", "victim")
    ]))
    .await;
    app.publish_ok(&progress_batch("v", 49)).await;

    let flooder = RawSocket::connect(
        &app.base,
        &json!({ "token": token("flooder", &["read:photos"]), "clientId": "flood" }),
    )
    .await;
    let mut writer = flooder.drain();
    let frames = writer.frames();
    let flood = tokio::spawn(async move {
        for i in 0..FLOOD_SUBSCRIBES {
            let photo = format!("f{}", i % FLOOD_ROOMS);
            writer
                .emit("subscribe:photo", &json!({ "photoId": photo, "since": 0 }))
                .await;
        }
        writer
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    let mut victim = app
        .client(json!({
            "token": token("victim", &["read:photos"]),
            "clientId": "victim",
            "resume": { "photo:v": 0, "photo:vlive": 1 },
        }))
        .await;
    victim.next_named("connection:established").await;
    let established = victim.last_received_at;
    let complete = victim.next_named("resume:complete").await;
    let connected_in = established - started;
    let resumed_in = victim.last_received_at - established;
    assert_eq!(complete["rooms"]["photo:v"], 50, "{complete}");

    let sent = Instant::now();
    app.publish_ok(&json!({ "type": "photo.processing.progress", "data": { "photoId": "vlive", "progress": 1 } }))
        .await;
    assert_eq!(victim.seqs_until("photo:vlive", 2).await, vec![2]);
    let live_in = victim.last_received_at - sent;

    let frames_at_measure = frames.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let frames_after = frames.load(Ordering::Relaxed);
    let writer = flood.await.expect("flood");
    drop(writer);
    eprintln!(
        "victim: connected in {connected_in:?}, resume:complete {resumed_in:?} after connection:established, live event after {live_in:?}; flooder had read {frames_at_measure} frames, {frames_after} 300 ms later"
    );
    assert!(
        frames_after > frames_at_measure,
        "the flood was not being replayed any more when the victim was measured: the test showed nothing"
    );
    assert!(
        resumed_in < Duration::from_secs(1),
        "the victim's resume took {resumed_in:?} during the flood"
    );
    assert!(
        live_in < Duration::from_secs(1),
        "the victim's live event took {live_in:?} during the flood"
    );
    victim.close().await;
    app.stop().await;
}

/// A `subscribe:photo { since }` for a room whose handshake `resume` replay is still running
/// supersedes that replay; the resume still completes, with the room live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_completes_when_a_subscribe_supersedes_its_replay() {
    const HISTORY: usize = 4000;
    let app = TestHub::spawn().await;
    app.publish_ok(&uploaded("p1", "u1")).await;
    for _ in 0..HISTORY / 500 {
        app.publish_ok(&progress_batch("p1", 500)).await;
    }
    let head = (HISTORY + 1) as u64;

    let mut client = app
        .client(json!({
            "token": token("u1", &["read:photos"]),
            "clientId": "c1",
            "resume": { "photo:p1": 0 },
        }))
        .await;
    client.next_named("connection:established").await;
    let ack = client
        .ack("subscribe:photo", json!({ "photoId": "p1", "since": 10 }))
        .await;
    let acked_at = Instant::now();
    assert_eq!(ack["ok"], true, "{ack}");

    let mut first_head_at = None;
    let complete = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let (event, value) = client.next().await;
            if event == "resume:complete" {
                return value;
            }
            if value["room"] == "photo:p1" && value["seq"] == head && first_head_at.is_none() {
                first_head_at = Some(client.last_received_at);
            }
        }
    })
    .await
    .expect("resume:complete arrives although a subscribe superseded the resume's replay");
    let first_head_at = first_head_at.expect("the room was replayed to its head");
    assert!(
        acked_at < first_head_at,
        "the resume's replay had finished before the subscribe: the test showed nothing"
    );
    assert_eq!(complete["rooms"]["photo:p1"], head, "{complete}");
    client.close().await;
    app.stop().await;
}
