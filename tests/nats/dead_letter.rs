//! Refused messages are terminated, counted, and kept in the dead-letter stream with the reason;
//! the consumer goes on with the next message. `socket-bridge dead-letters` lists and re-publishes
//! them.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    stream::{self, DiscardPolicy},
};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::helpers::{IdSource, kept_header, publish, publish_raw, spawn_hub, upload_p1};
use crate::support::WAIT;
use crate::support::binary::run;
use crate::support::hub::TestHub;
use crate::support::nats::{
    DEAD_LETTER_STREAM, HUB_CONSUMER, NatsServer, consumer_ack_floor, create_stream, dead_letters,
    wait_consumed, wait_dead_letters,
};

/// Each kind of bad message (invalid JSON, unknown type, a photo event without `photoId`, a
/// `type` that differs from the subject, oversized data, an owner mismatch) lands on the
/// dead-letter subject with its reason and stream sequence, is never redelivered, and the good
/// message after it is stored. All of them are in one batch, so the owner mismatch, refused by the
/// store, also shows that the rest of the batch is appended again without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_dead_lettered_and_the_next_good_one_is_stored() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    create_stream(&js).await;
    let observer = async_nats::connect(nats.url()).await.expect("connect");
    let mut dead = observer
        .subscribe("socket-bridge.dead-letter")
        .await
        .expect("subscribe");
    observer.flush().await.expect("flush");

    let good = |n: u64| json!({ "data": { "photoId": "p1", "progress": n, "n": n } });
    let uploaded = json!({ "data": { "photoId": "p1", "userId": "u1", "n": 0 } });
    publish(&js, "photo.uploaded", uploaded, "up", IdSource::Body).await;
    let bad: Vec<(&str, Vec<u8>, &str)> = vec![
        ("photo.uploaded", b"{not json".to_vec(), "invalid_json"),
        (
            "photo.exploded",
            json!({ "data": { "photoId": "p1" } })
                .to_string()
                .into_bytes(),
            "unknown_type",
        ),
        (
            "photo.processing.progress",
            json!({ "data": { "progress": 5 } })
                .to_string()
                .into_bytes(),
            "missing_field",
        ),
        (
            "photo.processing.progress",
            json!({ "type": "photo.deleted", "data": { "photoId": "p1" } })
                .to_string()
                .into_bytes(),
            "type_mismatch",
        ),
        (
            "system.maintenance",
            json!({ "data": { "blob": "x".repeat(70_000) } })
                .to_string()
                .into_bytes(),
            "too_large",
        ),
        (
            "photo.processing.progress",
            json!({ "data": { "photoId": "p1", "userId": "u2" } })
                .to_string()
                .into_bytes(),
            "owner_mismatch",
        ),
    ];
    for (i, (subject, body, _)) in bad.iter().enumerate() {
        publish_raw(&js, subject, body.clone()).await;
        let n = i as u64 + 1;
        publish(
            &js,
            "photo.processing.progress",
            good(n),
            &format!("good-{n}"),
            IdSource::Body,
        )
        .await;
    }

    let hub = spawn_hub(&nats).await;
    hub.wait_for_stored("photo:p1", bad.len() + 1).await;
    let stored: Vec<u64> = hub
        .history("photo:p1")
        .await
        .iter()
        .filter_map(|e| e["data"]["n"].as_u64())
        .collect();
    assert_eq!(stored, (0..=bad.len() as u64).collect::<Vec<_>>());

    for (i, (subject, body, reason)) in bad.iter().enumerate() {
        let copy = tokio::time::timeout(WAIT, dead.next())
            .await
            .expect("a dead letter in time")
            .expect("subscription open");
        let headers = copy.headers.clone().expect("dead-letter headers");
        let header = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
        assert_eq!(header("Socket-Bridge-Reason").as_deref(), Some(*reason));
        assert_eq!(header("Socket-Bridge-Subject").as_deref(), Some(*subject));
        // The uploaded event is sequence 1; then bad and good messages alternate.
        let sequence = (2 + 2 * i).to_string();
        assert_eq!(
            header("Socket-Bridge-Stream-Sequence").as_deref(),
            Some(sequence.as_str())
        );
        assert!(header("Socket-Bridge-Error").is_some_and(|e| !e.is_empty()));
        assert_eq!(
            copy.payload.as_ref(),
            body.as_slice(),
            "{reason}: body copied"
        );
    }

    let metrics = hub.metrics().await;
    for (_, _, reason) in &bad {
        let line = format!("nats_messages_dead_lettered_total{{reason=\"{reason}\"}}");
        assert!(metrics.contains(&line), "{line} missing from /metrics");
    }

    // Terminated, not redelivered: nothing pending, and no second copy after the ack wait.
    wait_consumed(&js, HUB_CONSUMER, WAIT).await;
    let again = tokio::time::timeout(Duration::from_secs(3), dead.next()).await;
    assert!(again.is_err(), "a refused message was redelivered");
    hub.stop().await;
}

