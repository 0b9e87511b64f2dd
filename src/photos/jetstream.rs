//! The job queue on NATS JetStream (docs/protocol.md, "Photos: the job queue"): with
//! `--nats-url`, jobs go to the work-queue stream [`STREAM`] (subject [`SUBJECT`]), where the
//! embedded worker and any external worker take them from the shared durable pull consumer
//! [`CONSUMER`]. A job is acked when its photo is completed or failed, so a worker that dies
//! mid-job leaves it to be redelivered after the ack wait; each job is published with the
//! `Nats-Msg-Id` `<photoId>:job`, so JetStream drops a second publication within its duplicate
//! window. External workers publish the processing events to the producers' stream, and they
//! come back through the hub's NATS ingest like any producer's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::Client;
use async_nats::header::{HeaderMap, NATS_MESSAGE_ID};
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::{self, AckKind, Message, stream};
use futures::StreamExt;
use tokio::sync::Mutex;

use super::jobs::{Job, QueueError};
use crate::bus::Backoff;
use crate::telemetry::ErrorChain;

/// The work-queue stream of photo jobs.
pub const STREAM: &str = "PHOTO_JOBS";
/// The subject jobs are published on.
pub const SUBJECT: &str = "jobs.photo-processing";
/// The durable pull consumer every worker (embedded or external) takes jobs from.
pub const CONSUMER: &str = "photo-workers";
/// How long a worker may hold a job without a sign of progress before it is redelivered.
const ACK_WAIT: Duration = Duration::from_secs(60);
/// How long JetStream remembers a job's id to drop a second publication.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Publishes jobs to [`STREAM`], creating it on first use.
pub struct JetStreamJobs {
    js: jetstream::Context,
    ready: AtomicBool,
}

impl JetStreamJobs {
    /// Jobs published with `client`.
    pub fn new(client: Client) -> Self {
        Self {
            js: jetstream::new(client),
            ready: AtomicBool::new(false),
        }
    }

    /// Publishes `job` and waits for JetStream to have stored it.
    pub async fn enqueue(&self, job: &Job) -> Result<(), QueueError> {
        if !self.ready.load(Ordering::SeqCst) {
            ensure_stream(&self.js).await?;
            self.ready.store(true, Ordering::SeqCst);
        }
        let body = serde_json::to_vec(job).map_err(|e| QueueError::JetStream(e.to_string()))?;
        let mut headers = HeaderMap::new();
        headers.insert(NATS_MESSAGE_ID, format!("{}:job", job.photo_id).as_str());
        let failed = |e: &dyn std::error::Error| QueueError::JetStream(ErrorChain(e).to_string());
        self.js
            .publish_with_headers(SUBJECT, headers, body.into())
            .await
            .map_err(|e| failed(&e))?
            .await
            .map_err(|e| failed(&e))?;
        Ok(())
    }
}

/// Takes jobs from [`CONSUMER`] for the embedded worker, setting the stream and consumer up
/// (again) whenever NATS is back after an outage.
pub struct JetStreamSource {
    js: jetstream::Context,
    messages: Mutex<Option<pull::Stream>>,
}

impl JetStreamSource {
    /// A source reading with `client`.
    pub fn new(client: Client) -> Self {
        Self {
            js: jetstream::new(client),
            messages: Mutex::new(None),
        }
    }

    /// The next job and its message (to ack or nak). Waits through NATS outages.
    pub async fn next(&self) -> (Job, Message) {
        let mut messages = self.messages.lock().await;
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        loop {
            let stream = match messages.as_mut() {
                Some(stream) => stream,
                None => match open(&self.js).await {
                    Ok(stream) => messages.insert(stream),
                    Err(e) => {
                        tracing::warn!(error = %ErrorChain(&e), "cannot read photo jobs from NATS; retrying");
                        tokio::time::sleep(backoff.next_delay()).await;
                        continue;
                    }
                },
            };
            match stream.next().await {
                Some(Ok(message)) => match serde_json::from_slice::<Job>(&message.payload) {
                    Ok(job) => return (job, message),
                    Err(e) => {
                        tracing::warn!(error = %e, "a photo job message is not a job; terminating it");
                        if let Err(e) = message.ack_with(AckKind::Term).await {
                            tracing::debug!(error = %ErrorChain(&*e), "could not terminate a malformed job");
                        }
                    }
                },
                Some(Err(e)) => {
                    tracing::warn!(error = %ErrorChain(&e), "reading photo jobs failed; opening the consumer again");
                    *messages = None;
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                None => *messages = None,
            }
        }
    }
}

/// Makes sure [`STREAM`] exists.
async fn ensure_stream(js: &jetstream::Context) -> Result<stream::Stream, QueueError> {
    js.get_or_create_stream(stream::Config {
        name: STREAM.to_owned(),
        subjects: vec![SUBJECT.to_owned()],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    })
    .await
    .map_err(|e| QueueError::JetStream(ErrorChain(&e).to_string()))
}

/// Makes sure the stream and [`CONSUMER`] exist, and starts reading.
async fn open(js: &jetstream::Context) -> Result<pull::Stream, QueueError> {
    let failed = |e: &dyn std::error::Error| QueueError::JetStream(ErrorChain(e).to_string());
    let stream = ensure_stream(js).await?;
    let consumer: PullConsumer = stream
        .get_or_create_consumer(
            CONSUMER,
            pull::Config {
                durable_name: Some(CONSUMER.to_owned()),
                description: Some(
                    "photo workers: socket-bridge's embedded one and external ones".into(),
                ),
                ack_policy: AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                max_deliver: -1,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| failed(&e))?;
    consumer.messages().await.map_err(|e| failed(&e))
}
