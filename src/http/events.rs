//! `POST /api/events`: producers' HTTP ingest (docs/protocol.md, "Producers: `POST /api/events`").

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::auth::Caller;
use super::{ApiError, AppState};
use crate::auth::Permission;
use crate::domain::EventInput;

/// Body: one event `{ id?, type, data, timestamp? }` or an array of them. Answers after the
/// events are durable: `{ events: [ { eventId, rooms: { <room>: <seq> } } ] }`.
pub async fn ingest(
    State(state): State<AppState>,
    Caller(caller): Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    if !caller.has(Permission::EventsPublish) {
        return Err(ApiError::forbidden(
            "publishing needs the events:publish permission",
        ));
    }
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            e.body_text(),
        ),
        _ => ApiError::bad_request(e.body_text()),
    })?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
    let values = match value {
        Value::Array(items) if items.is_empty() => {
            return Err(ApiError::bad_request("empty batch"));
        }
        Value::Array(items) if items.len() > state.max_batch_events => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "batch_too_large",
                format!(
                    "{} events in one batch; at most {} (--max-batch-events)",
                    items.len(),
                    state.max_batch_events
                ),
            ));
        }
        Value::Array(items) => items,
        single @ Value::Object(_) => vec![single],
        _ => {
            return Err(ApiError::bad_request(
                "expected an event object or an array of them",
            ));
        }
    };
    let inputs = values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            serde_json::from_value::<EventInput>(v)
                .map_err(|e| ApiError::bad_request(format!("event {i}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ingested = state.ingest.ingest(inputs).await?;
    let events: Vec<Value> = ingested
        .into_iter()
        .map(|e| {
            let rooms: Map<String, Value> = e
                .rooms
                .into_iter()
                .map(|(room, seq)| (room.to_string(), json!(seq)))
                .collect();
            json!({ "eventId": e.event_id.as_str(), "rooms": rooms })
        })
        .collect();
    Ok(Json(json!({ "events": events })))
}
