//! The ws transport module is responsible for handling websocket connections
//! The only public function is [`new_req`] which is used to upgrade a http request to a websocket connection
//!
//! Other functions are used internally to handle the websocket connection through tasks and channels
//! and to handle upgrade from polling to ws

use std::sync::Arc;

use futures_util::{
    FutureExt, SinkExt, StreamExt, TryStreamExt,
    stream::{SplitSink, SplitStream},
};
use http::{HeaderValue, Request, Response, StatusCode, request::Parts};
use smallvec::smallvec;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    time::Instant,
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        self, Message,
        handshake::derive_accept_key,
        protocol::{Role, WebSocketConfig},
    },
};
use tokio_util::future::FutureExt as _;

use engineioxide_core::{Packet, ProtocolVersion, Sid, Str, TransportType};

use crate::{
    DisconnectReason, Socket, body::ResponseBody, config::EngineIoConfig, engine::EngineIo,
    errors::Error, handler::EngineIoHandler, heartbeat::Heartbeat, socket::InternalRx,
    transport::make_open_packet,
};

/// Create a response for websocket upgrade
fn ws_response<B>(ws_key: &HeaderValue) -> Response<ResponseBody<B>> {
    let derived = derive_accept_key(ws_key.as_bytes());
    let sec = derived.parse::<HeaderValue>().unwrap();
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(http::header::UPGRADE, HeaderValue::from_static("websocket"))
        .header(
            http::header::CONNECTION,
            HeaderValue::from_static("Upgrade"),
        )
        .header(http::header::SEC_WEBSOCKET_ACCEPT, sec)
        .body(ResponseBody::empty_response())
        .unwrap() // we are only using constants
}

/// Upgrade a websocket request to create a websocket connection.
///
/// If a sid is provided in the query it means that is is upgraded from an existing HTTP polling request.
/// In this case the http polling request is closed and the SID is kept for the websocket
pub fn new_req<R: Send + 'static, B, H: EngineIoHandler>(
    engine: Arc<EngineIo<H>>,
    protocol: ProtocolVersion,
    sid: Option<Sid>,
    req: Request<R>,
) -> Result<Response<ResponseBody<B>>, Error> {
    let (parts, body) = req.into_parts();
    let req = Request::from_parts(parts.clone(), body);

    let ws_key = parts
        .headers
        .get("Sec-WebSocket-Key")
        .ok_or(Error::InvalidWebSocketKey)?
        .clone();

    // The upgrade and the handshake are boxed apart from the connection's task: their state (the
    // request head, the websocket being made, an upgrade's probes) is freed when they end, and
    // the task keeps for the connection's life only what serving it needs.
    let opening = Box::pin({
        let engine = engine.clone();
        async move {
            match hyper::upgrade::on(req).await {
                Ok(conn) => {
                    let conn = hyper_util::rt::TokioIo::new(conn);
                    Some(open(engine, conn, protocol, sid, parts).await)
                }
                Err(_e) => {
                    #[cfg(feature = "tracing")]
                    tracing::debug!("ws upgrade error: {}", _e);
                    None
                }
            }
        }
    });

    tokio::spawn(async move {
        match opening.await {
            None => {}
            Some(Ok(opened)) => {
                serve(engine, opened).await;
                #[cfg(feature = "tracing")]
                tracing::debug!(?sid, "ws closed")
            }
            Some(Err(Error::MultipleWebsocketRequests)) => {}
            Some(Err(_e)) => {
                #[cfg(feature = "tracing")]
                tracing::debug!(?sid, "ws closed with error: {_e}");
                if let Some(sid) = sid {
                    engine.close_session(sid, DisconnectReason::TransportError);
                }
            }
        }
    });

    Ok(ws_response(&ws_key))
}

/// Handle a websocket connection upgrade
///
/// Sends an open packet if it is not an upgrade from a polling request
///
/// Read packets from the websocket and handle them, it will block until the connection is closed
pub fn on_init<H: EngineIoHandler, S>(
    engine: Arc<EngineIo<H>>,
    conn: S,
    protocol: ProtocolVersion,
    sid: Option<Sid>,
    req_data: Parts,
) -> impl Future<Output = Result<(), Error>> + Send + 'static
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Boxed for the reason given in `new_req`.
    let opening = Box::pin(open(engine.clone(), conn, protocol, sid, req_data));
    async move {
        let opened = opening.await?;
        serve(engine, opened).await;
        Ok(())
    }
}

