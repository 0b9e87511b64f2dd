//! The embedded worker: takes jobs from the queue and turns each photo into thumbnails, storing
//! its progress through [`Ingest`] as it goes (docs/protocol.md, "Photos: processing").
//!
//! One attempt stores `photo.processing.started` (with its `attempt`, counted from the attempts
//! already stored), a `photo.processing.progress` after each stage (`decode`, `resize`, `encode`,
//! `store`, with `progress` rising), then `photo.processing.completed` with the thumbnails, or
//! `photo.processing.failed` with a readable `error`. The CPU work runs on tokio's blocking pool,
//! never on the async workers. What happens after an attempt is the pure rule [`after_attempt`]:
//! a photo that cannot be decoded fails at once; an attempt that panicked, could not write its
//! files, or was cut off by a stop (found at the next start) is tried again, at most
//! `max_attempts` times in all, and then failed. A photo is never left `processing` for good.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::files::{FileError, PhotoFiles};
use super::jobs::{Delivery, Job, JobQueue, JobSource};
use super::thumbnail::{self, SIZES, ThumbnailError};
use super::{PhotoSettings, thumbnail_url};
use crate::domain::{EventInput, EventType, PhotoId, ProcessingState, Room};
use crate::ingest::{Ingest, IngestError};
use crate::store::{EventLog, StoreError};
use crate::telemetry::{ErrorChain, metric};

/// Pause before a job whose attempt could not be stored (the store failing) is tried again.
const STORE_RETRY_DELAY: Duration = Duration::from_secs(1);
/// Events read per page when counting a photo's attempts.
const PAGE: usize = 256;

/// What the worker needs. Cheap to clone.
#[derive(Clone)]
pub struct Worker {
    /// The photos' files.
    pub files: PhotoFiles,
    /// Where the attempts already made are read.
    pub log: EventLog,
    /// Where the processing events are stored.
    pub ingest: Ingest,
    /// Where a job to be tried again goes back.
    pub queue: JobQueue,
    /// Limits and attempts.
    pub settings: PhotoSettings,
}

/// How an attempt ended.
#[derive(Debug)]
pub enum Outcome {
    /// Thumbnails made and `completed` stored.
    Completed,
    /// The photo itself is at fault (corrupt, truncated, too many pixels): trying again would
    /// fail the same way.
    Unprocessable(ThumbnailError),
    /// The attempt broke for a reason that may pass (a panic, a file that could not be written).
    Broken(String),
    /// The photo was deleted meanwhile.
    Deleted,
    /// The event log could not store the attempt's events.
    Store(IngestError),
}

/// What to do after an attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Nothing more: the photo is completed, failed or gone.
    Done,
    /// Store `photo.processing.failed` with this error.
    Fail(String),
    /// Queue the job again.
    Retry,
    /// Queue the job again after a pause (the store is failing).
    RetryLater,
}

/// The rule after `attempt` (1-based) of at most `max_attempts` ended with `outcome`.
pub fn after_attempt(outcome: &Outcome, attempt: u32, max_attempts: u32) -> Next {
    match outcome {
        Outcome::Completed | Outcome::Deleted => Next::Done,
        Outcome::Unprocessable(e) => Next::Fail(e.to_string()),
        Outcome::Broken(_) if attempt < max_attempts => Next::Retry,
        Outcome::Broken(reason) => Next::Fail(format!(
            "processing failed {max_attempts} times; the last attempt: {reason}"
        )),
        Outcome::Store(_) => Next::RetryLater,
    }
}

/// The running worker tasks.
pub struct WorkerHandle {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl WorkerHandle {
    /// Stops taking jobs and waits (up to `limit`) for the jobs in hand to end. One still
    /// running then is left `processing` and tried again at the next start.
    pub async fn stop(self, limit: Duration) {
        let _ = self.stop.send(true);
        let all = futures::future::join_all(self.tasks);
        if tokio::time::timeout(limit, all).await.is_err() {
            tracing::warn!(
                limit_ms = limit.as_millis() as u64,
                "a photo was still being processed at shutdown; it is tried again at the next start"
            );
        }
    }
}

impl Worker {
    /// Starts `settings.worker_threads` tasks taking jobs from `source`.
    pub fn spawn(self, source: Arc<JobSource>) -> WorkerHandle {
        let (stop, stopped) = watch::channel(false);
        let tasks = (0..self.settings.worker_threads)
            .map(|_| {
                let (worker, source, mut stopped) =
                    (self.clone(), Arc::clone(&source), stopped.clone());
                tokio::spawn(async move {
                    loop {
                        let delivery = tokio::select! {
                            biased;
                            _ = stopped.wait_for(|stop| *stop) => return,
                            delivery = source.next() => delivery,
                        };
                        let Some(delivery) = delivery else { return };
                        worker.run(delivery).await;
                    }
                })
            })
            .collect();
        WorkerHandle { stop, tasks }
    }

