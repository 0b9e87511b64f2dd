//! Who may read what: one place for the photo and room rules of docs/protocol.md ("Connecting", "HTTP read API").

use crate::auth::Principal;
use crate::domain::{ClientId, PhotoId, PhotoStatus, Room, SessionId};
use crate::store::{EventLog, StoreError};

/// Why a read was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The principal may not read it.
    #[error("forbidden")]
    Forbidden,
    /// The photo is unknown.
    #[error("not_found")]
    NotFound,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AccessError {
    /// The wire code (`forbidden`, `not_found`, `internal`).
    pub fn code(&self) -> &'static str {
        match self {
            AccessError::Forbidden => "forbidden",
            AccessError::NotFound => "not_found",
            AccessError::Store(_) => "internal",
        }
    }
}

/// The photo's status, if `principal` may read the photo: its owner with `read:photos`, or
/// `support:read`/`admin`. An unknown photo is `NotFound` for everyone.
pub fn authorize_photo(
    principal: &Principal,
    log: &EventLog,
    photo: &PhotoId,
) -> Result<PhotoStatus, AccessError> {
    let status = log.status(photo)?.ok_or(AccessError::NotFound)?;
    if principal.may_read_photo_of(&status.user_id) {
        Ok(status)
    } else {
        Err(AccessError::Forbidden)
    }
}

/// Whether `principal` may read `room`. `client` and `session` are the ids of the socket asking
/// (none over HTTP): a socket may read its own connection rooms.
pub fn authorize_room(
    principal: &Principal,
    log: &EventLog,
    room: &Room,
    client: Option<&ClientId>,
    session: Option<&SessionId>,
) -> Result<(), AccessError> {
    let allowed = match room {
        Room::Photo(photo) => return authorize_photo(principal, log, photo).map(|_| ()),
        Room::User(user) => principal.may_read_user_room(user),
        Room::Client(id) => principal.may_read_connection_room(client == Some(id)),
        Room::Session(id) => principal.may_read_connection_room(session == Some(id)),
        Room::Global => true,
    };
    if allowed {
        Ok(())
    } else {
        Err(AccessError::Forbidden)
    }
}
