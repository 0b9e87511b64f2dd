//! What the NATS tests publish on JetStream and check in the hub: the hubs' NATS settings, ids from
//! every source, a numbered workload and the check that it was stored exactly once, in order
//! (the servers and hubs themselves come from the test kit in `support`).

use std::path::Path;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream;
use serde_json::{Value, json};
use socket_bridge::bus::nats::NatsSettings;
use socket_bridge::settings::Settings;

use crate::support::WAIT;
use crate::support::api::Api;
use crate::support::binary::HubProcess;
use crate::support::hub::TestHub;
use crate::support::nats::{HUB_CONSUMER, NatsServer, consumer_ack_floor, wait_consumed};

/// The ack wait the tests' hubs use, so that redeliveries after a crash come quickly.
pub const ACK_WAIT: Duration = Duration::from_secs(2);

/// Makes hub `settings` consume `nats` with the short [`ACK_WAIT`]; returns the NATS settings to
/// adjust.
pub fn consume<'a>(nats: &NatsServer, settings: &'a mut Settings) -> &'a mut NatsSettings {
    let bus = nats.attach(settings);
    bus.ack_wait = ACK_WAIT;
    bus
}

/// A hub in-process consuming `nats` (see [`consume`]), in a temp data dir of its own.
pub async fn spawn_hub(nats: &NatsServer) -> TestHub {
    TestHub::spawn_with(|settings| {
        consume(nats, settings);
    })
    .await
}

/// [`spawn_hub`], returned once its bus is up.
pub async fn spawn_hub_up(nats: &NatsServer) -> TestHub {
    let hub = spawn_hub(nats).await;
    hub.wait_for_bus("up").await;
    hub
}

/// The real binary on `data_dir`, consuming `nats` in batches of `batch` with [`ACK_WAIT`].
pub async fn start_binary(data_dir: &Path, nats: &NatsServer, batch: usize) -> HubProcess {
    let ack_wait = format!("{}s", ACK_WAIT.as_secs());
    HubProcess::start(data_dir, |command| {
        command
            .args(["--nats-url", &nats.url()])
            .args(["--nats-batch-size", &batch.to_string()])
            .args(["--nats-ack-wait", &ack_wait]);
    })
    .await
}

/// Where an event's id comes from when it is published.
#[derive(Debug, Clone, Copy)]
pub enum IdSource {
    /// The body's `id`.
    Body,
    /// The `Nats-Msg-Id` header.
    Header,
    /// Neither: the hub derives it from the stream and sequence.
    Derived,
}

impl IdSource {
    /// The three sources in turn, by `n`.
    pub fn nth(n: usize) -> Self {
        match n % 3 {
            0 => IdSource::Body,
            1 => IdSource::Header,
            _ => IdSource::Derived,
        }
    }
}

/// Publishes `body` on `subject` with its id from `source` (`id` is used for body and header);
/// returns once JetStream has stored it.
pub async fn publish(
    js: &jetstream::Context,
    subject: &str,
    mut body: Value,
    id: &str,
    source: IdSource,
) {
    let mut headers = HeaderMap::new();
    match source {
        IdSource::Body => body["id"] = json!(id),
        IdSource::Header => headers.insert("Nats-Msg-Id", id),
        IdSource::Derived => {}
    }
    js.publish_with_headers(subject.to_owned(), headers, body.to_string().into())
        .await
        .expect("publish")
        .await
        .expect("JetStream stored the message");
}

/// Publishes raw bytes on `subject`; returns once JetStream has stored them.
pub async fn publish_raw(js: &jetstream::Context, subject: &str, body: impl Into<Vec<u8>>) {
    js.publish(subject.to_owned(), body.into().into())
        .await
        .expect("publish")
        .await
        .expect("JetStream stored the message");
}

