//! The store directory's own lock: one process (a hub, or `prune`) at a time. A lock file in the
//! directory is held with an exclusive advisory lock for as long as the store is open, and names
//! the holder's pid so that a refused second process can say who holds it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::StoreError;

/// The lock file's name inside the store directory.
const LOCK_FILE: &str = "socket-bridge.lock";

/// How long to wait for a handle that is being closed in this same process (an immediate
/// reopen: a restart in the same process, a test) to let go.
pub(super) const LOCK_WAIT: Duration = Duration::from_secs(3);

/// A held lock on a store directory; released when dropped.
#[derive(Debug)]
pub(super) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Creates `dir` if needed and locks it, waiting up to [`LOCK_WAIT`]. Refuses with
    /// [`StoreError::Locked`] when another process keeps it.
    pub fn acquire(dir: &Path) -> Result<Self, StoreError> {
        let io = |path: PathBuf| move |source| StoreError::Io { path, source };
        std::fs::create_dir_all(dir).map_err(io(dir.to_path_buf()))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(path.clone()))?;
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if started.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(StoreError::Locked {
                        path: dir.to_path_buf(),
                        holder: holder(&mut file),
                    });
                }
                Err(TryLockError::Error(source)) => return Err(io(path)(source)),
            }
        }
        file.set_len(0)
            .and_then(|()| file.write_all(std::process::id().to_string().as_bytes()))
            .and_then(|()| file.sync_all())
            .map_err(io(path))?;
        Ok(Self { _file: file })
    }
}

/// The pid the holder wrote, if it can be read.
fn holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second lock on a held directory is refused, naming this process; dropping the first
    /// lets it through.
    #[test]
    fn second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = DirLock::acquire(dir.path()).expect("first lock");
        match DirLock::acquire(dir.path()) {
            Err(StoreError::Locked { holder, .. }) => {
                assert_eq!(holder, Some(std::process::id()));
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(first);
        DirLock::acquire(dir.path()).expect("lock after release");
    }
}
