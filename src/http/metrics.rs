//! `GET /metrics`: Prometheus text.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;
use crate::telemetry::metric;

/// Renders every metric, refreshing the gauges that are read from the hub and the store.
pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let (connected, rooms) = state.hub.stats();
    metrics::gauge!(metric::HUB_CONNECTED_SOCKETS).set(connected as f64);
    metrics::gauge!(metric::HUB_ACTIVE_ROOMS).set(rooms as f64);
    metrics::gauge!(metric::EVENT_LOG_ID_FILTER_BYTES).set(state.log.id_filter_bytes() as f64);
    if let Ok(size) = state.log.size_on_disk() {
        metrics::gauge!(metric::STORE_SIZE_ON_DISK_BYTES).set(size as f64);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
