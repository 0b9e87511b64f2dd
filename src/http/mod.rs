//! The HTTP API (docs/protocol.md, "Producers", "HTTP read API", "Photos" and "Support tools"):
//! health, metrics, ingest, history, status, photo upload, files and delete, SSE streams, and the
//! support console.

mod auth;
mod console;
mod error;
pub(crate) mod events;
mod health;
mod history;
pub mod listener;
mod metrics;
mod overview;
mod photos;
mod query;
mod room_info;
pub mod serve;
mod sse;
mod whoami;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use metrics_exporter_prometheus::PrometheusHandle;

pub use error::ApiError;

use crate::auth::TokenAuthority;
use crate::bus::EventBus;
use crate::ingest::Ingest;
use crate::photos::Photos;
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
    /// Photo uploads, files and deletes.
    pub photos: Photos,
}

/// `GET /metrics` alone, for a listener of its own (`--metrics-listen`).
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::render))
        .with_state(state)
}

/// The API routes, with `/metrics` when `with_metrics`. `max_body` limits request bodies (413
/// above it), but for uploads, which may be as large as the photo limit.
pub fn router(state: AppState, max_body: usize, with_metrics: bool) -> Router {
    let upload_body = state
        .photos
        .max_upload_bytes()
        .saturating_add(photos::MULTIPART_OVERHEAD);
    let upload_body = usize::try_from(upload_body).unwrap_or(usize::MAX);
    let routes = if with_metrics {
        metrics_router(state.clone())
    } else {
        Router::new()
    };
    Router::new()
        .route("/health", get(health::health))
        .route("/health/detailed", get(health::detailed))
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
        .route(
            "/api/photos",
            post(photos::upload).layer(DefaultBodyLimit::max(upload_body)),
        )
        .route("/api/photos/{photo_id}", delete(photos::delete))
        .route("/api/photos/{photo_id}/original", get(photos::original))
        .route(
            "/api/photos/{photo_id}/thumbnails/{size}",
            get(photos::thumbnail),
        )
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
        .merge(routes)
}