/// A websocket connection whose handshake is done, to be served by [`serve`].
struct Opened<D: Default + Send + Sync + 'static, S> {
    socket: Arc<Socket<D>>,
    tx: SplitSink<WebSocketStream<S>, Message>,
    rx: SplitStream<WebSocketStream<S>>,
    /// The v4 heartbeat, for the writer to run: a socket that starts on websocket (an upgraded
    /// one has the heartbeat task of its polling start, and a v3 one its own task).
    heartbeat: Option<Heartbeat>,
}

/// The handshake of a websocket connection: the open packet of a new session, or the probes of
/// an upgrade from polling.
#[cfg_attr(
    feature = "tracing",
    tracing::instrument(level = "trace", name = "init_websocket", skip(engine, conn, req_data))
)]
async fn open<H: EngineIoHandler, S>(
    engine: Arc<EngineIo<H>>,
    conn: S,
    protocol: ProtocolVersion,
    sid: Option<Sid>,
    req_data: Parts,
) -> Result<Opened<H::Data, S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(engine.config.ws_read_buffer_size)
        .max_message_size(Some(engine.config.ws_max_message_size))
        .max_frame_size(Some(engine.config.ws_max_frame_size));

    let ws_init = move || WebSocketStream::from_raw_socket(conn, Role::Server, Some(ws_config));
    let (socket, ws, heartbeat) = if let Some(sid) = sid {
        match engine.get_socket(sid) {
            None => return Err(Error::UnknownSessionID(sid)),
            Some(socket) if socket.is_ws() => return Err(Error::MultipleWebsocketRequests),
            Some(socket) => {
                let mut ws = ws_init().await;

                let upgrade_fut = upgrade_handshake::<H, S>(&socket, &mut ws);
                match tokio::time::timeout(engine.config.upgrade_timeout, upgrade_fut)
                    .with_cancellation_token(&socket.cancellation_token)
                    .await
                {
                    Some(Ok(res)) => res?,
                    Some(Err(_)) => {
                        #[cfg(feature = "tracing")]
                        tracing::debug!(?sid, "ws upgrade timed out, closing session");
                        engine.close_session(socket.id, DisconnectReason::TransportError);
                        return Err(Error::Upgrade);
                    }
                    None => {
                        #[cfg(feature = "tracing")]
                        tracing::debug!(?sid, "socket is being closed");
                        return Err(Error::Upgrade);
                    }
                }
                (socket, ws, None)
            }
        }
    } else {
        let socket = engine.create_session(protocol, TransportType::Websocket, req_data, false);

        #[cfg(feature = "tracing")]
        tracing::debug!("new websocket connection");

        let mut ws = ws_init().await;
        init_handshake(socket.id, &mut ws, &engine.config).await?;
        let (interval, timeout) = (engine.config.ping_interval, engine.config.ping_timeout);
        let heartbeat = if socket.protocol == ProtocolVersion::V4 {
            Some(Heartbeat::new(interval, timeout))
        } else {
            socket.clone().spawn_heartbeat(interval, timeout);
            None
        };
        (socket, ws, heartbeat)
    };
    let (tx, rx) = ws.split();
    Ok(Opened {
        socket,
        tx,
        rx,
        heartbeat,
    })
}

/// Serves an opened websocket connection until its session closes: reads packets from the
/// websocket and hands them to the handler, while a task of its own writes the socket's queued
/// packets (and runs its heartbeat, see [`Heartbeat`]).
async fn serve<H: EngineIoHandler, S>(engine: Arc<EngineIo<H>>, opened: Opened<H::Data, S>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Opened {
        socket,
        tx,
        rx,
        heartbeat,
    } = opened;
    // The writer is a task of its own: joined with the reader in one task, every wake of the
    // writer (a packet queued to a socket waiting for one) polled the reader too, which cost
    // fan-out CPU per delivery. Closing the session (the reader's end, or any other) cancels
    // the socket, which ends the writer after its closing flush.
    tokio::spawn(forward_to_socket::<H, S>(socket.clone(), tx, heartbeat));
    // pipe between internal socket channel and websocket
    match forward_to_handler(&engine, rx, &socket)
        .with_cancellation_token(&socket.cancellation_token)
        .await
    {
        Some(Err(ref e)) => {
            let reason =
                Option::<DisconnectReason>::from(e).unwrap_or(DisconnectReason::TransportError);

            #[cfg(feature = "tracing")]
            tracing::debug!("error when handling packet: {:?}", e);
            engine.close_session(socket.id, reason);
        }
        Some(Ok(())) => {
            #[cfg(feature = "tracing")]
            tracing::debug!(sid = %socket.id, "ws transport was closed");
            engine.close_session(socket.id, DisconnectReason::TransportClose);
        }
        None => {
            #[cfg(feature = "tracing")]
            tracing::debug!(sid = %socket.id, "socket is closing");
        }
    }
}

