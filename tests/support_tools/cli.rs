//! `socket-bridge history`, `status` and `tail` against a running hub: each format, and each
//! failure as one line on stderr with its exit status.

use std::io::{BufRead, BufReader};
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use super::hub::{progress, uploaded};
use crate::support::binary::{self, HubProcess};
use crate::support::{WAIT, token};

/// Runs a CLI subcommand against `server` with `token` (none when `None`).
fn run(server: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = binary::command();
    command
        .args(args)
        .env("SOCKET_BRIDGE_SERVER", server)
        .env_remove("SOCKET_BRIDGE_TOKEN")
        .env("TZ", "UTC");
    if let Some(token) = token {
        command.env("SOCKET_BRIDGE_TOKEN", token);
    }
    command.output().expect("run the CLI")
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout.clone()).expect("utf-8")
}

/// The exit status and the one line on stderr of a failed command.
fn failure(output: &Output) -> (i32, String) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {stderr}");
    assert!(output.stdout.is_empty(), "nothing on stdout");
    (
        output.status.code().expect("an exit status"),
        lines[0].to_owned(),
    )
}

/// A hub with photo p1 of u1: uploaded, started, two progress events, failed.
async fn hub_with_p1() -> HubProcess {
    let hub = HubProcess::spawn(|_| {}).await;
    hub.publish_ok(&json!([
        uploaded("p1", "u1"),
        { "type": "photo.processing.started", "data": { "photoId": "p1" } },
        progress("p1", 40),
        progress("p1", 70),
        { "type": "photo.processing.failed", "data": { "photoId": "p1", "error": "decoder ran out of memory" } },
    ]))
    .await;
    hub
}

/// `history` prints every event as a table, JSON, JSONL or CSV; `--after`, `--limit` and `--room`
/// choose which.
#[tokio::test]
async fn history_formats() {
    let hub = hub_with_p1().await;
    let support = token("amy", &["support:read"]);
    let table = stdout(&run(&hub.base, Some(&support), &["history", "p1"]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], "photo:p1: 5 events, seq 1..5");
    assert!(lines[2].starts_with("SEQ  TIME"), "{table}");
    assert!(
        lines[5].contains("photo.processing.progress") && lines[5].contains("████░░░░░░  40%"),
        "{table}"
    );
    assert!(
        lines[7].contains("error: decoder ran out of memory"),
        "{table}"
    );
    let column = lines[2].find("TYPE").expect("TYPE column");
    assert!(
        lines[3..8]
            .iter()
            .all(|l| l[column..].starts_with("photo.")),
        "aligned: {table}"
    );

    let jsonl = stdout(&run(
        &hub.base,
        Some(&support),
        &[
            "history", "p1", "--format", "jsonl", "--after", "1", "--limit", "3",
        ],
    ));
    let events: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(
        events
            .iter()
            .map(|e| e["seq"].as_u64().unwrap_or(0))
            .collect::<Vec<_>>(),
        [2, 3, 4]
    );
    assert_eq!(events[1]["data"]["progress"], 40);
    assert_eq!(events[0]["type"], "photo.processing.started");

    let json: Value = serde_json::from_str(&stdout(&run(
        &hub.base,
        Some(&support),
        &["history", "p1", "--format", "json", "--limit", "2"],
    )))
    .expect("JSON");
    assert_eq!(json["room"], "photo:p1");
    assert_eq!(json["events"].as_array().map(Vec::len), Some(2));
    assert_eq!(json["nextAfter"], 2, "more to read");

    let csv = stdout(&run(
        &hub.base,
        Some(&support),
        &["history", "p1", "--format", "csv"],
    ));
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows[0],
        "seq,timestamp,type,eventId,progress,stage,error,data"
    );
    assert_eq!(rows.len(), 6);
    assert!(
        rows[3].starts_with("3,") && rows[3].contains(",40,resize,,"),
        "{csv}"
    );

    let room = stdout(&run(
        &hub.base,
        Some(&support),
        &["history", "--room", "user:u1", "--format", "jsonl"],
    ));
    let types: Vec<Value> = room
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON")["type"].clone())
        .collect();
    assert_eq!(
        types,
        [json!("photo.uploaded"), json!("photo.processing.failed")]
    );
}

