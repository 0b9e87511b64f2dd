//! Property tests: gap-free seqs under concurrency, idempotent ids, status derivation.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use serde_json::json;
use socket_bridge::domain::{Event, EventId, EventType, PhotoId, ProcessingState, Room, Timestamp};
use socket_bridge::store::{AppendError, EventLog, Receipt, Rejection};

use crate::helpers::{maintenance, photo_event, runtime, temp_store};

/// What one generated event is: a kind, a photo index, and whether it reuses a shared id.
#[derive(Debug, Clone)]
struct Spec {
    kind: u8,
    photo: u8,
    shared_id: Option<u8>,
    /// Claims the photo for another user: refused (and its batch with it) unless it comes first.
    intruder: bool,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0u8..6,
        0u8..5,
        prop::option::weighted(0.15, 0u8..4),
        prop::bool::weighted(0.05),
    )
        .prop_map(|(kind, photo, shared_id, intruder)| Spec {
            kind,
            photo,
            shared_id: if intruder { None } else { shared_id },
            intruder,
        })
}

fn build(spec: &Spec, id: String) -> Event {
    let photo = format!("p{}", spec.photo);
    let user = if spec.intruder {
        "intruder".to_string()
    } else {
        format!("u{}", spec.photo % 2)
    };
    let types = [
        EventType::PhotoUploaded,
        EventType::ProcessingStarted,
        EventType::ProcessingProgress,
        EventType::ProcessingCompleted,
        EventType::ProcessingFailed,
    ];
    match types.get(spec.kind as usize) {
        Some(t) => photo_event(&id, *t, &photo, &user, json!({"progress": 50})),
        None => maintenance(&id),
    }
}

type Tasks = Vec<Vec<Vec<Spec>>>;

fn tasks() -> impl Strategy<Value = Tasks> {
    prop::collection::vec(
        prop::collection::vec(prop::collection::vec(spec(), 1..6), 1..5),
        2..9,
    )
}

/// Appends every task's batches concurrently; returns all receipts and the ids of refused batches.
async fn run_tasks(log: &EventLog, tasks: &Tasks) -> (Vec<Receipt>, Vec<EventId>) {
    let mut handles = Vec::new();
    for (t, batches) in tasks.iter().enumerate() {
        let log = log.clone();
        let batches: Vec<Vec<_>> = batches
            .iter()
            .enumerate()
            .map(|(b, batch)| {
                batch
                    .iter()
                    .enumerate()
                    .map(|(e, s)| {
                        let id = match s.shared_id {
                            Some(k) => format!("shared-{k}"),
                            None => format!("t{t}-b{b}-e{e}"),
                        };
                        build(s, id)
                    })
                    .collect()
            })
            .collect();
        handles.push(tokio::spawn(async move {
            let mut receipts = Vec::new();
            let mut refused = Vec::new();
            for batch in batches {
                let ids: Vec<EventId> = batch.iter().map(|e| e.id.clone()).collect();
                match log.append(batch).await {
                    Ok(r) => receipts.extend(r),
                    Err(AppendError::Rejected {
                        rejection: Rejection::OwnerMismatch { .. },
                        ..
                    }) => refused.extend(ids),
                    Err(e) => panic!("append failed: {e}"),
                }
            }
            (receipts, refused)
        }));
    }
    let mut all = Vec::new();
    let mut refused = Vec::new();
    for handle in handles {
        let (receipts, ids) = handle.await.expect("task");
        all.extend(receipts);
        refused.extend(ids);
    }
    (all, refused)
}

