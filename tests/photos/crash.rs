//! A real crash: the `socket-bridge` binary is killed (SIGKILL) in the middle of processing a
//! photo; started again on the same data dir, it processes the photo again as attempt 2.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::multipart::{Form, Part};
use serde_json::Value;

use crate::helpers::{SECRET, WAIT, owner};
use crate::images;

/// The binary serving `data_dir` on `port`, killed when dropped.
struct Binary(Child);

impl Binary {
    async fn start(data_dir: &Path, port: u16) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_socket-bridge"))
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--jwt-secret",
                SECRET,
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start socket-bridge");
        let started = Instant::now();
        while reqwest::get(format!("http://127.0.0.1:{port}/health"))
            .await
            .is_err()
        {
            assert!(started.elapsed() < WAIT, "socket-bridge did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self(child)
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The photo's status object.
async fn status(base: &str, photo: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{base}/api/photos/{photo}/status"))
        .bearer_auth(owner("u1"))
        .send()
        .await
        .expect("GET status")
        .json()
        .await
        .unwrap_or(Value::Null)
}

/// Waits until the photo's status is `wanted`.
async fn wait_for(base: &str, photo: &str, wanted: &str) -> Value {
    let started = Instant::now();
    loop {
        let status = status(base, photo).await;
        if status["status"] == wanted {
            return status;
        }
        assert!(started.elapsed() < WAIT * 2, "never {wanted}: {status}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// SIGKILL while the photo is `processing`: after the restart the cut-off attempt is followed by
/// attempt 2, which completes.
#[tokio::test]
async fn killed_mid_job_then_completed_after_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let base = format!("http://127.0.0.1:{port}");
    let hub = Binary::start(dir.path(), port).await;
    let form = Form::new().part(
        "photo",
        Part::bytes(images::jpeg(4000, 3000)).file_name("big.jpg"),
    );
    let answer: Value = reqwest::Client::new()
        .post(format!("{base}/api/photos"))
        .bearer_auth(owner("u1"))
        .multipart(form)
        .send()
        .await
        .expect("upload")
        .json()
        .await
        .expect("JSON");
    let photo = answer["photoId"].as_str().expect("photoId").to_owned();
    wait_for(&base, &photo, "processing").await;
    drop(hub);

    let _hub = Binary::start(dir.path(), port).await;
    wait_for(&base, &photo, "completed").await;
    let page: Value = reqwest::Client::new()
        .get(format!("{base}/api/photos/{photo}/events"))
        .bearer_auth(owner("u1"))
        .send()
        .await
        .expect("events")
        .json()
        .await
        .expect("JSON");
    let events = page["events"].as_array().expect("events");
    let attempts: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "photo.processing.started")
        .map(|e| e["data"]["attempt"].as_u64())
        .collect();
    assert_eq!(attempts, [Some(1), Some(2)], "{events:?}");
    let completed = events.last().expect("an event");
    assert_eq!(completed["type"], "photo.processing.completed");
    assert_eq!(completed["data"]["attempt"], 2);
}
