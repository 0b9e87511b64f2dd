//! Rooms: the delivery and storage unit. Every stored event belongs to one or more rooms, and
//! each room has its own gap-free sequence.

use std::fmt;
use std::str::FromStr;

use super::{ClientId, DomainError, PhotoId, SessionId, UserId};

/// A room, as named on the wire (`user:<id>`, `client:<id>`, `session:<id>`, `photo:<id>`, `global`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Room {
    /// Everything for one user.
    User(UserId),
    /// Everything for one client application instance.
    Client(ClientId),
    /// Everything for one session.
    Session(SessionId),
    /// One photo's events.
    Photo(PhotoId),
    /// System events for everyone.
    Global,
}

impl Room {
    /// The room of a photo.
    pub fn photo(id: &PhotoId) -> Self {
        Room::Photo(id.clone())
    }

    /// The room of a user.
    pub fn user(id: &UserId) -> Self {
        Room::User(id.clone())
    }

    /// The room's name, as [`fmt::Display`] writes it, in a string allocated once at its size
    /// (the store keys and the delivered payloads use it per event; `to_string` grows its
    /// string as the formatter writes).
    pub fn name(&self) -> String {
        let (kind, id) = self.parts();
        let mut name = String::with_capacity(kind.len() + id.map_or(0, |id| 1 + id.len()));
        self.push_name(&mut name);
        name
    }

    /// Appends the room's name to `out` (for JSON the hub writes: a name never needs escaping,
    /// its ids being of `A-Z a-z 0-9 . _ : -`).
    pub fn push_name(&self, out: &mut String) {
        let (kind, id) = self.parts();
        out.push_str(kind);
        if let Some(id) = id {
            out.push(':');
            out.push_str(id);
        }
    }

    /// The kind (`user`, ..., `global`) and the id, if the kind has one.
    fn parts(&self) -> (&'static str, Option<&str>) {
        match self {
            Room::User(id) => ("user", Some(id.as_str())),
            Room::Client(id) => ("client", Some(id.as_str())),
            Room::Session(id) => ("session", Some(id.as_str())),
            Room::Photo(id) => ("photo", Some(id.as_str())),
            Room::Global => ("global", None),
        }
    }
}

impl fmt::Display for Room {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.parts() {
            (kind, Some(id)) => write!(f, "{kind}:{id}"),
            (kind, None) => f.write_str(kind),
        }
    }
}

impl FromStr for Room {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || DomainError::InvalidRoom(s.chars().take(160).collect());
        if s == "global" {
            return Ok(Room::Global);
        }
        let (kind, id) = s.split_once(':').ok_or_else(invalid)?;
        match kind {
            "user" => UserId::parse(id).map(Room::User),
            "client" => ClientId::parse(id).map(Room::Client),
            "session" => SessionId::parse(id).map(Room::Session),
            "photo" => PhotoId::parse(id).map(Room::Photo),
            _ => return Err(invalid()),
        }
        .map_err(|_| invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Room names round-trip, and unknown kinds or bad ids are refused.
    #[test]
    fn parse_and_display_round_trip() {
        for name in [
            "global",
            "user:u1",
            "client:c-1",
            "session:s.1",
            "photo:a:b",
        ] {
            let room: Room = name.parse().expect("valid room");
            assert_eq!(room.to_string(), name);
            assert_eq!(room.name(), name);
        }
        for bad in ["", "globals", "team:x", "photo:", "user:a b", "photo"] {
            assert!(bad.parse::<Room>().is_err(), "{bad} must be refused");
        }
    }
}
