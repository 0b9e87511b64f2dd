//! The consumed position of a source (a JetStream stream) recorded with an append is durable
//! exactly when the append's events are: a process killed with SIGKILL right after its appends
//! returned keeps both, so a redelivery of those messages is recognised by position.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use socket_bridge::domain::Room;
use socket_bridge::store::{ConsumedPosition, EventLog};

use crate::helpers::{maintenance, runtime};

const CHILD_DIR: &str = "SOCKET_BRIDGE_CONSUMED_CHILD_DIR";
const SOURCE: &str = "nats:PHOTO_EVENTS:1";
const APPENDS: u64 = 20;

/// The child's job: append with a consumed position, report it, then wait to be killed. It only
/// does anything when started by `consumed_position_survives_sigkill_with_its_events`.
#[test]
fn consumed_child_appender() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let rt = runtime();
    rt.block_on(async move {
        let log = EventLog::open(&dir).expect("child open");
        for n in 1..=APPENDS {
            let consumed = ConsumedPosition {
                source: SOURCE.into(),
                position: n * 10,
            };
            log.append_consumed(vec![maintenance(&format!("m{n}"))], consumed)
                .await
                .expect("append");
        }
        println!("DONE");
        // Killed long before this ends; nothing is closed or flushed on the way out.
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
}

/// A process killed right after its appends with a consumed position returned keeps every event
/// and the position of the last append.
#[test]
fn consumed_position_survives_sigkill_with_its_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(&exe)
        .args([
            "consumed::consumed_child_appender",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let done = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.ends_with("DONE"));
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    assert!(done, "the child did not finish its appends");

    let log = EventLog::open(dir.path()).expect("reopen after kill");
    let global: Room = "global".parse().expect("room");
    assert_eq!(
        log.head(&global).expect("head"),
        APPENDS,
        "every event kept"
    );
    assert_eq!(
        log.consumed(SOURCE).expect("position"),
        APPENDS * 10,
        "the position of the last append kept with its event"
    );
    log.close().expect("close");
}
