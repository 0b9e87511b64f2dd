//! Errors of the event log.

use std::path::PathBuf;
use std::sync::Arc;

use crate::domain::{PhotoId, UserId};

/// A failure of the store itself (I/O, corruption, schema).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed (I/O error, or corruption sled detected itself).
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    /// A record could not be decoded.
    #[error("corrupt record at key `{key}`: {reason}")]
    Corrupt {
        /// The record's key, escaped.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A record could not be encoded.
    #[error("could not encode a record")]
    Encode(#[source] bincode::error::EncodeError),
    /// The data dir was written by a newer version of socket-bridge.
    #[error(
        "the store has schema version {found}, newer than this build supports ({supported}); \
         run a newer socket-bridge or restore a backup"
    )]
    SchemaTooNew {
        /// The store's version.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },
    /// A migration failed; the store was left at the previous version.
    #[error("migration {version} ({name}) failed: {reason}")]
    Migration {
        /// The migration's number.
        version: u32,
        /// Its name.
        name: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// A group commit could not be written; none of its appends is acknowledged. Every append
    /// of the group gets the same failure.
    #[error("group commit failed")]
    CommitFailed(#[source] Arc<StoreError>),
    /// An earlier group commit failed; the event log refuses appends until it is reopened.
    #[error("the event log failed to write and refuses appends until it is reopened")]
    Unavailable(#[source] Arc<StoreError>),
    /// A write of the store's `thread` had not returned after `waited` (a stuck or full disk):
    /// the store is failed as if it had returned an error.
    #[error("a write of the event log's {thread} has not returned after {waited:?}")]
    WriteStalled {
        /// The thread that was writing.
        thread: &'static str,
        /// How long it had been writing.
        waited: std::time::Duration,
    },
    /// Another process holds the store directory.
    #[error("{} is in use by another socket-bridge{}: stop it, or use another data dir", path.display(), holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default())]
    Locked {
        /// The store directory.
        path: PathBuf,
        /// The process holding it, when it could be read.
        holder: Option<u32>,
    },
    /// A file of the store directory could not be created or opened.
    #[error("cannot create or open {}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// A file system step on the store's files failed.
    #[error("could not {action} {}", path.display())]
    File {
        /// What was being done (`rename`, `remove`, ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The directory holds no store (or is not a directory's path that can have siblings).
    #[error("{} holds no socket-bridge store", path.display())]
    NotAStore {
        /// The directory.
        path: PathBuf,
    },
    /// The disk has too little free space for what was asked.
    #[error("only {available} bytes are free on the disk of {}; this needs {needed}", path.display())]
    NoRoom {
        /// The store directory.
        path: PathBuf,
        /// Bytes free.
        available: u64,
        /// Bytes needed.
        needed: u64,
    },
    /// A thread of the event log could not be started.
    #[error("could not start the {name} thread")]
    Thread {
        /// The thread's name.
        name: &'static str,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The store was closed.
    #[error("the event log is closed")]
    Closed,
}

/// Why an append was refused. Nothing of the batch was stored.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The event at `index` of the batch breaks a rule that needs the stored state.
    #[error("event {index} of the batch: {rejection}")]
    Rejected {
        /// Position in the batch.
        index: usize,
        /// The rule it breaks.
        rejection: Rejection,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A rule of docs/protocol.md ("Stored events") that depends on stored state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The event's `userId` is not the photo's owner.
    #[error("owner_mismatch: photo {photo_id} belongs to {owner}, not {given}")]
    OwnerMismatch {
        /// The photo.
        photo_id: PhotoId,
        /// Its stored owner.
        owner: UserId,
        /// The `userId` the event carried.
        given: UserId,
    },
    /// The photo has no owner yet and the event has no `userId`.
    #[error("missing_owner: photo {photo_id} has no owner yet and the event carries no userId")]
    NoOwner {
        /// The photo.
        photo_id: PhotoId,
    },
    /// The event type is live-only (`system.health`) and is never stored.
    #[error("live_only: {0} events are not stored")]
    LiveOnly(&'static str),
}

impl Rejection {
    /// The short machine-readable code (`owner_mismatch`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::OwnerMismatch { .. } => "owner_mismatch",
            Rejection::NoOwner { .. } => "missing_owner",
            Rejection::LiveOnly(_) => "live_only",
        }
    }
}
