//! An existing stream or consumer that the hub cannot use is refused at start with a clear error;
//! a consumer with explicit acks, as earlier versions made it, is moved to ack-all.

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull, push};
use async_nats::jetstream::stream;

use crate::helpers::{
    assert_workload_stored, consume, publish_workload, publish_workload_part, spawn_hub_up,
};
use crate::support::WAIT;
use crate::support::hub::TestHub;
use crate::support::nats::{HUB_CONSUMER, NatsServer, STREAM, create_stream, wait_consumed};

/// Builds the hub against `nats` and returns its start error.
async fn start_error(nats: &NatsServer) -> String {
    let started = TestHub::try_spawn_with(|settings| {
        consume(nats, settings);
    });
    match started.await {
        Ok(_) => panic!("the hub started against a conflicting stream or consumer"),
        Err(e) => e.to_string(),
    }
}

/// A stream with other subjects is refused, naming the subjects it needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_with_other_subjects_is_refused() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    js.create_stream(stream::Config {
        name: "PHOTO_EVENTS".into(),
        subjects: vec!["photo.>".into()],
        ..Default::default()
    })
    .await
    .expect("create stream");
    let error = start_error(&nats).await;
    assert!(
        error.contains("PHOTO_EVENTS") && error.contains("system.>"),
        "{error}"
    );
}

/// A push consumer, or a pull consumer without explicit acks, under the hub's consumer name is
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_of_the_wrong_kind_is_refused() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    create_stream(&js).await;
    let stream = js.get_stream("PHOTO_EVENTS").await.expect("stream");
    stream
        .create_consumer(push::Config {
            durable_name: Some("socket-bridge".into()),
            deliver_subject: "somewhere".into(),
            ..Default::default()
        })
        .await
        .expect("push consumer");
    let error = start_error(&nats).await;
    assert!(error.contains("push consumer"), "{error}");

    stream
        .delete_consumer("socket-bridge")
        .await
        .expect("delete");
    stream
        .create_consumer(pull::Config {
            durable_name: Some("socket-bridge".into()),
            ack_policy: AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("pull consumer without acks");
    let error = start_error(&nats).await;
    assert!(error.contains("ack policy"), "{error}");
}

/// A consumer with explicit acks, as earlier versions made it, is made again with ack-all, from
/// the message after the store's consumed position: nothing consumed before is delivered again,
/// and what was published while the hub was stopped is stored, each event once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_consumer_is_moved_to_ack_all_after_the_consumed_position() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    let hub = spawn_hub_up(&nats).await;
    let (before, photos) = (60, 3);
    publish_workload(&js, before, photos).await;
    wait_consumed(&js, HUB_CONSUMER, WAIT).await;
    let stopped = hub.stop().await;

    // What an earlier version left behind: the hub's consumer with explicit acks, all acked.
    let stream = js.get_stream(STREAM).await.expect("stream");
    stream
        .delete_consumer(HUB_CONSUMER)
        .await
        .expect("delete the consumer");
    stream
        .create_consumer(pull::Config {
            durable_name: Some(HUB_CONSUMER.into()),
            ack_policy: AckPolicy::Explicit,
            deliver_policy: DeliverPolicy::New,
            max_deliver: -1,
            ..Default::default()
        })
        .await
        .expect("a consumer with explicit acks");
    publish_workload_part(&js, before..before * 2, photos).await;

    let hub = stopped.start().await;
    wait_consumed(&js, HUB_CONSUMER, WAIT).await;
    assert_workload_stored(&hub, before * 2, photos).await;
    let info = js
        .get_stream(STREAM)
        .await
        .expect("stream")
        .consumer_info(HUB_CONSUMER)
        .await
        .expect("consumer info")
        .clone();
    assert_eq!(info.config.ack_policy, AckPolicy::All);
    assert_eq!(
        info.config.deliver_policy,
        DeliverPolicy::ByStartSequence {
            start_sequence: before as u64 + 1
        }
    );
    assert_eq!(
        info.delivered.consumer_sequence, before as u64,
        "only the messages after the consumed position were delivered"
    );
    hub.stop().await;
}
