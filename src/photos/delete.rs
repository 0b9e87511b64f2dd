//! Deleting a photo (docs/protocol.md, "Photos: delete"): `photo.deleted` is stored first, then
//! the files are removed. A stop between the two leaves files that the next start (`recovery`)
//! or retention removes. The event's id is fixed per photo, so deleting twice stores it once.

use serde_json::json;

use super::Photos;
use crate::access::AccessError;
use crate::auth::{Permission, Principal};
use crate::domain::{EventInput, EventType, PhotoId, PhotoStatus};
use crate::ingest::IngestError;

/// Why a delete was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    /// Unknown photo, or the caller may not delete it.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// `photo.deleted` could not be stored.
    #[error("storing photo.deleted")]
    Ingest(#[from] IngestError),
}

impl Photos {
    /// Deletes `photo` for `caller`: its owner with `write:photos`, or `admin`. Answers the
    /// photo's status before the delete.
    pub async fn delete(
        &self,
        caller: &Principal,
        photo: &PhotoId,
    ) -> Result<PhotoStatus, DeleteError> {
        let status = self
            .log
            .status(photo)
            .map_err(AccessError::from)?
            .ok_or(AccessError::NotFound)?;
        let owner_may = caller.user == status.user_id && caller.has(Permission::WritePhotos);
        if !(owner_may || caller.has(Permission::Admin)) {
            return Err(AccessError::Forbidden.into());
        }
        let deleted = EventInput::produced(
            format!("{photo}:deleted"),
            EventType::PhotoDeleted,
            json!({
                "photoId": photo.as_str(),
                "userId": status.user_id.as_str(),
                "deletedBy": caller.user.as_str(),
            }),
        );
        self.ingest.ingest(vec![deleted]).await?;
        self.remove_files(photo).await;
        Ok(status)
    }
}
