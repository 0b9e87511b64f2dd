//! Scheduled retention: runs the store's prune pass on a cron schedule (tokio-cron-scheduler),
//! never two at once, logging and counting each run, and hands the photos a pass forgot to
//! [`ForgetPhotos`] (which removes their files).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use croner::parser::{CronParser, Seconds};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::domain::{PhotoId, Timestamp};
use crate::store::{EventLog, PruneReport, RetentionPolicy, StoreError};
use crate::telemetry::{ErrorChain, metric};

/// Why retention could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// The cron expression does not parse.
    #[error(
        "invalid --prune-schedule `{schedule}`: {reason}; use cron with a seconds field, e.g. `0 */10 * * * *` (every ten minutes)"
    )]
    Schedule {
        /// The expression.
        schedule: String,
        /// The parser's complaint.
        reason: String,
    },
    /// The scheduler failed.
    #[error("prune scheduler")]
    Scheduler(#[source] tokio_cron_scheduler::JobSchedulerError),
    /// A prune pass failed in the store.
    #[error("prune pass")]
    Store(#[from] StoreError),
    /// A prune pass's task panicked or was cancelled.
    #[error("prune task")]
    Task(#[source] tokio::task::JoinError),
}

/// A finished retention pass: when it ended and what it removed, or why it failed.
#[derive(Debug, Clone)]
pub struct PruneRun {
    /// When it ended.
    pub finished_at: Timestamp,
    /// What it removed, or the failure in words.
    pub outcome: Result<PruneReport, String>,
}

/// The last pass the schedule ran since the hub started (for the support console). Cheap to
/// clone; clones share it.
#[derive(Debug, Clone, Default)]
pub struct LastPrune(Arc<std::sync::Mutex<Option<PruneRun>>>);

impl LastPrune {
    /// The last pass, if one ran.
    pub fn get(&self) -> Option<PruneRun> {
        self.0.lock().ok().and_then(|run| run.clone())
    }

    fn record(&self, outcome: Result<PruneReport, String>) {
        if let Ok(mut run) = self.0.lock() {
            *run = Some(PruneRun {
                finished_at: Timestamp::now(),
                outcome,
            });
        }
    }
}

/// Retention as operators see it: what it keeps, when it runs, and how its last pass went.
#[derive(Debug, Clone)]
pub struct RetentionView {
    /// What it keeps.
    pub policy: RetentionPolicy,
    /// When it runs.
    pub schedule: PruneSchedule,
    /// Its last pass.
    pub last_run: LastPrune,
}

/// Whoever keeps something per photo outside the event log (the photos' files): told which
/// photos a prune pass forgot, so that it lets go of them too.
pub trait ForgetPhotos: Send + Sync + 'static {
    /// Lets go of everything kept for `photos`. Blocking.
    fn forget(&self, photos: &[PhotoId]);
}

/// The running schedule.
pub struct RetentionScheduler {
    scheduler: JobScheduler,
    running: Arc<Mutex<Option<JoinHandle<()>>>>,
    last_run: LastPrune,
    /// The log the job prunes; emptied at stop, because the scheduler keeps its jobs (and what
    /// they hold) alive after shutdown, and the store's directory lock goes with the last handle.
    log: Arc<std::sync::Mutex<Option<EventLog>>>,
}

/// The default schedule: every ten minutes.
pub const DEFAULT_PRUNE_SCHEDULE: &str = "0 */10 * * * *";

/// A cron expression with a seconds field (`sec min hour day-of-month month day-of-week`) that
/// the scheduler accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneSchedule(String);

impl PruneSchedule {
    /// Checks `schedule` without scheduling anything.
    pub fn parse(schedule: &str) -> Result<Self, RetentionError> {
        let refused = |reason: String| RetentionError::Schedule {
            schedule: schedule.to_owned(),
            reason,
        };
        CronParser::builder()
            .seconds(Seconds::Required)
            .dom_and_dow(true)
            .build()
            .parse(schedule)
            .map_err(|e| refused(e.to_string()))?;
        Job::new_async(schedule, |_, _| Box::pin(async {}))
            .map(|_| Self(schedule.to_owned()))
            .map_err(|e| refused(format!("the scheduler refuses it ({e:?})")))
    }

    /// The expression.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for PruneSchedule {
    fn default() -> Self {
        Self(DEFAULT_PRUNE_SCHEDULE.to_owned())
    }
}

impl std::str::FromStr for PruneSchedule {
    type Err = RetentionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Runs one pass now, on a blocking thread, hands the photos it forgot to `forget`, records
/// metrics and logs the outcome.
pub async fn run_once(
    log: EventLog,
    policy: RetentionPolicy,
    forget: Arc<dyn ForgetPhotos>,
) -> Result<PruneReport, RetentionError> {
    let report = tokio::task::spawn_blocking(move || {
        let report = log.prune(&policy, Timestamp::now(), false);
        if let Ok(report) = &report {
            forget.forget(&report.photos_forgotten);
        }
        (report, log.size_on_disk())
    })
    .await
    .map_err(RetentionError::Task)?;
    let (report, size) = report;
    let report = report?;
    metrics::counter!(metric::PRUNE_RUNS_TOTAL).increment(1);
    metrics::counter!(metric::PRUNE_EVENTS_REMOVED_TOTAL).increment(report.events_removed);
    metrics::histogram!(metric::PRUNE_DURATION_SECONDS).record(report.duration_ms as f64 / 1000.0);
    if let Ok(size) = size {
        metrics::gauge!(metric::STORE_SIZE_ON_DISK_BYTES).set(size as f64);
    }
    tracing::info!(
        rooms = report.rooms,
        rooms_pruned = report.rooms_pruned,
        events_removed = report.events_removed,
        statuses_removed = report.statuses_removed,
        duration_ms = report.duration_ms,
        "prune pass done"
    );
    Ok(report)
}

impl RetentionScheduler {
    /// Schedules the prune pass on `schedule`, telling `forget` what each pass forgot. A run
    /// that would overlap a running one is skipped.
    pub async fn start(
        log: EventLog,
        policy: RetentionPolicy,
        schedule: &PruneSchedule,
        forget: Arc<dyn ForgetPhotos>,
    ) -> Result<Self, RetentionError> {
        let scheduler = JobScheduler::new()
            .await
            .map_err(RetentionError::Scheduler)?;
        let running: Arc<Mutex<Option<JoinHandle<()>>>> = Arc::default();
        let busy = Arc::new(AtomicBool::new(false));
        let log = Arc::new(std::sync::Mutex::new(Some(log)));
        let last_run = LastPrune::default();
        let job = {
            let (running, slot, last) = (Arc::clone(&running), Arc::clone(&log), last_run.clone());
            Job::new_async(schedule.as_str(), move |_, _| {
                let log = slot.lock().ok().and_then(|l| l.clone());
                let (running, busy, last, forget) = (
                    Arc::clone(&running),
                    Arc::clone(&busy),
                    last.clone(),
                    Arc::clone(&forget),
                );
                Box::pin(async move {
                    let Some(log) = log else {
                        return;
                    };
                    if busy.swap(true, Ordering::SeqCst) {
                        tracing::warn!("a prune pass is still running; skipping this one");
                        metrics::counter!(metric::PRUNE_RUNS_SKIPPED_TOTAL).increment(1);
                        return;
                    }
                    let task = tokio::spawn(async move {
                        match run_once(log, policy, forget).await {
                            Ok(report) => last.record(Ok(report)),
                            Err(e) => {
                                metrics::counter!(metric::PRUNE_FAILURES_TOTAL).increment(1);
                                tracing::error!(error = %ErrorChain(&e), "prune pass failed");
                                last.record(Err(ErrorChain(&e).to_string()));
                            }
                        }
                        busy.store(false, Ordering::SeqCst);
                    });
                    *running.lock().await = Some(task);
                })
            })
            .map_err(|e| RetentionError::Schedule {
                schedule: schedule.as_str().to_owned(),
                reason: e.to_string(),
            })?
        };
        scheduler
            .add(job)
            .await
            .map_err(RetentionError::Scheduler)?;
        scheduler.start().await.map_err(RetentionError::Scheduler)?;
        Ok(Self {
            scheduler,
            running,
            last_run,
            log,
        })
    }

    /// The last pass it ran (a handle that follows later passes too).
    pub fn last_run(&self) -> LastPrune {
        self.last_run.clone()
    }

    /// Stops scheduling and waits (up to `limit`) for a running pass to finish.
    pub async fn stop(mut self, limit: Duration) {
        if let Ok(mut log) = self.log.lock() {
            log.take();
        }
        if let Err(e) = self.scheduler.shutdown().await {
            tracing::warn!(error = %ErrorChain(&e), "prune scheduler did not shut down cleanly");
        }
        if let Some(task) = self.running.lock().await.take()
            && tokio::time::timeout(limit, task).await.is_err()
        {
            tracing::warn!("a prune pass was still running at shutdown");
        }
    }
}
