//! HTTP read timeouts (docs/protocol.md, "Limits"): a client that sends its request headers or
//! body too slowly is cut off, and a long-lived response (a Server-Sent Events stream) is not.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::uploaded;
use crate::support::hub::TestHub;
use crate::support::token;

/// Writes `bytes` one at a time, `gap` apart, until the hub closes the connection or `bytes` runs
/// out; returns how long the hub took to close it (`None`: it never did).
async fn trickle(stream: &mut TcpStream, bytes: &[u8], gap: Duration) -> Option<Duration> {
    let started = Instant::now();
    for byte in bytes {
        if stream.write_all(&[*byte]).await.is_err() {
            return Some(started.elapsed());
        }
        let mut buf = [0u8; 512];
        match tokio::time::timeout(gap, stream.read(&mut buf)).await {
            // Closed, or an error answer (then closed): cut off either way.
            Ok(Ok(_)) | Ok(Err(_)) => return Some(started.elapsed()),
            Err(_) => {}
        }
    }
    None
}

/// Headers sent one byte every 250 ms are cut off after the header timeout (1 s here), and a
/// connection that sends nothing at all is closed as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off() {
    let app = TestHub::spawn_with(|settings| {
        settings.http.header_timeout = Duration::from_secs(1);
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut slow = TcpStream::connect(&addr).await.expect("connect");
    let request = format!(
        "GET /health HTTP/1.1\r\nHost: {addr}\r\nX-Slow: {}\r\n\r\n",
        "a".repeat(40)
    );
    let cut = trickle(&mut slow, request.as_bytes(), Duration::from_millis(250)).await;
    let cut = cut.expect("the hub cut the slow client off before it finished its headers");
    assert!(cut < Duration::from_secs(4), "cut off after {cut:?}");

    let mut silent = TcpStream::connect(&addr).await.expect("connect");
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(4), silent.read(&mut buf))
        .await
        .expect("a silent connection is closed by the header timeout");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    // A normal request on the same hub is served.
    assert_eq!(app.health().await["status"], "ok");
    app.stop().await;
}

/// A request body that stops arriving is cut off after the body timeout (1 s here), while a
/// Server-Sent Events stream open for longer than both timeouts keeps delivering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_cut_off_but_streams_live_on() {
    let app = TestHub::spawn_with(|settings| {
        settings.http.header_timeout = Duration::from_secs(1);
        settings.http.body_timeout = Duration::from_secs(1);
    })
    .await;
    app.publish_ok(&uploaded("p1", "u1")).await;
    let addr = app.base.trim_start_matches("http://").to_owned();

    let support = token("support", &["support:read"]);
    let mut stream = reqwest::Client::new()
        .get(format!("{}/api/rooms/photo:p1/stream?after=0", app.base))
        .bearer_auth(&support)
        .send()
        .await
        .expect("SSE stream");
    assert!(stream.status().is_success(), "{}", stream.status());

    let mut stalled = TcpStream::connect(&addr).await.expect("connect");
    let publisher = token("publisher", &["events:publish"]);
    let head = format!(
        "POST /api/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {publisher}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"type\""
    );
    stalled.write_all(head.as_bytes()).await.expect("head");
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stalled.read_to_end(&mut answer)).await;
    let waited = started.elapsed();
    assert!(read.is_ok(), "a stalled body was not cut off within 5 s");
    assert!(waited < Duration::from_secs(4), "cut off after {waited:?}");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "answered {answer}"
    );

    // The stream, open for longer than both timeouts now, still delivers.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    app.publish_ok(
        &json!({ "type": "photo.processing.progress", "data": { "photoId": "p1", "progress": 5 } }),
    )
    .await;
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !seen.contains("\"seq\":2") {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, stream.chunk())
            .await
            .expect("the stream delivers the new event in time")
            .expect("stream open")
            .expect("stream not ended");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    app.stop().await;
}