    /// Runs one job to its end: an attempt, then what [`after_attempt`] says.
    async fn run(&self, delivery: Delivery) {
        let job = delivery.job.clone();
        let photo = job.photo_id.clone();
        let attempt = match self.next_attempt(&photo) {
            Ok(Some(attempt)) => attempt,
            Ok(None) => {
                tracing::debug!(photo = %photo, "no processing to do for this photo");
                delivery.finish().await;
                return;
            }
            Err(e) => {
                tracing::error!(photo = %photo, error = %ErrorChain(&e), "cannot read the photo's attempts; trying later");
                delivery.retry(&self.queue, STORE_RETRY_DELAY).await;
                return;
            }
        };
        let next = if attempt > self.settings.max_attempts {
            Next::Fail(format!(
                "processing was cut off {} times (the hub stopped during it)",
                self.settings.max_attempts
            ))
        } else {
            let started = Instant::now();
            let outcome = match self.stages(&delivery, attempt).await {
                Ok(()) => Outcome::Completed,
                Err(outcome) => outcome,
            };
            log_outcome(&photo, attempt, &outcome, started);
            after_attempt(&outcome, attempt, self.settings.max_attempts)
        };
        match next {
            Next::Done => delivery.finish().await,
            Next::Fail(error) => {
                metrics::counter!(metric::PHOTO_JOBS_TOTAL, "outcome" => "failed").increment(1);
                match self.store_failed(&job, attempt, &error).await {
                    Ok(()) => delivery.finish().await,
                    Err(e) => {
                        tracing::error!(photo = %photo, error = %ErrorChain(&e), "cannot store photo.processing.failed; trying later");
                        delivery.retry(&self.queue, STORE_RETRY_DELAY).await;
                    }
                }
            }
            Next::Retry => {
                metrics::counter!(metric::PHOTO_JOBS_TOTAL, "outcome" => "retried").increment(1);
                delivery.retry(&self.queue, Duration::ZERO).await;
            }
            Next::RetryLater => delivery.retry(&self.queue, STORE_RETRY_DELAY).await,
        }
    }

    /// The number of the attempt to make now (one more than the last `started` stored), or
    /// `None` when the photo has nothing left to process (unknown, completed, failed, deleted).
    fn next_attempt(&self, photo: &PhotoId) -> Result<Option<u32>, StoreError> {
        let waiting = self.log.status(photo)?.is_some_and(|s| {
            matches!(
                s.status,
                ProcessingState::Pending | ProcessingState::Processing
            )
        });
        if !waiting {
            return Ok(None);
        }
        last_attempt(&self.log, photo).map(|last| Some(last + 1))
    }

