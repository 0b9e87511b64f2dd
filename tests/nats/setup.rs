//! An existing stream or consumer that the hub cannot use is refused at start with a clear error.

use async_nats::jetstream::consumer::{AckPolicy, pull, push};
use async_nats::jetstream::stream;

use crate::helpers::consume;
use crate::support::hub::TestHub;
use crate::support::nats::{NatsServer, create_stream};

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
