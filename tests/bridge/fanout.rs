//! Fan-out: one committed event handed to every live socket of its room (the hub encodes its
//! packet once and queues the same bytes to each socket).

use serde_json::{Value, json};

use crate::support::binary::HubProcess;

const SOCKETS: usize = 4;
const EVENTS: u64 = 1000;

/// The value of the counter `name` in a Prometheus text exposition (0 when absent).
fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix(name))
        .filter_map(|rest| rest.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// One burst bigger than every socket's queue, committed as one batch: each socket's queue
/// fills while the event is being handed out to the room, the refused subscriptions are
/// counted as slow and caught up from the store, and every socket still gets every seq once,
/// in order (docs/protocol.md, "Sequence numbers").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_queue_reaches_every_socket_once_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = HubProcess::start(dir.path(), |command| {
        command.env("SOCKET_QUEUE_PACKETS", "4");
    })
    .await;
    let mut clients = Vec::new();
    for i in 0..SOCKETS {
        let mut client = server.client_for(&format!("u{i}")).await;
        client.next_named("connection:established").await;
        clients.push(client);
    }
    let slow_before = counter(&server.metrics().await, "hub_slow_subscriptions_total");

    let batch: Vec<Value> = (0..EVENTS)
        .map(|n| json!({ "type": "system.maintenance", "data": { "n": n } }))
        .collect();
    server.publish_ok(&Value::Array(batch)).await;

    for client in &mut clients {
        let seqs = client.seqs_until("global", EVENTS).await;
        assert_eq!(
            seqs,
            (1..=EVENTS).collect::<Vec<_>>(),
            "every seq once, in order"
        );
    }
    let slow = counter(&server.metrics().await, "hub_slow_subscriptions_total") - slow_before;
    assert!(
        slow >= SOCKETS as u64,
        "{slow} subscriptions counted slow: every socket's queue (4 packets) was full during the burst"
    );
    for client in clients {
        client.close().await;
    }
}