/// Forwards all packets received from a websocket to a EngineIo [`Socket`]
async fn forward_to_handler<H: EngineIoHandler, S>(
    engine: &Arc<EngineIo<H>>,
    mut rx: SplitStream<WebSocketStream<S>>,
    socket: &Arc<Socket<H::Data>>,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    while let Some(msg) = rx.try_next().await? {
        match msg {
            Message::Text(msg) => match Packet::parse(socket.protocol, ws_bytes_to_str(msg))? {
                Packet::Close => {
                    #[cfg(feature = "tracing")]
                    tracing::debug!("[sid={}] closing session", socket.id);
                    engine.close_session(socket.id, DisconnectReason::TransportClose);
                    break;
                }
                Packet::Pong | Packet::Ping => {
                    // A full channel means that the client is already known to be alive.
                    socket.heartbeat.notify_one();
                    Ok::<(), Error>(())
                }
                Packet::Message(msg) => {
                    engine.handler.on_message(msg, socket.clone());
                    Ok(())
                }
                p => return Err(Error::BadPacket(p)),
            },
            Message::Binary(mut data) => {
                if socket.protocol == ProtocolVersion::V3 && !data.is_empty() {
                    // The first byte is the message type, which we don't need.
                    data = data.split_off(1);
                }
                engine.handler.on_binary(data, socket.clone());
                Ok(())
            }
            Message::Close(_) => {
                #[cfg(feature = "tracing")]
                tracing::debug!("websocket closed, closing session");
                engine.close_session(socket.id, DisconnectReason::TransportClose);
                break;
            }
            _ => {
                #[cfg(feature = "tracing")]
                tracing::debug!(sid = ?socket.id, "unexpected ws message");
                Ok(())
            }
        }?
    }
    Ok(())
}

