//! Socket.IO handlers: connect (default rooms, resume), `subscribe:photo`, `unsubscribe:photo`,
//! `photo:status:request`, `ping`, and disconnect.

use std::sync::Arc;

use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Extension, SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;

use super::Realtime;
use super::handshake::{self, Handshake, HandshakeError, Refusal};
use super::hub::Replay;
use super::request::{Reply, RequestError, parse_photo_request};
use crate::access::{AccessError, authorize_photo, authorize_room};
use crate::domain::{PhotoId, PhotoStatus, Room, Timestamp};
use crate::telemetry::{ErrorChain, metric};

/// Registers the default namespace's handlers on `io`.
pub fn register(io: &SocketIo) {
    io.ns("/", on_connect.with(authenticate));
}

/// Connect middleware: refuses the handshake with `unauthorized`, `invalid_handshake` or
/// `overloaded`, and the reason in `data`.
async fn authenticate(
    socket: SocketRef,
    TryData(auth): TryData<Value>,
    State(rt): State<Realtime>,
) -> Result<(), Refusal> {
    let handshake = if rt.hub.stats().0 >= rt.limits.max_connections {
        Err(HandshakeError::Overloaded)
    } else {
        handshake::parse(auth.ok().as_ref(), &rt.tokens, rt.insecure_dev_auth)
    };
    match handshake {
        Ok(handshake) => {
            socket.extensions.insert(Arc::new(handshake));
            Ok(())
        }
        Err(e) => {
            metrics::counter!(metric::HANDSHAKES_REFUSED_TOTAL, "reason" => e.to_string())
                .increment(1);
            Err(Refusal(e))
        }
    }
}

async fn on_connect(
    socket: SocketRef,
    State(rt): State<Realtime>,
    Extension(handshake): Extension<Arc<Handshake>>,
) {
    let identity = &handshake.identity;
    let user = identity.principal.user.clone();
    tracing::debug!(socket = %socket.id, user = %user, client = %identity.client_id, "connected");
    let mut defaults = vec![
        Room::User(user.clone()),
        Room::Client(identity.client_id.clone()),
        Room::Global,
    ];
    defaults.extend(identity.session_id.clone().map(Room::Session));
    // Rooms in `resume` are joined by the resume instead, after their replay.
    defaults.retain(|room| !handshake.resume.iter().flatten().any(|(r, _)| r == room));
    let joined = rt.hub.join_live_then(&socket, &defaults, |heads| {
        let rooms: serde_json::Map<String, Value> = heads
            .iter()
            .map(|(room, head)| (room.to_string(), json!(head)))
            .collect();
        let _ = socket.emit(
            "connection:established",
            &json!({
                "socketId": socket.id.to_string(),
                "clientId": identity.client_id.to_string(),
                "userId": user.to_string(),
                "epoch": rt.log.epoch(),
                "rooms": rooms,
                "timestamp": Timestamp::now().to_rfc3339(),
            }),
        );
    });
    if let Err(e) = joined {
        tracing::error!(socket = %socket.id, error = %ErrorChain(&e), "could not join the default rooms");
        let _ = socket.clone().disconnect();
        return;
    }
    if let Some(deadline) = identity.principal.expires_at {
        let expiry = tokio::spawn(expire_at(socket.clone(), deadline));
        socket.extensions.insert(ExpiryTask(expiry.abort_handle()));
    }
    if handshake.resume.is_some() {
        let (rt, socket, handshake) = (rt.clone(), socket.clone(), Arc::clone(&handshake));
        tokio::spawn(async move { resume(&rt, &socket, &handshake).await });
    }

    socket.on("subscribe:photo", subscribe_photo);
    socket.on("unsubscribe:photo", unsubscribe_photo);
    socket.on("photo:status:request", status_request);
    socket.on("ping", ping);
    socket.on_disconnect(on_disconnect);

    publish(
        &rt,
        "client.connected",
        json!({
            "clientId": identity.client_id.to_string(),
            "userId": user.to_string(),
            "sessionId": identity.session_id.as_ref().map(|s| s.to_string()),
            "socketId": socket.id.to_string(),
            "timestamp": Timestamp::now().to_rfc3339(),
        }),
    );
}

/// Re-joins and replays every room of the handshake's `resume`, then sends `resume:complete`.
async fn resume(rt: &Realtime, socket: &SocketRef, handshake: &Handshake) {
    let identity = &handshake.identity;
    let same_epoch = handshake
        .epoch
        .as_deref()
        .is_none_or(|e| e == rt.log.epoch());
    let mut rooms = serde_json::Map::new();
    let mut refused = serde_json::Map::new();
    let mut pending = Vec::new();
    for (room, seq) in handshake.resume.iter().flatten() {
        let access = authorize_room(
            &identity.principal,
            &rt.log,
            room,
            Some(&identity.client_id),
            identity.session_id.as_ref(),
        );
        if let Err(e) = access {
            refused.insert(room.to_string(), json!(e.code()));
            continue;
        }
        match rt.hub.subscribe(
            socket,
            room,
            Some(Replay {
                after: *seq,
                same_epoch,
            }),
        ) {
            Ok((_, Some(live_at))) => pending.push((room.to_string(), live_at)),
            Ok((head, None)) => {
                rooms.insert(room.to_string(), json!(head));
            }
            Err(e) => {
                tracing::error!(room = %room, error = %ErrorChain(&e), "resume failed");
                refused.insert(room.to_string(), json!("internal"));
            }
        }
    }
    metrics::counter!(metric::RESUMES_TOTAL).increment(1);
    for (room, live_at) in pending {
        match live_at.await {
            Ok(head) => {
                rooms.insert(room, json!(head));
            }
            // The socket left or its catch-up was superseded or stopped: nothing to complete.
            Err(_) => return,
        }
    }
    let _ = socket.emit(
        "resume:complete",
        &json!({ "rooms": rooms, "refused": refused }),
    );
}

