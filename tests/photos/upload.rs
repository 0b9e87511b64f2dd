//! Uploads that are processed: the 202, `photo.uploaded` in the user's room, then started ->
//! progress per stage -> completed in the photo's room, and thumbnails of the promised size.

use serde_json::Value;

use crate::helpers::{PhotoApi, Processing, form, owner};
use crate::images;
use crate::support::client::Received;
use crate::support::hub::TestHub;

/// `(size, width, height)` of a photo's two thumbnails.
type Thumbnails = [(u64, u32, u32); 2];

/// The events of one processing run: `started`, the four stages with rising progress,
/// `completed`. Returns `completed`'s payload.
fn assert_processed_in_order(events: &[Received]) -> Value {
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "photo.uploaded",
            "photo.processing.started",
            "photo.processing.progress",
            "photo.processing.progress",
            "photo.processing.progress",
            "photo.processing.progress",
            "photo.processing.completed",
        ],
        "{events:?}"
    );
    let stages: Vec<&str> = events[2..6]
        .iter()
        .map(|(_, v)| v["stage"].as_str().expect("stage"))
        .collect();
    assert_eq!(stages, ["decode", "resize", "encode", "store"]);
    let progress: Vec<u64> = events[1..6]
        .iter()
        .map(|(_, v)| v["progress"].as_u64().expect("progress"))
        .collect();
    assert!(progress.windows(2).all(|w| w[0] < w[1]), "{progress:?}");
    let seqs: Vec<u64> = events
        .iter()
        .map(|(_, v)| v["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, (1..=7).collect::<Vec<_>>());
    events[6].1.clone()
}

/// Fetches each thumbnail `completed` lists and checks it decodes to the size it promises;
/// returns `(size, width, height)` of each.
async fn fetch_thumbnails(hub: &TestHub, user: &str, completed: &Value) -> Vec<(u64, u32, u32)> {
    let mut out = Vec::new();
    for thumb in completed["thumbnails"].as_array().expect("thumbnails") {
        let url = thumb["url"].as_str().expect("url");
        let (status, headers, bytes) = hub.fetch(url, &owner(user), &[]).await;
        assert_eq!(status, 200, "{url}");
        assert_eq!(headers["content-type"], "image/jpeg");
        let image = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg)
            .expect("the thumbnail decodes");
        let (w, h) = (image.width(), image.height());
        assert_eq!(
            (thumb["width"].as_u64(), thumb["height"].as_u64()),
            (Some(u64::from(w)), Some(u64::from(h))),
            "{url} decodes to the size it promises"
        );
        assert!(!images::has_exif(&bytes), "{url} carries no EXIF");
        out.push((thumb["size"].as_u64().expect("size"), w, h));
    }
    out
}

/// A JPEG, a PNG with transparency and a WebP, of several sizes, are each processed in order
/// and get thumbnails of 256 and 1024 on the long side, never enlarged.
#[tokio::test]
async fn jpeg_png_and_webp_are_processed() {
    let hub = TestHub::spawn().await;
    let mut socket = hub.socket("u1").await;
    let cases: [(&str, Vec<u8>, Thumbnails); 4] = [
        (
            "big.jpg",
            images::jpeg(2000, 1500),
            [(256, 256, 192), (1024, 1024, 768)],
        ),
        (
            "tall.png",
            images::png(300, 600),
            [(256, 128, 256), (1024, 300, 600)],
        ),
        (
            "wide.webp",
            images::webp(1800, 450),
            [(256, 256, 64), (1024, 1024, 256)],
        ),
        (
            "tiny.jpg",
            images::jpeg(40, 30),
            [(256, 40, 30), (1024, 40, 30)],
        ),
    ];
    for (filename, bytes, expected) in cases {
        let photo = hub.upload("u1", filename, bytes).await;
        let events = socket.processing(&photo).await;
        assert_eq!(events[0].1["filename"], filename);
        let completed = assert_processed_in_order(&events);
        assert_eq!(
            fetch_thumbnails(&hub, "u1", &completed).await,
            expected,
            "{filename}"
        );
        let (_, status) = hub
            .get_answer(&format!("/api/photos/{photo}/status"), &owner("u1"))
            .await;
        assert_eq!(status["status"], "completed");
        assert_eq!(status["progress"], 100);
    }
    hub.stop().await;
}