/// Forwards all packets waiting to be sent to the websocket, and runs `heartbeat` if given
///
/// The websocket stream is flushed only when the internal channel is drained
async fn forward_to_socket<H: EngineIoHandler, S>(
    socket: Arc<Socket<H::Data>>,
    mut tx: SplitSink<WebSocketStream<S>, Message>,
    mut heartbeat: Option<Heartbeat>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // A polling request that was in progress during the upgrade may still hold the lock.
    let lock = socket.internal_rx.lock();
    let Some(mut internal_rx) = lock
        .with_cancellation_token(&socket.cancellation_token)
        .await
    else {
        #[cfg(feature = "tracing")]
        tracing::debug!(sid = %socket.id, "session closed before starting the ws writer");
        return;
    };
    let InternalRx { buffered_rx, .. } = &mut *internal_rx;

    // Some clients send the pong packet in first. If that happens, we should consume it (only
    // when this heartbeat is ours: an upgraded socket's heartbeat task waits for its pongs).
    if heartbeat.is_some() {
        socket.heartbeat.notified().now_or_never();
    }
    let beat = tokio::time::sleep_until(
        heartbeat
            .as_ref()
            .map_or_else(Instant::now, Heartbeat::deadline),
    );
    tokio::pin!(beat);

    // Forward buffered packets until the channel is closed or the session is cancelled.
    loop {
        let awaiting_pong = heartbeat.as_ref().is_some_and(Heartbeat::awaiting_pong);
        // What to write is picked first and written after the `select!`, whose futures would
        // otherwise stay in the task's state beside the writes' (and each write site's). The
        // queue hands out volatile packets too, after the queued ones.
        let packets = tokio::select! {
            biased;
            items = buffered_rx.recv() => {
                match items {
                    Some(packets) => packets,
                    None => break
                }
            }
            _ = socket.cancellation_token.cancelled() => break,
            () = socket.heartbeat.notified(), if awaiting_pong => {
                if let Some(heartbeat) = &mut heartbeat {
                    heartbeat.on_pong();
                    beat.as_mut().reset(heartbeat.deadline());
                }
                continue;
            }
            () = &mut beat, if heartbeat.is_some() => {
                if let Some(beating) = &mut heartbeat {
                    match beating.on_deadline(&socket) {
                        Ok(()) => beat.as_mut().reset(beating.deadline()),
                        Err(_e) => {
                            heartbeat = None;
                            socket.close(DisconnectReason::HeartbeatTimeout);
                            #[cfg(feature = "tracing")]
                            tracing::debug!(sid = %socket.id, "heartbeat error: {_e}");
                        }
                    }
                }
                continue;
            }
        };

        // These packets, then whatever else is queued, in one flush.
        let mut next = Some(packets);
        while let Some(packets) = next.take().or_else(|| buffered_rx.try_recv().ok()) {
            for packet in packets {
                let Some(message) = ws_message(packet, socket.protocol) else {
                    continue;
                };
                if let Err(_e) = tx.feed(message).await {
                    #[cfg(feature = "tracing")]
                    tracing::debug!("[sid={}] error sending packet: {}", socket.id, _e);
                }
            }
        }

        #[cfg(feature = "tracing")]
        tracing::trace!(sid = %socket.id, "ws flush");
        tx.flush().await.ok();
    }

    #[cfg(feature = "tracing")]
    tracing::trace!(sid = %socket.id, "ws closing flush");

    tx.flush().await.ok();
    tx.close().await.ok();
}
/// The websocket message of a packet (`None` for a Noop packet).
fn ws_message(packet: Packet, protocol: ProtocolVersion) -> Option<Message> {
    match packet {
        Packet::Binary(bin) | Packet::BinaryV3(bin) => {
            if protocol == ProtocolVersion::V3 {
                // v3 protocol requires packet type as the first byte.
                // This requires a new buffer. This is OK as it is only for the V3 protocol.
                let mut buff = Vec::with_capacity(bin.len() + 1);
                buff.push(0x04);
                buff.extend(bin);
                Some(Message::Binary(buff.into()))
            } else {
                Some(Message::Binary(bin))
            }
        }
        // A Noop Packet maybe sent by the server to upgrade from a polling connection
        // In the case that the packet was not poll in time it will remain in the buffer and therefore
        // it should be discarded here
        Packet::Noop => None,
        // Already the packet's text: the same bytes for every socket it is queued to.
        Packet::MessageFramed(msg) => {
            // Safety: a `Str` is UTF-8.
            Some(Message::Text(unsafe {
                tungstenite::Utf8Bytes::from_bytes_unchecked(msg.into())
            }))
        }
        packet => {
            let packet: String = packet.try_into().unwrap();
            Some(Message::Text(packet.into()))
        }
    }
}

/// Send a Engine.IO [`OpenPacket`] to initiate a websocket connection
async fn init_handshake<S>(
    sid: Sid,
    ws: &mut WebSocketStream<S>,
    config: &EngineIoConfig,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let packet = Packet::Open(Box::new(make_open_packet(
        TransportType::Websocket,
        sid,
        config,
    )));
    let packet: String = packet.into();
    ws.send(Message::Text(packet.into())).await?;
    Ok(())
}

