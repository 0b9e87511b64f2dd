//! Sustained JetStream -> sled -> Socket.IO throughput, next to a bare JetStream consumer that
//! only acks, measured in the same run on the same stream (docs/benchmarks.md, "NATS pipeline").
//!
//! `cargo bench --bench nats_pipeline` (needs `nats-server` on the PATH). `NATS_BENCH_EVENTS`
//! (default 100000; 500 when run by `cargo test`) sets the backlog size, `NATS_BENCH_BATCH`
//! (default 256) the hub's batch, `NATS_BENCH_IDS=derived` publishes the backlog without body ids
//! (the hub derives each id from the stream position; default `body`).
//!
//! 1. A backlog of `photo.processing.progress` events over 100 photos is published while no
//!    consumer runs (the photos' `photo.uploaded` events were stored by an earlier hub run).
//! 2. Baseline: a second durable pull consumer on the same stream reads the whole backlog with
//!    `messages()` and acks each message; nothing else.
//! 3. The hub starts on the same backlog while a Socket.IO client subscribed to every photo
//!    (`since: 1`, so nothing can slip past it) receives every event, each the next seq of its
//!    room. "Stored" is when JetStream shows the hub's consumer with nothing pending or unacked;
//!    "delivered" is when the client has received every event.

// The shared test kit; this bench uses only part of it.
#[allow(dead_code)]
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use serde_json::json;
use socket_bridge::app::Application;
use socket_bridge::settings::Settings;
use tokio_tungstenite::tungstenite::Message;

// The load tool's Socket.IO wire client.
#[path = "load/tool/wire.rs"]
mod wire;

use support::hub::{self, TestHub};
use support::nats::{HUB_CONSUMER, NatsServer, STREAM, create_stream, wait_consumed};
use wire::{EventFields, Packet};