    /// One attempt: started, the four stages with their progress, completed.
    async fn stages(&self, delivery: &Delivery, attempt: u32) -> Result<(), Outcome> {
        let job = &delivery.job;
        let photo = &job.photo_id;
        self.store(
            job,
            attempt,
            EventType::ProcessingStarted,
            "started",
            json!({ "progress": 0 }),
        )
        .await?;
        let (path, kind) = self
            .files
            .original(photo)
            .ok_or_else(|| self.gone_or_broken(photo.clone(), "the original file is missing"))?;

        let max_pixels = self.settings.max_image_pixels;
        let decoded = blocking(move || thumbnail::decode(&path, kind, max_pixels))
            .await
            .map_err(Outcome::Broken)?
            .map_err(|e| match e {
                ThumbnailError::Read(e) => Outcome::Broken(format!("reading the original: {e}")),
                other => Outcome::Unprocessable(other),
            })?;
        let (width, height) = decoded.dimensions();
        delivery.working().await;
        self.progress(
            job,
            attempt,
            "decode",
            25,
            json!({ "width": width, "height": height }),
        )
        .await?;

        let scaled = blocking(move || thumbnail::scale(&decoded, &SIZES))
            .await
            .map_err(Outcome::Broken)?
            .map_err(Outcome::Unprocessable)?;
        delivery.working().await;
        self.progress(job, attempt, "resize", 50, json!({})).await?;

        let encoded = blocking(move || {
            scaled
                .iter()
                .map(thumbnail::encode)
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(Outcome::Broken)?
        .map_err(Outcome::Unprocessable)?;
        delivery.working().await;
        self.progress(job, attempt, "encode", 75, json!({})).await?;

        let thumbnails: Vec<Value> = encoded
            .iter()
            .map(|t| {
                json!({
                    "size": t.size,
                    "width": t.width,
                    "height": t.height,
                    "url": thumbnail_url(photo, t.size),
                })
            })
            .collect();
        let written = {
            let (files, photo) = (self.files.clone(), photo.clone());
            blocking(move || {
                encoded
                    .iter()
                    .try_for_each(|t| files.write_thumbnail(&photo, t.size, &t.bytes))
            })
            .await
            .map_err(Outcome::Broken)?
        };
        if let Err(e) = written {
            return Err(self.gone_or_broken(photo.clone(), &file_error(&e)));
        }
        // A delete that stored `photo.deleted` while the thumbnails were being written may have
        // removed the directory before they landed: the files written after it go too.
        if matches!(self.log.status(photo), Ok(Some(s)) if s.status == ProcessingState::Deleted) {
            let (files, gone) = (self.files.clone(), photo.clone());
            if let Ok(Err(e)) = blocking(move || files.remove(&gone)).await {
                tracing::warn!(photo = %photo, error = %ErrorChain(&e), "cannot remove the files of a photo deleted while processing");
            }
            return Err(Outcome::Deleted);
        }
        delivery.working().await;
        self.progress(job, attempt, "store", 90, json!({})).await?;
        self.store(
            job,
            attempt,
            EventType::ProcessingCompleted,
            "completed",
            json!({ "width": width, "height": height, "thumbnails": thumbnails }),
        )
        .await
    }

    /// [`Outcome::Deleted`] if the photo was deleted, else [`Outcome::Broken`] with `reason`.
    fn gone_or_broken(&self, photo: PhotoId, reason: &str) -> Outcome {
        match self.log.status(&photo) {
            Ok(Some(s)) if s.status == ProcessingState::Deleted => Outcome::Deleted,
            _ => Outcome::Broken(reason.to_owned()),
        }
    }

    async fn progress(
        &self,
        job: &Job,
        attempt: u32,
        stage: &str,
        progress: u8,
        extra: Value,
    ) -> Result<(), Outcome> {
        let mut data = json!({ "stage": stage, "progress": progress });
        merge(&mut data, extra);
        self.store(job, attempt, EventType::ProcessingProgress, stage, data)
            .await
    }

    /// Stores one event of this attempt: `{ photoId, userId, attempt, ...data }`, with an id
    /// made of the photo, the attempt and `step`, so that the same step is never stored twice.
    async fn store(
        &self,
        job: &Job,
        attempt: u32,
        event_type: EventType,
        step: &str,
        data: Value,
    ) -> Result<(), Outcome> {
        let mut body = json!({
            "photoId": job.photo_id.as_str(),
            "userId": job.user_id.as_str(),
            "attempt": attempt,
        });
        merge(&mut body, data);
        let input = EventInput::produced(
            format!("{}:attempt:{attempt}:{step}", job.photo_id),
            event_type,
            body,
        );
        self.ingest
            .ingest(vec![input])
            .await
            .map(|_| ())
            .map_err(Outcome::Store)
    }

    async fn store_failed(&self, job: &Job, attempt: u32, error: &str) -> Result<(), IngestError> {
        let attempt = attempt.min(self.settings.max_attempts);
        match self
            .store(
                job,
                attempt,
                EventType::ProcessingFailed,
                "failed",
                json!({ "error": error }),
            )
            .await
        {
            Err(Outcome::Store(e)) => Err(e),
            _ => Ok(()),
        }
    }
}

/// The highest `attempt` of the photo's stored `photo.processing.started` events (0 for none).
fn last_attempt(log: &EventLog, photo: &PhotoId) -> Result<u32, StoreError> {
    let room = Room::photo(photo);
    let mut after = 0;
    let mut last = 0;
    loop {
        let page = log.read(&room, after, PAGE)?;
        let Some(end) = page.last().map(|e| e.seq) else {
            return Ok(last);
        };
        for event in page
            .iter()
            .filter(|e| e.event_type == EventType::ProcessingStarted)
        {
            let attempt = serde_json::from_str::<Map<String, Value>>(&event.data)
                .ok()
                .and_then(|data| data.get("attempt").and_then(Value::as_u64))
                .and_then(|a| u32::try_from(a).ok())
                .unwrap_or(0);
            last = last.max(attempt);
        }
        after = end;
    }
}

/// Logs how an attempt ended and counts a completion.
fn log_outcome(photo: &PhotoId, attempt: u32, outcome: &Outcome, started: Instant) {
    let ms = started.elapsed().as_millis() as u64;
    match outcome {
        Outcome::Completed => {
            metrics::counter!(metric::PHOTO_JOBS_TOTAL, "outcome" => "completed").increment(1);
            metrics::histogram!(metric::PHOTO_PROCESSING_SECONDS)
                .record(started.elapsed().as_secs_f64());
            tracing::info!(photo = %photo, attempt, ms, "photo processed");
        }
        Outcome::Unprocessable(e) => {
            tracing::info!(photo = %photo, attempt, error = %ErrorChain(e), "photo cannot be processed")
        }
        Outcome::Broken(reason) => {
            tracing::warn!(photo = %photo, attempt, reason, "processing attempt broke")
        }
        Outcome::Deleted => tracing::info!(photo = %photo, "photo deleted while processing"),
        Outcome::Store(e) => {
            tracing::error!(photo = %photo, attempt, error = %ErrorChain(e), "cannot store the processing events")
        }
    }
}

/// Runs `f` on the blocking pool; a panic in it becomes the reason it broke.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        if e.is_panic() {
            let panic = e.into_panic();
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            format!("the worker panicked: {message}")
        } else {
            "the worker was cancelled".to_owned()
        }
    })
}

