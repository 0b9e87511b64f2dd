//! The consumption loop: take what the reader received and decoded, store every good event of it
//! in one group-committed append, then hand the batch to the acker task (so the next append need
//! not wait for the acks to be sent). The consumer acks all: the stream is consumed in order, and
//! one ack, sent once the batch's events are durable, settles every message up to it. Refused
//! messages are dead-lettered and terminated, also only once the messages before them are
//! durable. When the store fails, or a refused message's dead letter cannot be kept, that message
//! and everything after it are nak'ed with a capped exponential delay and reading pauses until
//! they are due again; the loop sets the consumer up again after NATS comes back.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::Client;
use async_nats::connection::State;
use async_nats::header::{HeaderMap, NATS_MESSAGE_ID};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::{self, AckKind, Message};
use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use super::dead_letters::{
    DEAD_LETTER_BODY_OMITTED, DEAD_LETTER_ERROR, DEAD_LETTER_MSG_ID, DEAD_LETTER_REASON,
    DEAD_LETTER_SEQUENCE, DEAD_LETTER_STREAM, DEAD_LETTER_SUBJECT,
};
use super::decode::{Refusal, StreamIdentity};
use super::reader::{Arrived, Decoder, Reader};
use super::setup::{self, REDELIVERY_MARGIN, Ready, SetupError, Spec};
use crate::bus::Backoff;
use crate::domain::{Event, Timestamp};
use crate::ingest::Ingest;
use crate::store::{AppendError, ConsumedPosition};
use crate::telemetry::{ErrorChain, metric};

/// Chunks of messages the reader may queue ahead of the storer.
const QUEUED_CHUNKS: usize = 8;

/// Settled batches whose acks may wait for the acker task.
const QUEUED_ACKS: usize = 8;

/// Most pull batches one append takes (when the store is slower than NATS, queued chunks add
/// up: fewer, larger group commits).
const GROUP_BATCHES: usize = 4;

/// How often the loop looks whether the client has reconnected (the client retries by itself).
const RECONNECT_POLL: Duration = Duration::from_millis(200);

/// Longest text of a dead-letter header.
const MAX_HEADER_TEXT: usize = 512;

/// Everything the loop needs.
pub(super) struct Consumer {
    pub client: Client,
    pub spec: Spec,
    pub dead_letter_subject: String,
    pub batch_size: usize,
    pub max_message_bytes: usize,
    pub ingest: Ingest,
    pub consuming: Arc<AtomicBool>,
    /// Changes whenever the client loses its connection.
    pub disconnects: watch::Receiver<u64>,
}

/// How a run of [`Consumer::consume`] ended.
enum Outcome {
    /// Asked to stop; everything received was stored and acked.
    Stopped,
    /// NATS failed (disconnected, consumer deleted, ...); set up again.
    Failed(String),
    /// The store failed, or a dead letter could not be kept: what was not settled was nak'ed
    /// with this delay; read again after it.
    Paused(Duration),
}

/// Messages of a batch that could not be settled for a reason that may pass (the store failed,
/// or the dead-letter stream did not keep a refused message), in stream order.
struct Unstored {
    messages: Vec<Message>,
    error: String,
}

/// What the acker sends for a batch whose events are durable: the terminations, then one ack.
#[derive(Default)]
struct Settled {
    /// Refused messages whose dead letters are kept, and redeliveries of messages consumed
    /// before, with their stream sequences: terminated.
    terminate: Vec<(u64, Message)>,
    /// The stored (or duplicate) message of the highest stream sequence: its ack settles every
    /// message before it.
    ack: Option<Message>,
}

impl Settled {
    /// Sends the terminations, then the ack.
    async fn send(&self) {
        for (_, message) in &self.terminate {
            ack(message, AckKind::Term).await;
        }
        if let Some(message) = &self.ack {
            ack(message, AckKind::Ack).await;
        }
    }
}

/// A message to store, with its stream sequence and decoded event (taken by the append).
struct Pending {
    message: Message,
    sequence: u64,
    event: Option<Event>,
    /// Whether the event is of a stored kind (else live-only).
    stored_kind: bool,
}