/// Refused messages (bad JSON, an unknown type, an owner mismatch) are kept in the JetStream
/// stream `PHOTO_EVENTS_DLQ`, which the hub creates, with their original subject, body and
/// reason; the stream and what it keeps survive a hub restart, which adds nothing to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_kept_in_a_stream_that_survives_restarts() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    create_stream(&js).await;
    let uploaded = json!({ "data": { "photoId": "p1", "userId": "u1" } });
    publish(&js, "photo.uploaded", uploaded, "up", IdSource::Body).await;
    let mismatch = json!({ "data": { "photoId": "p1", "userId": "u2" } }).to_string();
    let unknown = json!({ "data": { "photoId": "p1" } }).to_string();
    let mut deep = json!({});
    for _ in 0..32 {
        deep = json!({ "a": deep });
    }
    let deep = json!({ "data": deep }).to_string();
    let bad: Vec<(&str, Vec<u8>, &str)> = vec![
        ("photo.uploaded", b"{not json".to_vec(), "invalid_json"),
        ("photo.exploded", unknown.into_bytes(), "unknown_type"),
        ("system.maintenance", deep.into_bytes(), "too_deep"),
        (
            "photo.processing.progress",
            mismatch.into_bytes(),
            "owner_mismatch",
        ),
    ];
    for (subject, body, _) in &bad {
        publish_raw(&js, subject, body.clone()).await;
    }
    let good = json!({ "data": { "photoId": "p1", "progress": 5 } });
    publish(
        &js,
        "photo.processing.progress",
        good,
        "after",
        IdSource::Body,
    )
    .await;

    let hub = spawn_hub(&nats).await;
    hub.wait_for_stored("photo:p1", 2).await;
    let kept = wait_dead_letters(&js, bad.len()).await;
    assert_eq!(kept.len(), bad.len());
    for (letter, (subject, body, reason)) in kept.iter().zip(&bad) {
        assert_eq!(kept_header(letter, "Socket-Bridge-Reason"), *reason);
        assert_eq!(kept_header(letter, "Socket-Bridge-Subject"), *subject);
        assert_eq!(kept_header(letter, "Socket-Bridge-Stream"), "PHOTO_EVENTS");
        assert!(!kept_header(letter, "Socket-Bridge-Error").is_empty());
        assert_eq!(
            letter.payload.as_ref(),
            body.as_slice(),
            "{reason}: body kept"
        );
        assert_eq!(letter.subject.as_str(), "socket-bridge.dead-letter");
    }
    wait_consumed(&js, HUB_CONSUMER, WAIT).await;

    let hub = hub.restart().await;
    hub.wait_for_bus("up").await;
    let after: Vec<u64> = dead_letters(&js).await.iter().map(|l| l.sequence).collect();
    let before: Vec<u64> = kept.iter().map(|l| l.sequence).collect();
    assert_eq!(after, before, "the dead letters are kept as they were");
    hub.stop().await;
}

