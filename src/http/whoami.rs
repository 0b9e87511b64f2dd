//! `GET /api/me` (docs/protocol.md, "Support tools"): whose token this is, what it may do and when
//! the hub stops accepting it (its `exp` plus the leeway), so that a console can say so before
//! anything is refused.

use std::time::UNIX_EPOCH;

use axum::Json;
use serde_json::{Value, json};

use super::auth::Caller;
use crate::domain::Timestamp;

/// `GET /api/me` -> `{ userId, permissions, expiresAt }` for any valid token.
pub async fn me(Caller(principal): Caller) -> Json<Value> {
    let permissions: Vec<&str> = principal
        .permissions()
        .into_iter()
        .map(|p| p.as_str())
        .collect();
    let expires_at = principal
        .expires_at
        .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
        .and_then(|since| i64::try_from(since.as_millis()).ok())
        .map(|millis| Timestamp::from_millis(millis).to_rfc3339());
    Json(json!({
        "userId": principal.user.as_str(),
        "permissions": permissions,
        "expiresAt": expires_at,
    }))
}
