//! A running hub's HTTP API ([`Api`]): publishing, history, health and metrics, waiting on them,
//! and Socket.IO clients for it. The in-process hub and the binary both give one.

use std::time::{Duration, Instant};

use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

use super::client::TestClient;
use super::{WAIT, token};

/// A hub's address and an HTTP client for it.
#[derive(Clone)]
pub struct Api {
    /// `http://127.0.0.1:<port>`
    pub base: String,
    http: reqwest::Client,
}

impl Api {
    /// The API of the hub at `base` (`http://host:port`).
    pub fn new(base: String) -> Self {
        Self {
            base,
            http: reqwest::Client::new(),
        }
    }

    /// A request of `method` to `path` (with its query) on this hub, to be finished and sent
    /// (see [`answer`]).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    /// A GET of `path` (with its query) on this hub.
    fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    /// GETs `path` with `bearer`: the status and the JSON body (null when it is not JSON).
    pub async fn get_answer(&self, path: &str, bearer: &str) -> (u16, Value) {
        answer(self.get(path).bearer_auth(bearer)).await
    }

    /// GETs `path` with `bearer` and returns its JSON body.
    pub async fn get_json(&self, path: &str, bearer: &str) -> Value {
        self.get(path)
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: not JSON: {e}"))
    }

    /// POSTs `body` to `/api/events` as a publisher; returns the status and JSON body.
    pub async fn publish(&self, body: &Value) -> (u16, Value) {
        answer(
            self.request(Method::POST, "/api/events")
                .bearer_auth(token("publisher", &["events:publish"]))
                .json(body),
        )
        .await
    }

    /// POSTs raw `body` bytes (as JSON) to `/api/events` as a publisher; returns the status and
    /// JSON body.
    pub async fn publish_raw(&self, body: Vec<u8>) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/api/events", self.base))
            .bearer_auth(token("publisher", &["events:publish"]))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST /api/events");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Publishes and expects success.
    pub async fn publish_ok(&self, body: &Value) -> Value {
        let (status, body) = self.publish(body).await;
        assert_eq!(status, 200, "publish failed: {body}");
        body
    }

    /// Every stored event of `room`, in seq order.
    pub async fn history(&self, room: &str) -> Vec<Value> {
        let auth = token("support", &["support:read"]);
        let mut events = Vec::new();
        let mut after = 0u64;
        // Each page holds up to 1000 events; a test room never holds more than 100 pages.
        for _ in 0..100 {
            let path = format!("/api/rooms/{room}/events?after={after}&limit=1000");
            let page = self.get_json(&path, &auth).await;
            events.extend(page["events"].as_array().cloned().unwrap_or_default());
            match page["nextAfter"].as_u64() {
                Some(next) => after = next,
                None => return events,
            }
        }
        panic!("{room}: more than 100 pages of history");
    }

    /// How many events `room` holds.
    pub async fn stored(&self, room: &str) -> usize {
        self.history(room).await.len()
    }

    /// The seqs of every event stored in `room`, oldest first (via [`history`](Self::history)).
    pub async fn stored_seqs(&self, room: &str) -> Vec<u64> {
        self.history(room)
            .await
            .iter()
            .filter_map(|e| e["seq"].as_u64())
            .collect()
    }

    /// `GET /health/detailed`: its status code and body.
    pub async fn health_with_status(&self) -> (u16, Value) {
        let response = self
            .get("/health/detailed")
            .send()
            .await
            .expect("GET /health/detailed");
        let status = response.status().as_u16();
        (status, response.json().await.expect("health JSON"))
    }

    /// `GET /health/detailed`
    pub async fn health(&self) -> Value {
        self.get("/health/detailed")
            .send()
            .await
            .expect("GET /health/detailed")
            .json()
            .await
            .expect("health JSON")
    }

    /// `GET /metrics`
    pub async fn metrics(&self) -> String {
        self.get("/metrics")
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// Waits until the bus in `/health/detailed` is NATS with `status` (`"up"` or `"down"`).
    pub async fn wait_for_bus(&self, status: &str) {
        let started = Instant::now();
        loop {
            let health = self.health().await;
            if health["details"]["bus"]["status"] == status {
                assert_eq!(health["details"]["bus"]["type"], "nats");
                return;
            }
            assert!(
                started.elapsed() < WAIT,
                "bus never became {status}: {health}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `room` holds at least `count` events.
    pub async fn wait_for_stored(&self, room: &str, count: usize) {
        let started = Instant::now();
        loop {
            let stored = self.stored(room).await;
            if stored >= count {
                return;
            }
            assert!(
                started.elapsed() < WAIT * 3,
                "{room}: {stored} of {count} events stored in time"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Connects a Socket.IO client with `auth`.
    pub async fn client(&self, auth: Value) -> TestClient {
        TestClient::connect(&self.base, auth).await
    }

    /// Connects `user` (with `read:photos`, client id `c-<user>`) as a Socket.IO client.
    pub async fn client_for(&self, user: &str) -> TestClient {
        self.client(
            json!({ "token": token(user, &["read:photos"]), "clientId": format!("c-{user}") }),
        )
        .await
    }
}

/// Sends `request`; returns the status and the JSON body (null when it is not JSON).
pub async fn answer(request: RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("the hub answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}
