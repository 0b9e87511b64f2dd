//! Crash test in the style of sled's: the test re-runs its own binary as a child that appends in
//! a loop and prints each acknowledged event id, kills it with SIGKILL at a random moment, reopens
//! the store and checks that every acknowledged event is there and every room is gap-free.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;
use socket_bridge::domain::{EventId, EventType, Room};
use socket_bridge::store::EventLog;

use crate::helpers::{photo_event, runtime};

const CHILD_DIR: &str = "SOCKET_BRIDGE_CRASH_CHILD_DIR";
const ROUNDS: usize = 25;
const PHOTOS: usize = 8;
const APPENDERS: usize = 16;

/// The child's job: append forever from concurrent tasks and report acknowledged ids. It only
/// does anything when started by `kill_9_mid_append_loses_nothing_acknowledged`.
#[test]
fn crash_child_appender() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let round: usize = std::env::var("SOCKET_BRIDGE_CRASH_ROUND")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let rt = runtime();
    rt.block_on(async move {
        let log = EventLog::open(&dir).expect("child open");
        println!("READY");
        let mut tasks = Vec::new();
        for task in 0..APPENDERS {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0u64.. {
                    let photo = format!("p{}", (task + n as usize) % PHOTOS);
                    let size = 1 + (n % 3) as usize;
                    let batch: Vec<_> = (0..size)
                        .map(|i| {
                            let id = format!("r{round}-t{task}-n{n}-{i}");
                            let kind = if n % 5 == 0 {
                                EventType::PhotoUploaded
                            } else {
                                EventType::ProcessingProgress
                            };
                            photo_event(
                                &id,
                                kind,
                                &photo,
                                "u1",
                                json!({"progress": n % 100, "pad": "x".repeat(100)}),
                            )
                        })
                        .collect();
                    let ids: Vec<String> = batch.iter().map(|e| e.id.to_string()).collect();
                    log.append(batch).await.expect("append");
                    let mut out = std::io::stdout().lock();
                    for id in ids {
                        writeln!(out, "ACK {id}").expect("stdout");
                    }
                    out.flush().expect("stdout");
                }
            }));
        }
        for task in tasks {
            task.await.expect("appender");
        }
    });
}

/// Every acknowledged append survives SIGKILL at a random moment, and every room stays gap-free,
/// over many kill/reopen rounds on one store.
#[test]
fn kill_9_mid_append_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    let mut acked: HashSet<String> = HashSet::new();
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args([
                "crash::crash_child_appender",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .env("SOCKET_BRIDGE_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut ids = Vec::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.ends_with("READY") {
                    let _ = ready_tx.send(());
                } else if let Some(id) = line.strip_prefix("ACK ") {
                    ids.push(id.to_owned());
                }
            }
            ids
        });
        ready_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("child opened the store");
        let delay = 20 + rand::random::<u64>() % 400;
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let ids = reader.join().expect("reader");
        assert!(
            round == 0 || !ids.is_empty() || delay < 50,
            "round {round}: the child acknowledged nothing"
        );
        acked.extend(ids);
        verify(&dir, &acked, round);
    }
    assert!(
        acked.len() > 1000,
        "only {} appends acknowledged over {ROUNDS} rounds",
        acked.len()
    );
}

fn verify(dir: &tempfile::TempDir, acked: &HashSet<String>, round: usize) {
    let log = EventLog::open(dir.path()).expect("reopen after kill");
    let mut stored: HashMap<String, Vec<(Room, u64)>> = HashMap::new();
    let rooms = (0..PHOTOS)
        .map(|p| format!("photo:p{p}"))
        .chain(["user:u1".to_string()])
        .map(|r| r.parse::<Room>().expect("room"));
    for room in rooms {
        let head = log.head(&room).expect("head");
        let events = log.read(&room, 0, usize::MAX).expect("read");
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(
            seqs,
            (1..=head).collect::<Vec<_>>(),
            "round {round}: {room} must be gap-free up to its head"
        );
        for event in events {
            stored
                .entry(event.id.to_string())
                .or_default()
                .push((room.clone(), event.seq));
        }
        if let Room::Photo(photo) = &room {
            let status = log.status(photo).expect("status");
            assert_eq!(
                status.map(|s| s.last_seq),
                (head > 0).then_some(head),
                "round {round}: status of {room} derived up to its head"
            );
        }
    }
    for id in acked {
        assert!(
            stored.contains_key(id),
            "round {round}: acknowledged {id} is missing"
        );
    }
    for (id, mut places) in stored {
        let mut indexed = log
            .placement(&EventId::parse(&id).expect("id"))
            .expect("lookup")
            .expect("indexed");
        places.sort();
        indexed.sort();
        assert_eq!(places, indexed, "round {round}: id index of {id}");
    }
    log.close().expect("close");
}
