//! The CLI's HTTP client: requests to one hub with the bearer token, and the hub's refusals
//! turned into [`CliError`]s that say what was asked for.

use std::time::Duration;

use serde_json::Value;

use super::args::ServerArgs;
use super::error::CliError;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a plain request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stream may stay silent (the hub sends a keep-alive every 15 s) before it counts as
/// lost.
const STREAM_READ_TIMEOUT: Duration = Duration::from_secs(45);

/// A hub and the token to talk to it with.
pub struct HubClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl HubClient {
    /// A client for the hub and token of `args`.
    pub fn new(args: &ServerArgs) -> Result<Self, CliError> {
        let token = args
            .token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(CliError::NoToken)?;
        let base = args.server.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CliError::Usage(format!(
                "--server `{base}` is not an http:// or https:// URL"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(STREAM_READ_TIMEOUT)
            .build()
            .map_err(|e| CliError::Usage(format!("cannot set up HTTP: {}", innermost(&e))))?;
        Ok(Self {
            http,
            base,
            token: token.to_owned(),
        })
    }

    /// The hub's URL.
    pub fn server(&self) -> &str {
        &self.base
    }

    /// GETs `path` and returns its JSON body; `what` names the thing asked for in refusals.
    pub async fn get_json(&self, path: &str, what: &str) -> Result<Value, CliError> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let response = self.check(response, what).await?;
        response
            .json()
            .await
            .map_err(|e| CliError::Answer(innermost(&e)))
    }

    /// Opens the SSE stream at `path` after `last_event_id`.
    pub async fn stream(
        &self,
        path: &str,
        last_event_id: u64,
        what: &str,
    ) -> Result<reqwest::Response, CliError> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("Accept", "text/event-stream")
            .header("Last-Event-ID", last_event_id.to_string())
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        self.check(response, what).await
    }

    /// The response if it succeeded, else the hub's refusal.
    async fn check(
        &self,
        response: reqwest::Response,
        what: &str,
    ) -> Result<reqwest::Response, CliError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        let detail = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["detail"].as_str().map(str::to_owned))
            .unwrap_or_else(|| body.trim().to_owned());
        Err(match status.as_u16() {
            401 => CliError::Unauthorized { detail },
            403 => CliError::Forbidden {
                what: what.to_owned(),
            },
            404 => CliError::NotFound {
                what: what.to_owned(),
            },
            code => CliError::Hub {
                status: code,
                detail,
            },
        })
    }

    /// A request that got no answer.
    pub fn unreachable(&self, error: &reqwest::Error) -> CliError {
        CliError::Unreachable {
            server: self.base.clone(),
            reason: innermost(error),
        }
    }
}

/// The innermost cause of `error`, in words (e.g. `Connection refused (os error 111)`).
pub fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}
