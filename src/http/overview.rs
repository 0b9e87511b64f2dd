//! `GET /api/overview` (docs/protocol.md, "Support tools"): the hub at a glance for support staff
//! (`support:read` or `admin`): clients, rooms, the store and its oldest kept event, the bus, and
//! retention with its last pass.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::auth::Caller;
use super::{ApiError, AppState};
use crate::domain::Timestamp;
use crate::retention::PruneRun;
use crate::store::StoreSurvey;
use crate::telemetry::ErrorChain;

/// `GET /api/overview`
pub async fn overview(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<Value>, ApiError> {
    if !caller.reads_everything() {
        return Err(ApiError::forbidden(
            "the hub overview needs support:read or admin",
        ));
    }
    let log = state.log.clone();
    let survey = tokio::task::spawn_blocking(move || log.survey())
        .await
        .map_err(|e| {
            tracing::error!(error = %ErrorChain(&e), "store survey task failed");
            ApiError::logged_internal()
        })??;
    let (sockets, subscribed) = state.hub.stats();
    let size = state.log.size_on_disk()?;
    let retention = &state.retention;
    Ok(Json(json!({
        "timestamp": Timestamp::now().to_rfc3339(),
        "uptimeSeconds": state.started.elapsed().as_secs(),
        "clients": { "sockets": sockets, "streams": state.hub.followers_open() },
        "rooms": { "subscribed": subscribed, "kept": survey.rooms },
        "store": {
            "epoch": state.log.epoch(),
            "sizeOnDiskBytes": size,
            "schemaVersion": crate::store::SCHEMA_VERSION,
            "oldestEvent": oldest(&survey),
        },
        "bus": {
            "type": state.bus.kind(),
            "status": if state.bus.is_up() { "up" } else { "down" },
        },
        "retention": {
            "maxAgeSeconds": retention.policy.max_age.as_secs(),
            "maxEventsPerRoom": retention.policy.max_events_per_room,
            "schedule": retention.schedule.as_str(),
            "lastRun": retention.last_run.get().map(|run| last_run(&run)),
        },
    })))
}

fn oldest(survey: &StoreSurvey) -> Value {
    match &survey.oldest {
        Some(oldest) => json!({
            "room": oldest.room.to_string(),
            "seq": oldest.seq,
            "timestamp": oldest.timestamp.to_rfc3339(),
        }),
        None => Value::Null,
    }
}

fn last_run(run: &PruneRun) -> Value {
    let finished_at = run.finished_at.to_rfc3339();
    match &run.outcome {
        Ok(report) => json!({
            "finishedAt": finished_at,
            "ok": true,
            "rooms": report.rooms,
            "roomsPruned": report.rooms_pruned,
            "eventsRemoved": report.events_removed,
            "statusesRemoved": report.statuses_removed,
            "durationMs": report.duration_ms,
        }),
        Err(error) => json!({ "finishedAt": finished_at, "ok": false, "error": error }),
    }
}