fn file_error(e: &FileError) -> String {
    format!("{}", ErrorChain(e))
}

fn merge(into: &mut Value, extra: Value) {
    if let (Value::Object(into), Value::Object(extra)) = (into, extra) {
        into.extend(extra);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A photo's own fault fails at once; a broken attempt is tried again until the last one;
    /// a store failure waits and tries again; completion and deletion end the job.
    #[test]
    fn what_follows_an_attempt() {
        let unprocessable = Outcome::Unprocessable(ThumbnailError::TooManyPixels {
            width: 10,
            height: 10,
            limit: 50,
        });
        assert!(
            matches!(after_attempt(&unprocessable, 1, 3), Next::Fail(e) if e.contains("10x10"))
        );
        let broken = Outcome::Broken("the worker panicked: boom".into());
        assert_eq!(after_attempt(&broken, 1, 3), Next::Retry);
        assert_eq!(after_attempt(&broken, 2, 3), Next::Retry);
        assert!(
            matches!(after_attempt(&broken, 3, 3), Next::Fail(e) if e.contains("3 times") && e.contains("boom"))
        );
        assert_eq!(after_attempt(&Outcome::Completed, 1, 3), Next::Done);
        assert_eq!(after_attempt(&Outcome::Deleted, 3, 3), Next::Done);
        let store = Outcome::Store(IngestError::Append(crate::store::AppendError::Store(
            StoreError::Closed,
        )));
        assert_eq!(after_attempt(&store, 3, 3), Next::RetryLater);
    }

    /// A panic on the blocking pool is caught and told in words.
    #[tokio::test]
    async fn panics_become_reasons() {
        let reason = blocking(|| -> u32 { panic!("decoder exploded") })
            .await
            .expect_err("panicked");
        assert_eq!(reason, "the worker panicked: decoder exploded");
        assert_eq!(blocking(|| 7).await, Ok(7));
    }
}
