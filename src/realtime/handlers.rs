//! Socket.IO handlers: connect (default rooms, resume), `subscribe:photo`, `unsubscribe:photo`,
//! `photo:status:request`, `ping`, and disconnect.

use std::num::NonZeroU32;
use std::sync::Arc;

use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{Extension, SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;

use super::Realtime;
use super::budget::RequestBudget;
use super::expiry::Expiry;
use super::handshake::{self, Handshake, HandshakeError, Refusal};
use super::hub::{Replay, SubscribeError};
use super::request::{Reply, RequestError, emit_waiting, parse_photo_request};
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
        handshake::parse(
            auth.ok().as_ref(),
            &rt.tokens,
            rt.insecure_dev_auth,
            rt.limits.max_resume_rooms,
        )
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
    // Registered before the socket joins anything: a disconnect from here on removes whatever
    // the hub adds for the socket while it is connected (the hub adds nothing after).
    socket.on_disconnect(on_disconnect);
    // Requests are handled from before `connection:established` is sent: a client that answers
    // it with a request at once must find the handlers there (socketioxide drops an event that
    // has none, and the client's ack never comes).
    socket.extensions.insert(Arc::new(RequestBudget::new(
        at_least_one(rt.limits.socket_requests_per_second),
        at_least_one(rt.limits.socket_request_burst),
    )));
    socket.on("subscribe:photo", subscribe_photo);
    socket.on("unsubscribe:photo", unsubscribe_photo);
    socket.on("photo:status:request", status_request);
    socket.on("ping", ping);
    // Before `connection:established`: a client that answers it with a request at once makes the
    // hub publish `client.subscribed`, which must not come before this.
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
    match joined {
        Ok(()) => {}
        Err(SubscribeError::Disconnected) => return,
        Err(SubscribeError::Store(e)) => {
            tracing::error!(socket = %socket.id, error = %ErrorChain(&e), "could not join the default rooms");
            let _ = socket.clone().disconnect();
            return;
        }
    }
    if let Some(deadline) = identity.principal.expires_at {
        let expiry = rt.expiries.insert(&socket, deadline);
        socket.extensions.insert(expiry);
        if !socket.connected() {
            rt.expiries.remove(expiry);
        }
    }
    if handshake.resume.is_some() {
        // Below live delivery: a storm of resumes must not hold up live events.
        rt.hub
            .spawn_background(resume(rt.clone(), socket.clone(), Arc::clone(&handshake)));
    }
}

/// Re-joins and replays every room of the handshake's `resume`, then sends `resume:complete`.
async fn resume(rt: Realtime, socket: SocketRef, handshake: Arc<Handshake>) {
    // Each room costs store lookups (authorization, head): they run on a blocking thread.
    let subscribed = {
        let socket = socket.clone();
        tokio::task::spawn_blocking(move || subscribe_resumed(&rt, &socket, &handshake)).await
    };
    let (pending, mut rooms, refused) = match subscribed {
        Ok(Some(subscribed)) => subscribed,
        // The socket left: nothing to complete.
        Ok(None) => return,
        Err(e) => {
            tracing::error!(socket = %socket.id, error = %ErrorChain(&e), "resume task failed");
            return;
        }
    };
    metrics::counter!(metric::RESUMES_TOTAL).increment(1);
    for (room, live_at) in pending {
        // A later `subscribe:photo { since }` of the room supersedes its replay: the
        // subscription still tells us when it goes live.
        match live_at.await {
            Ok(head) => {
                rooms.insert(room, json!(head));
            }
            Err(_) if !socket.connected() => return,
            // Unsubscribed (or caught up by a failing catch-up) before it went live.
            Err(_) => {}
        }
    }
    let complete = json!({ "rooms": rooms, "refused": refused });
    emit_waiting(&socket, "resume:complete", &complete).await;
}

/// Rooms of a resume waiting to go live, rooms already live with their seq, and refused rooms
/// with their error.
type Resumed = (
    Vec<(String, tokio::sync::oneshot::Receiver<u64>)>,
    serde_json::Map<String, Value>,
    serde_json::Map<String, Value>,
);