/// `status` prints the fields aligned, or the status object as JSON.
#[tokio::test]
async fn status_formats() {
    let hub = hub_with_p1().await;
    let owner = token("u1", &["read:photos"]);
    let table = stdout(&run(&hub.base, Some(&owner), &["status", "p1"]));
    for expected in [
        "photo       p1",
        "owner       u1",
        "status      failed",
        "progress    ███████░░░  70%",
        "last event  photo.processing.failed (seq 5)",
        "error       decoder ran out of memory",
    ] {
        assert!(table.contains(expected), "{expected:?} in\n{table}");
    }
    let json: Value = serde_json::from_str(&stdout(&run(
        &hub.base,
        Some(&owner),
        &["status", "p1", "--format", "json"],
    )))
    .expect("JSON");
    assert_eq!(json["status"], "failed");
    assert_eq!(json["lastSeq"], 5);
}

/// Unknown photo 3, refused or forbidden token 4, unreachable hub 5, no token or a bad id 2:
/// one line on stderr each.
#[tokio::test]
async fn failures_exit_non_zero_with_one_line() {
    let hub = hub_with_p1().await;
    let support = token("amy", &["support:read"]);
    let expect = |server: &str, bearer: Option<&str>, args: &[&str], code: i32, words: &str| {
        let (status, line) = failure(&run(server, bearer, args));
        assert_eq!(status, code, "{args:?}: {line}");
        assert!(
            line.starts_with("socket-bridge: error: ") && line.contains(words),
            "{args:?}: {line}"
        );
    };
    let base = hub.base.as_str();
    expect(
        base,
        Some(&support),
        &["status", "p9"],
        3,
        "photo p9 not found",
    );
    expect(
        base,
        Some(&support),
        &["history", "p9"],
        3,
        "photo p9 not found",
    );
    expect(
        base,
        Some("garbage"),
        &["history", "p1"],
        4,
        "refused the token",
    );
    let other = token("u2", &["read:photos"]);
    expect(
        base,
        Some(&other),
        &["status", "p1"],
        4,
        "forbidden: this token may not read photo p1",
    );
    let nowhere = "http://127.0.0.1:9";
    expect(
        nowhere,
        Some(&support),
        &["status", "p1"],
        5,
        "cannot reach the hub at http://127.0.0.1:9",
    );
    expect(base, None, &["status", "p1"], 2, "no token");
    expect(
        base,
        Some(&support),
        &["tail", "nowhere"],
        2,
        "room `nowhere`",
    );
}

/// `tail` prints the stored events after `--after`, then each new one as it is stored.
#[tokio::test]
async fn tail_follows_new_events() {
    let hub = hub_with_p1().await;
    let mut child = binary::command()
        .args(["tail", "photo:p1", "--after", "3", "--format", "jsonl"])
        .env("SOCKET_BRIDGE_SERVER", &hub.base)
        .env("SOCKET_BRIDGE_TOKEN", token("amy", &["support:read"]))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tail");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let next = || -> Value {
        let line = rx.recv_timeout(WAIT).expect("a line from tail");
        serde_json::from_str(&line).expect("JSON line")
    };
    assert_eq!(
        (next()["seq"].as_u64(), next()["seq"].as_u64()),
        (Some(4), Some(5))
    );
    hub.publish_ok(&json!({ "type": "photo.processing.started", "data": { "photoId": "p1" } }))
        .await;
    let live = next();
    assert_eq!(live["seq"], 6);
    assert_eq!(live["type"], "photo.processing.started");
    assert_eq!(live["data"]["room"], "photo:p1");
    assert!(
        child.try_wait().expect("alive").is_none(),
        "tail keeps following"
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        rx.recv_timeout(Duration::from_millis(100)).is_err(),
        "nothing more"
    );
}
