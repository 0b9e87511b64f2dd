//! Reading and deleting a photo's files: the owner and support staff read them with their type,
//! length, `ETag` and `Cache-Control`; another user cannot; a delete stores `photo.deleted` and
//! removes them; retention removes the files of photos it forgets.

use std::sync::Arc;
use std::time::Duration;

use socket_bridge::photos::PhotoFiles;
use socket_bridge::retention::run_once;
use socket_bridge::store::{EventLog, RetentionPolicy};

use crate::helpers::{PhotoApi, Processing, owner, photos_dir};
use crate::images;
use crate::support::hub::TestHub;
use crate::support::token;

/// The owner reads the original (as uploaded) and the thumbnails, with caching headers and
/// 304 on a matching `If-None-Match`; support staff read them too; another user, even one with
/// `write:photos`, gets 403; an unknown size or photo is 404.
#[tokio::test]
async fn only_the_owner_and_support_read_the_files() {
    let hub = TestHub::spawn().await;
    let mut socket = hub.socket("u1").await;
    let original = images::png(500, 400);
    let photo = hub.upload("u1", "mine.png", original.clone()).await;
    socket.processing(&photo).await;
    let url = format!("/api/photos/{photo}/original");

    let (status, headers, bytes) = hub.fetch(&url, &owner("u1"), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(bytes, original, "the original as uploaded");
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(
        headers["content-length"],
        original.len().to_string().as_str()
    );
    assert!(
        headers["cache-control"]
            .to_str()
            .expect("ascii")
            .contains("private")
    );
    let etag = headers["etag"].to_str().expect("etag").to_owned();
    let (status, _, body) = hub
        .fetch(&url, &owner("u1"), &[("if-none-match", &etag)])
        .await;
    assert_eq!((status, body.len()), (304, 0));

    let support = token("staff", &["support:read"]);
    for path in [url.clone(), format!("/api/photos/{photo}/thumbnails/256")] {
        assert_eq!(hub.fetch(&path, &support, &[]).await.0, 200, "{path}");
        assert_eq!(hub.fetch(&path, &owner("u2"), &[]).await.0, 403, "{path}");
    }
    let thumb = format!("/api/photos/{photo}/thumbnails/1024");
    let (status, headers, _) = hub.fetch(&thumb, &owner("u1"), &[]).await;
    assert_eq!(status, 200);
    assert!(headers.contains_key("etag") && headers.contains_key("content-length"));
    assert_eq!(
        hub.fetch(
            &format!("/api/photos/{photo}/thumbnails/512"),
            &owner("u1"),
            &[]
        )
        .await
        .0,
        404
    );
    assert_eq!(
        hub.fetch(
            "/api/photos/0123456789abcdef0123456789abcdef/original",
            &support,
            &[]
        )
        .await
        .0,
        404
    );
    assert_eq!(
        hub.fetch("/api/photos/../original", &support, &[]).await.0,
        404
    );
    hub.stop().await;
}

/// Only the owner with `write:photos` (or an admin) deletes; the delete stores `photo.deleted`
/// (once, however often it is asked) and the files are gone.
#[tokio::test]
async fn delete_stores_photo_deleted_and_removes_the_files() {
    let hub = TestHub::spawn().await;
    let mut socket = hub.socket("u1").await;
    let photo = hub.upload("u1", "gone.jpg", images::jpeg(300, 200)).await;
    socket.processing(&photo).await;
    let path = format!("/api/photos/{photo}");
    assert_eq!(hub.delete(&path, &owner("u2")).await.0, 403, "another user");
    assert_eq!(
        hub.delete(&path, &token("u1", &["read:photos"])).await.0,
        403,
        "no write:photos"
    );
    assert_eq!(
        hub.delete(&path, &token("staff", &["support:read"]))
            .await
            .0,
        403,
        "support reads only"
    );
    let (status, body) = hub.delete(&path, &owner("u1")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "deleted");
    let deleted = socket.next_named("photo.deleted").await;
    assert_eq!(deleted["photoId"], photo.as_str());
    assert!(
        !photos_dir(&hub).join(&photo).exists(),
        "the files are gone"
    );
    assert_eq!(
        hub.fetch(&format!("{path}/original"), &owner("u1"), &[])
            .await
            .0,
        404
    );
    assert_eq!(
        hub.delete(&path, &owner("u1")).await.0,
        200,
        "deleting again is harmless"
    );
    let (_, page) = hub
        .get_answer(&format!("/api/photos/{photo}/events"), &owner("u1"))
        .await;
    let deletes = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["type"] == "photo.deleted")
        .count();
    assert_eq!(deletes, 1);

    let other = hub.upload("u2", "theirs.jpg", images::jpeg(30, 30)).await;
    assert_eq!(
        hub.delete(&format!("/api/photos/{other}"), &token("root", &["admin"]))
            .await
            .0,
        200
    );
    assert!(!photos_dir(&hub).join(&other).exists());
    hub.stop().await;
}

/// A retention pass that forgets a deleted photo also removes what is left of its files (here,
/// files a stop left between `photo.deleted` and their removal).
#[tokio::test]
async fn retention_removes_the_files_of_forgotten_photos() {
    let hub = TestHub::spawn().await;
    let photo = hub.upload("u1", "old.jpg", images::jpeg(30, 30)).await;
    let photos_dir = photos_dir(&hub);
    hub.delete(&format!("/api/photos/{photo}"), &owner("u1"))
        .await;
    let stopped = hub.stop().await;
    let data_dir = stopped.data_dir().to_owned();
    std::fs::create_dir(photos_dir.join(&photo)).expect("a leftover directory");
    std::fs::write(photos_dir.join(&photo).join("original.jpg"), b"left").expect("leftover");

    tokio::time::sleep(Duration::from_millis(20)).await;
    let log = EventLog::open(data_dir.join("store")).expect("store");
    let policy = RetentionPolicy {
        max_age: Duration::from_millis(1),
        max_events_per_room: 10_000,
    };
    let report = run_once(log.clone(), policy, Arc::new(PhotoFiles::new(&data_dir)))
        .await
        .expect("prune");
    assert_eq!(report.photos_forgotten.len(), 1);
    assert!(
        !photos_dir.join(&photo).exists(),
        "the leftover files are gone"
    );
    log.close().expect("close");
    drop(log);
    drop(stopped);
}
