//! `GET /health` and `GET /health/detailed` (the original hub's shape plus store and bus details).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use crate::domain::Timestamp;

pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn detailed(State(state): State<AppState>) -> Json<Value> {
    let (connected, rooms) = state.hub.stats();
    let size = state.log.size_on_disk().ok();
    let bus_up = state.bus.is_up();
    Json(json!({
        "status": if bus_up { "ok" } else { "degraded" },
        "timestamp": Timestamp::now().to_rfc3339(),
        "details": {
            "websocket": {
                "status": "healthy",
                "connectedClients": connected,
                "activeRooms": rooms,
                "uptime": state.started.elapsed().as_secs_f64(),
            },
            "store": {
                "status": if size.is_some() { "healthy" } else { "unhealthy" },
                "epoch": state.log.epoch(),
                "sizeOnDiskBytes": size,
                "schemaVersion": crate::store::SCHEMA_VERSION,
            },
            "bus": {
                "type": state.bus.kind(),
                "status": if bus_up { "up" } else { "down" },
            },
        },
    }))
}