/// `socket-bridge dead-letters list` shows each kept dead letter with its reason, original subject
/// and time (JSON and table); `republish --reason` publishes them again on their original subject
/// and removes them from the dead-letter stream, so that a message refused because its photo had
/// no owner yet is stored once the owner is known; `republish --seq` of a removed one fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_cli_lists_and_republishes() {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    create_stream(&js).await;
    let hub = spawn_hub(&nats).await;
    hub.wait_for_bus("up").await;
    let early = json!({ "data": { "photoId": "p9", "progress": 10 } }).to_string();
    publish_raw(&js, "photo.processing.progress", early.clone()).await;
    publish_raw(&js, "photo.uploaded", b"{not json".to_vec()).await;
    let kept = wait_dead_letters(&js, 2).await;

    let url = nats.url();
    let listed = run(&[
        "dead-letters",
        "--nats-url",
        &url,
        "list",
        "--format",
        "json",
    ]);
    assert!(listed.status.success(), "{listed:?}");
    let listed: Value = serde_json::from_slice(&listed.stdout).expect("JSON list");
    let listed = listed.as_array().expect("an array");
    assert_eq!(listed.len(), 2);
    // The two are refused at different stages (decode, then the store), so in either order.
    let owner_kept = kept
        .iter()
        .find(|l| kept_header(l, "Socket-Bridge-Reason") == "missing_owner")
        .expect("the missing_owner dead letter is kept");
    let owner = listed
        .iter()
        .find(|l| l["reason"] == "missing_owner")
        .expect("missing_owner listed");
    assert_eq!(owner["subject"], "photo.processing.progress");
    assert_eq!(owner["body"], early);
    assert_eq!(owner["seq"], owner_kept.sequence);
    assert!(owner["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(
        listed.iter().any(|l| l["reason"] == "invalid_json"),
        "{listed:?}"
    );
    let table = run(&[
        "dead-letters",
        "--nats-url",
        &url,
        "list",
        "--reason",
        "invalid_json",
    ]);
    let table = String::from_utf8_lossy(&table.stdout).to_string();
    assert!(
        table.contains("invalid_json") && table.contains("photo.uploaded"),
        "{table}"
    );
    assert!(!table.contains("missing_owner"), "{table}");

    let uploaded = json!({ "data": { "photoId": "p9", "userId": "u1" } });
    publish(&js, "photo.uploaded", uploaded, "up-p9", IdSource::Body).await;
    hub.wait_for_stored("photo:p9", 1).await;
    let republished = run(&[
        "dead-letters",
        "--nats-url",
        &url,
        "republish",
        "--reason",
        "missing_owner",
    ]);
    assert!(republished.status.success(), "{republished:?}");
    hub.wait_for_stored("photo:p9", 2).await;
    let progress = &hub.history("photo:p9").await[1];
    assert_eq!(progress["data"]["progress"], 10);
    let left: Vec<String> = dead_letters(&js)
        .await
        .iter()
        .map(|l| kept_header(l, "Socket-Bridge-Reason"))
        .collect();
    assert_eq!(
        left,
        ["invalid_json"],
        "the re-published one left the stream"
    );

    let gone = owner_kept.sequence.to_string();
    let again = run(&[
        "dead-letters",
        "--nats-url",
        &url,
        "republish",
        "--seq",
        &gone,
    ]);
    assert_eq!(again.status.code(), Some(3), "{again:?}");
    hub.stop().await;
}