/// The server binary's allocator, so that the hub here costs what it costs in production (the
/// bare consumer uses it too).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const PHOTOS: usize = 100;
const LIMIT: Duration = Duration::from_secs(600);

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    // Under `cargo test` a small backlog checks that the bench still works without taking the
    // suite's time, and prints no figures.
    let events = env_usize(
        "NATS_BENCH_EVENTS",
        if support::benching() { 100_000 } else { 500 },
    );
    let batch = env_usize("NATS_BENCH_BATCH", 256);
    let body_ids = std::env::var("NATS_BENCH_IDS").map_or(true, |ids| ids != "derived");
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(events, batch, body_ids))
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn run(events: usize, batch: usize, body_ids: bool) -> Result<(), Error> {
    if std::env::var("BENCH_LOG").is_ok() {
        socket_bridge::telemetry::init_logging();
    }
    let nats = NatsServer::start().await;
    let client = async_nats::connect(nats.url()).await?;
    let js = jetstream::new(client.clone());
    create_stream(&js)
        .await
        .create_consumer(pull::Config {
            durable_name: Some("bare".into()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await?;
    let data_dir = tempfile::tempdir()?;

    // The photos exist (stored by a first hub run) before the backlog builds up.
    for p in 0..PHOTOS {
        let body = json!({ "data": { "photoId": format!("p{p}"), "userId": "u1" } });
        js.publish("photo.uploaded", body.to_string().into())
            .await?
            .await?;
    }
    let args = settings(data_dir.path(), &nats, batch);
    let hub = TestHub::start(args.clone()).await;
    wait_consumed(&js, HUB_CONSUMER, LIMIT).await;
    hub.stop().await;

    let published = Instant::now();
    publish_backlog(&js, events, body_ids).await?;
    let publish_secs = published.elapsed().as_secs_f64();

    // Baseline: the whole stream (uploads and backlog), acked one by one.
    let total = events + PHOTOS;
    let bare: jetstream::consumer::PullConsumer =
        js.get_stream(STREAM).await?.get_consumer("bare").await?;
    let started = Instant::now();
    let mut messages = bare.messages().await?;
    let mut acked = 0;
    while acked < total {
        match tokio::time::timeout(LIMIT, messages.next())
            .await?
            .ok_or("bare consumer ended")?
        {
            Ok(message) => {
                message.ack().await.map_err(|e| e.to_string())?;
                acked += 1;
            }
            // A missed heartbeat under load is reported, not fatal: the stream goes on.
            Err(e) => eprintln!("bare consumer: {e}"),
        }
    }
    client.flush().await?;
    let bare_secs = started.elapsed().as_secs_f64();
    drop(messages);

    // The hub on the same backlog, with a client receiving every event.
    let app = Application::build(&args).await?;
    let base = format!("http://{}", app.local_addr()?);
    let appends_before = AppendFigures::now();
    let started = Instant::now();
    let hub = TestHub::run(app, args);
    let token = support::token("u1", &["read:photos"]);
    let client = tokio::spawn(receive_all(base, token, events));
    wait_consumed(&js, HUB_CONSUMER, LIMIT).await;

    let stored_secs = started.elapsed().as_secs_f64();
    let appends = AppendFigures::now().since(&appends_before);
    let delivered = tokio::time::timeout(LIMIT, client).await;
    let delivered_secs = started.elapsed().as_secs_f64();
    hub.stop().await;
    match delivered {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(format!("the client: {e:#}").into()),
        Ok(Err(e)) => return Err(format!("the client's task failed: {e}").into()),
        Err(_) => {
            return Err(format!(
                "the client had not received all {events} events within {LIMIT:?}"
            )
            .into());
        }
    }

    if !support::benching() {
        println!("nats_pipeline: {events} events stored and delivered (test mode, no figures)");
        return Ok(());
    }
    let rate = |n: usize, secs: f64| n as f64 / secs;
    let bare_rate = rate(total, bare_secs);
    let stored_rate = rate(events, stored_secs);
    let delivered_rate = rate(events, delivered_secs);
    let ids = if body_ids { "body ids" } else { "derived ids" };
    println!("nats_pipeline: {events} events over {PHOTOS} photos, hub batch {batch}, {ids}");
    println!(
        "  published (JetStream, async acks) {:>9.0} events/s",
        rate(events, publish_secs)
    );
    println!("  bare consumer, ack only            {bare_rate:>9.0} events/s");
    println!(
        "  hub: stored, acked                  {stored_rate:>9.0} events/s  ({:.0}% of bare)",
        100.0 * stored_rate / bare_rate
    );
    println!(
        "  hub: delivered to the client        {delivered_rate:>9.0} events/s  ({:.0}% of bare)",
        100.0 * delivered_rate / bare_rate
    );
    println!(
        "  hub: {} appends of {:.0} events on average; EventLog::append in progress {:.0}% of the time",
        appends.count,
        events as f64 / appends.count.max(1.0),
        100.0 * appends.seconds / stored_secs
    );
    Ok(())
}

/// The client: connects to `base` with `token` as the photos' owner, subscribes to every photo
/// from seq 1 (so that nothing can slip between replay and live delivery), and reads until it
/// has `events` progress events, each the next seq of its room (a repeat or a gap fails). It
/// speaks the wire itself (the load tool's `wire`) and reads only `room` and `seq` of each event,
/// so that it takes little of the CPU the hub and nats-server share (a client that builds a JSON
/// tree per event took 12% of it: docs/benchmarks.md, "NATS pipeline").
async fn receive_all(base: String, token: String, events: usize) -> anyhow::Result<()> {
    let mut socket = wire::open(&base, LIMIT).await?;
    wire::send(
        &mut socket,
        wire::connect_packet(&json!({ "token": token, "clientId": "bench" })),
    )
    .await?;
    let mut last: HashMap<String, u64> = HashMap::new();
    let mut received = 0;
    while received < events {
        let text = match socket.next().await {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e).context("reading from the hub"),
            None => bail!("the hub closed the connection after {received} of {events} events"),
        };
        match Packet::parse(&text) {
            Packet::Ping => wire::send(&mut socket, "3".to_owned()).await?,
            Packet::Refused(why) => bail!("the hub refused the connection: {why}"),
            Packet::Closed => {
                bail!("the hub closed the session after {received} of {events} events")
            }
            Packet::Event(array) => {
                let Some(event) = EventFields::scan(array) else {
                    bail!("an event without a name: {array}");
                };
                if event.name == "connection:established" {
                    for p in 0..PHOTOS {
                        let photo = format!("p{p}");
                        last.insert(format!("photo:{photo}"), 1);
                        let subscribe = json!({ "photoId": photo, "since": 1 });
                        let packet = wire::event_with_ack(p as u64, "subscribe:photo", &subscribe);
                        wire::send(&mut socket, packet).await?;
                    }
                } else if event.name == "photo.processing.progress" {
                    let (Some(room), Some(seq)) = (event.room, event.seq) else {
                        bail!("a stored event without its room and seq: {array}");
                    };
                    let Some(at) = last.get_mut(room) else {
                        bail!("an event of {room}, a room the client is not in");
                    };
                    if seq != *at + 1 {
                        bail!("{room}: seq {seq} after {at}");
                    }
                    *at = seq;
                    received += 1;
                }
            }
            Packet::Ack { args, .. } if !args.contains("\"ok\":true") => {
                bail!("a subscription was refused: {args}")
            }
            Packet::Connected { .. } | Packet::Ack { .. } | Packet::Other => {}
        }
    }
    Ok(())
}

/// The kit's hub settings in `data_dir`, consuming `nats` in batches of `batch`.
fn settings(data_dir: &std::path::Path, nats: &NatsServer, batch: usize) -> Settings {
    let mut settings = hub::settings(data_dir);
    nats.attach(&mut settings).batch_size = batch;
    // The client catches up from the store when it falls behind; give it room to stay live.
    settings.socket.queue_packets = 8192;
    settings
}

/// The event log's own append metrics (count and total seconds of `EventLog::append` calls).
struct AppendFigures {
    count: f64,
    seconds: f64,
}

impl AppendFigures {
    fn now() -> Self {
        let text = socket_bridge::telemetry::metrics_handle().render();
        let value = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        Self {
            count: value("event_log_append_seconds_count"),
            seconds: value("event_log_append_seconds_sum"),
        }
    }

    fn since(&self, before: &Self) -> Self {
        Self {
            count: self.count - before.count,
            seconds: self.seconds - before.seconds,
        }
    }
}

/// Publishes `events` progress events over the photos (with body ids `e<n>` when `body_ids`),
/// 1000 unacknowledged at a time.
async fn publish_backlog(
    js: &jetstream::Context,
    events: usize,
    body_ids: bool,
) -> Result<(), Error> {
    let mut acks = Vec::with_capacity(1000);
    for n in 0..events {
        let mut body = json!({
            "data": { "photoId": format!("p{}", n % PHOTOS), "progress": (n / PHOTOS) % 101, "stage": "resize" },
        });
        if body_ids {
            body["id"] = json!(format!("e{n}"));
        }
        acks.push(
            js.publish("photo.processing.progress", body.to_string().into())
                .await?,
        );
        if acks.len() == 1000 {
            for ack in acks.drain(..) {
                ack.await?;
            }
        }
    }
    for ack in acks {
        ack.await?;
    }
    Ok(())
}
