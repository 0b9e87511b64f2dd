//! Jobs on NATS JetStream: with `--nats-url` the job goes to the work-queue stream `PHOTO_JOBS`;
//! the embedded worker takes it from there, or an external worker does, whose processing events
//! come back through the hub's NATS ingest. Each test runs its own `nats-server -js`.

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::pull;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::helpers::{PhotoApi, Processing, owner};
use crate::images;
use crate::support::hub::TestHub;
use crate::support::nats::NatsServer;
use crate::support::{WAIT, token};

/// The embedded worker takes the job from JetStream and acks it once the photo is completed,
/// so the work queue is empty afterwards.
#[tokio::test]
async fn embedded_worker_takes_jobs_from_jetstream() {
    let nats = NatsServer::start().await;
    let hub = TestHub::spawn_with(|s| {
        nats.attach(s);
    })
    .await;
    let mut socket = hub.socket("u1").await;
    let photo = hub.upload("u1", "queued.jpg", images::jpeg(900, 600)).await;
    let events = socket.processing(&photo).await;
    assert_eq!(
        events.last().map(|(n, _)| n.as_str()),
        Some("photo.processing.completed"),
        "{events:?}"
    );
    let js = nats.jetstream().await;
    let mut stream = js
        .get_stream("PHOTO_JOBS")
        .await
        .expect("the hub made the stream");
    let started = Instant::now();
    while stream.info().await.expect("info").state.messages > 0 {
        assert!(started.elapsed() < WAIT, "the job was never acked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    hub.stop().await;
}

/// Without the embedded worker, an external worker takes the job from the `photo-workers`
/// consumer, reads the original over HTTP, and publishes `photo.processing.completed` to the
/// producers' stream: it reaches the owner's socket through the hub's NATS ingest.
#[tokio::test]
async fn external_worker_takes_the_job_and_its_events_come_back() {
    let nats = NatsServer::start().await;
    let hub = TestHub::spawn_with(|s| {
        nats.attach(s);
        s.photos.worker = false;
    })
    .await;
    let mut socket = hub.socket("u1").await;
    let original = images::png(120, 80);
    let photo = hub.upload("u1", "external.png", original.clone()).await;

    let js = nats.jetstream().await;
    let consumer = js
        .get_stream("PHOTO_JOBS")
        .await
        .expect("the hub made the stream")
        .get_or_create_consumer(
            "photo-workers",
            pull::Config {
                durable_name: Some("photo-workers".into()),
                ..Default::default()
            },
        )
        .await
        .expect("consumer");
    let mut messages = consumer
        .fetch()
        .max_messages(1)
        .messages()
        .await
        .expect("fetch");
    let message = tokio::time::timeout(WAIT, messages.next())
        .await
        .expect("a job in time")
        .expect("a job")
        .expect("message");
    let job: Value = serde_json::from_slice(&message.payload).expect("JSON");
    assert_eq!(job["photoId"], photo.as_str());
    assert_eq!(job["userId"], "u1");
    assert_eq!(job["contentType"], "image/png");
    let url = job["originalUrl"].as_str().expect("originalUrl");
    let (status, _, bytes) = hub
        .fetch(url, &token("worker", &["support:read"]), &[])
        .await;
    assert_eq!((status, bytes == original), (200, true));

    js.publish(
        "photo.processing.completed",
        json!({ "data": { "photoId": photo, "thumbnails": [], "by": "external" } })
            .to_string()
            .into(),
    )
    .await
    .expect("publish")
    .await
    .expect("stored by JetStream");
    message.ack().await.expect("ack");
    let completed = socket.next_named("photo.processing.completed").await;
    assert_eq!(completed["by"], "external");
    assert_eq!(completed["room"], "user:u1");
    let (_, status) = hub
        .get_answer(&format!("/api/photos/{photo}/status"), &owner("u1"))
        .await;
    assert_eq!(status["status"], "completed");
    hub.stop().await;
}
