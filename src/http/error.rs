//! API errors: JSON `{ error, detail, reason? }` with the right status. Server errors are logged
//! with their cause and answered without library internals.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::access::AccessError;
use crate::ingest::IngestError;
use crate::photos::DeleteError;
use crate::store::{AppendError, StoreError};
use crate::telemetry::ErrorChain;

/// An error answered to an HTTP client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: &'static str,
    detail: String,
    reason: Option<&'static str>,
}

impl ApiError {
    /// An error with a status, a short code and a human-readable detail.
    pub fn new(status: StatusCode, error: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            error,
            detail: detail.into(),
            reason: None,
        }
    }

    /// Adds a one-word `reason` (e.g. why a token was refused: `expired`, `bad_signature`).
    pub fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    /// 400 `invalid_payload`.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_payload", detail)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 500 `internal`, for a failure already logged.
    pub fn logged_internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the hub failed; its log says why",
        )
    }

    /// 403 `forbidden`.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 404 `not_found`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    /// 500 `internal`: logs `cause` with its chain and answers `detail`, without library text.
    pub fn internal(cause: &(dyn std::error::Error + 'static), detail: &str) -> Self {
        tracing::error!(error = %ErrorChain(cause), "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{detail}; the hub's log says why"),
        )
    }

    /// The short code (`error` in the body).
    pub fn code(&self) -> &'static str {
        self.error
    }

    /// The human-readable detail.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.error, "detail": self.detail });
        if let Some(reason) = self.reason {
            body["reason"] = json!(reason);
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %ErrorChain(&e), "request failed in the store");
        if matches!(e, StoreError::Unavailable(_) | StoreError::CommitFailed(_)) {
            return Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the event log cannot write; nothing of this request was acknowledged",
            );
        }
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the event log failed; the hub's log says why",
        )
    }
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Forbidden => Self::forbidden("you may not read this"),
            AccessError::NotFound => Self::new(StatusCode::NOT_FOUND, "not_found", "unknown photo"),
            AccessError::Store(e) => e.into(),
        }
    }
}

impl From<DeleteError> for ApiError {
    fn from(e: DeleteError) -> Self {
        match e {
            DeleteError::Access(AccessError::Forbidden) => {
                Self::forbidden("deleting needs the owner's write:photos, or admin")
            }
            DeleteError::Access(e) => e.into(),
            DeleteError::Ingest(e) => e.into(),
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Invalid { .. } => Self::bad_request(ErrorChain(&e).to_string()),
            IngestError::TooDeep { .. } => Self::bad_request(e.to_string()),
            IngestError::Append(AppendError::Rejected { ref rejection, .. }) => {
                Self::new(StatusCode::BAD_REQUEST, rejection.code(), e.to_string())
            }
            IngestError::Append(AppendError::Store(e)) => e.into(),
        }
    }
}
