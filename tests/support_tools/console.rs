//! What the console stands on: its files, embedded and served with a strict content policy, and
//! the endpoints it reads (`/api/me`, `/api/rooms/{room}`, `/api/overview`).

use serde_json::Value;

use super::hub::uploaded;
use crate::support::api::Api;
use crate::support::binary::HubProcess;
use crate::support::token;

/// GETs `path` of `hub` with `http`.
async fn get(http: &reqwest::Client, hub: &Api, path: &str) -> reqwest::Response {
    http.get(format!("{}{path}", hub.base))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// `/console` (with or without its slash) is the page; every asset it names is served with its
/// type; others are 404.
#[tokio::test]
async fn console_files_are_served_from_the_binary() {
    let hub = HubProcess::spawn(|_| {}).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    for path in ["/console", "/console/"] {
        let page = get(&http, &hub, path).await;
        assert_eq!(page.status(), 200, "{path}");
    }
    let page = get(&http, &hub, "/console").await;
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    let html = page.text().await.expect("html");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing from elsewhere"
    );
    for named in ["/console/app.js", "/console/console.css"] {
        assert!(html.contains(named), "the page loads {named}");
    }
    for (file, kind) in [
        ("app.js", "text/javascript"),
        ("views.js", "text/javascript"),
        ("console.css", "text/css"),
    ] {
        let response = get(&http, &hub, &format!("/console/{file}")).await;
        assert_eq!(response.status(), 200, "{file}");
        let content_type = response.headers()["content-type"].to_str().expect("ascii");
        assert!(content_type.starts_with(kind), "{file}: {content_type}");
    }
    let missing = get(&http, &hub, "/console/nope.js").await;
    assert_eq!(missing.status(), 404);
}

/// `/api/me` says whose token it is; `/api/rooms/{room}` gives the kept range with the
/// history's access rules; `/api/overview` is for support staff only.
#[tokio::test]
async fn me_room_info_and_overview() {
    let hub = HubProcess::spawn(|_| {}).await;
    hub.publish_ok(&uploaded("p1", "u1")).await;
    let owner = token("u1", &["read:photos", "write:photos"]);
    let (status, me) = hub.get_answer("/api/me", &owner).await;
    assert_eq!(status, 200);
    assert_eq!(me["userId"], "u1");
    assert_eq!(
        me["permissions"],
        serde_json::json!(["read:photos", "write:photos"])
    );
    assert!(
        me["expiresAt"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{me}"
    );
    let (status, _) = hub.get_answer("/api/me", "garbage").await;
    assert_eq!(status, 401);

    let (status, info) = hub.get_answer("/api/rooms/photo:p1", &owner).await;
    assert_eq!(status, 200);
    assert_eq!(
        (info["headSeq"].as_u64(), info["oldestSeq"].as_u64()),
        (Some(1), Some(1))
    );
    let (status, _) = hub
        .get_answer("/api/rooms/user:u1", &token("u2", &["read:photos"]))
        .await;
    assert_eq!(status, 403);
    let (status, _) = hub.get_answer("/api/rooms/photo:p9", &owner).await;
    assert_eq!(status, 404);

    let (status, _) = hub.get_answer("/api/overview", &owner).await;
    assert_eq!(status, 403);
    let (status, overview) = hub
        .get_answer("/api/overview", &token("amy", &["support:read"]))
        .await;
    assert_eq!(status, 200);
    assert_eq!(overview["bus"]["type"], "in-process");
    assert_eq!(overview["rooms"]["kept"], 2, "photo:p1 and user:u1");
    assert!(overview["retention"]["lastRun"].is_null(), "no pass yet");
    assert!(matches!(
        overview["store"]["sizeOnDiskBytes"],
        Value::Number(_)
    ));
}
