//! Nothing lost, nothing stored twice: a backlog published while the hub is down, a hub killed
//! with SIGKILL mid-consumption, and a graceful stop that drains the batch in hand.

use std::time::{Duration, Instant};

use crate::bridge::WAIT;
use crate::helpers::{
    HubProcess, NatsServer, assert_workload_stored, consumer_backlog, hub_settings, nats_of,
    publish_workload, spawn_hub,
};

/// 500 events published while the hub is stopped are all stored once it starts, each once, in
/// order, whatever their id source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_while_the_hub_is_stopped_are_stored_once_it_starts() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = spawn_hub(hub_settings(dir.path(), &nats.url())).await;
    hub.wait_for_bus("up").await;
    hub.stop().await;

    let js = nats.jetstream().await;
    let (count, photos) = (500, 5);
    publish_workload(&js, count, photos).await;

    let hub = spawn_hub(hub_settings(dir.path(), &nats.url())).await;
    let started = Instant::now();
    while consumer_backlog(&js).await != (0, 0) {
        assert!(
            started.elapsed() < WAIT,
            "the backlog was not consumed in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    let hub = HubProcess::start(dir.path(), &nats.url(), 50).await;
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

    let hub = HubProcess::start(dir.path(), &nats.url(), 50).await;
    let started = Instant::now();
    while consumer_backlog(&js).await != (0, 0) {
        assert!(
            started.elapsed() < WAIT * 3,
            "the backlog was not consumed in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_workload_stored(&hub, count, photos).await;
}

/// A graceful stop in the middle of a backlog stores and acks every message the hub had received:
/// nothing is left delivered-but-unacked, so the next start goes on at once, with no redelivery
/// wait, and ends with everything stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_stores_and_acks_the_batch_in_hand() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let js = nats.jetstream().await;
    let mut args = hub_settings(dir.path(), &nats.url());
    // A long ack wait: a message left unacked would hold the restarted hub up for all of it.
    nats_of(&mut args).ack_wait = Duration::from_secs(60);
    nats_of(&mut args).batch_size = 50;
    let hub = spawn_hub(args.clone()).await;
    hub.wait_for_bus("up").await;
    let (count, photos) = (2000, 10);
    publish_workload(&js, count, photos).await;
    hub.wait_for_stored("photo:p0", 5).await;
    hub.stop().await;

    let (unacked, undelivered) = consumer_backlog(&js).await;
    assert_eq!(unacked, 0, "a graceful stop leaves nothing unacked");
    assert!(undelivered > 0, "the stop came after the whole backlog");

    let hub = spawn_hub(args).await;
    let started = Instant::now();
    while consumer_backlog(&js).await != (0, 0) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the backlog was not consumed before the ack wait"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_workload_stored(&hub, count, photos).await;
    hub.stop().await;
}
