//! `GET /metrics`: Prometheus text.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;

pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let (connected, rooms) = state.hub.stats();
    metrics::gauge!("hub_connected_sockets").set(connected as f64);
    metrics::gauge!("hub_active_rooms").set(rooms as f64);
    if let Ok(size) = state.log.size_on_disk() {
        metrics::gauge!("store_size_on_disk_bytes").set(size as f64);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