/// A refused message whose dead letter cannot be kept (the dead-letter stream is full and
/// refuses new messages) holds the stream at it: the good message published after it is not
/// stored, and nothing from the refused one on is acked (the consumer acks all, so an ack after it
/// would settle it too). Once the dead-letter stream takes messages again, the refused one is
/// kept and the good one stored, in order, and the stream is consumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_that_cannot_be_kept_holds_the_stream_until_it_is_kept() {
    let nats = NatsServer::start().await;
    let hub = spawn_hub(&nats).await;
    hub.wait_for_bus("up").await;
    let js = nats.jetstream().await;
    let floor = upload_p1(&js, &hub).await;

    let open = fill_dead_letter_stream(&js, 0).await;
    publish_raw(&js, "photo.uploaded", b"{not json".to_vec()).await;
    let good = json!({ "data": { "photoId": "p1", "progress": 5 } });
    publish(
        &js,
        "photo.processing.progress",
        good,
        "good",
        IdSource::Body,
    )
    .await;

    // Long enough for the refused message to be tried and nak'ed more than once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        hub.stored("photo:p1").await,
        1,
        "an event after a message that is not settled was stored"
    );
    assert_eq!(
        consumer_ack_floor(&js).await,
        floor,
        "a message at or after the unsettled one was acked"
    );
    assert_eq!(dead_letters(&js).await.len(), 1, "only the filler is kept");

    let reasons = lift_and_settle(&hub, &js, open, 2, 2).await;
    assert_eq!(reasons, ["invalid_json"]);
    assert_eq!(consumer_ack_floor(&js).await, floor + 2);
    hub.stop().await;
}

/// The same for a message the store refuses (an owner mismatch) in the middle of a batch: the
/// event before it is stored and acked, it and the event after it wait until its dead letter is
/// kept, then both settle in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_refusal_whose_dead_letter_cannot_be_kept_holds_the_rest_of_its_batch() {
    let nats = NatsServer::start().await;
    let (hub, js, floor, open) = batch_held_by_a_refusal(&nats, 0, &[foreign_progress()]).await;
    assert_eq!(
        hub.stored("photo:p1").await,
        2,
        "the event after the refused one was stored before its dead letter was kept"
    );
    assert_eq!(
        consumer_ack_floor(&js).await,
        floor + 1,
        "only the event before the refused one is acked"
    );

    let reasons = lift_and_settle(&hub, &js, open, 3, 2).await;
    assert_eq!(reasons, ["owner_mismatch"]);
    let history = hub.history("photo:p1").await;
    let progresses: Vec<u64> = history
        .iter()
        .filter_map(|e| e["data"]["progress"].as_u64())
        .collect();
    assert_eq!(progresses, [1, 2], "stored once each, in order");
    assert_eq!(consumer_ack_floor(&js).await, floor + 3);
    hub.stop().await;
}

/// A store refusal whose dead letter cannot be kept, followed in its batch by a message refused
/// at decoding whose dead letter was kept (the last free place in the dead-letter stream): the
/// later one's termination would settle the earlier one too (the consumer acks all), so it waits
/// with it; once the stream takes messages, the store refusal is dead-lettered as well and the
/// event after both is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_termination_waits_for_an_earlier_refusal_that_is_not_settled() {
    let nats = NatsServer::start().await;
    let not_json = ("photo.uploaded", b"{not json".to_vec());
    let (hub, js, floor, open) =
        batch_held_by_a_refusal(&nats, 1, &[foreign_progress(), not_json]).await;
    assert_eq!(
        consumer_ack_floor(&js).await,
        floor + 1,
        "only the event before the refusals is acked"
    );

    let reasons = lift_and_settle(&hub, &js, open, 3, 3).await;
    assert_eq!(
        reasons,
        ["invalid_json", "owner_mismatch"],
        "the store refusal was dead-lettered after the stream took messages again"
    );
    hub.stop().await;
}

