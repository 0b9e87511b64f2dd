//! The bearer-token extractor of the API.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::{ApiError, AppState};
use crate::auth::{AuthError, Principal};

/// The authenticated caller of an API request (`Authorization: Bearer <token>`).
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| missing("missing bearer token"))?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or_else(|| missing("expected `Authorization: Bearer <token>`"))?;
        state
            .tokens
            .verify(token.trim())
            .map(Caller)
            .map_err(|e| ApiError::unauthorized(e.to_string()).with_reason(e.reason()))
    }
}

/// 401 for a request without a bearer token: reason `missing`, the word a handshake without a token gets.
fn missing(detail: &str) -> ApiError {
    ApiError::unauthorized(detail).with_reason(AuthError::Missing.reason())
}