/// Upgrade a session from a polling request to a websocket request.
///
/// Before upgrading the session the server should send a NOOP packet to any pending polling request.
///
/// ## Handshake :
/// ```text
/// CLIENT                                                 SERVER
///│                                                      │
///│   GET /engine.io/?EIO=4&transport=websocket&sid=...  │
///│ ───────────────────────────────────────────────────► │
///│  ◄─────────────────────────────────────────────────┘ │
///│            HTTP 101 (WebSocket handshake)            │
///│                                                      │
///│            -----  WebSocket frames -----             │
///│  ─────────────────────────────────────────────────►  │
///│                         2probe                       │ (ping packet)
///│  ◄─────────────────────────────────────────────────  │
///│                         3probe                       │ (pong packet)
///│  ─────────────────────────────────────────────────►  │
///│                         5                            │ (upgrade packet)
///│                                                      │
///│            -----  WebSocket frames -----             │
/// ```
#[cfg_attr(
    feature = "tracing",
    tracing::instrument(level = "trace", skip(socket, ws))
)]
async fn upgrade_handshake<H: EngineIoHandler, S>(
    socket: &Arc<Socket<H::Data>>,
    ws: &mut WebSocketStream<S>,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    #[cfg(feature = "tracing")]
    tracing::debug!("starting websocket connection upgrade");

    // The socket is upgrading, from now on all polling
    // request will return a `Packet::Noop`
    socket.start_upgrade();

    // We send a last Noop request to close a potential waiting polling request.
    socket
        .internal_tx
        .send(smallvec![Packet::Noop])
        .await
        .map_err(|_| Error::Upgrade)?;

    // wait for any current polling connection to finish by waiting for the socket to be unlocked
    // All other polling connection will be immediately closed with a NOOP packet.
    let _lock = socket.internal_rx.lock().await;

    // Fetch the next packet from the ws stream, it should be a PingUpgrade packet
    let msg = match ws.next().await {
        Some(Ok(Message::Text(d))) => d,
        _ => Err(Error::Upgrade)?,
    };
    match Packet::parse(socket.protocol, ws_bytes_to_str(msg))? {
        Packet::PingUpgrade => {
            #[cfg(feature = "tracing")]
            tracing::debug!("received first ping upgrade");
            // Respond with a PongUpgrade packet
            ws.send(Message::Text(String::from(Packet::PongUpgrade).into()))
                .await?;
        }
        p => Err(Error::BadPacket(p))?,
    };

    // Fetch the next packet from the ws stream, it should be an Upgrade packet
    let msg = match ws.next().await {
        Some(Ok(Message::Text(d))) => d,
        Some(Ok(Message::Close(_))) => {
            #[cfg(feature = "tracing")]
            tracing::debug!("ws stream closed before upgrade");
            Err(Error::Upgrade)?
        }
        _ => {
            #[cfg(feature = "tracing")]
            tracing::debug!("unexpected ws message before upgrade");
            Err(Error::Upgrade)?
        }
    };
    match Packet::parse(socket.protocol, ws_bytes_to_str(msg))? {
        Packet::Upgrade => {
            #[cfg(feature = "tracing")]
            tracing::debug!("ws upgraded successfully")
        }
        p => Err(Error::BadPacket(p))?,
    };

    socket.upgrade_to_websocket();
    Ok(())
}