/// The 202 answers the original design's fields, and `photo.uploaded` (pending, with the
/// design's message and the file name) reaches the user's room before any processing event.
#[tokio::test]
async fn accepted_upload_answers_and_tells_the_user() {
    let hub = TestHub::spawn().await;
    let mut socket = hub.socket("u1").await;
    let (status, body) = hub
        .upload_as(
            Some(&owner("u1")),
            form("photo", "holiday.jpg", images::jpeg(64, 48)),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["message"], "Photo uploaded and being processed");
    assert_eq!(body["userId"], "u1");
    assert_eq!(body["filename"], "holiday.jpg");
    assert_eq!(body["status"], "pending");
    let photo = body["photoId"].as_str().expect("photoId");
    let uploaded = socket.next_named("photo.uploaded").await;
    assert_eq!(uploaded["room"], "user:u1");
    assert_eq!(uploaded["photoId"], photo);
    assert_eq!(uploaded["status"], "pending");
    assert_eq!(uploaded["filename"], "holiday.jpg");
    assert_eq!(
        uploaded["message"],
        "Photo uploaded and queued for processing"
    );
    assert_eq!(uploaded["contentType"], "image/jpeg");
    let done = socket.next_named("photo.processing.completed").await;
    assert_eq!(
        done["room"], "user:u1",
        "completed reaches the user's room too"
    );
    hub.stop().await;
}

/// A JPEG stored sideways (EXIF orientation 6, "rotate 90") comes out upright: its 400x200
/// pixels make 128x256 and 200x400 thumbnails whose top is the original's left (red) side,
/// and the EXIF block with its GPS position is gone from them.
#[tokio::test]
async fn exif_orientation_is_applied_and_metadata_dropped() {
    let hub = TestHub::spawn().await;
    let mut socket = hub.socket("u1").await;
    let original = images::jpeg_with_exif(400, 200, 6);
    assert!(images::has_exif(&original), "the test image carries EXIF");
    let photo = hub.upload("u1", "sideways.jpg", original).await;
    let completed = assert_processed_in_order(&socket.processing(&photo).await);
    assert_eq!(
        (completed["width"].as_u64(), completed["height"].as_u64()),
        (Some(200), Some(400))
    );
    assert_eq!(
        fetch_thumbnails(&hub, "u1", &completed).await,
        [(256, 128, 256), (1024, 200, 400)]
    );
    let (_, _, bytes) = hub
        .fetch(
            &format!("/api/photos/{photo}/thumbnails/1024"),
            &owner("u1"),
            &[],
        )
        .await;
    let upright = image::load_from_memory(&bytes)
        .expect("decodes")
        .into_rgb8();
    let [r, _, b] = upright.get_pixel(100, 40).0;
    assert!(r > 150 && b < 100, "the top is red: {r} {b}");
    let [r, _, b] = upright.get_pixel(100, 360).0;
    assert!(b > 150 && r < 100, "the bottom is blue: {r} {b}");
    hub.stop().await;
}

/// A JPEG cut off in its compressed data is accepted (its header is whole) and ends in
/// `photo.processing.failed` with a readable error; the hub goes on processing others.
#[tokio::test]
async fn truncated_jpeg_fails_readably() {
    let hub = TestHub::spawn().await;
    let mut socket = hub.socket("u1").await;
    let photo = hub
        .upload("u1", "cut.jpg", images::truncated_jpeg(800, 600))
        .await;
    let events = socket.processing(&photo).await;
    let (name, failed) = events.last().expect("events");
    assert_eq!(name, "photo.processing.failed", "{events:?}");
    let error = failed["error"].as_str().expect("error");
    assert_eq!(
        error,
        "the image cannot be decoded: the JPEG is cut off before its end"
    );
    let (_, status) = hub
        .get_answer(&format!("/api/photos/{photo}/status"), &owner("u1"))
        .await;
    assert_eq!(status["status"], "failed");
    assert_eq!(status["error"], error);
    let next = hub.upload("u1", "fine.jpg", images::jpeg(64, 64)).await;
    let events = socket.processing(&next).await;
    assert_eq!(
        events.last().map(|(n, _)| n.as_str()),
        Some("photo.processing.completed")
    );
    hub.stop().await;
}
