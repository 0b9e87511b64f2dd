//! At start: the jobs still to do, derived from what is durable (docs/protocol.md, "Photos: the
//! job queue"). Every photo directory is looked up in the event log:
//!
//! - status `pending` or `processing`: its job was queued, or cut off, before the last stop; it
//!   is queued again (the worker counts the attempts already made from the stored events);
//! - status `deleted`: the stop came between storing `photo.deleted` and removing the files;
//!   they are removed now;
//! - no status: the stop came between keeping the file and storing `photo.uploaded`, so the
//!   upload was never answered 202; the file is removed;
//! - `completed` or `failed`: nothing to do.

use super::files::{FileError, PhotoFiles};
use super::jobs::Job;
use super::original_url;
use crate::domain::ProcessingState;
use crate::store::{EventLog, StoreError};

/// Why recovery failed.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// Listing or removing files failed.
    #[error(transparent)]
    Files(#[from] FileError),
    /// The event log could not be read.
    #[error("reading photo statuses")]
    Store(#[from] StoreError),
}

/// The jobs of the photos left unfinished by the last stop.
#[derive(Debug, Default)]
pub struct Unfinished {
    /// Photos still `pending`: their job may never have been queued.
    pub pending: Vec<Job>,
    /// Photos left `processing`: an attempt was cut off.
    pub processing: Vec<Job>,
}

/// The jobs to queue again, after removing the files of photos that should have none. Blocking.
pub fn recover(files: &PhotoFiles, log: &EventLog) -> Result<Unfinished, RecoveryError> {
    files.prepare()?;
    let mut jobs = Unfinished::default();
    for photo in files.photos()? {
        let status = log.status(&photo)?;
        match status.as_ref().map(|s| s.status) {
            Some(ProcessingState::Pending | ProcessingState::Processing) => {
                let Some((_, kind)) = files.original(&photo) else {
                    continue;
                };
                let Some(status) = status else { continue };
                let list = if status.status == ProcessingState::Pending {
                    &mut jobs.pending
                } else {
                    &mut jobs.processing
                };
                list.push(Job {
                    original_url: original_url(&photo),
                    photo_id: photo,
                    user_id: status.user_id,
                    content_type: kind.content_type().to_owned(),
                });
            }
            Some(ProcessingState::Deleted) | None => {
                tracing::info!(photo = %photo, deleted = status.is_some(), "removing the files of a photo the event log does not keep");
                files.remove(&photo)?;
            }
            Some(ProcessingState::Completed | ProcessingState::Failed) => {}
        }
    }
    Ok(jobs)
}
