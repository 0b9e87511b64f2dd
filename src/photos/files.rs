//! Where a photo's files live under the data dir, and the only code that names them.
//!
//! ```text
//! <data-dir>/photos/incoming/<random>.part    an upload being received (cleared at start)
//! <data-dir>/photos/<photoId>/original.<ext>  the upload, as received (ext from its bytes)
//! <data-dir>/photos/<photoId>/<size>.jpg      a thumbnail (256 and 1024)
//! ```
//!
//! Only photos uploaded to this hub have files, and their ids are made by the hub (32 lowercase
//! hex digits, see [`PhotoFiles::new_photo_id`]). A photo id from anywhere else (a request, a
//! producer's event) is never turned into a path unless it has exactly that form, so no id
//! (`..`, `a.b`, `x:y`) can name a file outside its own directory. Files are written to a
//! temporary name, synced, then renamed into place: a reader sees a whole file or none.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use super::ImageKind;
use crate::domain::PhotoId;
use crate::retention::ForgetPhotos;

/// Length of a hub-made photo id.
const ID_LEN: usize = 32;
/// The directory of uploads being received.
const INCOMING: &str = "incoming";

/// A file operation failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {path}")]
pub struct FileError {
    /// What the hub was doing.
    pub action: &'static str,
    /// The path.
    pub path: String,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

impl FileError {
    fn new(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.display().to_string();
        move |source| Self {
            action,
            path,
            source,
        }
    }

    /// Whether the file or directory was not there.
    pub fn is_not_found(&self) -> bool {
        self.source.kind() == ErrorKind::NotFound
    }
}

/// The photos' files under one data dir. Cheap to clone. Every method does blocking file I/O:
/// call it from a blocking thread.
#[derive(Debug, Clone)]
pub struct PhotoFiles {
    root: PathBuf,
}

impl PhotoFiles {
    /// The files under `data_dir/photos`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join("photos"),
        }
    }

    /// Creates the directories, and removes uploads a stop left half-received.
    pub fn prepare(&self) -> Result<(), FileError> {
        let incoming = self.root.join(INCOMING);
        match fs::remove_dir_all(&incoming) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(FileError::new("clear", &incoming)(e)),
        }
        fs::create_dir_all(&incoming).map_err(FileError::new("create", &incoming))
    }

    /// A fresh photo id: 128 random bits as 32 lowercase hex digits.
    pub fn new_photo_id() -> PhotoId {
        let n: u128 = rand::random();
        PhotoId::parse(&format!("{n:032x}")).expect("32 hex digits are a valid photo id")
    }

    /// A new file to receive an upload into.
    pub fn incoming(&self) -> PathBuf {
        let n: u128 = rand::random();
        self.root.join(INCOMING).join(format!("{n:032x}.part"))
    }

    /// The directory of `photo`, if its id is one the hub makes.
    fn dir(&self, photo: &PhotoId) -> Option<PathBuf> {
        let id = photo.as_str();
        let hub_made = id.len() == ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        hub_made.then(|| self.root.join(id))
    }

    /// Moves a fully received upload into place as the original of `photo`, synced.
    pub fn keep_original(
        &self,
        received: &Path,
        photo: &PhotoId,
        kind: ImageKind,
    ) -> Result<(), FileError> {
        let dir = self.dir(photo).ok_or_else(|| not_hub_made(photo))?;
        fs::create_dir(&dir).map_err(FileError::new("create", &dir))?;
        let path = dir.join(format!("original.{}", kind.extension()));
        fs::rename(received, &path).map_err(FileError::new("move the upload to", &path))?;
        sync_dir(&dir)?;
        sync_dir(&self.root)
    }

    /// The original of `photo` and its format, if it is there.
    pub fn original(&self, photo: &PhotoId) -> Option<(PathBuf, ImageKind)> {
        let dir = self.dir(photo)?;
        ImageKind::ALL.into_iter().find_map(|kind| {
            let path = dir.join(format!("original.{}", kind.extension()));
            path.is_file().then_some((path, kind))
        })
    }

    /// Where the thumbnail of `photo` with long side `size` is kept (whether or not it exists).
    pub fn thumbnail(&self, photo: &PhotoId, size: u32) -> Option<PathBuf> {
        Some(self.dir(photo)?.join(format!("{size}.jpg")))
    }

    /// Writes the thumbnail of `photo` with long side `size`: to a temporary name, synced, then
    /// renamed into place. Fails if the photo's directory is gone (it was deleted meanwhile).
    pub fn write_thumbnail(
        &self,
        photo: &PhotoId,
        size: u32,
        bytes: &[u8],
    ) -> Result<(), FileError> {
        let path = self
            .thumbnail(photo, size)
            .ok_or_else(|| not_hub_made(photo))?;
        let temp = path.with_extension("jpg.part");
        let mut file = fs::File::create(&temp).map_err(FileError::new("create", &temp))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(FileError::new("write", &temp))?;
        fs::rename(&temp, &path).map_err(FileError::new("rename", &path))?;
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    }

    /// Removes every file of `photo` (nothing to do when there are none).
    pub fn remove(&self, photo: &PhotoId) -> Result<(), FileError> {
        let Some(dir) = self.dir(photo) else {
            return Ok(());
        };
        match fs::remove_dir_all(&dir) {
            Ok(()) => sync_dir(&self.root),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(FileError::new("remove", &dir)(e)),
        }
    }

    /// Every photo that has a directory here.
    pub fn photos(&self) -> Result<Vec<PhotoId>, FileError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(FileError::new("list", &self.root)(e)),
        };
        let mut photos = Vec::new();
        for entry in entries {
            let entry = entry.map_err(FileError::new("list", &self.root))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if let Ok(photo) = PhotoId::parse(&name)
                && self.dir(&photo).is_some()
            {
                photos.push(photo);
            }
        }
        Ok(photos)
    }
}

