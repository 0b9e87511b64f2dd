//! Nothing lost, nothing stored twice: a backlog published while the hub is down, a hub killed
//! with SIGKILL mid-consumption, a graceful stop that drains the batch in hand, and the whole
//! stream delivered again.

use std::time::{Duration, Instant};

use serde_json::json;
use socket_bridge::store::EventLog;

use crate::helpers::{
    IdSource, assert_workload_stored, consume, publish, publish_workload, spawn_hub, spawn_hub_up,
    start_binary,
};
use crate::support::WAIT;
use crate::support::hub::TestHub;
use crate::support::nats::{
    HUB_CONSUMER, NatsServer, STREAM, consumer_backlog, create_stream, wait_consumed,
};

/// 500 events published while the hub is stopped are all stored once it starts, each once, in
/// order, whatever their id source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_while_the_hub_is_stopped_are_stored_once_it_starts() {
    let nats = NatsServer::start().await;
    let hub = spawn_hub_up(&nats).await;
    let stopped = hub.stop().await;

    let js = nats.jetstream().await;
    let (count, photos) = (500, 5);
    publish_workload(&js, count, photos).await;

    let hub = stopped.start().await;
    wait_consumed(&js, HUB_CONSUMER, WAIT).await;
    assert_workload_stored(&hub, count, photos).await;
    hub.stop().await;
}

/// The real binary, killed with SIGKILL while consuming and then restarted, ends with every
/// published event stored exactly once, seqs gap-free and in publish order: redeliveries of
/// events it had stored but not acked are recognised by id (body, `Nats-Msg-Id` or derived), and
/// those it had not stored are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_killed_mid_consumption_stores_every_event_exactly_once() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let js = nats.jetstream().await;

    // A first run creates the stream and consumer; then the backlog is published.
    let hub = start_binary(dir.path(), &nats, 50).await;
    hub.wait_for_bus("up").await;
    let (count, photos) = (3000, 20);
    publish_workload(&js, count, photos).await;

    let started = Instant::now();
    loop {
        if hub.stored("photo:p0").await >= 10 {
            break;
        }
        assert!(started.elapsed() < WAIT, "the hub did not start consuming");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    hub.kill();
    let (unacked, undelivered) = consumer_backlog(&js).await;
    assert!(
        unacked + undelivered as usize > 0,
        "the hub was killed after consuming everything: the test needs a bigger backlog"
    );

    let hub = start_binary(dir.path(), &nats, 50).await;
    wait_consumed(&js, HUB_CONSUMER, WAIT * 3).await;
    assert_workload_stored(&hub, count, photos).await;
}

/// A graceful stop in the middle of a backlog stores and acks every message the hub had received:
/// nothing is left delivered-but-unacked, so the next start goes on at once, with no redelivery
/// wait, and ends with everything stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_stores_and_acks_the_batch_in_hand() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    let hub = TestHub::spawn_with(|settings| {
        let bus = consume(&nats, settings);
        // A long ack wait: a message left unacked would hold the restarted hub up for all of it.
        bus.ack_wait = Duration::from_secs(60);
        bus.batch_size = 50;
    })
    .await;
    hub.wait_for_bus("up").await;
    let (count, photos) = (2000, 10);
    publish_workload(&js, count, photos).await;
    hub.wait_for_stored("photo:p0", 5).await;
    let stopped = hub.stop().await;

    let (unacked, undelivered) = consumer_backlog(&js).await;
    assert_eq!(unacked, 0, "a graceful stop leaves nothing unacked");
    assert!(undelivered > 0, "the stop came after the whole backlog");

    let hub = stopped.start().await;
    // Well before the ack wait is over.
    wait_consumed(&js, HUB_CONSUMER, Duration::from_secs(30)).await;
    assert_workload_stored(&hub, count, photos).await;
    hub.stop().await;
}

/// The real binary stopped with SIGTERM in the middle of a backlog exits cleanly, having stored
/// and acked every message it had received: nothing is left delivered-but-unacked for
/// JetStream's ack wait (the in-process stop above cannot show what the process's exit cuts
/// short). The backlog stays below what the client lets await its acks at once (6,000 hung).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_stopped_with_sigterm_exits_with_nothing_unacked() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let js = nats.jetstream().await;
    let hub = start_binary(dir.path(), &nats, 50).await;
    hub.wait_for_bus("up").await;
    let (count, photos) = (4000, 20);
    publish_workload(&js, count, photos).await;
    let started = Instant::now();
    while hub.stored("photo:p0").await < 20 {
        assert!(started.elapsed() < WAIT, "the hub stores nothing");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let status = hub.terminate();
    assert!(status.success(), "a graceful stop: {status}");
    let (unacked, undelivered) = consumer_backlog(&js).await;
    assert_eq!(
        unacked, 0,
        "acks of stored messages were left queued at exit"
    );
    assert!(
        undelivered > 0,
        "the stop came after the whole backlog: the test needs a bigger one"
    );
}

/// Messages with neither a body `id` nor a `Nats-Msg-Id` are not written to the id index (their
/// ids are their stream positions); when JetStream delivers the whole stream again, they are
/// recognised by the consumed position stored with them, and none is stored twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn derived_ids_are_recognised_by_position_not_by_the_id_index() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    create_stream(&js).await;
    let uploaded = json!({ "data": { "photoId": "p1", "userId": "u1" } });
    publish(&js, "photo.uploaded", uploaded, "", IdSource::Derived).await;
    for n in 1..=3 {
        let body = json!({ "data": { "photoId": "p1", "progress": n * 10 } });
        publish(
            &js,
            "photo.processing.progress",
            body,
            "",
            IdSource::Derived,
        )
        .await;
    }
    let hub = spawn_hub(&nats).await;
    hub.wait_for_stored("photo:p1", 4).await;
    wait_consumed(&js, HUB_CONSUMER, WAIT).await;
    let stopped = hub.stop().await;

    let store = stopped.data_dir().join("store");
    let log = EventLog::open(&store).expect("open the store");
    let room = "photo:p1".parse().expect("room");
    let stored = log.read(&room, 0, 10).expect("read");
    assert_eq!(stored.len(), 4);
    for event in &stored {
        assert!(event.id.as_str().starts_with("nats:PHOTO_EVENTS:"));
        assert_eq!(
            log.placement(&event.id).expect("lookup"),
            None,
            "{} is in the id index",
            event.id
        );
    }
    log.close().expect("close");
    drop(log);

    js.delete_consumer_from_stream(HUB_CONSUMER, STREAM)
        .await
        .expect("delete the consumer");
    let hub = stopped.start().await;
    wait_consumed(&js, HUB_CONSUMER, WAIT).await;
    let seqs = hub.stored_seqs("photo:p1").await;
    assert_eq!(seqs, [1, 2, 3, 4], "redelivered messages were stored again");
    assert_eq!(hub.stored("user:u1").await, 1);
    hub.stop().await;
}
