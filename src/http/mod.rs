//! The HTTP API (docs/protocol.md, "Producers", "HTTP read API" and "Support tools"): health,
//! metrics, ingest, history, status, SSE streams, and the support console.

mod auth;
mod console;
mod error;
mod events;
mod health;
mod history;
mod metrics;
mod overview;
mod room_info;
mod sse;
mod whoami;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;

pub use error::ApiError;

use crate::auth::TokenAuthority;
use crate::bus::EventBus;
use crate::ingest::Ingest;
use crate::realtime::Hub;
use crate::retention::RetentionView;
use crate::store::EventLog;

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The event log.
    pub log: EventLog,
    /// Subscriptions (for health figures).
    pub hub: Hub,
    /// The ingest path.
    pub ingest: Ingest,
    /// Verifies bearer tokens.
    pub tokens: TokenAuthority,
    /// The event bus (for health).
    pub bus: Arc<dyn EventBus>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// When the hub started.
    pub started: Instant,
    /// Most events in one ingest batch.
    pub max_batch_events: usize,
    /// Retention settings and last pass (for the overview).
    pub retention: RetentionView,
}

/// The API routes. `max_body` limits request bodies (413 above it).
pub fn router(state: AppState, max_body: usize) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route("/health/detailed", get(health::detailed))
        .route("/metrics", get(metrics::render))
        .route("/api/events", post(events::ingest))
        .route("/api/photos/{photo_id}/status", get(history::photo_status))
        .route("/api/photos/{photo_id}/events", get(history::photo_events))
        .route("/api/rooms/{room}/events", get(history::room_events))
        .route("/api/rooms/{room}", get(room_info::room_info))
        .route("/api/rooms/{room}/stream", get(sse::room_stream))
        .route("/api/photos/{photo_id}/stream", get(sse::photo_stream))
        .route("/api/me", get(whoami::me))
        .route("/api/overview", get(overview::overview))
        .route("/console", get(console::index))
        .route("/console/", get(console::index))
        .route("/console/{file}", get(console::asset))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}
