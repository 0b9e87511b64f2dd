//! The photo endpoints (docs/protocol.md, "Photos"): `POST /api/photos` (upload),
//! `GET /api/photos/{photoId}/original`, `GET /api/photos/{photoId}/thumbnails/{size}` and
//! `DELETE /api/photos/{photoId}`.

use axum::Json;
use axum::body::Body;
use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};

use super::auth::Caller;
use super::{ApiError, AppState};
use crate::access::authorize_photo;
use crate::auth::{Permission, Principal};
use crate::domain::PhotoId;
use crate::photos::{BodyError, ImageKind, THUMBNAIL_SIZES, UploadError, Uploaded};
use crate::telemetry::metric;

/// What the upload answers, as in the original design.
const ACCEPTED_MESSAGE: &str = "Photo uploaded and being processed";
/// Room in an upload's body for the multipart framing and small fields, beyond the file.
pub const MULTIPART_OVERHEAD: u64 = 64 * 1024;

/// `POST /api/photos`: multipart, the file in field `photo`; answers 202 once `photo.uploaded`
/// is durable and the job queued. A failure after the token was accepted is also told to the
/// user's sockets as `photo.upload.failed`.
pub async fn upload(
    State(state): State<AppState>,
    Caller(caller): Caller,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if !caller.has(Permission::WritePhotos) {
        return Err(ApiError::forbidden(
            "uploading needs the write:photos permission",
        ));
    }
    match receive(&state, &caller, multipart).await {
        Ok(uploaded) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({
                "message": ACCEPTED_MESSAGE,
                "photoId": uploaded.photo_id.as_str(),
                "userId": uploaded.user_id.as_str(),
                "filename": uploaded.filename,
                "status": "pending",
            })),
        )),
        Err(e) => {
            let photo_id = e.photo_id().cloned();
            let answer = ApiError::from(e);
            metrics::counter!(metric::PHOTO_UPLOADS_REFUSED_TOTAL, "error" => answer.code())
                .increment(1);
            state
                .photos
                .upload_failed(&caller.user, photo_id.as_ref(), answer.detail());
            Err(answer)
        }
    }
}

/// Finds the field `photo` and hands its stream to the upload.
async fn receive(
    state: &AppState,
    caller: &Principal,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Uploaded, UploadError> {
    let mut multipart = multipart.map_err(|e| UploadError::Malformed(e.body_text()))?;
    loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|e| match body_error(e) {
                BodyError::TooLarge => UploadError::TooLarge {
                    limit: state.photos.max_upload_bytes(),
                },
                BodyError::Broken(detail) => UploadError::Malformed(detail),
            })?
            .ok_or(UploadError::NoFile)?;
        if field.name() != Some("photo") {
            continue;
        }
        let filename = field.file_name().map(str::to_owned);
        let body = field.map(|chunk| chunk.map_err(body_error));
        return state
            .photos
            .upload(&caller.user, filename.as_deref(), Box::pin(body))
            .await;
    }
}

fn body_error(e: MultipartError) -> BodyError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        BodyError::TooLarge
    } else {
        BodyError::Broken(e.body_text())
    }
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        match e {
            UploadError::NoFile | UploadError::Malformed(_) => ApiError::bad_request(e.to_string()),
            UploadError::TooLarge { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                e.to_string(),
            ),
            UploadError::TooManyPixels(_) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "image_too_large",
                e.to_string(),
            ),
            UploadError::Unsupported(detail) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                detail,
            ),
            UploadError::Files(ref inner) => {
                ApiError::internal(inner, "the photo could not be written")
            }
            UploadError::Ingest(inner) => inner.into(),
            UploadError::Queue { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_unavailable",
                "the processing job could not be queued; the photo is marked failed",
            ),
        }
    }
}

/// `GET /api/photos/{photoId}/original`: the bytes as uploaded.
pub async fn original(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(photo_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let photo = readable_photo(&state, &caller, &photo_id)?;
    let (path, kind) = state
        .photos
        .files()
        .original(&photo)
        .ok_or_else(|| ApiError::not_found("this photo has no file on this hub"))?;
    serve(&path, kind, "original", &headers, ORIGINAL_CACHE).await
}

/// `GET /api/photos/{photoId}/thumbnails/{size}`: a JPEG thumbnail (size 256 or 1024).
pub async fn thumbnail(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((photo_id, size)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let photo = readable_photo(&state, &caller, &photo_id)?;
    let size: u32 = size
        .parse()
        .ok()
        .filter(|s| THUMBNAIL_SIZES.contains(s))
        .ok_or_else(|| ApiError::not_found("thumbnail sizes are 256 and 1024"))?;
    let path = state
        .photos
        .files()
        .thumbnail(&photo, size)
        .ok_or_else(|| ApiError::not_found("this photo has no file on this hub"))?;
    serve(
        &path,
        ImageKind::Jpeg,
        &size.to_string(),
        &headers,
        THUMBNAIL_CACHE,
    )
    .await
}

/// `DELETE /api/photos/{photoId}`: stores `photo.deleted` and removes the files (the owner with
/// `write:photos`, or `admin`).
pub async fn delete(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(photo_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let photo = parse_photo(&photo_id)?;
    let status = state.photos.delete(&caller, &photo).await?;
    Ok(Json(json!({
        "message": "Photo deleted",
        "photoId": photo.as_str(),
        "userId": status.user_id.as_str(),
        "status": "deleted",
    })))
}

/// An original never changes under its photo id.
const ORIGINAL_CACHE: &str = "private, max-age=31536000, immutable";
/// A thumbnail may be made again by a retry (with the same pixels).
const THUMBNAIL_CACHE: &str = "private, max-age=86400";

fn parse_photo(photo_id: &str) -> Result<PhotoId, ApiError> {
    PhotoId::parse(photo_id).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// The photo, if `caller` may read it (its owner with `read:photos`, or support/admin).
fn readable_photo(
    state: &AppState,
    caller: &Principal,
    photo_id: &str,
) -> Result<PhotoId, ApiError> {
    let photo = parse_photo(photo_id)?;
    authorize_photo(caller, &state.log, &photo)?;
    Ok(photo)
}

/// Streams the file at `path` with its type, length, `ETag` (length and modification time) and
/// `Cache-Control`; answers 304 when `If-None-Match` names the same `ETag`.
async fn serve(
    path: &std::path::Path,
    kind: ImageKind,
    variant: &str,
    request: &HeaderMap,
    cache: &'static str,
) -> Result<Response, ApiError> {
    let missing = || ApiError::not_found("this file is not there (yet)");
    let file = tokio::fs::File::open(path).await.map_err(|_| missing())?;
    let meta = file.metadata().await.map_err(|_| missing())?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis());
    let etag = format!("\"{variant}-{:x}-{modified:x}\"", meta.len());
    let etag = HeaderValue::from_str(&etag).map_err(|_| missing())?;
    let mut response = if request.get(header::IF_NONE_MATCH).is_some_and(|given| {
        given
            .as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii() == etag.as_bytes())
    }) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response =
            Body::from_stream(tokio_util::io::ReaderStream::new(file)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(kind.content_type()),
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.len()));
        response
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    Ok(response)
}