fn ws_bytes_to_str(bytes: tungstenite::Utf8Bytes) -> Str {
    // SAFETY: the bytes are guaranteed to be valid UTF-8 by the tungstenite parser
    unsafe { Str::from_bytes_unchecked(bytes.into()) }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use futures_util::StreamExt;
    use http::Request;
    use tokio::io::DuplexStream;

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(1);

    /// A framed message goes out as the text frame of the message it frames, its bytes shared
    /// with the packet (no copy per socket), for either protocol version.
    #[test]
    fn a_framed_message_is_the_message_it_frames() {
        for protocol in [ProtocolVersion::V3, ProtocolVersion::V4] {
            let framed: Str = "4hello€".into();
            let sent = ws_message(Packet::MessageFramed(framed.clone()), protocol);
            let plain = ws_message(Packet::Message("hello€".into()), protocol);
            assert_eq!(sent, plain);
            let Some(Message::Text(text)) = sent else {
                panic!("a text frame");
            };
            assert_eq!(text.as_ptr(), framed.as_bytes().as_ptr(), "the same bytes");
        }
    }

    #[derive(Debug)]
    struct StubHandler;
    impl EngineIoHandler for StubHandler {
        type Data = ();
        fn on_connect(self: Arc<Self>, _: Arc<Socket<()>>) {}
        fn on_disconnect(&self, _: Arc<Socket<()>>, _: DisconnectReason) {}
        fn on_message(self: &Arc<Self>, _: Str, _: Arc<Socket<()>>) {}
        fn on_binary(self: &Arc<Self>, _: Bytes, _: Arc<Socket<()>>) {}
    }

    fn socket() -> Arc<Socket<()>> {
        Arc::new(Socket::new(
            ProtocolVersion::V4,
            TransportType::Websocket,
            &EngineIoConfig::default(),
            Request::<()>::default().into_parts().0,
            Box::new(|_, _| ()),
            false,
        ))
    }

    /// A socket whose closes are sent on the returned channel.
    fn socket_closed_on() -> (
        Arc<Socket<()>>,
        tokio::sync::mpsc::UnboundedReceiver<DisconnectReason>,
    ) {
        let (closes, closed) = tokio::sync::mpsc::unbounded_channel();
        let socket = Arc::new(Socket::new(
            ProtocolVersion::V4,
            TransportType::Websocket,
            &EngineIoConfig::default(),
            Request::<()>::default().into_parts().0,
            Box::new(move |_, reason| {
                closes.send(reason).ok();
            }),
            false,
        ));
        (socket, closed)
    }

    async fn ws_pair() -> (WebSocketStream<DuplexStream>, WebSocketStream<DuplexStream>) {
        let (server, client) = tokio::io::duplex(1024);
        (
            WebSocketStream::from_raw_socket(server, Role::Server, None).await,
            WebSocketStream::from_raw_socket(client, Role::Client, None).await,
        )
    }

    /// A polling request can still hold the lock at the end of an upgrade.
    #[tokio::test]
    async fn writer_waits_for_the_lock_of_a_polling_request() {
        let socket = socket();
        let (server, mut client) = ws_pair().await;
        let (tx, _rx) = server.split();

        let polling = socket.internal_rx.lock().await;
        let writer = tokio::spawn(forward_to_socket::<StubHandler, _>(
            socket.clone(),
            tx,
            None,
        ));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!writer.is_finished(), "the writer should wait for the lock");

        drop(polling);
        socket.emit(Str::from("hello")).unwrap();
        let msg = tokio::time::timeout(TIMEOUT, client.next())
            .await
            .expect("the writer should send the packet")
            .unwrap()
            .unwrap();
        assert_eq!(msg, Message::text("4hello"));
    }

    /// The writer runs the heartbeat of a socket that starts on websocket: a ping at once, the
    /// next one an interval later once answered, and a close when one goes unanswered.
    #[tokio::test]
    async fn writer_pings_and_closes_a_socket_that_stops_answering() {
        const INTERVAL: Duration = Duration::from_millis(200);
        const PONG_TIMEOUT: Duration = Duration::from_millis(100);
        let (socket, mut closed) = socket_closed_on();
        let (server, mut client) = ws_pair().await;
        let (tx, _rx) = server.split();
        let start = Instant::now();
        let heartbeat = Heartbeat::new(INTERVAL, PONG_TIMEOUT);
        let writer = tokio::spawn(forward_to_socket::<StubHandler, _>(
            socket.clone(),
            tx,
            Some(heartbeat),
        ));
        let mut next = async || {
            tokio::time::timeout(TIMEOUT, client.next())
                .await
                .expect("a message in time")
                .unwrap()
                .unwrap()
        };

        assert_eq!(next().await, Message::text("2"));
        socket.heartbeat.notify_one();
        assert_eq!(next().await, Message::text("2"));
        let second = start.elapsed();
        assert!(second >= INTERVAL, "the second ping after {second:?}");

        let reason = tokio::time::timeout(TIMEOUT, closed.recv())
            .await
            .expect("closed in time");
        assert_eq!(reason, Some(DisconnectReason::HeartbeatTimeout));
        let waited = start.elapsed() - second;
        assert!(
            waited >= PONG_TIMEOUT - Duration::from_millis(10),
            "closed {waited:?} after the unanswered ping"
        );
        assert_eq!(next().await, Message::text("1"), "the close packet");

        socket.cancellation_token.cancel();
        tokio::time::timeout(TIMEOUT, writer)
            .await
            .expect("the writer should stop")
            .unwrap();
    }

    #[tokio::test]
    async fn writer_waiting_for_the_lock_stops_with_the_session() {
        let socket = socket();
        let (server, _client) = ws_pair().await;
        let (tx, _rx) = server.split();

        let _polling = socket.internal_rx.lock().await;
        let writer = tokio::spawn(forward_to_socket::<StubHandler, _>(
            socket.clone(),
            tx,
            None,
        ));
        tokio::time::sleep(Duration::from_millis(20)).await;

        socket.cancellation_token.cancel();
        tokio::time::timeout(TIMEOUT, writer)
            .await
            .expect("the writer should stop")
            .unwrap();
    }
}