/// One event of a test workload: its subject and body, numbered `n` in publish order.
pub fn workload_event(n: usize, photos: usize) -> (String, Value) {
    let photo = format!("p{}", n % photos);
    let round = n / photos;
    if round == 0 {
        let body = json!({ "data": { "photoId": photo, "userId": "u1", "n": n } });
        ("photo.uploaded".into(), body)
    } else if n % 7 == 3 {
        ("system.maintenance".into(), json!({ "data": { "n": n } }))
    } else {
        let body = json!({ "data": { "photoId": photo, "progress": round % 101, "n": n } });
        ("photo.processing.progress".into(), body)
    }
}

/// Publishes `photo.uploaded` of p1 (owner u1) and waits until `hub` stored it and the hub's
/// consumer acked it; returns the consumer's ack floor then.
pub async fn upload_p1(js: &jetstream::Context, hub: &Api) -> u64 {
    let uploaded = json!({ "data": { "photoId": "p1", "userId": "u1" } });
    publish(js, "photo.uploaded", uploaded, "up", IdSource::Body).await;
    hub.wait_for_stored("photo:p1", 1).await;
    wait_consumed(js, HUB_CONSUMER, WAIT).await;
    consumer_ack_floor(js).await
}

/// Publishes events `0..count` of the workload with ids from every source, in order.
pub async fn publish_workload(js: &jetstream::Context, count: usize, photos: usize) {
    publish_workload_part(js, 0..count, photos).await;
}

/// Publishes the events `part` of the workload, in order (see [`publish_workload`]).
pub async fn publish_workload_part(
    js: &jetstream::Context,
    part: std::ops::Range<usize>,
    photos: usize,
) {
    let mut acks = Vec::with_capacity(part.len());
    for n in part {
        let (subject, mut body) = workload_event(n, photos);
        let mut headers = HeaderMap::new();
        match IdSource::nth(n) {
            IdSource::Body => body["id"] = json!(format!("body-{n}")),
            IdSource::Header => headers.insert("Nats-Msg-Id", format!("header-{n}").as_str()),
            IdSource::Derived => {}
        }
        let ack = js
            .publish_with_headers(subject, headers, body.to_string().into())
            .await
            .expect("publish");
        acks.push(ack);
    }
    for ack in acks {
        ack.await.expect("JetStream stored the message");
    }
}

/// Checks that the hub stored workload events `0..count` exactly once: every room's seqs are
/// 1, 2, 3, ... with no gap, each `n` appears once in each room it belongs to, in publish order.
pub async fn assert_workload_stored(hub: &Api, count: usize, photos: usize) {
    let mut expected: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for n in 0..count {
        let (subject, body) = workload_event(n, photos);
        let photo = body["data"]["photoId"].as_str().map(str::to_owned);
        let n = n as u64;
        match (subject.as_str(), photo) {
            ("photo.uploaded", Some(p)) => {
                expected.entry(format!("photo:{p}")).or_default().push(n);
                expected.entry("user:u1".into()).or_default().push(n);
            }
            (_, Some(p)) => expected.entry(format!("photo:{p}")).or_default().push(n),
            (_, None) => expected.entry("global".into()).or_default().push(n),
        }
    }
    for (room, ns) in expected {
        let events = hub.history(&room).await;
        let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
        let want_seqs: Vec<u64> = (1..=ns.len() as u64).collect();
        assert_eq!(
            seqs,
            want_seqs,
            "{room}: seqs must be 1..={} with no gap",
            ns.len()
        );
        let got: Vec<u64> = events
            .iter()
            .filter_map(|e| e["data"]["n"].as_u64())
            .collect();
        assert_eq!(got, ns, "{room}: every event once, in publish order");
    }
}

/// The value of header `name` of a dead letter (empty when it has none).
pub fn kept_header(letter: &jetstream::message::StreamMessage, name: &str) -> String {
    letter
        .headers
        .get(name)
        .map(|v| v.as_str().to_owned())
        .unwrap_or_default()
}
