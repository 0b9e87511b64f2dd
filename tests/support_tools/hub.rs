//! What the support-tool tests add to the test kit (`support`): opening an SSE stream and
//! reading its events, and the bodies of the events they publish.

use std::pin::Pin;

use eventsource_stream::{Event, Eventsource};
use futures::{Stream, StreamExt};
use reqwest::Method;
use serde_json::Value;

use crate::support::WAIT;
use crate::support::api::Api;

/// Opens an SSE stream at `path` of `hub`, with `Last-Event-ID` when given.
pub async fn stream(
    hub: &Api,
    path: &str,
    bearer: Option<&str>,
    last_event_id: Option<u64>,
) -> reqwest::Response {
    let mut request = hub.request(Method::GET, path);
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id.to_string());
    }
    request.send().await.expect("GET stream")
}

/// The SSE events of a response, one at a time.
pub struct SseReader {
    events: Pin<Box<dyn Stream<Item = Event> + Send>>,
}

impl SseReader {
    /// Reads `response` (a 200 `text/event-stream`).
    pub fn new(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200, "stream refused");
        let events = response
            .bytes_stream()
            .eventsource()
            .take_while(|event| std::future::ready(event.is_ok()))
            .filter_map(|event| std::future::ready(event.ok()));
        Self {
            events: Box::pin(events),
        }
    }

    /// The next event; panics after [`WAIT`] or at the end of the stream.
    pub async fn next(&mut self) -> Event {
        tokio::time::timeout(WAIT, self.events.next())
            .await
            .expect("an SSE event in time")
            .expect("the stream goes on")
    }

    /// Whether the stream ends within `limit`.
    pub async fn ends_within(&mut self, limit: std::time::Duration) -> bool {
        matches!(
            tokio::time::timeout(limit, self.events.next()).await,
            Ok(None)
        )
    }
}

/// `photo.uploaded` of `photo` by `user`.
pub fn uploaded(photo: &str, user: &str) -> Value {
    serde_json::json!({ "type": "photo.uploaded", "data": { "photoId": photo, "userId": user } })
}

/// `photo.processing.progress` of `photo` at `progress`.
pub fn progress(photo: &str, progress: u64) -> Value {
    serde_json::json!({ "type": "photo.processing.progress",
                        "data": { "photoId": photo, "progress": progress % 101, "stage": "resize" } })
}
