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
//!    (`since: 0`, so nothing can slip past it) counts what it receives. "Stored" is when JetStream
//!    shows the hub's consumer with nothing pending or unacked; "delivered" is when the client has
//!    received every event.

// The shared test kit; this bench uses only part of it.
#[allow(dead_code)]
#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull};
use futures::{FutureExt, StreamExt};
use rust_socketio::Payload;
use rust_socketio::asynchronous::ClientBuilder;
use serde_json::json;
use socket_bridge::app::Application;
use socket_bridge::settings::Settings;
use tokio::sync::Notify;

use support::hub::{self, TestHub};
use support::nats::{HUB_CONSUMER, NatsServer, STREAM, create_stream, wait_consumed};

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
    let received = Arc::new(AtomicUsize::new(0));
    let all_received = Arc::new(Notify::new());
    let established = Arc::new(Notify::new());
    let app = Application::build(&args).await?;
    let base = format!("http://{}", app.local_addr()?);
    let appends_before = AppendFigures::now();
    let started = Instant::now();
    let hub = TestHub::run(app, args);
    let socket = {
        let (received, all_received) = (Arc::clone(&received), Arc::clone(&all_received));
        let established = Arc::clone(&established);
        let token = support::token("u1", &["read:photos"]);
        ClientBuilder::new(base)
            .namespace("/")
            .auth(json!({ "token": token, "clientId": "bench" }))
            .reconnect(false)
            .on_any(move |event, payload, _| {
                let (received, all_received) = (Arc::clone(&received), Arc::clone(&all_received));
                let established = Arc::clone(&established);
                async move {
                    let name = String::from(event);
                    if name == "connection:established" {
                        established.notify_one();
                    }
                    let is_event = name == "photo.processing.progress"
                        && matches!(&payload, Payload::Text(v) if v.first().is_some_and(|p| p.get("seq").is_some()));
                    if is_event && received.fetch_add(1, Ordering::SeqCst) + 1 == events {
                        all_received.notify_one();
                    }
                }
                .boxed()
            })
            .connect()
            .await?
    };
    // Packets sent before the server has accepted the connection are dropped.
    tokio::time::timeout(LIMIT, established.notified()).await?;
    for p in 0..PHOTOS {
        socket
            .emit(
                "subscribe:photo",
                json!({ "photoId": format!("p{p}"), "since": 1 }),
            )
            .await?;
    }
    wait_consumed(&js, HUB_CONSUMER, LIMIT).await;

    let stored_secs = started.elapsed().as_secs_f64();
    let appends = AppendFigures::now().since(&appends_before);
    let delivered = tokio::time::timeout(LIMIT, all_received.notified()).await;
    let delivered_secs = started.elapsed().as_secs_f64();
    let got = received.load(Ordering::SeqCst);
    let _ = socket.disconnect().await;
    hub.stop().await;
    if delivered.is_err() {
        return Err(format!("the client received {got} of {events} events").into());
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
