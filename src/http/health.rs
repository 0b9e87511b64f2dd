//! `GET /health` and `GET /health/detailed` (the original hub's shape plus store and bus details).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;
use crate::domain::Timestamp;

/// Liveness.
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Details of the sockets, the store and the bus; 503 while the store cannot write. A store that
/// has met corrupt records (and skips them) is `degraded` but serving: 200.
pub async fn detailed(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let (connected, rooms) = state.hub.stats();
    let size = state.log.size_on_disk().ok();
    let bus_up = state.bus.is_up();
    let failing = state.log.is_failing();
    let corrupt = state.log.corrupt_records();
    let code = if failing {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let store_status = match (failing, size.is_some(), corrupt) {
        (true, _, _) => "failing",
        (false, false, _) => "unhealthy",
        (false, true, 0) => "healthy",
        (false, true, _) => "degraded",
    };
    let overall = match (failing, bus_up && corrupt == 0) {
        (true, _) => "failing",
        (false, true) => "ok",
        (false, false) => "degraded",
    };
    (
        code,
        Json(json!({
            "status": overall,
            "timestamp": Timestamp::now().to_rfc3339(),
            "details": {
                "websocket": {
                    "status": "healthy",
                    "connectedClients": connected,
                    "activeRooms": rooms,
                    "uptime": state.started.elapsed().as_secs_f64(),
                },
                "store": {
                    "status": store_status,
                    "epoch": state.log.epoch(),
                    "sizeOnDiskBytes": size,
                    "schemaVersion": crate::store::SCHEMA_VERSION,
                    "corruptRecords": corrupt,
                },
                "bus": {
                    "type": state.bus.kind(),
                    "status": if bus_up { "up" } else { "down" },
                },
            },
        })),
    )
}
