//! Limits against misbehaving clients (docs/protocol.md, "Limits"): the per-socket request rate,
//! the size of a handshake's `resume`, and subscriptions racing disconnects.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::uploaded;
use crate::support::api::Api;
use crate::support::hub::TestHub;
use crate::support::raw::RawSocket;
use crate::support::{WAIT, token};

/// A socket sending requests faster than its budget (burst 10, then 5 per second) gets
/// `rate_limited`, to the ack or as `request:error`; another socket is not affected; after a
/// pause the first socket is served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_rate_are_refused_per_socket() {
    let app = TestHub::spawn_with(|settings| {
        settings.limits.socket_requests_per_second = 5;
        settings.limits.socket_request_burst = 10;
    })
    .await;
    app.publish_ok(&uploaded("p1", "u1")).await;
    let mut noisy = app.client_for("u1").await;
    noisy.next_named("connection:established").await;
    let mut quiet = app.client_for("u2").await;
    quiet.next_named("connection:established").await;

    let started = Instant::now();
    let mut answers = Vec::new();
    for _ in 0..30 {
        answers.push(noisy.ack("ping", json!({})).await);
    }
    let elapsed = started.elapsed();
    let limited = answers
        .iter()
        .filter(|a| a["ok"] == false && a["error"] == "rate_limited")
        .count();
    let served = answers
        .iter()
        .filter(|a| a["timestamp"].is_string())
        .count();
    assert_eq!(limited + served, 30, "{answers:?}");
    let allowed = 10 + (elapsed.as_secs_f64() * 5.0).ceil() as usize;
    assert!(
        served <= allowed && served >= 10,
        "{served} pings served in {elapsed:?} (at most {allowed} allowed)"
    );
    assert!(limited > 0);

    // Without an ack, the refusal is a `request:error` naming the request and the photo.
    noisy
        .client
        .emit("subscribe:photo", json!({ "photoId": "p1" }))
        .await
        .expect("emit");
    let error = noisy.next_named("request:error").await;
    assert_eq!(
        error,
        json!({ "event": "subscribe:photo", "error": "rate_limited", "photoId": "p1" })
    );
    for event in ["unsubscribe:photo", "photo:status:request"] {
        let answer = noisy.ack(event, json!({ "photoId": "p1" })).await;
        assert_eq!(
            answer,
            json!({ "ok": false, "error": "rate_limited" }),
            "{event}"
        );
    }

    let other = quiet.ack("ping", json!({})).await;
    assert!(
        other["timestamp"].is_string(),
        "another socket is served: {other}"
    );

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let again = noisy
        .ack("subscribe:photo", json!({ "photoId": "p1" }))
        .await;
    assert_eq!(again["ok"], true, "served again after a pause: {again}");
    noisy.close().await;
    quiet.close().await;
    app.stop().await;
}

/// A handshake whose `resume` names more rooms than `--max-resume-rooms` is refused with
/// `invalid_handshake`; one at the limit is resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_beyond_the_room_limit_is_refused() {
    let app = TestHub::spawn_with(|settings| settings.limits.max_resume_rooms = 20).await;
    let resume = |rooms: usize| -> Value {
        let map: serde_json::Map<String, Value> = (0..rooms)
            .map(|i| (format!("photo:x{i}"), json!(0)))
            .collect();
        json!({ "token": token("u1", &["read:photos"]), "clientId": "c1", "resume": map })
    };
    assert_eq!(
        RawSocket::refusal(&app.base, &resume(21)).await,
        "invalid_handshake"
    );
    let mut at_limit = app.client(resume(20)).await;
    let complete = at_limit.next_named("resume:complete").await;
    assert_eq!(
        complete["refused"].as_object().map(|r| r.len()),
        Some(20),
        "{complete}"
    );
    at_limit.close().await;
    app.stop().await;
}

async fn sockets_and_rooms(app: &Api) -> (u64, u64) {
    let health = app.health().await;
    let ws = &health["details"]["websocket"];
    (
        ws["connectedClients"].as_u64().expect("connectedClients"),
        ws["activeRooms"].as_u64().expect("activeRooms"),
    )
}

/// Sockets that resume 200 photo rooms, send subscribes (with and without `since`) and drop
/// their connection at once, some before and some after the hub accepted them, leave no socket
/// and no subscription behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribes_racing_disconnects_leave_nothing_behind() {
    let app = TestHub::spawn().await;
    let photos: Vec<String> = (0..200).map(|i| format!("p{i}")).collect();
    let uploads: Vec<Value> = photos.iter().map(|p| uploaded(p, "u1")).collect();
    app.publish_ok(&Value::Array(uploads)).await;
    // At their heads: these replays go live without emitting anything.
    let resume: serde_json::Map<String, Value> = photos
        .iter()
        .map(|p| (format!("photo:{p}"), json!(1)))
        .collect();

    let mut tasks = Vec::new();
    for i in 0..200 {
        let base = app.base.clone();
        let resume = resume.clone();
        tasks.push(tokio::spawn(async move {
            let auth = json!({
                "token": token("u1", &["read:photos"]),
                "clientId": format!("c{i}"),
                "resume": resume,
            });
            let mut socket = if i % 2 == 0 {
                RawSocket::open(&base, &auth).await
            } else {
                RawSocket::connect(&base, &auth).await
            };
            for n in 0..i % 10 {
                let request = if n % 2 == 0 {
                    json!({ "photoId": format!("p{n}"), "since": 0 })
                } else {
                    json!({ "photoId": format!("p{n}") })
                };
                socket.emit("subscribe:photo", &request).await;
            }
            socket.drop_connection();
        }));
    }
    for task in tasks {
        task.await.expect("client");
    }
    let deadline = Instant::now() + WAIT;
    let mut left = sockets_and_rooms(&app).await;
    while left != (0, 0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = sockets_and_rooms(&app).await;
    }
    assert_eq!(left, (0, 0), "(sockets, subscribed rooms) left behind");
    app.stop().await;
}
