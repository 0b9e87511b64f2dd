//! History and status for clients and support staff (docs/protocol.md, "HTTP read API").

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::{ApiError, AppState};
use crate::access::{authorize_photo, authorize_room};
use crate::domain::{PhotoId, PhotoStatus, Room};

/// Default page size.
const DEFAULT_LIMIT: usize = 100;
/// Largest page; larger requests are clamped.
const MAX_LIMIT: usize = 1000;

/// `?after=&limit=`
#[derive(Debug, Deserialize)]
pub struct Page {
    #[serde(default)]
    after: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
}

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
    page: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
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
    page: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let room: Room = room
        .parse()
        .map_err(|e: crate::domain::DomainError| ApiError::bad_request(e.to_string()))?;
    authorize_room(&caller, &state.log, &room, None, None)?;
    events_page(&state, &room, page)
}

fn events_page(
    state: &AppState,
    room: &Room,
    page: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(page) = page.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let after = page.after.unwrap_or(0);
    let limit = page.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
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
