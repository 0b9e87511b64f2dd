//! The processing job queue (docs/protocol.md, "Photos: the job queue").
//!
//! A job names a photo to make thumbnails of. The queue itself keeps nothing that the event log
//! and the photo's files do not already say: a photo with an original on disk whose status is
//! still `pending` or `processing` has a job to do, and at start the hub queues one for each
//! (`recovery`). The attempt number is not in the job either: the worker reads it from the
//! `photo.processing.started` events already stored. So the in-process queue is a plain channel,
//! and a job lost with the process is derived again from what is durable.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, mpsc};

use crate::domain::{PhotoId, UserId};

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
}

/// Where jobs are put. Cheap to clone.
#[derive(Clone)]
pub enum JobQueue {
    /// The in-process queue of the embedded worker.
    Local(mpsc::UnboundedSender<Job>),
}

/// Where workers take jobs from.
pub enum JobSource {
    /// The in-process queue, shared by the embedded worker's tasks.
    Local(Mutex<mpsc::UnboundedReceiver<Job>>),
}

/// A job taken from the queue, to be finished or given back.
pub struct Delivery {
    /// The job.
    pub job: Job,
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

    /// Queues `job`.
    pub async fn enqueue(&self, job: Job) -> Result<(), QueueError> {
        match self {
            JobQueue::Local(tx) => tx.send(job).map_err(|_| QueueError::Closed),
        }
    }
}

impl JobSource {
    /// The next job; `None` once the queue is closed.
    pub async fn next(&self) -> Option<Delivery> {
        match self {
            JobSource::Local(rx) => rx.lock().await.recv().await.map(|job| Delivery { job }),
        }
    }
}