/// Authorizes and subscribes (with replay) each room of the handshake's `resume`; `None` once the
/// socket has left.
fn subscribe_resumed(rt: &Realtime, socket: &SocketRef, handshake: &Handshake) -> Option<Resumed> {
    let identity = &handshake.identity;
    let same_epoch = handshake
        .epoch
        .as_deref()
        .is_none_or(|e| e == rt.log.epoch());
    let (mut pending, mut rooms, mut refused) = Resumed::default();
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
        let replay = Replay {
            after: *seq,
            same_epoch,
        };
        match rt.hub.subscribe(socket, room, Some(replay)) {
            Ok((_, Some(live_at))) => pending.push((room.to_string(), live_at)),
            Ok((head, None)) => {
                rooms.insert(room.to_string(), json!(head));
            }
            Err(SubscribeError::Disconnected) => return None,
            Err(SubscribeError::Store(e)) => {
                tracing::error!(room = %room, error = %ErrorChain(&e), "resume failed");
                refused.insert(room.to_string(), json!("internal"));
            }
        }
    }
    Some((pending, rooms, refused))
}

/// Takes one request from the socket's budget; the refusal when it is spent.
fn within_budget(budget: &RequestBudget, data: Option<&Value>) -> Result<(), RequestError> {
    if budget.take() {
        return Ok(());
    }
    let photo_id = data
        .and_then(|d| d.get("photoId"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Err(RequestError::RateLimited { photo_id })
}

/// `n`, or 1 for 0 (the settings refuse 0 already).
fn at_least_one(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
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
    Extension(budget): Extension<Arc<RequestBudget>>,
) {
    let outcome = within_budget(&budget, data.as_ref().ok())
        .and_then(|()| authorized_photo_request(data, &rt, &handshake))
        .and_then(|(photo_id, since, _)| {
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
                Ok((head, _)) => Ok(Some((photo_id, room, head))),
                // The socket left meanwhile: nobody to answer.
                Err(SubscribeError::Disconnected) => Ok(None),
                Err(SubscribeError::Store(source)) => {
                    tracing::error!(room = %room, error = %ErrorChain(&source), "subscribe failed");
                    Err(RequestError::Internal { photo_id, source })
                }
            }
        });
    match outcome {
        Ok(None) => {}
        Ok(Some((photo_id, room, head))) => {
            reply
                .emit(
                    "subscription:confirmed",
                    &json!({ "photoId": photo_id.to_string(), "message": format!("Subscribed to photo {photo_id}") }),
                )
                .await;
            reply.ack(&json!({ "ok": true, "room": room.to_string(), "headSeq": head, "epoch": rt.log.epoch() })).await;
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
        Err(error) => reply.refuse("subscribe:photo", &error).await,
    }
}

async fn unsubscribe_photo(
    socket: SocketRef,
    TryData(data): TryData<Value>,
    reply: Reply,
    State(rt): State<Realtime>,
    Extension(budget): Extension<Arc<RequestBudget>>,
) {
    match within_budget(&budget, data.as_ref().ok()).and_then(|()| parse_photo_request(data)) {
        Ok((photo_id, _)) => {
            rt.hub.unsubscribe(socket.id, &Room::photo(&photo_id));
            reply.ack(&json!({ "ok": true })).await;
        }
        Err(error) => reply.refuse("unsubscribe:photo", &error).await,
    }
}

async fn status_request(
    TryData(data): TryData<Value>,
    reply: Reply,
    State(rt): State<Realtime>,
    Extension(handshake): Extension<Arc<Handshake>>,
    Extension(budget): Extension<Arc<RequestBudget>>,
) {
    let request = within_budget(&budget, data.as_ref().ok())
        .and_then(|()| authorized_photo_request(data, &rt, &handshake));
    match request {
        Ok((_, _, status)) if reply.wants_ack() => reply.ack(&status).await,
        Ok((_, _, status)) => reply.emit("photo:status", &status).await,
        Err(error) => reply.refuse("photo:status:request", &error).await,
    }
}

async fn ping(reply: Reply, Extension(budget): Extension<Arc<RequestBudget>>) {
    if let Err(error) = within_budget(&budget, None) {
        reply.refuse("ping", &error).await;
        return;
    }
    let pong = json!({ "timestamp": Timestamp::now().to_rfc3339() });
    reply.emit("pong", &pong).await;
    reply.ack(&pong).await;
}

async fn on_disconnect(
    socket: SocketRef,
    reason: DisconnectReason,
    State(rt): State<Realtime>,
    Extension(handshake): Extension<Arc<Handshake>>,
) {
    rt.hub.remove_socket(socket.id);
    // The expiry queue holds the socket (and through it the hub's state): take it out.
    if let Some(expiry) = socket.extensions.get::<Expiry>() {
        rt.expiries.remove(expiry);
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
