//! Bodies of the events the bridge tests publish over HTTP (the test kit is in `support`).

use serde_json::{Value, json};

/// `photo.uploaded` of `photo` by `user`.
pub fn uploaded(photo: &str, user: &str) -> Value {
    json!({ "type": "photo.uploaded", "data": { "photoId": photo, "userId": user } })
}

/// `n` progress events of `photo`.
pub fn progress_batch(photo: &str, n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({ "type": "photo.processing.progress", "data": { "photoId": photo, "progress": i % 101 } }))
            .collect(),
    )
}
