//! Receiving an upload (docs/protocol.md, "Photos: upload"): the bytes are streamed to a file
//! under the data dir as they arrive (never held whole in memory), counted against the size
//! limit, typed by their first bytes, and their header checked against the pixel limit. Only then
//! is the file moved into place under a name the hub made, `photo.uploaded` stored through
//! [`Ingest`], and the job queued. A failure at any step removes what was written.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::files::{FileError, PhotoFiles};
use super::jobs::{Job, QueueError};
use super::kind::{ImageKind, SNIFF_LEN};
use super::thumbnail::{self, ThumbnailError};
use super::{Photos, original_url};
use crate::domain::{EventInput, EventType, PhotoId, UserId};
use crate::ingest::IngestError;

/// What `photo.uploaded` says to the user, as in the original design.
pub const UPLOADED_MESSAGE: &str = "Photo uploaded and queued for processing";
/// Longest `filename` kept, in characters.
const MAX_FILENAME_CHARS: usize = 255;
/// Write buffer of an upload being received.
const WRITE_BUFFER: usize = 256 * 1024;

/// The request body broke while it was being read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body is larger than the server accepts.
    #[error("the request body is too large")]
    TooLarge,
    /// The body is malformed or was cut off.
    #[error("{0}")]
    Broken(String),
}

/// Why an upload was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The multipart body has no file in the field `photo`.
    #[error("no file in the multipart field `photo`")]
    NoFile,
    /// The body is not a readable multipart body.
    #[error("malformed multipart body: {0}")]
    Malformed(String),
    /// The file is larger than `--max-upload-bytes`.
    #[error("the photo is larger than the {limit} bytes allowed")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The file is not a JPEG, PNG or WebP image.
    #[error("{0}")]
    Unsupported(String),
    /// The image has more pixels than `--max-image-pixels`.
    #[error(transparent)]
    TooManyPixels(ThumbnailError),
    /// Writing the file failed.
    #[error("storing the upload")]
    Files(#[from] FileError),
    /// `photo.uploaded` could not be stored.
    #[error("storing photo.uploaded")]
    Ingest(#[from] IngestError),
    /// The job could not be queued (`photo.uploaded` is stored; the photo is failed).
    #[error("queueing the processing job")]
    Queue {
        /// The photo.
        photo_id: PhotoId,
        /// Why.
        #[source]
        source: QueueError,
    },
}

impl UploadError {
    /// The photo the failure is about, once `photo.uploaded` was stored for it.
    pub fn photo_id(&self) -> Option<&PhotoId> {
        match self {
            UploadError::Queue { photo_id, .. } => Some(photo_id),
            _ => None,
        }
    }
}

/// An accepted upload.
#[derive(Debug, Clone)]
pub struct Uploaded {
    /// The photo's id, made by the hub.
    pub photo_id: PhotoId,
    /// The owner.
    pub user_id: UserId,
    /// The file name the client gave (for display only).
    pub filename: String,
}

/// A file received into `incoming/`, typed.
struct Received {
    path: PathBuf,
    kind: ImageKind,
    size: u64,
}

impl Photos {
    /// Receives the file `body` for `owner` (`filename` as the client named it), keeps it, stores
    /// `photo.uploaded` and queues its job.
    pub async fn upload<S>(
        &self,
        owner: &UserId,
        filename: Option<&str>,
        body: S,
    ) -> Result<Uploaded, UploadError>
    where
        S: Stream<Item = Result<Bytes, BodyError>> + Unpin,
    {
        let temp = self.files.incoming();
        let received = match receive(&temp, body, self.settings.max_upload_bytes).await {
            Ok(received) => received,
            Err(e) => {
                discard(&temp).await;
                return Err(e);
            }
        };
        let photo_id = PhotoFiles::new_photo_id();
        let (files, max_pixels, id) = (
            self.files.clone(),
            self.settings.max_image_pixels,
            photo_id.clone(),
        );
        let (path, kind) = (received.path.clone(), received.kind);
        let kept = tokio::task::spawn_blocking(move || -> Result<(u32, u32), UploadError> {
            let dimensions =
                thumbnail::dimensions(&path, kind, max_pixels).map_err(|e| match e {
                    e @ ThumbnailError::TooManyPixels { .. } => UploadError::TooManyPixels(e),
                    other => UploadError::Unsupported(format!(
                        "the file starts like a {} image but its header cannot be read: {other}",
                        kind.extension().to_uppercase()
                    )),
                })?;
            files.keep_original(&path, &id, kind)?;
            Ok(dimensions)
        })
        .await
        .unwrap_or_else(|e| {
            Err(UploadError::Unsupported(format!(
                "reading the image header failed: {e}"
            )))
        });
        let (width, height) = match kept {
            Ok(dimensions) => dimensions,
            Err(e) => {
                discard(&received.path).await;
                return Err(e);
            }
        };

        let filename = display_name(filename, received.kind);
        let uploaded = EventInput::produced(
            format!("{photo_id}:uploaded"),
            EventType::PhotoUploaded,
            json!({
                "photoId": photo_id.as_str(),
                "userId": owner.as_str(),
                "filename": filename,
                "status": "pending",
                "message": UPLOADED_MESSAGE,
                "contentType": received.kind.content_type(),
                "size": received.size,
                "width": width,
                "height": height,
            }),
        );
        if let Err(e) = self.ingest.ingest(vec![uploaded]).await {
            self.remove_files(&photo_id).await;
            return Err(e.into());
        }
        let job = Job {
            photo_id: photo_id.clone(),
            user_id: owner.clone(),
            content_type: received.kind.content_type().to_owned(),
            original_url: original_url(&photo_id),
        };
        if let Err(source) = self.queue.enqueue(job).await {
            self.fail_unqueued(&photo_id, owner, &source).await;
            return Err(UploadError::Queue { photo_id, source });
        }
        metrics::counter!(crate::telemetry::metric::PHOTO_UPLOADS_TOTAL).increment(1);
        Ok(Uploaded {
            photo_id,
            user_id: owner.clone(),
            filename,
        })
    }

    /// Stores `photo.processing.failed` for a photo whose job could not be queued, so that it is
    /// not left `pending`.
    async fn fail_unqueued(&self, photo_id: &PhotoId, owner: &UserId, why: &QueueError) {
        let failed = EventInput::produced(
            format!("{photo_id}:unqueued:failed"),
            EventType::ProcessingFailed,
            json!({
                "photoId": photo_id.as_str(),
                "userId": owner.as_str(),
                "error": format!("the processing job could not be queued: {why}"),
            }),
        );
        if let Err(e) = self.ingest.ingest(vec![failed]).await {
            tracing::error!(photo = %photo_id, error = %crate::telemetry::ErrorChain(&e), "cannot store photo.processing.failed for an unqueued job");
        }
    }
}

/// Streams `body` into a new file at `path`: typed by its first bytes (refused at once when
/// they are no accepted image), counted against `limit` (refused as soon as it passes it), and
/// synced to disk.
async fn receive<S>(path: &Path, mut body: S, limit: u64) -> Result<Received, UploadError>
where
    S: Stream<Item = Result<Bytes, BodyError>> + Unpin,
{
    let file = tokio::fs::File::create(path)
        .await
        .map_err(|source| FileError {
            action: "create",
            path: path.display().to_string(),
            source,
        })?;
    let mut out = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
    let io = |source| FileError {
        action: "write",
        path: path.display().to_string(),
        source,
    };
    let mut head = Vec::with_capacity(SNIFF_LEN);
    let mut kind = None;
    let mut size: u64 = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| match e {
            BodyError::TooLarge => UploadError::TooLarge { limit },
            BodyError::Broken(detail) => UploadError::Malformed(detail),
        })?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(UploadError::TooLarge { limit });
        }
        if kind.is_none() {
            let wanted = SNIFF_LEN - head.len();
            head.extend_from_slice(&chunk[..chunk.len().min(wanted)]);
            if head.len() == SNIFF_LEN {
                kind = Some(sniff(&head)?);
            }
        }
        out.write_all(&chunk).await.map_err(io)?;
    }
    let kind = match kind {
        Some(kind) => kind,
        None if head.is_empty() => return Err(UploadError::NoFile),
        None => sniff(&head)?,
    };
    out.flush().await.map_err(io)?;
    out.into_inner().sync_all().await.map_err(io)?;
    Ok(Received {
        path: path.to_owned(),
        kind,
        size,
    })
}

