//! Engine.IO v4 / Socket.IO v5 over a websocket, as much of it as a load client needs: the open
//! packet, `40{auth}` and its answer, ping/pong (`2`/`3`), events (`42[...]`) and acks
//! (`43<id>[...]`) on the default namespace. No long-polling, no binary packets.
//!
//! Events are not parsed as JSON on the hot path: [`EventFields::scan`] finds the few fields the
//! tool checks (`room`, `seq`, the publish time it put in `data`, and the recovery offset Node's
//! socket.io appends) with substring searches. That is sound because the tool writes every `data`
//! the servers echo, and none of its values contains those keys.

use std::time::Duration;

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The key under which the publisher puts its send time (microseconds on the tool's clock) in
/// every event's `data`; servers echo `data` into the delivered payload.
pub const SENT_KEY: &str = "loadSentUs";

/// Bytes a connection reads from its socket at once. Large enough for a burst of small frames,
/// small enough that 5,000 idle connections stay cheap for the tool.
const READ_BUFFER: usize = 16 * 1024;

/// A websocket to a Socket.IO server.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens the websocket transport at `http_base` (`http://host:port`) and reads Engine.IO's open
/// packet; the Socket.IO connect is up to the caller ([`connect_packet`]). Fails after `limit`.
pub async fn open(http_base: &str, limit: Duration) -> anyhow::Result<Socket> {
    let host = http_base
        .strip_prefix("http://")
        .context("the server URL must start with http://")?;
    let url = format!("ws://{host}/socket.io/?EIO=4&transport=websocket");
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0);
    let opened = async {
        let (mut socket, _) =
            tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true)
                .await
                .with_context(|| format!("websocket to {url}"))?;
        match socket.next().await {
            Some(Ok(Message::Text(text))) if text.starts_with('0') => Ok(socket),
            Some(Ok(other)) => bail!("expected the Engine.IO open packet, got {other:?}"),
            Some(Err(e)) => Err(e).context("reading the Engine.IO open packet"),
            None => bail!("the server closed before the Engine.IO open packet"),
        }
    };
    tokio::time::timeout(limit, opened)
        .await
        .with_context(|| format!("no Engine.IO open packet within {limit:?}"))?
}

/// The Socket.IO connect packet for the default namespace with `auth`.
pub fn connect_packet(auth: &serde_json::Value) -> String {
    format!("40{auth}")
}

/// An event packet with an ack id: `42<id>["<name>",<payload>]`.
pub fn event_with_ack(id: u64, name: &str, payload: &serde_json::Value) -> String {
    format!("42{id}[\"{name}\",{payload}]")
}

/// Sends one text frame.
pub async fn send(socket: &mut Socket, text: String) -> anyhow::Result<()> {
    socket
        .send(Message::text(text))
        .await
        .context("sending a frame")
}

/// A packet received from the server, borrowing its text.
#[derive(Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// Engine.IO ping (`2`): answer with a pong.
    Ping,
    /// Socket.IO connect accepted (`40{...}`), with Node's recovery session id when it has one.
    Connected {
        /// `pid` of the answer: what socket.io with connection state recovery wants back.
        pid: Option<&'a str>,
    },
    /// Socket.IO connect refused (`44{...}`): its JSON.
    Refused(&'a str),
    /// An event (`42[...]`): the JSON array, name first.
    Event(&'a str),
    /// An ack (`43<id>[...]`): its id and the JSON array of its arguments.
    Ack {
        /// The id the request was sent with.
        id: u64,
        /// The JSON array of the ack's arguments.
        args: &'a str,
    },
    /// Engine.IO close (`1`) or Socket.IO disconnect (`41`).
    Closed,
    /// Anything else (noop, pong, upgrade packets): ignored.
    Other,
}

impl<'a> Packet<'a> {
    /// Classifies one text frame.
    pub fn parse(text: &'a str) -> Self {
        match text.as_bytes() {
            [b'2', ..] if text.len() == 1 => Packet::Ping,
            [b'1', ..] => Packet::Closed,
            [b'4', b'2', ..] => Packet::Event(&text[2..]),
            [b'4', b'3', ..] => {
                let rest = &text[2..];
                let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                match rest[..digits].parse() {
                    Ok(id) => Packet::Ack {
                        id,
                        args: &rest[digits..],
                    },
                    Err(_) => Packet::Other,
                }
            }
            [b'4', b'0', ..] => Packet::Connected {
                pid: string_field(&text[2..], "pid"),
            },
            [b'4', b'4', ..] => Packet::Refused(&text[2..]),
            [b'4', b'1', ..] => Packet::Closed,
            _ => Packet::Other,
        }
    }
}

/// What the tool reads of a delivered event.
#[derive(Debug, PartialEq, Eq)]
pub struct EventFields<'a> {
    /// The event name (its type for a stored event).
    pub name: &'a str,
    /// `room`, when the payload has one.
    pub room: Option<&'a str>,
    /// `seq`, when the payload has one (stored events).
    pub seq: Option<u64>,
    /// The publisher's send time, when the event came from this tool.
    pub sent_us: Option<u64>,
    /// The recovery offset Node's socket.io appends to broadcast events as a last argument.
    pub offset: Option<&'a str>,
}

impl<'a> EventFields<'a> {
    /// Reads the fields of an event array (`["name",{...}(,"offset")?]`); `None` if it does not
    /// start with a string name.
    pub fn scan(array: &'a str) -> Option<Self> {
        let rest = array.strip_prefix("[\"")?;
        let end = rest.find('"')?;
        let name = &rest[..end];
        let body = &rest[end..];
        let offset = body
            .strip_suffix("\"]")
            .and_then(|inner| inner.rfind(",\"").map(|i| &inner[i + 2..]));
        Some(Self {
            name,
            room: string_field(body, "room"),
            seq: number_field(body, "seq"),
            sent_us: number_field(body, SENT_KEY),
            offset,
        })
    }
}

/// The string value of `"key":"..."` in `json` (no escapes in the value), if present.
fn string_field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let at = find_key(json, key)?;
    let value = json[at..].strip_prefix('"')?;
    Some(&value[..value.find('"')?])
}

/// The unsigned integer value of `"key":N` in `json`, if present.
fn number_field(json: &str, key: &str) -> Option<u64> {
    let at = find_key(json, key)?;
    let digits = json[at..].bytes().take_while(u8::is_ascii_digit).count();
    json[at..at + digits].parse().ok()
}

/// The index just past `"key":` in `json`.
fn find_key(json: &str, key: &str) -> Option<usize> {
    let bytes = json.as_bytes();
    let mut from = 0;
    while let Some(i) = json[from..].find(key) {
        let start = from + i;
        let end = start + key.len();
        if start > 0
            && bytes[start - 1] == b'"'
            && bytes.get(end) == Some(&b'"')
            && bytes.get(end + 1) == Some(&b':')
        {
            return Some(end + 2);
        }
        from = end;
    }
    None
}