impl ForgetPhotos for PhotoFiles {
    fn forget(&self, photos: &[PhotoId]) {
        for photo in photos {
            if let Err(e) = self.remove(photo) {
                tracing::warn!(photo = %photo, error = %crate::telemetry::ErrorChain(&e), "cannot remove the files of a photo retention forgot");
            }
        }
    }
}

fn not_hub_made(photo: &PhotoId) -> FileError {
    FileError {
        action: "name files for",
        path: photo.to_string(),
        source: std::io::Error::new(ErrorKind::InvalidInput, "not a photo id this hub made"),
    }
}

/// Makes a directory's entries (a rename, a removal) durable.
fn sync_dir(dir: &Path) -> Result<(), FileError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(FileError::new("sync", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only ids of the hub's own form are turned into paths; everything else has no files.
    #[test]
    fn only_hub_made_ids_name_files() {
        let dir = tempfile::tempdir().expect("dir");
        let files = PhotoFiles::new(dir.path());
        let made = PhotoFiles::new_photo_id();
        assert!(files.thumbnail(&made, 256).is_some());
        for id in [
            "..",
            "a.b",
            "x:y",
            "ABCDEF0123456789ABCDEF0123456789",
            "0123",
        ] {
            let photo = PhotoId::parse(id).expect("a valid photo id");
            assert!(files.thumbnail(&photo, 256).is_none(), "{id}");
            assert!(files.original(&photo).is_none(), "{id}");
            assert!(files.remove(&photo).is_ok(), "{id}");
        }
    }

    /// An original is kept, found with its format, listed, and removed with its thumbnails.
    #[test]
    fn keep_find_list_remove() {
        let dir = tempfile::tempdir().expect("dir");
        let files = PhotoFiles::new(dir.path());
        files.prepare().expect("prepare");
        let photo = PhotoFiles::new_photo_id();
        let received = files.incoming();
        fs::write(&received, b"\x89PNG\r\n\x1a\n").expect("write");
        files
            .keep_original(&received, &photo, ImageKind::Png)
            .expect("keep");
        let (path, kind) = files.original(&photo).expect("found");
        assert_eq!(kind, ImageKind::Png);
        assert!(path.ends_with("original.png"));
        files
            .write_thumbnail(&photo, 256, b"jpeg")
            .expect("thumbnail");
        assert_eq!(files.photos().expect("list"), vec![photo.clone()]);
        files.remove(&photo).expect("remove");
        assert!(files.original(&photo).is_none());
        assert!(files.photos().expect("list").is_empty());
        assert!(
            files.write_thumbnail(&photo, 256, b"jpeg").is_err(),
            "deleted"
        );
    }
}