fn sniff(head: &[u8]) -> Result<ImageKind, UploadError> {
    ImageKind::sniff(head)
        .ok_or_else(|| UploadError::Unsupported("the file is not a JPEG, PNG or WebP image".into()))
}

/// The client's file name, for display: its last path component, without control characters,
/// at most 255 characters; `photo.<ext>` when there is none.
fn display_name(given: Option<&str>, kind: ImageKind) -> String {
    let name: String = given
        .unwrap_or("")
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_FILENAME_CHARS)
        .collect();
    let name = name.trim();
    if name.is_empty() {
        format!("photo.{}", kind.extension())
    } else {
        name.to_owned()
    }
}

/// Removes a partly received upload (nothing to do if it is gone).
async fn discard(path: &Path) {
    if let Err(e) = tokio::fs::remove_file(path).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove a refused upload");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// File names are shown as given, minus any path and control characters.
    #[test]
    fn display_names() {
        assert_eq!(display_name(Some("cat.jpg"), ImageKind::Jpeg), "cat.jpg");
        assert_eq!(
            display_name(Some("../../etc/passwd"), ImageKind::Jpeg),
            "passwd"
        );
        assert_eq!(
            display_name(Some("C:\\pics\\a\u{7}.png"), ImageKind::Png),
            "a.png"
        );
        assert_eq!(display_name(None, ImageKind::Webp), "photo.webp");
        assert_eq!(display_name(Some("  "), ImageKind::Png), "photo.png");
        assert_eq!(
            display_name(Some(&"x".repeat(400)), ImageKind::Png).len(),
            255
        );
    }
}
