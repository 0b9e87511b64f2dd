//! A client that stops reading must not grow the server's memory or hold back the others.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::api::Api;
use crate::support::binary::HubProcess;
use crate::support::raw::open_websocket;
use crate::support::token;

const BATCHES: usize = 160;
const BATCH: usize = 25;
const PAD_BYTES: usize = 16 * 1024;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

async fn connected_clients(hub: &Api) -> u64 {
    let health = hub.health().await;
    health["details"]["websocket"]["connectedClients"]
        .as_u64()
        .expect("connectedClients")
}

/// A socket queue of 64 packets, large enough in bytes for them all.
const QUEUE_IN_PACKETS: Queue = Queue {
    packets: "64",
    bytes: "1073741824",
};

/// A socket queue of 256 KiB, with room for more packets than the test sends.
const QUEUE_IN_BYTES: Queue = Queue {
    packets: "8192",
    bytes: "262144",
};

/// A socket queue's bounds: `SOCKET_QUEUE_PACKETS` and `SOCKET_QUEUE_BYTES`.
#[derive(Clone, Copy)]
struct Queue {
    packets: &'static str,
    bytes: &'static str,
}

/// A raw websocket that completes the Socket.IO handshake and then never reads, while 62 MiB of
/// events flow to a room it is in: the server's memory grows no more than in the same run
/// without the stalled client (the baseline: the store's cache and buffers), the stalled client
/// is dropped, and a normal client in the same room still gets every event in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_dropped_without_hurting_others() {
    assert_stalled_client_costs_little(QUEUE_IN_PACKETS).await;
}

/// The same with a queue bounded in bytes only (its packet bound is never reached): the
/// stalled socket's queue stops at about 256 KiB instead of holding the 62 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_bounded_in_bytes_holds_a_stalled_client_to_its_bytes() {
    assert_stalled_client_costs_little(QUEUE_IN_BYTES).await;
}

async fn assert_stalled_client_costs_little(queue: Queue) {
    let baseline = run(false, queue).await;
    let with_stalled = run(true, queue).await;
    eprintln!(
        "server RSS growth: {baseline} MiB without the stalled client, {with_stalled} MiB with it"
    );
    assert!(
        with_stalled < baseline + 16,
        "a client that never reads cost the server {} MiB more",
        with_stalled.saturating_sub(baseline)
    );
}

/// Publishes the events with or without a stalled client; returns the server's RSS growth, MiB.
async fn run(with_stalled: bool, queue: Queue) -> u64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = HubProcess::start(dir.path(), |command| {
        command
            .env("SOCKET_QUEUE_PACKETS", queue.packets)
            .env("SOCKET_QUEUE_BYTES", queue.bytes)
            .env("SLOW_CLIENT_TIMEOUT", "2s")
            .env("STORE_CACHE_MB", "16");
    })
    .await;

    let mut normal = server
        .client(json!({ "token": token("u1", &["read:photos"]), "clientId": "normal" }))
        .await;
    normal.next_named("connection:established").await;
    let expected_clients = if with_stalled { 2 } else { 1 };
    let mut stalled = None;
    if with_stalled {
        let auth = json!({ "token": token("u2", &["read:photos"]), "clientId": "stalled" });
        stalled = Some(open_websocket(&server.base, &auth).await);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while connected_clients(&server).await < expected_clients {
        assert!(Instant::now() < deadline, "the raw client did not connect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rss_before = rss_kib(server.pid());

    let pad = "x".repeat(PAD_BYTES);
    let publisher = {
        let api = Api::clone(&server);
        tokio::spawn(async move {
            for b in 0..BATCHES {
                let batch: Vec<Value> = (0..BATCH)
                    .map(|i| json!({ "type": "system.maintenance", "data": { "n": b * BATCH + i, "pad": pad } }))
                    .collect();
                api.publish_ok(&Value::Array(batch)).await;
            }
        })
    };
    let total = (BATCHES * BATCH) as u64;
    let seqs = normal.seqs_until("global", total).await;
    assert_eq!(
        seqs,
        (1..=total).collect::<Vec<_>>(),
        "the normal client gets every event once, in order"
    );
    publisher.await.expect("publisher");
    let rss_after = rss_kib(server.pid());
    let pushed_mib = (total as usize * PAD_BYTES) >> 20;
    let grown_mib = rss_after.saturating_sub(rss_before) >> 10;
    eprintln!(
        "server RSS {rss_before} KiB -> {rss_after} KiB (+{grown_mib} MiB) after {pushed_mib} MiB of events, stalled client: {with_stalled}"
    );
    let Some(mut stalled) = stalled else {
        normal.close().await;
        return grown_mib;
    };

    let deadline = Instant::now() + Duration::from_secs(20);
    while connected_clients(&server).await > 1 {
        assert!(
            Instant::now() < deadline,
            "the stalled client was not dropped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Drain what the kernel buffered for the stalled socket: the server closed it.
    let drained = tokio::time::timeout(Duration::from_secs(30), async {
        let mut frames = 0u64;
        while let Some(message) = stalled.next().await {
            match message {
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => frames += 1,
            }
        }
        frames
    })
    .await
    .expect("the stalled connection ends");
    assert!(
        drained < total,
        "the stalled client cannot have received everything ({drained} frames)"
    );
    normal.close().await;
    grown_mib
}
