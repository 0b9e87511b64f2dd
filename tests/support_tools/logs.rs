//! What the binary logs while it serves, at debug level: never a token, whether it came in a
//! header, in the URL where it does not belong, or in a Socket.IO handshake, valid or refused.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::hub::{stream, uploaded};
use crate::support::binary::HubProcess;
use crate::support::token;

/// A token for `user` signed with a secret the hub does not know.
fn foreign_token(user: &str) -> String {
    socket_bridge::auth::TokenAuthority::new(b"another-secret-0123456789abcdef-0123")
        .expect("secret")
        .mint(
            user,
            &["read:photos".parse().expect("permission")],
            Duration::from_secs(60),
        )
        .expect("mint")
}

/// Tokens used over HTTP, SSE (header and `?token=`) and Socket.IO, accepted and refused, leave
/// no trace of themselves (not even their signature) in the hub's debug log.
#[tokio::test]
async fn tokens_never_reach_the_log() {
    let hub = HubProcess::spawn(|c| {
        c.env("RUST_LOG", "debug");
    })
    .await;
    let publisher = token("producer", &["events:publish"]);
    let reader = token("u1", &["read:photos"]);
    let in_url = token("u1", &["read:photos"]);
    let socket = token("u2", &["read:photos"]);
    let foreign = foreign_token("u1");

    let published = hub
        .request(Method::POST, "/api/events")
        .bearer_auth(&publisher)
        .json(&uploaded("p1", "u1"))
        .send()
        .await
        .expect("POST");
    assert_eq!(published.status(), 200);
    let (status, _) = hub.get_answer("/api/photos/p1/events", &reader).await;
    assert_eq!(status, 200);
    let (status, _) = hub.get_answer("/api/photos/p1/events", &foreign).await;
    assert_eq!(status, 401);
    let refused = stream(
        &hub,
        &format!("/api/photos/p1/stream?token={in_url}"),
        None,
        None,
    )
    .await;
    assert_eq!(refused.status(), 401);
    let mut client = hub
        .client(json!({ "token": socket, "clientId": "c-u2" }))
        .await;
    client.next_named("connection:established").await;
    client.close().await;
    let refused = hub
        .client(json!({ "token": foreign, "clientId": "c-u1" }))
        .await;
    refused.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let output = hub.output();
    assert!(
        output.iter().any(|line| line.contains("DEBUG")),
        "the hub logged at debug level: {output:?}"
    );
    for token in [&publisher, &reader, &in_url, &socket, &foreign] {
        let signature = token.rsplit('.').next().expect("a JWT");
        for line in &output {
            assert!(!line.contains(signature), "a token in the log: {line}");
        }
    }
}
