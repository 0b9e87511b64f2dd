//! Photos on one node: the original design's upload flow (docs/protocol.md, "Photos").
//!
//! `POST /api/photos` hands the file to [`Photos::upload`], which keeps it under the data dir,
//! stores `photo.uploaded` through [`Ingest`] and queues a job; the embedded worker makes the
//! thumbnails and stores the processing events through [`Ingest`] too, so they reach sockets
//! like any producer's events.
//!
//! # Layout
//! - `kind`: the accepted formats, told by their bytes.
//! - `files`: where a photo's files live; the only code that names them.
//! - `upload`: receiving an upload, streamed to disk, checked, kept, announced, queued.
//! - `delete`: `photo.deleted`, then the files go.
//! - `jobs`: the job and the queue (in-process, or `jetstream` with NATS).
//! - `recovery`: at start, the jobs still to do, derived from what is durable.
//! - `thumbnail`: decode, scale, encode: the CPU work, on bytes only.
//! - `jpeg`: whether a JPEG is whole (the decoder forgives a cut-off file).
//! - `worker`: the embedded worker: attempts, stages, events, retries.

mod delete;
mod files;
mod jetstream;
mod jobs;
mod jpeg;
mod kind;
mod recovery;
pub mod thumbnail;
mod upload;
mod worker;

use std::path::Path;

use serde_json::json;

pub use delete::DeleteError;
pub use files::{FileError, PhotoFiles};
pub use jobs::{Job, JobQueue, JobSource, QueueError};
pub use kind::ImageKind;
pub use recovery::RecoveryError;
pub use thumbnail::SIZES as THUMBNAIL_SIZES;
pub use upload::{BodyError, UploadError, Uploaded};
pub use worker::WorkerHandle;

use crate::domain::{PhotoId, Room, UserId};
use crate::ingest::Ingest;
use crate::store::EventLog;

/// The live-only notice of a failed upload, sent to the uploader's `user:<id>` room.
pub const UPLOAD_FAILED: &str = "photo.upload.failed";

/// Uploads, the queue and the embedded worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhotoSettings {
    /// Largest upload, bytes.
    pub max_upload_bytes: u64,
    /// Largest image, in pixels (width times height).
    pub max_image_pixels: u64,
    /// Whether the embedded worker runs.
    pub worker: bool,
    /// Photos the embedded worker processes at once.
    pub worker_threads: usize,
    /// Times a photo's processing is tried before it is failed.
    pub max_attempts: u32,
}

/// Why the photos could not be set up at start.
#[derive(Debug, thiserror::Error)]
pub enum PhotoError {
    /// The files or statuses could not be read to find the jobs still to do.
    #[error("finding the photo jobs still to do")]
    Recovery(#[from] RecoveryError),
    /// Recovery panicked or was cancelled.
    #[error("photo recovery task")]
    Task(#[source] tokio::task::JoinError),
}

/// The photos of one hub. Cheap to clone.
#[derive(Clone)]
pub struct Photos {
    files: PhotoFiles,
    log: EventLog,
    ingest: Ingest,
    queue: JobQueue,
    settings: PhotoSettings,
    /// The queue's receiving side, kept while no embedded worker takes from it, so that
    /// in-process jobs wait (they are derived again at the next start anyway).
    _parked: Option<std::sync::Arc<JobSource>>,
}

impl Photos {
    /// Sets up the photos under `data_dir`: clears half-received uploads, removes the files of
    /// photos the log does not keep, queues the jobs still to do, and starts the embedded worker
    /// when `settings.worker` says so. With `nats`, jobs go to JetStream (which keeps them
    /// itself; only photos still `pending` are queued again, under the same message id).
    pub async fn start(
        settings: &PhotoSettings,
        data_dir: &Path,
        log: EventLog,
        ingest: Ingest,
        nats: Option<async_nats::Client>,
    ) -> Result<(Self, Option<WorkerHandle>), PhotoError> {
        let files = PhotoFiles::new(data_dir);
        let pending = {
            let (files, log) = (files.clone(), log.clone());
            tokio::task::spawn_blocking(move || recovery::recover(&files, &log))
                .await
                .map_err(PhotoError::Task)??
        };
        let (queue, source) = match nats {
            None => JobQueue::local(),
            Some(client) => JobQueue::jetstream(client),
        };
        let mut again = pending.pending;
        if queue.is_in_process() {
            again.extend(pending.processing);
        }
        if !again.is_empty() {
            tracing::info!(
                jobs = again.len(),
                "queueing the photo jobs left by the last stop"
            );
            tokio::spawn(requeue(queue.clone(), again));
        }
        let worker = settings.worker.then(|| {
            worker::Worker {
                files: files.clone(),
                log: log.clone(),
                ingest: ingest.clone(),
                queue: queue.clone(),
                settings: settings.clone(),
            }
            .spawn(std::sync::Arc::clone(&source))
        });
        let photos = Self {
            files,
            log,
            ingest,
            queue,
            settings: settings.clone(),
            _parked: worker.is_none().then_some(source),
        };
        Ok((photos, worker))
    }

    /// The largest upload accepted, bytes.
    pub fn max_upload_bytes(&self) -> u64 {
        self.settings.max_upload_bytes
    }

    /// The photos' files.
    pub fn files(&self) -> &PhotoFiles {
        &self.files
    }

    /// Tells `user`'s sockets, live and unstored, that an upload failed.
    pub fn upload_failed(&self, user: &UserId, photo_id: Option<&PhotoId>, error: &str) {
        let mut data = serde_json::Map::new();
        if let Some(photo) = photo_id {
            data.insert("photoId".into(), json!(photo.as_str()));
        }
        data.insert("error".into(), json!(error));
        self.ingest.notify(UPLOAD_FAILED, Room::user(user), data);
    }

    /// Removes the files of `photo` on a blocking thread, logging a failure.
    async fn remove_files(&self, photo: &PhotoId) {
        let (files, id) = (self.files.clone(), photo.clone());
        match tokio::task::spawn_blocking(move || files.remove(&id)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(photo = %photo, error = %crate::telemetry::ErrorChain(&e), "cannot remove a photo's files")
            }
            Err(e) => tracing::warn!(photo = %photo, error = %e, "removing a photo's files failed"),
        }
    }
}

/// Queues `jobs`, trying again (with a growing pause) while the queue refuses them (NATS not
/// reachable yet).
async fn requeue(queue: JobQueue, jobs: Vec<Job>) {
    let mut backoff = crate::bus::Backoff::new(
        std::time::Duration::from_millis(500),
        std::time::Duration::from_secs(30),
    );
    for job in jobs {
        loop {
            match queue.enqueue(job.clone()).await {
                Ok(()) => break,
                Err(QueueError::Closed) => return,
                Err(e) => {
                    tracing::warn!(photo = %job.photo_id, error = %crate::telemetry::ErrorChain(&e), "cannot queue a photo job again yet; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }
}

/// Where the original of `photo` is served.
pub fn original_url(photo: &PhotoId) -> String {
    format!("/api/photos/{photo}/original")
}

/// Where the thumbnail of `photo` with long side `size` is served.
pub fn thumbnail_url(photo: &PhotoId, size: u32) -> String {
    format!("/api/photos/{photo}/thumbnails/{size}")
}
