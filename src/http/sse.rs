//! Server-Sent Events (docs/protocol.md, "Server-Sent Events"): `GET /api/rooms/{room}/stream`
//! and `GET /api/photos/{photoId}/stream`. Each stored event is one SSE event (`id:` its seq,
//! `event:` its type, `data:` the payload a Socket.IO client gets), replayed from the store after
//! `Last-Event-ID` or `?after=`, then live, through the hub's follower (no gap, no duplicate).
//! The same access rules as history; the stream ends when the hub stops accepting the token.

use std::convert::Infallible;
use std::time::{Duration, SystemTime};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;

use super::auth::Caller;
use super::query::QueryParams;
use super::{ApiError, AppState};
use crate::access::{authorize_photo, authorize_room};
use crate::auth::Principal;
use crate::domain::{DomainError, PhotoId, Room};
use crate::realtime::{Followed, Follower};
use crate::telemetry::ErrorChain;

/// How often an idle stream sends a keep-alive comment (proxies close silent connections).
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `GET /api/rooms/{room}/stream`
pub async fn room_stream(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    Path(room): Path<String>,
    headers: HeaderMap,
    query: QueryParams,
) -> Result<impl IntoResponse, ApiError> {
    let (principal, after) = caller_and_cursor(caller, &headers, query)?;
    let room: Room = room
        .parse()
        .map_err(|e: DomainError| ApiError::bad_request(e.to_string()))?;
    authorize_room(&principal, &state.log, &room, None, None)?;
    Ok(stream(&state, &principal, room, after))
}

/// `GET /api/photos/{photoId}/stream`
pub async fn photo_stream(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    Path(photo_id): Path<String>,
    headers: HeaderMap,
    query: QueryParams,
) -> Result<impl IntoResponse, ApiError> {
    let (principal, after) = caller_and_cursor(caller, &headers, query)?;
    let photo = PhotoId::parse(&photo_id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    authorize_photo(&principal, &state.log, &photo)?;
    Ok(stream(&state, &principal, Room::photo(&photo), after))
}

/// The caller (401 first, saying where the token goes when it came in the URL: a `?token=` is
/// only noticed, never used or logged) and the seq to replay after: `Last-Event-ID`, else
/// `?after=N` (the header wins: a reconnecting `EventSource` sends both).
fn caller_and_cursor(
    caller: Result<Caller, ApiError>,
    headers: &HeaderMap,
    query: QueryParams,
) -> Result<(Principal, u64), ApiError> {
    let Caller(principal) = caller.map_err(|refused| {
        if query.has("token") {
            ApiError::unauthorized(
                "the token goes in the `Authorization: Bearer` header, not in the URL (URLs end up in logs)",
            )
        } else {
            refused
        }
    })?;
    let after_query = query.seq("after")?;
    let after = match headers.get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                ApiError::bad_request("Last-Event-ID must be a seq (a non-negative integer)")
            })?,
        None => after_query.unwrap_or(0),
    };
    Ok((principal, after))
}

/// The SSE response following `room` after `after` until the token expires or the hub stops.
fn stream(
    state: &AppState,
    principal: &Principal,
    room: Room,
    after: u64,
) -> impl IntoResponse + use<> {
    let follower = state.hub.follow(room, after);
    tracing::debug!(room = %follower.room(), after, user = %principal.user, "SSE stream opened");
    let feed = Feed {
        follower,
        expires: principal.expires_at.map(instant_of),
        done: false,
    };
    let sse =
        Sse::new(events(feed)).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"));
    // Tell buffering proxies (nginx) to pass events on as they come.
    (
        [(
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        )],
        sse,
    )
}

/// `at` as a point on tokio's clock (now, when it has passed).
fn instant_of(at: SystemTime) -> tokio::time::Instant {
    let left = at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    tokio::time::Instant::now() + left
}

/// A follower and when its stream must end.
struct Feed {
    follower: Follower,
    expires: Option<tokio::time::Instant>,
    done: bool,
}

fn events(feed: Feed) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(feed, |mut feed| async move {
        if feed.done {
            return None;
        }
        let next = match feed.expires {
            Some(at) => tokio::select! {
                next = feed.follower.next() => next,
                () = tokio::time::sleep_until(at) => {
                    feed.done = true;
                    let expired = Event::default().event("auth:expired").data("{}");
                    return Some((Ok(expired), feed));
                }
            },
            None => feed.follower.next().await,
        };
        let event = match next {
            Ok(Some(Followed::Event {
                seq,
                event_type,
                payload,
            })) => Event::default()
                .id(seq.to_string())
                .event(event_type.as_str())
                .data(payload.get()),
            Ok(Some(Followed::Truncated(notice))) => Event::default()
                .event("replay:truncated")
                .data(notice.to_string()),
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(room = %feed.follower.room(), error = %ErrorChain(&e), "SSE stream stopped by a store error; the client resumes with Last-Event-ID");
                return None;
            }
        };
        Some((Ok(event), feed))
    })
}
