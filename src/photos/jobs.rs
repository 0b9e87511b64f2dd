//! The processing job queue (docs/protocol.md, "Photos: the job queue").
//!
//! A job names a photo to make thumbnails of. The queue keeps nothing that the event log and the
//! photo's files do not already say: a photo with an original on disk whose status is still
//! `pending` or `processing` has a job to do, and at start the hub queues one again for each
//! (`recovery`). Nor is the attempt number in the job: the worker reads it from the
//! `photo.processing.started` events already stored. So the in-process queue is a plain
//! channel, and a job lost with the process is derived again from what is durable. With NATS
//! the jobs are JetStream messages (`jetstream`), which external workers can take too.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{AckKind, Message};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, mpsc};

use super::jetstream::{JetStreamJobs, JetStreamSource};
use crate::domain::{PhotoId, UserId};
use crate::telemetry::ErrorChain;

/// One photo to process, as queued (and, on NATS, as external workers receive it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// The photo.
    pub photo_id: PhotoId,
    /// Its owner.
    pub user_id: UserId,
    /// The original's media type, as decided from its bytes.
    pub content_type: String,
    /// Where the original is served (`GET`, with a token that may read the photo).
    pub original_url: String,
}

/// Why a job could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue is closed (the hub is stopping).
    #[error("the job queue is closed")]
    Closed,
    /// JetStream did not take the job.
    #[error("NATS JetStream: {0}")]
    JetStream(String),
}

/// Where jobs are put. Cheap to clone.
#[derive(Clone)]
pub enum JobQueue {
    /// The in-process queue of the embedded worker.
    Local(mpsc::UnboundedSender<Job>),
    /// The JetStream work queue.
    JetStream(Arc<JetStreamJobs>),
}

/// Where workers take jobs from.
pub enum JobSource {
    /// The in-process queue, shared by the embedded worker's tasks.
    Local(Mutex<mpsc::UnboundedReceiver<Job>>),
    /// The JetStream consumer shared with external workers.
    JetStream(Box<JetStreamSource>),
}

/// A job taken from the queue, to be finished or given back.
pub struct Delivery {
    /// The job.
    pub job: Job,
    message: Option<Message>,
}

impl JobQueue {
    /// An in-process queue and its source.
    pub fn local() -> (Self, Arc<JobSource>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            JobQueue::Local(tx),
            Arc::new(JobSource::Local(Mutex::new(rx))),
        )
    }

    /// The JetStream queue on `client`, and its source for the embedded worker.
    pub fn jetstream(client: async_nats::Client) -> (Self, Arc<JobSource>) {
        (
            JobQueue::JetStream(Arc::new(JetStreamJobs::new(client.clone()))),
            Arc::new(JobSource::JetStream(Box::new(JetStreamSource::new(client)))),
        )
    }

    /// Queues `job`; answers once the queue holds it.
    pub async fn enqueue(&self, job: Job) -> Result<(), QueueError> {
        match self {
            JobQueue::Local(tx) => tx.send(job).map_err(|_| QueueError::Closed),
            JobQueue::JetStream(jobs) => jobs.enqueue(&job).await,
        }
    }

    /// Whether the queue forgets its jobs when the process ends (they are derived again at
    /// start), as opposed to keeping them itself.
    pub fn is_in_process(&self) -> bool {
        matches!(self, JobQueue::Local(_))
    }
}

impl JobSource {
    /// The next job; `None` once the queue is closed.
    pub async fn next(&self) -> Option<Delivery> {
        match self {
            JobSource::Local(rx) => rx
                .lock()
                .await
                .recv()
                .await
                .map(|job| Delivery { job, message: None }),
            JobSource::JetStream(source) => {
                let (job, message) = source.next().await;
                Some(Delivery {
                    job,
                    message: Some(message),
                })
            }
        }
    }
}

impl Delivery {
    /// Tells the queue the job is still being worked on (JetStream waits its ack wait again).
    pub async fn working(&self) {
        self.ack(AckKind::Progress).await;
    }

    /// The job is done (completed, failed, or nothing left to do).
    pub async fn finish(self) {
        self.ack(AckKind::Ack).await;
    }

    /// Gives the job back, to be taken again after `delay`.
    pub async fn retry(self, queue: &JobQueue, delay: Duration) {
        if self.message.is_some() {
            self.ack(AckKind::Nak(Some(delay))).await;
            return;
        }
        let queue = queue.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if queue.enqueue(self.job).await.is_err() {
                tracing::debug!(
                    "the job queue is closed; the photo is tried again at the next start"
                );
            }
        });
    }

    async fn ack(&self, kind: AckKind) {
        if let Some(message) = &self.message
            && let Err(e) = message.ack_with(kind).await
        {
            tracing::debug!(error = %ErrorChain(&*e), "could not ack a photo job; JetStream will redeliver it");
        }
    }
}
