//! The producer side: tokens, event bodies, and `POST /api/events` with the receipts turned into
//! each room's head, which is what every client must end at.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use socket_bridge::auth::{Permission, TokenAuthority};

use super::measure::now_us;
use super::wire::SENT_KEY;

/// Lifetime of the tokens the tool mints: longer than any run.
const TOKEN_TTL: Duration = Duration::from_secs(6 * 3600);

/// Mints HS256 tokens with the server's secret.
pub struct Tokens(TokenAuthority);

impl Tokens {
    /// Tokens signed with `secret` (at least 16 bytes, as the hub requires).
    pub fn new(secret: &str) -> anyhow::Result<Self> {
        Ok(Self(
            TokenAuthority::new(secret.as_bytes()).context("the token secret")?,
        ))
    }

    /// A token for `user` with `permissions`.
    pub fn mint(&self, user: &str, permissions: &[Permission]) -> anyhow::Result<String> {
        self.0
            .mint(user, permissions, TOKEN_TTL)
            .context("minting a token")
    }
}

/// A `photo.uploaded` event that makes `user` the owner of `photo`.
pub fn uploaded(photo: &str, user: &str) -> String {
    format!(
        r#"{{"type":"photo.uploaded","data":{{"photoId":"{photo}","userId":"{user}","{SENT_KEY}":{}}}}}"#,
        now_us()
    )
}

/// A `photo.processing.progress` event of `photo` stamped with `sent_us`.
pub fn progress(photo: &str, n: u64, sent_us: u64) -> String {
    format!(
        r#"{{"type":"photo.processing.progress","data":{{"photoId":"{photo}","progress":{},"{SENT_KEY}":{sent_us}}}}}"#,
        n % 101
    )
}

/// A JSON array of the given events.
pub fn batch(events: impl IntoIterator<Item = String>) -> String {
    let mut body = String::from("[");
    for (i, event) in events.into_iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&event);
    }
    body.push(']');
    body
}

/// Posts events to one server and keeps the head of every room from the answers.
pub struct Publisher {
    http: reqwest::Client,
    base: String,
    token: String,
    heads: Mutex<HashMap<String, u64>>,
}

impl Publisher {
    /// A publisher for the server at `base` (`http://host:port`).
    pub fn new(base: &str, tokens: &Tokens) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .context("the HTTP client")?,
            base: base.to_owned(),
            token: tokens.mint("load-publisher", &[Permission::EventsPublish])?,
            heads: Mutex::new(HashMap::new()),
        })
    }

    /// POSTs `body` (one event or an array); returns once the server answered 200 (for the hub:
    /// once the events are durable) and returns how many events it acknowledged.
    pub async fn post(&self, body: String) -> anyhow::Result<usize> {
        let response = self
            .http
            .post(format!("{}/api/events", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .context("POST /api/events")?;
        let status = response.status();
        let answer: Value = response
            .json()
            .await
            .context("reading the answer of POST /api/events")?;
        if !status.is_success() {
            bail!("POST /api/events answered {status}: {answer}");
        }
        let receipts = answer["events"]
            .as_array()
            .context("POST /api/events answered without `events`")?;
        let mut heads = self.heads.lock().expect("heads lock");
        for receipt in receipts {
            let rooms = receipt["rooms"].as_object().into_iter().flatten();
            for (room, seq) in rooms {
                let seq = seq.as_u64().context("a receipt seq that is not a number")?;
                let head = heads.entry(room.clone()).or_insert(0);
                *head = (*head).max(seq);
            }
        }
        Ok(receipts.len())
    }

    /// The value of a counter or gauge in the server's `GET /metrics` (socket-bridge's
    /// Prometheus text), if it has one.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let response = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let text = response.text().await.ok()?;
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
    }

    /// The head of `room` from the receipts so far (0 if the tool stored nothing in it).
    pub fn head(&self, room: &str) -> u64 {
        self.heads
            .lock()
            .expect("heads lock")
            .get(room)
            .copied()
            .unwrap_or(0)
    }
}
