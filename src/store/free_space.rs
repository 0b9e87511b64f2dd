//! The free space the event log needs before it is opened. sled recovers a log left by an
//! unclean stop while it opens, rewriting part of it; a write failing there on a full disk left
//! the log unreadable for every later open (docs/reliability.md, "What the hub promises under each
//! fault"). So every open of the store (`log::open_tree`: the hub, `prune`, `compact`) asks for
//! room for that recovery first.

use std::path::Path;

use super::StoreError;

/// Free space always required: a few of sled's 512 KiB log segments.
const FLOOR_BYTES: u64 = 2 * 1024 * 1024;

/// Succeeds when the disk of `store_dir` has room to open the store there: 2 MiB plus twice
/// sled's largest snapshot, which recovery writes again. A store not created yet has nothing to
/// lose (creating it fails cleanly, with the reason), so only an existing one is checked.
pub(super) fn ensure_room_to_open(store_dir: &Path) -> Result<(), StoreError> {
    if !store_dir.is_dir() {
        return Ok(());
    }
    let available = fs2::available_space(store_dir).map_err(|source| StoreError::File {
        action: "read the free space of",
        path: store_dir.to_path_buf(),
        source,
    })?;
    let needed = FLOOR_BYTES.saturating_add(largest_snapshot(store_dir).saturating_mul(2));
    if available < needed {
        return Err(StoreError::NoRoom {
            path: store_dir.to_path_buf(),
            available,
            needed,
        });
    }
    Ok(())
}

/// The size of sled's largest finished snapshot file (`snap.<lsn>`) in `store_dir`; 0 when there
/// is none or the directory cannot be read.
fn largest_snapshot(store_dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(store_dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.starts_with("snap.") && !name.ends_with(".generating")
        })
        .filter_map(|entry| entry.metadata().ok())
        .map(|meta| meta.len())
        .max()
        .unwrap_or(0)
}
