//! History and status for clients and support staff (docs/protocol.md, "HTTP read API").

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::auth::Caller;
use super::query::QueryParams;
use super::{ApiError, AppState};
use crate::access::{authorize_photo, authorize_room};
use crate::domain::{PhotoId, PhotoStatus, Room};

/// Default page size.
const DEFAULT_LIMIT: usize = 100;
/// Largest page; larger requests are clamped.
const MAX_LIMIT: usize = 1000;

fn parse_photo(photo_id: &str) -> Result<PhotoId, ApiError> {
    PhotoId::parse(photo_id).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// `GET /api/photos/{photoId}/status`
pub async fn photo_status(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(photo_id): Path<String>,
) -> Result<Json<PhotoStatus>, ApiError> {
    let photo = parse_photo(&photo_id)?;
    Ok(Json(authorize_photo(&caller, &state.log, &photo)?))
}

/// `GET /api/photos/{photoId}/events`
pub async fn photo_events(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(photo_id): Path<String>,
    page: QueryParams,
) -> Result<Json<Value>, ApiError> {
    let photo = parse_photo(&photo_id)?;
    authorize_photo(&caller, &state.log, &photo)?;
    events_page(&state, &Room::photo(&photo), page)
}

/// `GET /api/rooms/{room}/events`
pub async fn room_events(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(room): Path<String>,
    page: QueryParams,
) -> Result<Json<Value>, ApiError> {
    let room: Room = room
        .parse()
        .map_err(|e: crate::domain::DomainError| ApiError::bad_request(e.to_string()))?;
    authorize_room(&caller, &state.log, &room, None, None)?;
    events_page(&state, &room, page)
}

/// The page of `room`'s events after `?after=` (default 0), at most `?limit=` of them.
fn events_page(state: &AppState, room: &Room, page: QueryParams) -> Result<Json<Value>, ApiError> {
    let after = page.seq("after")?.unwrap_or(0);
    let limit = page
        .count("limit", MAX_LIMIT)?
        .unwrap_or(DEFAULT_LIMIT)
        .max(1);
    let events = state.log.read(room, after, limit)?;
    let head = state.log.head(room)?;
    let next_after = match events.last() {
        Some(last) if last.seq < head => Some(last.seq),
        _ => None,
    };
    let events: Vec<Value> = events
        .iter()
        .map(|e| {
            let data: Value = serde_json::from_str(&e.data).unwrap_or(Value::Null);
            json!({
                "seq": e.seq,
                "eventId": e.id.as_str(),
                "type": e.event_type.as_str(),
                "data": data,
                "timestamp": e.timestamp.to_rfc3339(),
            })
        })
        .collect();
    Ok(Json(
        json!({ "room": room.to_string(), "events": events, "nextAfter": next_after }),
    ))
}
