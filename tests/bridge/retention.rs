//! Retention seen from outside: the scheduled job runs, a resume into a pruned range gets
//! `replay:truncated` then the kept events, and the `prune` command works on a stopped hub only.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{progress_batch, uploaded};
use crate::support::hub::TestHub;
use crate::support::{binary, token};

/// With a one-second schedule and 5 events kept per room, the job prunes on its own; a client
/// resuming from seq 3 gets `replay:truncated` (requested 4, oldest 16, with the status), then
/// exactly seqs 16..20, then `resume:complete`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_prune_then_truncated_resume() {
    let app = TestHub::spawn_with(|settings| {
        settings.prune_schedule = "* * * * * *".parse().expect("schedule");
        settings.retention.max_events_per_room = 5;
    })
    .await;
    app.publish_ok(&uploaded("p1", "u1")).await;
    app.publish_ok(&progress_batch("p1", 19)).await;

    let reader = token("u1", &["read:photos"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = app.get_json("/api/photos/p1/events", &reader).await;
        if page["events"][0]["seq"] == 16 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the scheduled prune did not run: {page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("prune_events_removed_total"),
        "prune runs are counted"
    );

    let mut client = app
        .client(json!({ "token": reader, "clientId": "c1", "resume": { "photo:p1": 3 } }))
        .await;
    let truncated = client.next_named("replay:truncated").await;
    assert_eq!(truncated["room"], "photo:p1");
    assert_eq!(truncated["requestedSeq"], 4);
    assert_eq!(truncated["oldestSeq"], 16);
    assert_eq!(truncated["status"]["photoId"], "p1");
    assert_eq!(truncated["status"]["lastSeq"], 20);
    assert_eq!(
        client.seqs_until("photo:p1", 20).await,
        vec![16, 17, 18, 19, 20]
    );
    let complete = client.next_named("resume:complete").await;
    assert_eq!(complete["rooms"]["photo:p1"], 20);
    client.close().await;
    app.stop().await;
}

/// `socket-bridge prune` removes what retention lets go on a stopped hub's data dir, prints it,
/// and refuses a data dir that a running hub holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_command_on_a_stopped_hub() {
    let app = TestHub::spawn().await;
    app.publish_ok(&uploaded("p1", "u1")).await;
    app.publish_ok(&progress_batch("p1", 9)).await;

    let prune = |data_dir: &Path, extra: &[&str]| {
        let data_dir = data_dir.display().to_string();
        let flags = [
            "prune",
            "--retention-max-events",
            "4",
            "--data-dir",
            &data_dir,
        ];
        binary::run(&[&flags, extra].concat())
    };
    let busy = prune(app.data_dir(), &[]);
    assert!(
        !busy.status.success(),
        "prune must refuse a data dir in use"
    );
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&busy.stderr)
    );
    let app = app.stop().await;

    let dry = prune(app.data_dir(), &["--dry-run"]);
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(
        String::from_utf8_lossy(&dry.stdout).starts_with("would remove 6 events"),
        "{}",
        String::from_utf8_lossy(&dry.stdout)
    );
    let done = prune(app.data_dir(), &[]);
    assert!(done.status.success());
    assert!(
        String::from_utf8_lossy(&done.stdout).starts_with("removed 6 events"),
        "{}",
        String::from_utf8_lossy(&done.stdout)
    );
    let again = prune(app.data_dir(), &[]);
    assert!(String::from_utf8_lossy(&again.stdout).starts_with("removed 0 events"));
}
