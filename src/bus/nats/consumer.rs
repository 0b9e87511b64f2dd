//! The consumption loop: take what the reader received, validate it, store every good event of it
//! in one group-committed append, then ack. A message is acked only after its event is durable;
//! refused messages are dead-lettered and terminated; after a store failure the messages are
//! nak'ed with a capped exponential delay and reading pauses until they are due again; the loop
//! sets the consumer up again after NATS comes back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::header::{HeaderMap, NATS_MESSAGE_ID};
use async_nats::jetstream::{self, AckKind, Message};
use async_nats::{Client, client::PublishErrorKind};
use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use super::decode::{Incoming, Refusal, StreamIdentity, decode};
use super::reader::Reader;
use super::setup::{self, REDELIVERY_MARGIN, Ready, SetupError, Spec};
use crate::bus::Backoff;
use crate::domain::{Event, Timestamp};
use crate::ingest::Ingest;
use crate::store::AppendError;
use crate::telemetry::{ErrorChain, metric};

/// Chunks of messages the reader may queue ahead of the storer.
const QUEUED_CHUNKS: usize = 8;

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
    /// The store failed: everything received was nak'ed with this delay; read again after it.
    Paused(Duration),
}

/// Events of a batch that could not be stored for a reason that may pass (the store failed).
struct Unstored {
    messages: Vec<Message>,
    error: String,
}

/// A message to store, with its stream sequence and decoded event.
struct Pending {
    message: Message,
    sequence: u64,
    event: Event,
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
            match setup::ensure(&self.client_js(), &self.spec).await {
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
        let reader = tokio::spawn(
            Reader {
                client: self.client.clone(),
                consumer: ready.consumer.clone(),
                batch_size: self.batch_size,
                stop: stop.clone(),
                halt: halted,
                disconnects: self.disconnects.clone(),
                queue,
            }
            .run(),
        );
        let paused = self
            .store(&ready.identity, received, &halt, retry, transient)
            .await;
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

    /// The storer: takes what the reader queued, stores it with one append and acks it, until the
    /// reader is done. When the store fails it halts the reader, nak's the messages with the next
    /// backoff delay, nak's everything received after them with the same delay (so that they all
    /// come back in order), and returns that delay.
    async fn store(
        &self,
        identity: &StreamIdentity,
        mut received: mpsc::Receiver<Vec<Message>>,
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
                nak_all(&messages, delay).await;
                continue;
            }
            match self.process(identity, messages).await {
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
                        "could not store a batch; nak'ing it and pausing until it is due again"
                    );
                    let _ = halt.send(true);
                    nak_all(&unstored.messages, delay).await;
                    paused = Some(delay);
                }
            }
        }
        paused
    }

    /// Validates `messages`, dead-letters the bad ones, hands the rest to ingest in one call
    /// (one durable append) and acks them once they are durable.
    async fn process(
        &self,
        identity: &StreamIdentity,
        messages: Vec<Message>,
    ) -> Result<(), Unstored> {
        let now = Timestamp::now();
        let mut pending = Vec::with_capacity(messages.len());
        for message in messages {
            let sequence = match message.info() {
                Ok(info) => info.stream_sequence,
                Err(e) => {
                    self.dead_letter(identity, &message, 0, &Refusal::NoMetadata(e.to_string()))
                        .await;
                    continue;
                }
            };
            let msg_id = message
                .headers
                .as_ref()
                .and_then(|h| h.get(NATS_MESSAGE_ID))
                .map(|v| v.as_str());
            let incoming = Incoming {
                subject: message.subject.as_str(),
                payload: &message.payload,
                msg_id,
                stream_sequence: sequence,
            };
            match decode(&incoming, identity, now, self.max_message_bytes) {
                Ok(event) => pending.push(Pending {
                    message,
                    sequence,
                    event,
                }),
                Err(refusal) => {
                    self.dead_letter(identity, &message, sequence, &refusal)
                        .await;
                }
            }
        }
        // Each round either ingests everything left or removes the one event the store refused,
        // so it runs at most once per message of the batch.
        while !pending.is_empty() {
            let events = pending.iter().map(|p| p.event.clone()).collect();
            match self.ingest.accept(events).await {
                Ok(ingested) => {
                    let (mut stored, mut duplicates, mut live) = (0, 0, 0);
                    for (p, outcome) in pending.iter().zip(&ingested) {
                        if !p.event.event_type.is_stored() {
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
                    for p in &pending {
                        ack(&p.message, AckKind::Ack).await;
                    }
                    return Ok(());
                }
                Err(AppendError::Rejected { index, rejection }) if index < pending.len() => {
                    let refused = pending.remove(index);
                    self.dead_letter(
                        identity,
                        &refused.message,
                        refused.sequence,
                        &Refusal::Rejected(rejection),
                    )
                    .await;
                }
                Err(e) => {
                    return Err(Unstored {
                        messages: pending.into_iter().map(|p| p.message).collect(),
                        error: e.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Counts and logs a refused message, copies it to the dead-letter subject with the reason in
    /// headers, and terminates it. If the copy cannot be published, the message is nak'ed instead,
    /// so that it is not lost.
    async fn dead_letter(
        &self,
        identity: &StreamIdentity,
        message: &Message,
        sequence: u64,
        refusal: &Refusal,
    ) {
        metrics::counter!(metric::NATS_MESSAGES_DEAD_LETTERED_TOTAL, "reason" => refusal.code())
            .increment(1);
        tracing::warn!(
            stream_sequence = sequence,
            subject = %message.subject,
            reason = refusal.code(),
            error = %refusal,
            "refused a message: copying it to the dead-letter subject and terminating it"
        );
        let mut headers = HeaderMap::new();
        headers.insert("Socket-Bridge-Reason", refusal.code());
        headers.insert("Socket-Bridge-Error", header_text(&refusal.to_string()));
        headers.insert(
            "Socket-Bridge-Subject",
            header_text(message.subject.as_str()),
        );
        headers.insert("Socket-Bridge-Stream", header_text(identity.name()));
        headers.insert("Socket-Bridge-Stream-Sequence", sequence.to_string());
        let mut body = message.payload.clone();
        if body.len() > self.max_message_bytes {
            headers.insert("Socket-Bridge-Body-Omitted", body.len().to_string());
            body = Bytes::new();
        }
        let subject = self.dead_letter_subject.clone();
        let mut published = self
            .client
            .publish_with_headers(subject.clone(), headers.clone(), body)
            .await;
        if let Err(e) = &published
            && e.kind() == PublishErrorKind::MaxPayloadExceeded
        {
            headers.insert(
                "Socket-Bridge-Body-Omitted",
                message.payload.len().to_string(),
            );
            published = self
                .client
                .publish_with_headers(subject, headers, Bytes::new())
                .await;
        }
        match published {
            Ok(()) => ack(message, AckKind::Term).await,
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), stream_sequence = sequence, "could not copy a refused message to the dead-letter subject; it will be redelivered");
                ack(message, AckKind::Nak(Some(Duration::from_secs(5)))).await;
            }
        }
    }
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
