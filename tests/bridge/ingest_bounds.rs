//! Bounds of HTTP ingest: `data` nesting depth, and 4xx bodies that explain in the API's words
//! without the parser's or the store's internals.

use serde_json::{Value, json};

use crate::support::hub::TestHub;

/// An object nested `depth` levels deep (`{}` is 1).
fn nested(depth: usize) -> Value {
    let mut value = json!({});
    for _ in 1..depth {
        value = json!({ "a": value });
    }
    value
}

/// `data` nested up to `--max-json-depth` (default 32) is stored; one level deeper is refused
/// with 400 `invalid_payload` naming the limit, and nothing of the batch is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_deeper_than_the_limit_is_refused() {
    let hub = TestHub::spawn().await;
    let ok = json!({ "id": "deep-ok", "type": "system.maintenance", "data": nested(32) });
    hub.publish_ok(&ok).await;
    let deep = json!({ "id": "too-deep", "type": "system.maintenance", "data": nested(33) });
    let fine = json!({ "id": "fine", "type": "system.maintenance", "data": {} });
    let (status, body) = hub.publish(&json!([fine, deep])).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_payload");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("event 1") && detail.contains("--max-json-depth"),
        "{detail}"
    );
    assert_eq!(
        hub.stored("global").await,
        1,
        "nothing of the refused batch is stored"
    );
    hub.stop().await;
}

/// Malformed and mistyped bodies get a 400 whose detail says where or what, and never the
/// parser's names for the hub's types or the libraries' own words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_do_not_echo_library_text() {
    let hub = TestHub::spawn().await;
    let bodies = [
        json!("a string"),
        json!([1]),
        json!({ "type": 5, "data": {} }),
        json!({ "type": "system.maintenance", "data": {}, "extra": 1 }),
        Value::String("{\"type\":".into()),
    ];
    for body in bodies {
        let raw = match &body {
            Value::String(s) if s.starts_with('{') => s.clone(),
            other => other.to_string(),
        };
        let (status, answer) = hub.publish_raw(raw.into_bytes()).await;
        assert_eq!(status, 400, "{answer}");
        let detail = answer["detail"].as_str().unwrap_or_default().to_owned();
        assert!(!detail.is_empty());
        for internal in [
            "EventInput",
            "struct",
            "serde",
            "sled",
            "bincode",
            "jsonwebtoken",
            "Error(",
        ] {
            assert!(!detail.contains(internal), "{internal} in {detail}");
        }
    }
    hub.stop().await;
}

/// A refused token (not a JWT, cut short, unsigned `alg: none`, another secret, expired) is 401
/// `unauthorized` with the API's short words, never the JWT library's text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tokens_do_not_echo_library_text() {
    let hub = TestHub::spawn().await;
    let good = crate::support::token("u1", &["read:photos"]);
    let other = socket_bridge::auth::TokenAuthority::new(b"another-secret-0123456789abcdef-0123")
        .expect("secret")
        .mint(
            "u1",
            &["read:photos".parse().expect("permission")],
            std::time::Duration::from_secs(60),
        )
        .expect("mint");
    let header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
    let claims = good.split('.').nth(1).expect("claims");
    let tokens = [
        "not-a-jwt".to_owned(),
        good[..good.len() / 2].to_owned(),
        format!("{header}.{claims}."),
        other,
        "a.b.c".to_owned(),
    ];
    for bearer in tokens {
        let (status, answer) = hub.get_answer("/api/rooms/global/events", &bearer).await;
        assert_eq!(status, 401, "{bearer}: {answer}");
        assert_eq!(answer["error"], "unauthorized", "{answer}");
        let detail = answer["detail"].as_str().unwrap_or_default();
        assert!(!detail.is_empty(), "{answer}");
        for internal in [
            "Base64",
            "Json",
            "Utf8",
            "InvalidToken",
            "Invalid",
            "Error(",
            ": ",
        ] {
            assert!(!detail.contains(internal), "{internal} in {answer}");
        }
    }
    hub.stop().await;
}
