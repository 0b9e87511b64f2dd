//! Compaction of a stopped store: every record copied into a fresh sled directory, which then
//! takes the old directory's place.
//!
//! sled 0.34 reclaims a log segment only once at most half of it is live, so a store under
//! steady ingest and retention holds 15-20 times the bytes of the records it keeps; the same
//! records copied into a new directory take about 2.7 times (docs/benchmarks.md, "Disk usage on
//! the block layout"). The copy is byte for byte (records, not events): pending commit records and
//! an older schema stay as they are and are dealt with by the next open.
//!
//! Each step survives a crash: the copy is built in `<store>.compacting` and renamed
//! `<store>.compacted` once flushed; then that directory and the store swap names in one atomic
//! rename (`renameat2` with `RENAME_EXCHANGE`), so the store's path always holds a whole store,
//! and the old one, now `<store>.compacted`, is removed. [`finish_interrupted`], run by every
//! open under the store's lock, removes what a crash left: a `.compacting` copy (unfinished) and
//! a `.compacted` directory (after the swap the old store, before it a finished copy: the store
//! was locked throughout, so both hold the same records).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::StoreError;
use super::lock::DirLock;
use super::log::open_tree;

/// Records copied per batch.
const COPY_BATCH: usize = 10_000;

/// sled's page cache for each of the two stores (sled's default is 1 GiB; a copy reads and
/// writes each page once).
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Free space asked for the copy, as a multiple of the bytes of its records (sled took 2.7 times
/// them in a fresh directory; the rest is margin).
const ROOM_FACTOR: u64 = 4;

/// What a compaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactReport {
    /// Records copied (every tree's).
    pub records: u64,
    /// Their keys' and values' bytes.
    pub record_bytes: u64,
    /// The store directory's size before.
    pub bytes_before: u64,
    /// Its size after.
    pub bytes_after: u64,
    /// How long it took.
    pub duration_ms: u64,
}

/// Copies the store in `dir` (which no process may have open: this takes its lock) into a fresh
/// directory and puts the copy in its place. Refuses when the disk has less free space than
/// [`ROOM_FACTOR`] times the records' bytes, or than opening the store needs (as every open of
/// it: `open_tree`); on any failure before the swap the store is as it was and the
/// partial copy is removed.
pub fn compact(dir: &Path) -> Result<CompactReport, StoreError> {
    let started = Instant::now();
    let names = Siblings::of(dir)?;
    let lock = DirLock::acquire(dir)?;
    finish_interrupted(dir)?;
    if !dir.join("conf").is_file() {
        return Err(StoreError::NotAStore {
            path: dir.to_path_buf(),
        });
    }
    let bytes_before = dir_size(dir);
    let old = open_tree(dir, CACHE_BYTES)?;
    let (records, record_bytes) = measure(&old)?;
    let needed = record_bytes.saturating_mul(ROOM_FACTOR);
    let available = fs2::available_space(dir).map_err(io("read the free space of", dir))?;
    if available < needed {
        return Err(StoreError::NoRoom {
            path: dir.to_path_buf(),
            available,
            needed,
        });
    }
    if let Err(error) = copy(&old, &names.compacting) {
        remove(&names.compacting);
        return Err(error);
    }
    drop(old);
    rename(&names.compacting, &names.compacted)?;
    sync_dir(&names.parent)?;
    exchange(&names.compacted, dir)?;
    sync_dir(&names.parent)?;
    // The store's path holds the copy now; the old store (and the lock file in it) goes.
    drop(lock);
    remove(&names.compacted);
    Ok(CompactReport {
        records,
        record_bytes,
        bytes_before,
        bytes_after: dir_size(dir),
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// Removes what a compaction of `dir` interrupted by a crash left beside it (see the module
/// doc). The caller holds `dir`'s lock.
pub(super) fn finish_interrupted(dir: &Path) -> Result<(), StoreError> {
    // A path without a name (`/`, `.`) cannot have been compacted.
    let Ok(names) = Siblings::of(dir) else {
        return Ok(());
    };
    for leftover in [&names.compacting, &names.compacted] {
        if leftover.exists() {
            tracing::info!(path = %leftover.display(), "removing what an interrupted compaction left");
            std::fs::remove_dir_all(leftover).map_err(io("remove", leftover))?;
        }
    }
    Ok(())
}

/// The directories a compaction of a store uses beside it.
struct Siblings {
    parent: PathBuf,
    compacting: PathBuf,
    compacted: PathBuf,
}

impl Siblings {
    fn of(dir: &Path) -> Result<Self, StoreError> {
        let not_a_store = || StoreError::NotAStore {
            path: dir.to_path_buf(),
        };
        let name = dir.file_name().ok_or_else(not_a_store)?.to_string_lossy();
        let parent = match dir.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Ok(Self {
            compacting: parent.join(format!("{name}.compacting")),
            compacted: parent.join(format!("{name}.compacted")),
            parent,
        })
    }
}

/// The number of records of every tree of `db` and their bytes.
fn measure(db: &sled::Db) -> Result<(u64, u64), StoreError> {
    let mut records = 0u64;
    let mut bytes = 0u64;
    for name in db.tree_names() {
        for record in db.open_tree(&name)?.iter() {
            let (key, value) = record?;
            records += 1;
            bytes += (key.len() + value.len()) as u64;
        }
    }
    Ok((records, bytes))
}

/// Copies every tree of `db` into a new sled directory at `target` (which [`finish_interrupted`]
/// has cleared) and flushes it.
fn copy(db: &sled::Db, target: &Path) -> Result<(), StoreError> {
    let fresh = sled::Config::new()
        .path(target)
        .cache_capacity(CACHE_BYTES)
        .open()?;
    for name in db.tree_names() {
        let to = fresh.open_tree(&name)?;
        let mut batch = sled::Batch::default();
        let mut staged = 0;
        for record in db.open_tree(&name)?.iter() {
            let (key, value) = record?;
            batch.insert(key, value);
            staged += 1;
            if staged == COPY_BATCH {
                to.apply_batch(std::mem::take(&mut batch))?;
                staged = 0;
            }
        }
        to.apply_batch(batch)?;
    }
    fresh.flush()?;
    Ok(())
}

/// Swaps the names of two directories in one step: each path holds a whole directory at every
/// moment, the one or the other.
fn exchange(a: &Path, b: &Path) -> Result<(), StoreError> {
    let c_path = |path: &Path| {
        CString::new(path.as_os_str().as_bytes()).map_err(|_| StoreError::NotAStore {
            path: path.to_path_buf(),
        })
    };
    let (from, to) = (c_path(a)?, c_path(b)?);
    // SAFETY: both pointers are NUL-terminated strings that live across the call.
    let failed = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    } != 0;
    if failed {
        return Err(io("swap with the store", a)(std::io::Error::last_os_error()));
    }
    Ok(())
}

fn rename(from: &Path, to: &Path) -> Result<(), StoreError> {
    std::fs::rename(from, to).map_err(io("rename", from))
}

/// Makes the renames in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|file| file.sync_all())
        .map_err(io("sync", dir))
}

/// Removes a directory the compaction no longer needs; a failure is logged (the next open or
/// compaction removes it).
fn remove(dir: &Path) {
    if let Err(error) = std::fs::remove_dir_all(dir)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %dir.display(), %error, "could not remove a directory of the compaction; the next open removes it");
    }
}

/// The bytes of the files under `dir` (0 for what cannot be read).
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => dir_size(&entry.path()),
            Ok(_) => entry.metadata().map(|meta| meta.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::File {
        action,
        path,
        source,
    }
}
