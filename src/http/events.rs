//! `POST /api/events`: producers' HTTP ingest (docs/protocol.md, "Producers: `POST /api/events`").

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::auth::Caller;
use super::{ApiError, AppState};
use crate::auth::Permission;
use crate::domain::{EventInput, data_text};
use crate::ingest::Ingested;

/// Body: one event `{ id?, type, data, timestamp? }` or an array of them. Answers after the
/// events are durable: `{ events: [ { eventId, rooms: { <room>: <seq> } } ] }`.
pub async fn ingest(
    State(state): State<AppState>,
    Caller(caller): Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if !caller.has(Permission::EventsPublish) {
        return Err(ApiError::forbidden(
            "publishing needs the events:publish permission",
        ));
    }
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the body is larger than the hub accepts (--max-buffer-size)",
        ),
        _ => ApiError::bad_request("the request body could not be read"),
    })?;
    let inputs = parse_body(&body)?;
    if inputs.is_empty() {
        return Err(ApiError::bad_request("empty batch"));
    }
    if inputs.len() > state.max_batch_events {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!(
                "{} events in one batch; at most {} (--max-batch-events)",
                inputs.len(),
                state.max_batch_events
            ),
        ));
    }
    let ingested = state.ingest.ingest(inputs).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        answer_json(&ingested),
    )
        .into_response())
}

/// Parses a `POST /api/events` body (one event object or an array of them) into unvalidated
/// inputs, or the `400 invalid_request` that says what is wrong with it, naming the event. Also
/// called by the fuzz target of the ingest parser.
pub(crate) fn parse_body(body: &[u8]) -> Result<Vec<EventInput>, ApiError> {
    match parse_typed(body) {
        Some(inputs) => Ok(inputs),
        None => parse_explained(body),
    }
}

/// The body parsed straight into inputs, with no intermediate JSON tree; `None` when it does not
/// parse (then [`parse_explained`] says why).
fn parse_typed(body: &[u8]) -> Option<Vec<EventInput>> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => data_text::from_json_bytes(body).ok(),
        Some(b'{') => data_text::from_json_bytes(body).ok().map(|one| vec![one]),
        _ => None,
    }
}

/// The slow path for a body the typed parse refused: finds what is wrong, naming the event.
fn parse_explained(body: &[u8]) -> Result<Vec<EventInput>, ApiError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(json_problem(&e)))?;
    let values = match value {
        Value::Array(items) => items,
        single @ Value::Object(_) => vec![single],
        _ => {
            return Err(ApiError::bad_request(
                "expected an event object or an array of them",
            ));
        }
    };
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            serde_json::from_value::<EventInput>(v)
                .map_err(|e| ApiError::bad_request(format!("event {i}: {}", json_problem(&e))))
        })
        .collect()
}

/// What is wrong with a body, in the API's words: where the JSON breaks, or which field is
/// wrong, never the parser's names for our types.
fn json_problem(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let at = format!("at line {} column {}", e.line(), e.column());
    match e.classify() {
        Category::Eof => format!("malformed JSON: the body ends early ({at})"),
        Category::Syntax if e.to_string().starts_with("recursion limit exceeded") => {
            format!("malformed JSON: nested too deep ({at})")
        }
        Category::Syntax | Category::Io => format!("malformed JSON {at}"),
        Category::Data => {
            let text = e.to_string();
            let text = text.split(" at line ").next().unwrap_or_default();
            let text = text
                .replace("struct EventInput", "an event object")
                .replace("map", "object")
                .replace("sequence", "array");
            format!("not an event: {text}")
        }
    }
}

/// `{ events: [ { eventId, rooms: { <room>: <seq> } } ] }`, one entry per event of the batch, in
/// order, written into one string sized for it (through serde's serializer each token was its own
/// small write: about 6% of the hub's instructions on HTTP ingest).
fn answer_json(ingested: &[Ingested]) -> String {
    let mut out = String::with_capacity(16 + ingested.len() * 80);
    out.push_str("{\"events\":[");
    for (i, event) in ingested.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"eventId\":");
        data_text::push_string(&mut out, event.event_id.as_str());
        out.push_str(",\"rooms\":{");
        for (j, (room, seq)) in event.rooms.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push('"');
            room.push_name(&mut out);
            out.push_str("\":");
            out.push_str(itoa::Buffer::new().format(*seq));
        }
        out.push_str("}}");
    }
    out.push_str("]}");
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Map, json};

    use super::*;
    use crate::domain::{EventId, PhotoId, Room};

    proptest! {
        /// The answer is the JSON of the receipts, whatever the producers' ids hold (quotes,
        /// backslashes, any Unicode), for any seqs.
        #[test]
        fn the_answer_is_the_json_of_the_receipts(
            events in proptest::collection::vec(
                ("\\PC{1,40}", proptest::collection::vec(any::<u64>(), 0..4), any::<bool>()),
                0..6,
            )
        ) {
            let ingested: Vec<Ingested> = events
                .iter()
                .filter_map(|(id, seqs, duplicate)| {
                    let event_id = EventId::parse(id).ok()?;
                    let rooms = seqs
                        .iter()
                        .enumerate()
                        .map(|(j, seq)| {
                            let photo = PhotoId::parse(&format!("p{j}")).expect("valid id");
                            (Room::photo(&photo), *seq)
                        })
                        .collect();
                    Some(Ingested { event_id, rooms, duplicate: *duplicate })
                })
                .collect();
            let expected = json!({
                "events": ingested
                    .iter()
                    .map(|e| json!({
                        "eventId": e.event_id.as_str(),
                        "rooms": e
                            .rooms
                            .iter()
                            .map(|(room, seq)| (room.name(), json!(seq)))
                            .collect::<Map<String, Value>>(),
                    }))
                    .collect::<Vec<_>>(),
            });
            let written: Value =
                serde_json::from_str(&answer_json(&ingested)).expect("the answer is JSON");
            prop_assert_eq!(written, expected);
        }
    }
}