impl Pending {
    fn new(message: Message, sequence: u64, event: Event) -> Self {
        Self {
            message,
            sequence,
            stored_kind: event.event_type.is_stored(),
            event: Some(event),
        }
    }
}

impl Consumer {
    /// Consumes until `stop` turns true: sets up the stream and consumer (again after every
    /// failure, with capped exponential backoff), then reads batches. On stop, the batch in hand
    /// is stored and acked and the acks are flushed.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut retry = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let mut transient = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        loop {
            if stopping(&stop) {
                break;
            }
            if self.client.connection_state() != State::Connected {
                if sleep_or_stop(RECONNECT_POLL, &mut stop).await {
                    break;
                }
                continue;
            }
            match setup::ensure(
                &self.client_js(),
                &self.spec,
                setup::consumed_in(self.ingest.log()),
            )
            .await
            {
                Ok(ready) => {
                    if !ready.redelivery_wait.is_zero() {
                        tracing::info!(
                            wait_ms = ready.redelivery_wait.as_millis() as u64,
                            "messages delivered before and not acked are pending; waiting for their redelivery to keep order"
                        );
                        if sleep_or_stop(ready.redelivery_wait, &mut stop).await {
                            break;
                        }
                    }
                    self.set_consuming(true);
                    tracing::info!(stream = %self.spec.stream, consumer = %self.spec.consumer, "consuming from NATS JetStream");
                    let outcome = self
                        .consume(&ready, &stop, &mut retry, &mut transient)
                        .await;
                    self.set_consuming(false);
                    match outcome {
                        Outcome::Stopped => break,
                        Outcome::Failed(error) => {
                            metrics::counter!(metric::NATS_CONSUMER_FAILURES_TOTAL).increment(1);
                            tracing::warn!(%error, "consuming from NATS failed; setting up again");
                        }
                        Outcome::Paused(delay) => {
                            // The nak'ed messages are due again after `delay`; reading before
                            // would take newer messages first.
                            if sleep_or_stop(delay + REDELIVERY_MARGIN, &mut stop).await {
                                break;
                            }
                            continue;
                        }
                    }
                }
                Err(SetupError::Conflict(error)) => {
                    tracing::error!(%error, "cannot consume from NATS JetStream");
                }
                Err(error) => {
                    tracing::warn!(error = %ErrorChain(&error), "NATS JetStream is not ready")
                }
            }
            let delay = retry.next_delay();
            if sleep_or_stop(delay, &mut stop).await {
                break;
            }
        }
        match tokio::time::timeout(Duration::from_secs(1), self.client.flush()).await {
            Ok(Ok(())) => tracing::debug!("acks flushed to NATS"),
            Ok(Err(e)) => tracing::warn!(error = %ErrorChain(&e), "could not flush acks to NATS"),
            Err(_) => tracing::warn!(
                "flushing acks to NATS timed out; unacked messages will be redelivered"
            ),
        }
    }

    fn client_js(&self) -> jetstream::Context {
        jetstream::new(self.client.clone())
    }

    fn set_consuming(&self, on: bool) {
        self.consuming.store(on, Ordering::SeqCst);
        metrics::gauge!(metric::NATS_CONSUMING).set(if on { 1.0 } else { 0.0 });
    }

    /// Consumes until stopped, NATS fails or the store fails, with two halves running side by
    /// side: the reader task keeps pull requests open and queues what arrives, and the storer
    /// takes everything queued (up to [`GROUP_BATCHES`] batches) into one append while the reader
    /// goes on receiving. One append is in flight at a time, so events are stored in stream order.
    async fn consume(
        &self,
        ready: &Ready,
        stop: &watch::Receiver<bool>,
        retry: &mut Backoff,
        transient: &mut Backoff,
    ) -> Outcome {
        let (queue, received) = mpsc::channel(QUEUED_CHUNKS);
        let (halt, halted) = watch::channel(false);
        let (acks, to_ack) = mpsc::channel(QUEUED_ACKS);
        let acker = tokio::spawn(ack_settled(to_ack));
        let decoder = Decoder {
            identity: ready.identity.clone(),
            max_bytes: self.max_message_bytes,
            max_depth: self.ingest.max_json_depth(),
        };
        let reader = tokio::spawn(
            Reader {
                client: self.client.clone(),
                consumer: ready.consumer.clone(),
                batch_size: self.batch_size,
                stop: stop.clone(),
                halt: halted,
                disconnects: self.disconnects.clone(),
                decoder: decoder.clone(),
                queue,
            }
            .run(),
        );
        let paused = self
            .store(&decoder, received, &acks, &halt, retry, transient)
            .await;
        drop(acks);
        if let Err(e) = acker.await {
            tracing::warn!(error = %e, "the acker task failed; unacked messages will be redelivered");
        }
        let read = match reader.await {
            Ok(read) => read,
            Err(e) => Err(format!("the reader task failed: {e}")),
        };
        match (paused, read) {
            (Some(delay), Ok(())) => Outcome::Paused(delay),
            (Some(delay), Err(error)) => {
                tracing::warn!(%error, "reading from NATS failed while pausing after a store failure");
                Outcome::Paused(delay)
            }
            (None, Ok(())) => Outcome::Stopped,
            (None, Err(error)) => Outcome::Failed(error),
        }
    }

    /// The storer: takes what the reader queued and decoded with `decoder`, stores it with one
    /// append and hands it to `acks`, until the reader is done. When a batch cannot be settled
    /// (the store failed, a dead letter could not be kept) it halts the reader, nak's the
    /// unsettled messages with the next backoff delay, nak's everything received after them with
    /// the same delay (so that they all come back in order), and returns that delay.
    async fn store(
        &self,
        decoder: &Decoder,
        mut received: mpsc::Receiver<Vec<Arrived>>,
        acks: &mpsc::Sender<Settled>,
        halt: &watch::Sender<bool>,
        retry: &mut Backoff,
        transient: &mut Backoff,
    ) -> Option<Duration> {
        let max_group = self.batch_size.saturating_mul(GROUP_BATCHES);
        let mut paused: Option<Duration> = None;
        while let Some(mut messages) = received.recv().await {
            while messages.len() < max_group {
                match received.try_recv() {
                    Ok(more) => messages.extend(more),
                    Err(_) => break,
                }
            }
            if let Some(delay) = paused {
                let messages: Vec<Message> = messages.into_iter().map(|a| a.message).collect();
                nak_all(&messages, delay).await;
                continue;
            }
            match self.process(decoder, messages, acks).await {
                Ok(()) => {
                    transient.reset();
                    retry.reset();
                }
                Err(unstored) => {
                    let delay = transient.next_delay();
                    tracing::warn!(
                        error = %unstored.error,
                        messages = unstored.messages.len(),
                        retry_in_ms = delay.as_millis() as u64,
                        "could not settle a batch; nak'ing what is not settled and pausing until it is due again"
                    );
                    let _ = halt.send(true);
                    nak_all(&unstored.messages, delay).await;
                    paused = Some(delay);
                }
            }
        }
        paused
    }

    /// Dead-letters the refused messages of `messages`, hands the rest to ingest in one call
    /// (one durable append, which also records how far the stream is consumed) and, once they
    /// are durable, the batch to `acks`. A message at or below that position was consumed already
    /// when its id is derived from its position (such ids are not indexed: the position, durable
    /// with the events it covers, is what recognises their redeliveries) or when its event is no
    /// longer stored (pruned by retention, or refused before): it is terminated and counted,
    /// never stored again (docs/protocol.md, "Producers: NATS JetStream"). A second copy of a
    /// message in the same batch (a redelivery that caught up with it) is left to the first one's
    /// ack. A refused message whose dead letter cannot be kept stops the batch: the events before
    /// it are stored and acked, it and everything after it are returned to be nak'ed (an ack
    /// after it would settle it too).
    async fn process(
        &self,
        decoder: &Decoder,
        messages: Vec<Arrived>,
        acks: &mpsc::Sender<Settled>,
    ) -> Result<(), Unstored> {
        let identity = &decoder.identity;
        let log = self.ingest.log();
        let source = identity.source();
        let consumed = match log.consumed(&source) {
            Ok(consumed) => consumed,
            Err(e) => {
                return Err(Unstored {
                    messages: messages.into_iter().map(|a| a.message).collect(),
                    error: ErrorChain(&e).to_string(),
                });
            }
        };
        let mut settled = Settled::default();
        // The highest sequence settled or about to be stored, and the messages from the first
        // one that could not be settled on.
        let mut highest = 0u64;
        let mut unsettled: Vec<Message> = Vec::new();
        let mut pending = Vec::with_capacity(messages.len());
        let mut seen = HashSet::with_capacity(messages.len());
        let mut arrived = messages.into_iter();
        while let Some(Arrived { message, decoded }) = arrived.next() {
            let (sequence, decoded) = match decoded {
                Ok(decoded) => decoded,
                Err(e) => {
                    if self
                        .dead_letter(identity, &message, 0, &Refusal::NoMetadata(e))
                        .await
                    {
                        settled.terminate.push((0, message));
                        continue;
                    }
                    unsettled.push(message);
                    unsettled.extend(arrived.map(|a| a.message));
                    break;
                }
            };
            if !seen.insert(sequence) {
                continue;
            }
            if sequence <= consumed {
                match decoded {
                    // Still stored: answered as a duplicate by the append, as any redelivery.
                    Ok(event)
                        if !event.id_generated && !matches!(log.placement(&event.id), Ok(None)) =>
                    {
                        pending.push(Pending::new(message, sequence, event))
                    }
                    _ => {
                        skip_consumed(&message, sequence, consumed);
                        settled.terminate.push((sequence, message));
                    }
                }
                highest = highest.max(sequence);
                continue;
            }
            match decoded {
                Ok(event) => pending.push(Pending::new(message, sequence, event)),
                Err(refusal) => {
                    if !self
                        .dead_letter(identity, &message, sequence, &refusal)
                        .await
                    {
                        unsettled.push(message);
                        unsettled.extend(arrived.map(|a| a.message));
                        break;
                    }
                    settled.terminate.push((sequence, message));
                }
            }
            highest = highest.max(sequence);
        }
        // Each round either ingests everything left or removes the one event the store refused
        // (with everything after it, when its dead letter cannot be kept), so it runs at most
        // once per message of the batch. The append takes the events; after a refusal (rare) the
        // others are decoded again, the same way, for the next round.
        let now = Timestamp::now();
        while !pending.is_empty() {
            let mut events = Vec::with_capacity(pending.len());
            for p in &mut pending {
                let event = match p.event.take() {
                    Some(event) => Ok(event),
                    None => decoder.event(&p.message, p.sequence, now),
                };
                match event {
                    Ok(event) => events.push(event),
                    Err(refusal) => {
                        return Err(Unstored {
                            messages: in_stream_order(settled.terminate, pending, unsettled),
                            error: format!("a message decoded before no longer decodes: {refusal}"),
                        });
                    }
                }
            }
            let consumed = ConsumedPosition {
                source: source.clone(),
                position: highest,
            };
            match self.ingest.accept_consumed(events, consumed).await {
                Ok(ingested) => {
                    let (mut stored, mut duplicates, mut live) = (0, 0, 0);
                    for (p, outcome) in pending.iter().zip(&ingested) {
                        if !p.stored_kind {
                            live += 1;
                        } else if outcome.duplicate {
                            duplicates += 1;
                        } else {
                            stored += 1;
                        }
                    }
                    metrics::counter!(metric::NATS_MESSAGES_STORED_TOTAL).increment(stored);
                    metrics::counter!(metric::NATS_MESSAGES_DUPLICATE_TOTAL).increment(duplicates);
                    metrics::counter!(metric::NATS_MESSAGES_LIVE_TOTAL).increment(live);
                    settled.ack = pending
                        .into_iter()
                        .max_by_key(|p| p.sequence)
                        .map(|p| p.message);
                    break;
                }
                Err(AppendError::Rejected { index, rejection }) if index < pending.len() => {
                    let refused = pending.remove(index);
                    if self
                        .dead_letter(
                            identity,
                            &refused.message,
                            refused.sequence,
                            &Refusal::Rejected(rejection),
                        )
                        .await
                    {
                        settled.terminate.push((refused.sequence, refused.message));
                        continue;
                    }
                    // It waits with everything after it, terminations too: under ack-all a
                    // later termination would settle it.
                    let (later, earlier) = std::mem::take(&mut settled.terminate)
                        .into_iter()
                        .partition(|(sequence, _)| *sequence > refused.sequence);
                    settled.terminate = earlier;
                    highest = highest.min(refused.sequence.saturating_sub(1));
                    let after = pending.split_off(index);
                    let held = std::iter::once(refused).chain(after);
                    unsettled = in_stream_order(later, held, unsettled);
                }
                Err(e) => {
                    return Err(Unstored {
                        messages: in_stream_order(settled.terminate, pending, unsettled),
                        error: e.to_string(),
                    });
                }
            }
        }
        // Batches that stored nothing (refused, live-only or duplicates) record it here.
        if settled.ack.is_none()
            && highest > consumed
            && let Err(e) = log.record_consumed(&source, highest)
        {
            tracing::warn!(error = %ErrorChain(&e), position = highest, "could not record how far the stream is consumed; redeliveries are recognised by event id");
        }
        if (!settled.terminate.is_empty() || settled.ack.is_some())
            && let Err(unsent) = acks.send(settled).await
        {
            unsent.0.send().await;
        }
        if unsettled.is_empty() {
            Ok(())
        } else {
            Err(Unstored {
                messages: unsettled,
                error: "the dead-letter stream did not keep a refused message".to_owned(),
            })
        }
    }

    /// Counts and logs a refused message, publishes it on the dead-letter subject with the
    /// original subject, the reason and the stream sequence in headers, and waits until the
    /// dead-letter stream has stored it. Returns whether it was kept: only then may the message
    /// be terminated (else it is nak'ed with what follows it, so that it is not lost).
    async fn dead_letter(
        &self,
        identity: &StreamIdentity,
        message: &Message,
        sequence: u64,
        refusal: &Refusal,
    ) -> bool {
        tracing::warn!(
            stream_sequence = sequence,
            subject = %message.subject,
            reason = refusal.code(),
            error = %refusal,
            "refused a message: keeping it in the dead-letter stream and terminating it"
        );
        let mut headers = HeaderMap::new();
        // Deduplicates the dead letter of one message dead-lettered twice (a crash between the
        // dead letter and the termination), within the dead-letter stream's duplicate window.
        if sequence > 0 {
            headers.insert(
                NATS_MESSAGE_ID,
                header_text(&identity.event_id(sequence)).as_str(),
            );
        }
        headers.insert(DEAD_LETTER_REASON, refusal.code());
        headers.insert(
            DEAD_LETTER_ERROR,
            header_text(&refusal.to_string()).as_str(),
        );
        headers.insert(
            DEAD_LETTER_SUBJECT,
            header_text(message.subject.as_str()).as_str(),
        );
        headers.insert(DEAD_LETTER_STREAM, header_text(identity.name()).as_str());
        headers.insert(DEAD_LETTER_SEQUENCE, sequence.to_string().as_str());
        if let Some(id) = message
            .headers
            .as_ref()
            .and_then(|h| h.get(NATS_MESSAGE_ID))
        {
            headers.insert(DEAD_LETTER_MSG_ID, header_text(id.as_str()).as_str());
        }
        let mut body = message.payload.clone();
        if body.len() > self.max_message_bytes {
            headers.insert(DEAD_LETTER_BODY_OMITTED, body.len().to_string().as_str());
            body = Bytes::new();
        }
        let js = self.client_js();
        let subject = self.dead_letter_subject.clone();
        let mut kept = keep(&js, &subject, headers.clone(), body).await;
        if let Err(e) = &kept
            && e.kind() == PublishErrorKind::MaxPayloadExceeded
        {
            headers.insert(
                DEAD_LETTER_BODY_OMITTED,
                message.payload.len().to_string().as_str(),
            );
            kept = keep(&js, &subject, headers, Bytes::new()).await;
        }
        match kept {
            Ok(()) => {
                metrics::counter!(metric::NATS_MESSAGES_DEAD_LETTERED_TOTAL, "reason" => refusal.code())
                    .increment(1);
                true
            }
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), stream_sequence = sequence, "could not keep a refused message in the dead-letter stream; it and what follows it will be redelivered");
                false
            }
        }
    }
}