/// Parses a `{ photoId, since? }` request and checks that the socket's user may read the photo;
/// returns the photo, `since` and its status.
fn authorized_photo_request(
    data: Result<Value, impl std::fmt::Debug>,
    rt: &Realtime,
    handshake: &Handshake,
) -> Result<(PhotoId, Option<u64>, PhotoStatus), RequestError> {
    let (photo_id, since) = parse_photo_request(data)?;
    match authorize_photo(&handshake.identity.principal, &rt.log, &photo_id) {
        Ok(status) => Ok((photo_id, since, status)),
        Err(source) => {
            if let AccessError::Store(e) = &source {
                tracing::error!(photo = %photo_id, error = %ErrorChain(&e), "store error during authorization");
            }
            Err(RequestError::Access { photo_id, source })
        }
    }
}

async fn subscribe_photo(
    socket: SocketRef,
    TryData(data): TryData<Value>,
    reply: Reply,
    State(rt): State<Realtime>,
    Extension(handshake): Extension<Arc<Handshake>>,
) {
    let outcome =
        authorized_photo_request(data, &rt, &handshake).and_then(|(photo_id, since, _)| {
            let room = Room::photo(&photo_id);
            if !rt
                .hub
                .may_add_photo_room(socket.id, &room, rt.limits.max_subscriptions)
            {
                return Err(RequestError::TooManySubscriptions { photo_id });
            }
            let replay = since.map(|after| Replay {
                after,
                same_epoch: true,
            });
            match rt.hub.subscribe(&socket, &room, replay) {
                Ok((head, _)) => Ok((photo_id, room, head)),
                Err(source) => {
                    tracing::error!(room = %room, error = %ErrorChain(&source), "subscribe failed");
                    Err(RequestError::Internal { photo_id, source })
                }
            }
        });
    match outcome {
        Ok((photo_id, room, head)) => {
            let _ = socket.emit(
                "subscription:confirmed",
                &json!({ "photoId": photo_id.to_string(), "message": format!("Subscribed to photo {photo_id}") }),
            );
            reply.ack(&json!({ "ok": true, "room": room.to_string(), "headSeq": head, "epoch": rt.log.epoch() }));
            publish(
                &rt,
                "client.subscribed",
                json!({
                    "clientId": handshake.identity.client_id.to_string(),
                    "photoId": photo_id.to_string(),
                    "timestamp": Timestamp::now().to_rfc3339(),
                }),
            );
        }
        Err(error) => reply.refuse("subscribe:photo", &error),
    }
}

async fn unsubscribe_photo(
    socket: SocketRef,
    TryData(data): TryData<Value>,
    reply: Reply,
    State(rt): State<Realtime>,
) {
    match parse_photo_request(data) {
        Ok((photo_id, _)) => {
            rt.hub.unsubscribe(socket.id, &Room::photo(&photo_id));
            reply.ack(&json!({ "ok": true }));
        }
        Err(error) => reply.refuse("unsubscribe:photo", &error),
    }
}

async fn status_request(
    socket: SocketRef,
    TryData(data): TryData<Value>,
    reply: Reply,
    State(rt): State<Realtime>,
    Extension(handshake): Extension<Arc<Handshake>>,
) {
    match authorized_photo_request(data, &rt, &handshake) {
        Ok((_, _, status)) if reply.wants_ack() => reply.ack(&status),
        Ok((_, _, status)) => {
            let _ = socket.emit("photo:status", &status);
        }
        Err(error) => reply.refuse("photo:status:request", &error),
    }
}

/// The task that expires a socket's token, aborted when the socket disconnects.
#[derive(Clone)]
struct ExpiryTask(tokio::task::AbortHandle);

/// At `deadline` (the token's `exp` plus the leeway), tells a still-connected socket
/// `auth:expired` and disconnects it; the client reconnects with a fresh token and `resume`.
async fn expire_at(socket: SocketRef, deadline: std::time::SystemTime) {
    let wait = deadline
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(wait).await;
    if socket.connected() {
        tracing::debug!(socket = %socket.id, "token expired; disconnecting");
        let _ = socket.emit("auth:expired", &json!({}));
        let _ = socket.disconnect();
    }
}

async fn ping(socket: SocketRef, ack: AckSender) {
    let pong = json!({ "timestamp": Timestamp::now().to_rfc3339() });
    let _ = socket.emit("pong", &pong);
    let _ = ack.send(&pong);
}

async fn on_disconnect(
    socket: SocketRef,
    reason: DisconnectReason,
    State(rt): State<Realtime>,
    Extension(handshake): Extension<Arc<Handshake>>,
) {
    rt.hub.remove_socket(socket.id);
    // The expiry task holds the socket (and through it the hub's state): end it with the socket.
    if let Some(ExpiryTask(expiry)) = socket.extensions.get::<ExpiryTask>() {
        expiry.abort();
    }
    tracing::debug!(socket = %socket.id, %reason, "disconnected");
    publish(
        &rt,
        "client.disconnected",
        json!({
            "clientId": handshake.identity.client_id.to_string(),
            "userId": handshake.identity.principal.user.to_string(),
            "reason": reason.to_string(),
            "timestamp": Timestamp::now().to_rfc3339(),
        }),
    );
}

fn publish(rt: &Realtime, subject: &'static str, payload: Value) {
    rt.bus.publish(subject, payload);
}
