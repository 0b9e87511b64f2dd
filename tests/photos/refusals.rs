//! Uploads that are refused: 401 (no token), 403 (no `write:photos`), 413 (too many bytes, too
//! many pixels), 415 (not an image), 400 (no `photo` field). Nothing is stored and no file is
//! left; once the token is accepted, the user's sockets are told with `photo.upload.failed`.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{PhotoApi, form, owner, photos_dir};
use crate::images;
use crate::support::hub::TestHub;
use crate::support::token;

/// One refused upload: what is sent and what it answers.
struct Refusal<'a> {
    token: Option<&'a str>,
    field: &'a str,
    bytes: Vec<u8>,
    status: u16,
    code: &'a str,
}

impl<'a> Refusal<'a> {
    fn new(
        token: Option<&'a str>,
        field: &'a str,
        bytes: Vec<u8>,
        status: u16,
        code: &'a str,
    ) -> Self {
        Self {
            token,
            field,
            bytes,
            status,
            code,
        }
    }
}

/// `len` bytes that start like a JPEG.
fn jpeg_start(len: usize) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.resize(len, 0);
    bytes
}

/// Nothing of `user` is stored and the photos directory holds no photo.
async fn nothing_stored(hub: &TestHub, user: &str) {
    let (status, page) = hub
        .get_answer(&format!("/api/rooms/user:{user}/events"), &owner(user))
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["events"], Value::Array(Vec::new()), "nothing stored");
    let left: Vec<_> = std::fs::read_dir(photos_dir(hub))
        .expect("photos dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .filter(|name| name != "incoming")
        .collect();
    assert!(left.is_empty(), "no photo directory left: {left:?}");
    let incoming = std::fs::read_dir(photos_dir(hub).join("incoming"))
        .expect("incoming dir")
        .count();
    assert_eq!(incoming, 0, "no half-received upload left");
}

/// Each refusal answers its status and code, stores nothing, and (after the token was
/// accepted) reaches the user's socket as `photo.upload.failed` with the same error.
#[tokio::test]
async fn refused_uploads_store_nothing() {
    let hub = TestHub::spawn_with(|s| {
        s.photos.max_upload_bytes = 200_000;
        s.photos.max_image_pixels = 1_000_000;
    })
    .await;
    let mut socket = hub.socket("u1").await;
    let writer = owner("u1");
    let reader = token("u1", &["read:photos"]);
    let jpeg = images::jpeg(100, 100);
    let refusals = [
        Refusal::new(None, "photo", jpeg.clone(), 401, "unauthorized"),
        Refusal::new(
            Some("not-a-token"),
            "photo",
            jpeg.clone(),
            401,
            "unauthorized",
        ),
        Refusal::new(Some(&reader), "photo", jpeg.clone(), 403, "forbidden"),
        Refusal::new(
            Some(&writer),
            "photo",
            jpeg_start(300_000),
            413,
            "payload_too_large",
        ),
        Refusal::new(
            Some(&writer),
            "photo",
            images::jpeg(1200, 1000),
            413,
            "image_too_large",
        ),
        Refusal::new(
            Some(&writer),
            "photo",
            b"just some text".to_vec(),
            415,
            "unsupported_media_type",
        ),
        Refusal::new(Some(&writer), "file", jpeg.clone(), 400, "invalid_payload"),
    ];
    for Refusal {
        token,
        field,
        bytes,
        status,
        code,
    } in refusals
    {
        let (got, body) = hub.upload_as(token, form(field, "x.jpg", bytes)).await;
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(code)),
            "{body}"
        );
        // Once the token is accepted (and may upload), the user's sockets are told.
        let told = status != 401 && status != 403;
        let notice = socket
            .receives(
                "photo.upload.failed",
                Duration::from_millis(if told { 5000 } else { 300 }),
            )
            .await;
        match notice {
            Some(notice) if told => {
                assert_eq!(notice["error"], body["detail"], "{code}");
                assert_eq!(notice["room"], "user:u1");
                assert!(notice.get("seq").is_none(), "live only");
            }
            None if !told => {}
            other => panic!("{code}: photo.upload.failed {other:?}"),
        }
    }
    nothing_stored(&hub, "u1").await;
    hub.stop().await;
}

/// `photo.upload.failed` reaches the uploader's sockets only, not another user's.
#[tokio::test]
async fn upload_failure_is_told_to_the_uploader_only() {
    let hub = TestHub::spawn().await;
    let mut mine = hub.socket("u1").await;
    let mut theirs = hub.socket("u2").await;
    let (status, _) = hub
        .upload_as(
            Some(&owner("u1")),
            form("photo", "a.gif", b"GIF89a-not-accepted".to_vec()),
        )
        .await;
    assert_eq!(status, 415);
    assert!(
        mine.receives("photo.upload.failed", Duration::from_secs(5))
            .await
            .is_some()
    );
    assert!(
        theirs
            .receives("photo.upload.failed", Duration::from_millis(500))
            .await
            .is_none()
    );
    hub.stop().await;
}