/// Publishes a dead letter and waits until JetStream has stored it.
async fn keep(
    js: &jetstream::Context,
    subject: &str,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(), jetstream::context::PublishError> {
    js.publish_with_headers(subject.to_owned(), headers, body)
        .await?
        .await
        .map(drop)
}

/// Counts and logs a redelivered message the hub consumed before (its sequence is at or below
/// the recorded position) whose id is its stream position or whose event is no longer stored;
/// the acker terminates it.
fn skip_consumed(message: &Message, sequence: u64, consumed: u64) {
    metrics::counter!(metric::NATS_MESSAGES_ALREADY_CONSUMED_TOTAL).increment(1);
    tracing::info!(
        stream_sequence = sequence,
        consumed,
        subject = %message.subject,
        "a message consumed before came back (its id is its stream position, or its event is no longer stored: pruned or refused); terminating it"
    );
}

/// The acker task: sends the terminations and the ack of each settled batch it is handed, until
/// the storer is done.
async fn ack_settled(mut settled: mpsc::Receiver<Settled>) {
    while let Some(batch) = settled.recv().await {
        batch.send().await;
    }
}

/// Messages to nak instead of settling: `terminate` (terminations not sent: each would settle
/// the messages before it too) and `pending` in stream order, then `unsettled` (already in stream
/// order, after them).
fn in_stream_order(
    terminate: Vec<(u64, Message)>,
    pending: impl IntoIterator<Item = Pending>,
    unsettled: Vec<Message>,
) -> Vec<Message> {
    let mut held: Vec<(u64, Message)> = terminate
        .into_iter()
        .chain(pending.into_iter().map(|p| (p.sequence, p.message)))
        .collect();
    held.sort_by_key(|(sequence, _)| *sequence);
    held.into_iter()
        .map(|(_, message)| message)
        .chain(unsettled)
        .collect()
}

/// Sends `kind` for `message`. A lost ack is not an error: the message is redelivered and then
/// recognised by its event id.
async fn ack(message: &Message, kind: AckKind) {
    if let Err(e) = message.ack_with(kind).await {
        metrics::counter!(metric::NATS_ACK_FAILURES_TOTAL).increment(1);
        tracing::debug!(error = %ErrorChain(&*e), "could not ack a message; it will be redelivered");
    }
}

async fn nak_all(messages: &[Message], delay: Duration) {
    metrics::counter!(metric::NATS_MESSAGES_NACKED_TOTAL).increment(messages.len() as u64);
    for message in messages {
        ack(message, AckKind::Nak(Some(delay))).await;
    }
}

/// Whether the loop was asked to stop (or its handle is gone).
pub(super) fn stopping(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}

/// Sleeps `delay`; returns true (early) when asked to stop.
async fn sleep_or_stop(delay: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if stopping(stop) {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(delay) => stopping(stop),
        changed = stop.changed() => changed.is_err() || *stop.borrow(),
    }
}

/// `text` as a header value: no control characters, at most [`MAX_HEADER_TEXT`] characters.
fn header_text(text: &str) -> String {
    text.chars()
        .take(MAX_HEADER_TEXT)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
