//! Query strings of the read API and the SSE streams against the running hub: a bad `after` or
//! `limit` on any endpoint that takes one is 400 `invalid_payload` with a detail naming the
//! parameter and no library text; values the read API clamps or ignores are served.

use serde_json::Value;

use super::hub::{progress, stream, uploaded};
use crate::support::binary::HubProcess;
use crate::support::token;

/// Every endpoint that reads a query string (docs/protocol.md, "HTTP read API" and "Server-Sent
/// Events"), and whether it takes `limit`.
const ENDPOINTS: [(&str, bool); 4] = [
    ("/api/photos/p1/events", true),
    ("/api/rooms/user:u1/events", true),
    ("/api/photos/p1/stream", false),
    ("/api/rooms/user:u1/stream", false),
];

/// Texts of the HTTP and deserialization libraries that a refusal must not carry.
const LIBRARY_TEXT: [&str; 5] = [
    "deserialize",
    "invalid digit",
    "duplicate field",
    "too large to fit",
    "cannot parse",
];

/// Bad values of `param`: not a number, negative, empty, fractional, signed, given twice.
fn bad_queries(param: &str) -> Vec<String> {
    let mut queries: Vec<String> = ["abc", "-1", "", "1.5", "+1", "%201"]
        .iter()
        .map(|v| format!("{param}={v}"))
        .collect();
    queries.push(format!("{param}=1&{param}=2"));
    if param == "after" {
        // One past the largest seq.
        queries.push("after=18446744073709551616".into());
    }
    queries
}

/// GETs `path` as `bearer`: the status and the JSON body (null when not JSON).
async fn get(hub: &HubProcess, path: &str, bearer: &str) -> (u16, Value) {
    let response = stream(hub, path, Some(bearer), None).await;
    let status = response.status().as_u16();
    if status == 200 && path.contains("/stream") {
        // A stream that was accepted: its body never ends.
        return (status, Value::Null);
    }
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// `?after=abc`, `?limit=-1`, `?after=`, a repeated parameter … on every endpoint: 400
/// `{ error: "invalid_payload", detail }` with the parameter named in the detail.
#[tokio::test]
async fn bad_query_parameters_are_refused_in_the_error_shape() {
    let hub = HubProcess::spawn(|_| {}).await;
    hub.publish_ok(&uploaded("p1", "u1")).await;
    let owner = token("u1", &["read:photos"]);
    for (endpoint, takes_limit) in ENDPOINTS {
        let params: &[&str] = if takes_limit {
            &["after", "limit"]
        } else {
            &["after"]
        };
        for param in params {
            for query in bad_queries(param) {
                let path = format!("{endpoint}?{query}");
                let (status, body) = get(&hub, &path, &owner).await;
                assert_eq!(status, 400, "{path}: {body}");
                assert_eq!(body["error"], "invalid_payload", "{path}: {body}");
                let detail = body["detail"].as_str().unwrap_or_default();
                assert!(
                    detail.contains(&format!("`{param}`")),
                    "{path}: the detail names `{param}`: {body}"
                );
                let lower = detail.to_lowercase();
                for text in LIBRARY_TEXT {
                    assert!(!lower.contains(text), "{path}: library text in {body}");
                }
            }
        }
    }
}

/// What the read API serves rather than refuses: the largest seq as `after` (nothing after it),
/// a `limit` of any size (clamped to 1000), `limit=0` (one event), and parameters it does not
/// know (ignored).
#[tokio::test]
async fn query_values_served_not_refused() {
    let hub = HubProcess::spawn(|_| {}).await;
    hub.publish_ok(&uploaded("p1", "u1")).await;
    hub.publish_ok(&progress("p1", 10)).await;
    let owner = token("u1", &["read:photos"]);
    for (endpoint, takes_limit) in ENDPOINTS {
        let mut queries = vec!["after=18446744073709551615", "after=0&cache=1", "after=007"];
        if takes_limit {
            queries.extend([
                "limit=99999999999999999999999",
                "limit=0",
                "after=1&limit=1000",
            ]);
        }
        for query in queries {
            let path = format!("{endpoint}?{query}");
            let (status, body) = get(&hub, &path, &owner).await;
            assert_eq!(status, 200, "{path}: {body}");
        }
    }
    let (_, page) = get(
        &hub,
        "/api/photos/p1/events?after=18446744073709551615",
        &owner,
    )
    .await;
    assert_eq!(page["events"], Value::Array(vec![]), "{page}");
    let (_, page) = get(
        &hub,
        "/api/photos/p1/events?limit=99999999999999999999999",
        &owner,
    )
    .await;
    assert_eq!(page["events"].as_array().map(Vec::len), Some(2), "{page}");
    let (_, page) = get(&hub, "/api/photos/p1/events?limit=0", &owner).await;
    assert_eq!(page["events"].as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(page["nextAfter"], 1, "{page}");
}