/// A dead-letter stream deleted while the hub runs is created again by the hub when it sets up
/// after the pause that the refused message caused, and the message is kept there; the event
/// after it is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_dead_letter_stream_is_made_again_after_the_pause() {
    let nats = NatsServer::start().await;
    let hub = spawn_hub(&nats).await;
    hub.wait_for_bus("up").await;
    let js = nats.jetstream().await;
    upload_p1(&js, &hub).await;
    js.delete_stream(DEAD_LETTER_STREAM)
        .await
        .expect("delete the dead-letter stream");

    publish_raw(&js, "photo.uploaded", b"{not json".to_vec()).await;
    let good = json!({ "data": { "photoId": "p1", "progress": 5 } });
    publish(
        &js,
        "photo.processing.progress",
        good,
        "good",
        IdSource::Body,
    )
    .await;
    hub.wait_for_stored("photo:p1", 2).await;
    let kept = wait_dead_letters(&js, 1).await;
    assert_eq!(
        kept_header(&kept[0], "Socket-Bridge-Reason"),
        "invalid_json"
    );
    wait_consumed(&js, HUB_CONSUMER, WAIT).await;
    hub.stop().await;
}

/// A hub on `nats` with p1 uploaded and room for `room` more dead letters, then, published while
/// it is stopped so that they come in one batch: p1's progress 1, the `refused` messages (subject,
/// body), p1's progress 2. Returns once the hub has stored progress 1 and had 2 s more for the
/// rest: the hub, JetStream, the ack floor before the batch, and the dead-letter stream's own
/// configuration, to lift its limit with.
async fn batch_held_by_a_refusal(
    nats: &NatsServer,
    room: i64,
    refused: &[(&str, Vec<u8>)],
) -> (TestHub, jetstream::Context, u64, stream::Config) {
    let hub = spawn_hub(nats).await;
    hub.wait_for_bus("up").await;
    let js = nats.jetstream().await;
    let floor = upload_p1(&js, &hub).await;
    let open = fill_dead_letter_stream(&js, room).await;

    let stopped = hub.stop().await;
    let progress = |n: u64| json!({ "data": { "photoId": "p1", "progress": n } });
    let subject = "photo.processing.progress";
    publish(&js, subject, progress(1), "before", IdSource::Body).await;
    for (subject, body) in refused {
        publish_raw(&js, subject, body.clone()).await;
    }
    publish(&js, subject, progress(2), "after", IdSource::Body).await;
    let hub = stopped.start().await;
    hub.wait_for_stored("photo:p1", 2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    (hub, js, floor, open)
}

/// Lifts the dead-letter stream's limit (`open`: its own configuration) and waits until p1's
/// room holds `stored` events, the stream is consumed and `kept` dead letters are there; returns
/// the reasons of those after the filler, in order.
async fn lift_and_settle(
    hub: &TestHub,
    js: &jetstream::Context,
    open: stream::Config,
    stored: usize,
    kept: usize,
) -> Vec<String> {
    js.update_stream(open).await.expect("lift the limit");
    hub.wait_for_stored("photo:p1", stored).await;
    wait_consumed(js, HUB_CONSUMER, WAIT).await;
    wait_dead_letters(js, kept)
        .await
        .iter()
        .skip(1)
        .map(|l| kept_header(l, "Socket-Bridge-Reason"))
        .collect()
}

/// A progress event of p1 naming another owner: the store refuses it (`owner_mismatch`).
fn foreign_progress() -> (&'static str, Vec<u8>) {
    let foreign = json!({ "data": { "photoId": "p1", "userId": "u2" } });
    (
        "photo.processing.progress",
        foreign.to_string().into_bytes(),
    )
}

/// Puts one message in the (empty) dead-letter stream and makes it refuse any past `room` more;
/// returns its own configuration, to lift the limit with.
async fn fill_dead_letter_stream(js: &jetstream::Context, room: i64) -> stream::Config {
    let dead_letter_stream = js
        .get_stream(DEAD_LETTER_STREAM)
        .await
        .expect("the hub made the dead-letter stream");
    let open = dead_letter_stream.cached_info().config.clone();
    js.update_stream(stream::Config {
        max_messages: 1 + room,
        discard: DiscardPolicy::New,
        ..open.clone()
    })
    .await
    .expect("limit the dead-letter stream");
    js.publish(open.subjects[0].clone(), "filler".into())
        .await
        .expect("publish")
        .await
        .expect("the filler is kept");
    open
}
