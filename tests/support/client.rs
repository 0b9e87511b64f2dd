//! The Socket.IO test client ([`TestClient`], on `rust_socketio`): it records every event it
//! receives, waits for the next one (or one by name, or a room's seqs), and emits with acks. A
//! refused handshake is recorded as [`CONNECT_ERROR`] and the end of the connection as
//! [`DISCONNECT`], names no server event can have.

use std::time::{Duration, Instant};

use futures::FutureExt;
use rust_socketio::asynchronous::{Client, ClientBuilder};
use rust_socketio::{Event, Payload};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::WAIT;

/// A received event: its name and first argument.
pub type Received = (String, Value);

/// Recorded when the hub refuses the handshake, with the refusal's data (`{ "message": ... }`).
pub const CONNECT_ERROR: &str = "connect_error";

/// Recorded when the connection ends (the hub disconnected the socket or closed the transport).
pub const DISCONNECT: &str = "disconnect";

/// How `rust_socketio` reports a refused handshake, before the refusal's data.
const CONNECT_ERROR_PREFIX: &str = "Received an ConnectError frame: ";

/// A `rust_socketio` client recording every event into a channel.
pub struct TestClient {
    /// The `rust_socketio` client, to emit without waiting for an ack.
    pub client: Client,
    events: mpsc::UnboundedReceiver<(String, Value, Instant)>,
    /// When the event last returned by `next` reached the client.
    pub last_received_at: Instant,
}

impl TestClient {
    /// Connects to `base` with `auth`.
    pub async fn connect(base: &str, auth: Value) -> Self {
        let (tx, events) = mpsc::unbounded_channel();
        let (on_error, on_close) = (tx.clone(), tx.clone());
        let client = ClientBuilder::new(base)
            .namespace("/")
            .auth(auth)
            .reconnect(false)
            .on(Event::Error, move |payload, _| {
                let text = match payload {
                    Payload::Text(values) => values
                        .first()
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    _ => String::new(),
                };
                // Other errors of the client (a bad packet, a failed ack) are not recorded.
                if let Some(data) = text.strip_prefix(CONNECT_ERROR_PREFIX) {
                    let data = serde_json::from_str(data).unwrap_or(Value::String(data.into()));
                    let _ = on_error.send((CONNECT_ERROR.into(), data, Instant::now()));
                }
                async {}.boxed()
            })
            .on(Event::Close, move |_, _| {
                let _ = on_close.send((DISCONNECT.into(), Value::Null, Instant::now()));
                async {}.boxed()
            })
            .on_any(move |event, payload, _| {
                let tx = tx.clone();
                async move {
                    let value = match payload {
                        Payload::Text(mut values) if !values.is_empty() => values.swap_remove(0),
                        _ => Value::Null,
                    };
                    let _ = tx.send((String::from(event), value, Instant::now()));
                }
                .boxed()
            })
            .connect()
            .await
            .expect("socket.io connect");
        Self {
            client,
            events,
            last_received_at: Instant::now(),
        }
    }

    /// The next event, whatever it is.
    pub async fn next(&mut self) -> Received {
        let (event, value, at) = tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("an event in time")
            .expect("client open");
        self.last_received_at = at;
        (event, value)
    }

    /// The next event named `name` (others are skipped).
    pub async fn next_named(&mut self, name: &str) -> Value {
        loop {
            let (event, value) = self.next().await;
            if event == name {
                return value;
            }
        }
    }

    /// The first event named `name` to arrive within `within` (others are skipped); `None` when
    /// none does.
    pub async fn receives(&mut self, name: &str, within: Duration) -> Option<Value> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.events.recv()).await {
                Ok(Some((event, value, at))) => {
                    self.last_received_at = at;
                    if event == name {
                        return Some(value);
                    }
                }
                _ => return None,
            }
        }
    }

    /// Emits `event` with `data` and waits for the ack's first argument.
    pub async fn ack(&self, event: &str, data: Value) -> Value {
        let (tx, rx) = oneshot::channel();
        let tx = std::sync::Mutex::new(Some(tx));
        self.client
            .emit_with_ack(event, data, WAIT, move |payload: Payload, _| {
                // rust_socketio hands an ack's arguments over as one JSON array.
                let value = match payload {
                    Payload::Text(mut values) if !values.is_empty() => {
                        match values.swap_remove(0) {
                            Value::Array(mut args) if args.len() == 1 => args.swap_remove(0),
                            other => other,
                        }
                    }
                    _ => Value::Null,
                };
                if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
                    let _ = tx.send(value);
                }
                async {}.boxed()
            })
            .await
            .expect("emit");
        tokio::time::timeout(WAIT, rx)
            .await
            .expect("ack in time")
            .expect("ack")
    }

    /// Collects stored events of `room` until seq `last` arrives; returns their seqs in arrival
    /// order (it stops early only by timing out, which fails the test).
    pub async fn seqs_until(&mut self, room: &str, last: u64) -> Vec<u64> {
        let mut seqs = Vec::new();
        loop {
            let (_, value) = self.next().await;
            if value.get("room").and_then(Value::as_str) != Some(room) {
                continue;
            }
            let Some(seq) = value.get("seq").and_then(Value::as_u64) else {
                continue;
            };
            seqs.push(seq);
            if seq >= last {
                return seqs;
            }
        }
    }

    /// Disconnects.
    pub async fn close(self) {
        let _ = self.client.disconnect().await;
    }
}
