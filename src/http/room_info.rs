//! `GET /api/rooms/{room}` (docs/protocol.md, "Support tools"): where a room's kept history
//! starts and ends, so that a reader can page it newest first and say what was pruned.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::auth::Caller;
use super::{ApiError, AppState};
use crate::access::authorize_room;
use crate::domain::{DomainError, Room};

/// `GET /api/rooms/{room}` -> `{ room, headSeq, oldestSeq }` (same access as the room's history).
pub async fn room_info(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(room): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let room: Room = room
        .parse()
        .map_err(|e: DomainError| ApiError::bad_request(e.to_string()))?;
    authorize_room(&caller, &state.log, &room, None, None)?;
    Ok(Json(json!({
        "room": room.to_string(),
        "headSeq": state.log.head(&room)?,
        "oldestSeq": state.log.oldest(&room)?,
    })))
}
