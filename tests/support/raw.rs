//! A raw Socket.IO v5 client over one websocket ([`RawSocket`]): it writes packets as fast as a
//! test wants (no ack bookkeeping, no client-side queue) and may leave without saying goodbye,
//! which is how the abuse and race tests behave like a misbehaving client.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::WAIT;

/// A client websocket to the hub.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a websocket to the hub at `base` and sends the Socket.IO connect packet with `auth`,
/// without waiting for the answer: what a test that reads the raw frames starts with.
pub async fn open_websocket(base: &str, auth: &Value) -> Ws {
    let url = format!(
        "{}/socket.io/?EIO=4&transport=websocket",
        base.replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket");
    ws.send(Message::text(format!("40{auth}")))
        .await
        .expect("connect packet");
    ws
}

/// One websocket speaking Engine.IO v4 / Socket.IO v5 by hand.
pub struct RawSocket {
    sink: SplitSink<Ws, Message>,
    stream: SplitStream<Ws>,
}

impl RawSocket {
    /// Opens the websocket and sends the connect packet with `auth` at once, without waiting for
    /// the hub's answer.
    pub async fn open(base: &str, auth: &Value) -> Self {
        let (sink, stream) = open_websocket(base, auth).await.split();
        Self { sink, stream }
    }

    /// [`open`](Self::open), then waits until the hub has accepted the connection.
    pub async fn connect(base: &str, auth: &Value) -> Self {
        let mut socket = Self::open(base, auth).await;
        tokio::time::timeout(WAIT, async {
            while let Some(Ok(message)) = socket.stream.next().await {
                if let Message::Text(text) = message {
                    assert!(!text.starts_with("44"), "connect refused: {text}");
                    if text.starts_with("40") {
                        return;
                    }
                }
            }
            panic!("the websocket closed before the connection was accepted");
        })
        .await
        .expect("connected in time");
        socket
    }

    /// Opens with `auth` and returns the `connect_error` message the hub refuses it with.
    pub async fn refusal(base: &str, auth: &Value) -> String {
        let mut socket = Self::open(base, auth).await;
        tokio::time::timeout(WAIT, async {
            while let Some(Ok(message)) = socket.stream.next().await {
                if let Message::Text(text) = message {
                    assert!(!text.starts_with("40"), "connect accepted: {text}");
                    if let Some(error) = text.strip_prefix("44") {
                        let error: Value = serde_json::from_str(error).expect("connect_error JSON");
                        return error["message"].as_str().unwrap_or_default().to_owned();
                    }
                }
            }
            panic!("the websocket closed without a connect_error");
        })
        .await
        .expect("refused in time")
    }

    /// Sends the event packet `42[event, data]` (no ack asked for).
    pub async fn emit(&mut self, event: &str, data: &Value) {
        self.send(event_packet(event, data)).await;
    }

    async fn send(&mut self, text: String) {
        // A hub that already closed the connection is what some tests want: ignore the error.
        let _ = self.sink.send(Message::text(text)).await;
    }

    /// Reads (and counts) every frame from now on in a task, so that the hub never sees this
    /// client as slow. It does not answer the hub's Engine.IO pings: keep a drained socket
    /// shorter-lived than the ping interval plus timeout.
    pub fn drain(self) -> RawWriter {
        let mut stream = self.stream;
        let frames = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&frames);
        let reader = tokio::spawn(async move {
            while let Some(Ok(_)) = stream.next().await {
                counted.fetch_add(1, Ordering::Relaxed);
            }
        });
        RawWriter {
            sink: self.sink,
            frames,
            reader,
        }
    }

    /// Closes the TCP connection at once (no Socket.IO or websocket goodbye).
    pub fn drop_connection(self) {
        drop(self);
    }
}

/// The writing half of a drained [`RawSocket`]; dropping it closes the connection.
pub struct RawWriter {
    sink: SplitSink<Ws, Message>,
    frames: Arc<AtomicU64>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for RawWriter {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl RawWriter {
    /// The frames read so far, counted as they arrive.
    pub fn frames(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.frames)
    }

    /// Sends the event packet `42[event, data]` (no ack asked for).
    pub async fn emit(&mut self, event: &str, data: &Value) {
        let _ = self
            .sink
            .send(Message::text(event_packet(event, data)))
            .await;
    }
}

/// The Socket.IO event packet `42[event, data]`.
fn event_packet(event: &str, data: &Value) -> String {
    format!("42{}", Value::Array(vec![event.into(), data.clone()]))
}