/// Checks that every room's seqs are exactly 1..n, that reads return the events the receipts
/// name, and that each id was stored once.
fn check_log(log: &EventLog, receipts: &[Receipt]) {
    let mut by_room: BTreeMap<Room, BTreeMap<u64, String>> = BTreeMap::new();
    let mut by_id: HashMap<String, Vec<&Receipt>> = HashMap::new();
    for receipt in receipts {
        by_id
            .entry(receipt.event_id.to_string())
            .or_default()
            .push(receipt);
        if receipt.duplicate {
            continue;
        }
        for (room, seq) in &receipt.rooms {
            let previous = by_room
                .entry(room.clone())
                .or_default()
                .insert(*seq, receipt.event_id.to_string());
            assert!(previous.is_none(), "seq {seq} of {room} assigned twice");
        }
    }
    for (id, receipts) in &by_id {
        assert_eq!(
            receipts.iter().filter(|r| !r.duplicate).count(),
            1,
            "{id} stored exactly once"
        );
        assert!(
            receipts.windows(2).all(|w| w[0].rooms == w[1].rooms),
            "{id}: receipts agree"
        );
    }
    for (room, seqs) in &by_room {
        let n = seqs.len() as u64;
        assert_eq!(
            seqs.keys().copied().collect::<Vec<_>>(),
            (1..=n).collect::<Vec<_>>(),
            "{room} gap-free"
        );
        assert_eq!(log.head(room).expect("head"), n);
        let read = log.read(room, 0, 10_000).expect("read");
        let read_ids: Vec<(u64, String)> = read.iter().map(|e| (e.seq, e.id.to_string())).collect();
        let expected: Vec<(u64, String)> = seqs.iter().map(|(s, id)| (*s, id.clone())).collect();
        assert_eq!(read_ids, expected, "{room} reads back what was appended");
        // Reads that start and end inside a group commit's block: from every seq, one event and
        // a short page give the same events as the full read.
        for after in 0..n {
            let page = log.read(room, after, 3).expect("read a page");
            let page: Vec<(u64, String)> = page.iter().map(|e| (e.seq, e.id.to_string())).collect();
            let end = (after as usize + 3).min(expected.len());
            assert_eq!(
                page,
                expected[after as usize..end],
                "{room}: page after {after}"
            );
        }
        if let Room::Photo(photo) = room {
            let status = log
                .status(photo)
                .expect("status")
                .expect("photo has a status");
            assert_eq!(status.last_seq, n, "{room}: status lastSeq is the head");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random batches from concurrent tasks into overlapping rooms give every room seqs 1..n,
    /// reads return exactly what was appended, shared ids are stored once, batches refused for an
    /// owner mismatch (sharing group commits with accepted ones) leave nothing behind, and all of
    /// it is still true after closing and reopening the store.
    #[test]
    fn concurrent_appends_are_gap_free_and_idempotent(tasks in tasks()) {
        let dir = tempfile::tempdir().expect("tempdir");
        let rt = runtime();
        let (receipts, refused) = rt.block_on(async {
            let log = EventLog::open(dir.path()).expect("open");
            let outcome = run_tasks(&log, &tasks).await;
            check_log(&log, &outcome.0);
            log.close().expect("close");
            outcome
        });
        let log = EventLog::open(dir.path()).expect("reopen");
        check_log(&log, &receipts);
        for receipt in &receipts {
            let placement = log.placement(&receipt.event_id).expect("lookup").expect("id indexed");
            prop_assert_eq!(&placement, &receipt.rooms);
        }
        // A shared id may be stored by another, accepted batch; the unique ones must not be.
        for id in refused.iter().filter(|id| !id.as_str().starts_with("shared-")) {
            prop_assert!(log.placement(id).expect("lookup").is_none(), "{} of a refused batch is not stored", id);
        }
    }

    /// Status derivation follows docs/protocol.md ("Photo status"), checked against a small reference model.
    #[test]
    fn status_follows_the_reference_model(steps in prop::collection::vec((0u8..6, prop::option::of(0u8..=100)), 1..40)) {
        let (_dir, rt, log) = temp_store();
        let photo = PhotoId::parse("p").expect("id");
        let mut model = Model::default();
        for (i, (kind, progress)) in steps.iter().enumerate() {
            let t = model_type(*kind);
            let extra = match progress {
                Some(p) => json!({"progress": p, "error": format!("e{i}")}),
                None => json!({"error": format!("e{i}")}),
            };
            let event = photo_event(&format!("s{i}"), t, "p", "u", extra);
            rt.block_on(log.append(vec![event])).expect("append");
            model.apply(t, *progress, format!("e{i}"));
            let status = log.status(&photo).expect("status").expect("exists");
            prop_assert_eq!(status.status, model.state, "after step {} ({})", i, t);
            prop_assert_eq!(status.progress, model.progress);
            prop_assert_eq!(status.error.clone(), model.error.clone());
            prop_assert_eq!(status.last_seq, i as u64 + 1);
            prop_assert_eq!(status.last_event_type, t);
        }
    }
}

/// One step of [`ids_are_recognised_across_runs_merges_and_restarts`]: a batch of ids (from a
/// small space, so that many repeat), then whether the writer catches up (a run per partition)
/// and whether the store is reopened.
fn id_steps() -> impl Strategy<Value = Vec<(Vec<u16>, bool, bool)>> {
    prop::collection::vec(
        (
            prop::collection::vec(0u16..600, 1..120),
            prop::bool::weighted(0.7),
            prop::bool::weighted(0.15),
        ),
        4..14,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// An id is stored once and every later event with it is answered as a duplicate at the
    /// first placement, whether it is still in memory, in a run, in a merged run or read after a
    /// restart: the id index never forgets or invents an id (checked against a plain map).
    #[test]
    fn ids_are_recognised_across_runs_merges_and_restarts(steps in id_steps()) {
        let dir = tempfile::tempdir().expect("tempdir");
        let rt = runtime();
        let mut log = EventLog::open(dir.path()).expect("open");
        let mut first: HashMap<String, Vec<(Room, u64)>> = HashMap::new();
        for (batch, sync, reopen) in steps {
            let events: Vec<Event> = batch
                .iter()
                .map(|n| photo_event(&format!("id-{n}"), EventType::ProcessingProgress, &format!("p{}", n % 40), "u", json!({})))
                .collect();
            let receipts = rt.block_on(log.append(events)).expect("append");
            for receipt in receipts {
                let id = receipt.event_id.as_str().to_string();
                match first.get(&id) {
                    Some(rooms) => {
                        prop_assert!(receipt.duplicate, "{} again is a duplicate", id);
                        prop_assert_eq!(&receipt.rooms, rooms);
                    }
                    None => {
                        prop_assert!(!receipt.duplicate, "{} is new", id);
                        first.insert(id, receipt.rooms);
                    }
                }
            }
            if sync {
                prop_assert!(log.sync_statuses(std::time::Duration::from_secs(5)));
            }
            if reopen {
                log.close().expect("close");
                drop(log);
                log = EventLog::open(dir.path()).expect("reopen");
            }
        }
        for n in 0..600u16 {
            let id = EventId::parse(&format!("id-{n}")).expect("id");
            let placement = log.placement(&id).expect("lookup");
            prop_assert_eq!(placement.as_ref(), first.get(id.as_str()), "placement of {}", id);
        }
    }
}

/// The photo event type numbered `kind` (0..6): the types the model covers, in their declared
/// order.
fn model_type(kind: u8) -> EventType {
    EventType::ALL
        .into_iter()
        .filter(|t| t.is_photo_event())
        .nth(usize::from(kind))
        .expect("six photo event types")
}

/// The status rules written out plainly, as a table of transitions.
struct Model {
    state: ProcessingState,
    progress: u8,
    error: Option<String>,
}

impl Default for Model {
    fn default() -> Self {
        Self {
            state: ProcessingState::Pending,
            progress: 0,
            error: None,
        }
    }
}

impl Model {
    fn apply(&mut self, t: EventType, progress: Option<u8>, error: String) {
        use ProcessingState::*;
        let final_state = match t {
            EventType::PhotoDeleted => self.state == Deleted,
            _ => matches!(self.state, Completed | Deleted),
        };
        if final_state {
            return;
        }
        match t {
            EventType::PhotoUploaded => *self = Model::default(),
            EventType::ProcessingStarted | EventType::ProcessingProgress => {
                self.state = Processing;
                if let Some(p) = progress {
                    self.progress = p;
                }
                self.error = None;
            }
            EventType::ProcessingCompleted => {
                self.state = Completed;
                self.progress = 100;
                self.error = None;
            }
            EventType::ProcessingFailed => {
                self.state = Failed;
                self.error = Some(error);
            }
            EventType::PhotoDeleted => {
                self.state = Deleted;
                self.error = None;
            }
            _ => {}
        }
    }
}

/// Checks that `err` refused the event at `index` of its batch (any, for `None`) for a reason
/// that `reason` accepts.
fn assert_rejected(err: &AppendError, index: Option<usize>, reason: impl Fn(&Rejection) -> bool) {
    let refused = matches!(err, AppendError::Rejected { index: at, rejection }
        if index.is_none_or(|i| i == *at) && reason(rejection));
    assert!(refused, "{err}");
}

/// An owner mismatch anywhere in a batch rejects the whole batch: nothing of it is stored.
#[test]
fn a_rejected_event_rejects_its_whole_batch() {
    let (_dir, rt, log) = temp_store();
    rt.block_on(log.append(vec![photo_event(
        "a",
        EventType::PhotoUploaded,
        "p2",
        "owner",
        json!({}),
    )]))
    .expect("first upload");
    let batch = vec![
        photo_event("b", EventType::PhotoUploaded, "p1", "u1", json!({})),
        photo_event(
            "c",
            EventType::ProcessingStarted,
            "p2",
            "intruder",
            json!({}),
        ),
    ];
    let err = rt.block_on(log.append(batch)).expect_err("owner mismatch");
    assert_rejected(&err, Some(1), |r| {
        matches!(r, Rejection::OwnerMismatch { .. })
    });
    let p1 = PhotoId::parse("p1").expect("id");
    assert_eq!(
        log.head(&Room::photo(&p1)).expect("head"),
        0,
        "nothing of the batch stored"
    );
    assert!(log.status(&p1).expect("status").is_none());
    assert!(
        log.placement(&EventId::parse("b").expect("id"))
            .expect("lookup")
            .is_none()
    );
}

/// A photo's first event must name its owner; later ones may omit it.
#[test]
fn first_photo_event_needs_an_owner() {
    let (_dir, rt, log) = temp_store();
    let event = Event::new(
        EventId::parse("x").expect("id"),
        EventType::ProcessingStarted,
        json!({"photoId": "p9"})
            .as_object()
            .cloned()
            .expect("object"),
        Timestamp::now(),
    )
    .expect("valid without a userId");
    let err = rt
        .block_on(log.append(vec![event.clone()]))
        .expect_err("no owner");
    assert_rejected(&err, Some(0), |r| matches!(r, Rejection::NoOwner { .. }));
    let upload = photo_event("up", EventType::PhotoUploaded, "p9", "u", json!({}));
    let receipts = rt
        .block_on(log.append(vec![upload, event]))
        .expect("owner known now");
    let p9 = PhotoId::parse("p9").expect("id");
    assert_eq!(receipts[1].rooms, vec![(Room::photo(&p9), 2)]);
    assert_eq!(
        log.owner(&p9).expect("owner").map(|u| u.to_string()),
        Some("u".into())
    );
}

/// `system.health` is live-only: the store refuses it.
#[test]
fn live_only_events_are_not_stored() {
    let (_dir, rt, log) = temp_store();
    let health = Event::new(
        EventId::generate(),
        EventType::SystemHealth,
        serde_json::Map::new(),
        Timestamp::now(),
    )
    .expect("valid");
    let err = rt
        .block_on(log.append(vec![health]))
        .expect_err("live only");
    assert_rejected(&err, None, |r| matches!(r, Rejection::LiveOnly(_)));
    assert_eq!(log.head(&Room::Global).expect("head"), 0);
}

/// A `system.*` event naming a photo and a user claims nothing: the photo's real first event
/// sets its owner, and the other user cannot read it.
#[test]
fn system_events_never_claim_a_photo() {
    let (_dir, rt, log) = temp_store();
    let data = json!({ "photoId": "p7", "userId": "mallory", "message": "maintenance" });
    let claim = Event::new(
        EventId::parse("claim").expect("id"),
        EventType::SystemMaintenance,
        data.as_object().cloned().expect("an object"),
        Timestamp::now(),
    )
    .expect("a valid maintenance event");
    let receipts = rt.block_on(log.append(vec![claim])).expect("stored");
    assert_eq!(receipts[0].rooms, vec![(Room::Global, 1)], "global only");
    let p7 = PhotoId::parse("p7").expect("id");
    assert_eq!(log.status(&p7).expect("status"), None, "no status made");
    let upload = photo_event("up7", EventType::PhotoUploaded, "p7", "alice", json!({}));
    rt.block_on(log.append(vec![upload]))
        .expect("the real owner's upload is accepted");
    assert_eq!(
        log.owner(&p7).expect("owner").map(|u| u.to_string()),
        Some("alice".into())
    );
}
