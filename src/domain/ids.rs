//! Identifier newtypes: photo, user, client, session and event ids.

use std::fmt;
use std::sync::Arc;

use super::DomainError;

/// Longest identifier accepted, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// Longest event id accepted, in bytes (producers' idempotency keys may be longer than ids).
const MAX_EVENT_ID_LEN: usize = 256;

/// A byte a name may hold. Every allowed character is ASCII, so names are checked byte by byte
/// (a non-ASCII character's bytes are all 0x80 or above, and fail), not decoded.
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')
}

fn check_name(field: &'static str, s: &str) -> Result<(), DomainError> {
    if s.is_empty() {
        return Err(DomainError::InvalidId {
            field,
            reason: "must not be empty",
        });
    }
    if s.len() > MAX_ID_LEN {
        return Err(DomainError::InvalidId {
            field,
            reason: "longer than 128 characters",
        });
    }
    if !s.bytes().all(is_name_byte) {
        return Err(DomainError::InvalidId {
            field,
            reason: "only A-Z a-z 0-9 . _ : - are allowed",
        });
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Parses and validates (non-empty, at most 128 characters of `A-Z a-z 0-9 . _ : -`).
            pub fn parse(s: &str) -> Result<Self, DomainError> {
                check_name($field, s)?;
                Ok(Self(Arc::from(s)))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// A photo's id, as producers and clients name it.
    PhotoId,
    "photoId"
);
name_type!(
    /// A user's id: a token's `sub`, a photo's owner.
    UserId,
    "userId"
);
name_type!(
    /// A client application instance's id, chosen by the client at handshake.
    ClientId,
    "clientId"
);
name_type!(
    /// A client session's id, optional at handshake.
    SessionId,
    "sessionId"
);

/// An event's id: the producer's idempotency key, or one the hub generated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(Arc<str>);

impl EventId {
    /// Parses a producer's id: 1 to 256 bytes, no control characters.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        if s.is_empty() {
            return Err(DomainError::InvalidId {
                field: "id",
                reason: "must not be empty",
            });
        }
        if s.len() > MAX_EVENT_ID_LEN {
            return Err(DomainError::InvalidId {
                field: "id",
                reason: "longer than 256 bytes",
            });
        }
        if s.chars().any(char::is_control) {
            return Err(DomainError::InvalidId {
                field: "id",
                reason: "must not contain control characters",
            });
        }
        Ok(Self(Arc::from(s)))
    }

    /// A fresh random id (128 random bits, hex), for events sent without one.
    pub fn generate() -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n: u128 = rand::random();
        let mut text = [0u8; 32];
        for (at, digit) in text.iter_mut().enumerate() {
            // The digit of this position, the most significant first: `{n:032x}`.
            *digit = HEX[((n >> (4 * (31 - at))) & 0xf) as usize];
        }
        // ASCII hex digits, so always UTF-8 (the check is a few instructions for 32 ASCII bytes,
        // where the lossy conversion cost some 250); copied once into the id.
        Self(Arc::from(std::str::from_utf8(&text).unwrap_or_default()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The photo id alphabet and length limit of docs/protocol.md ("Words").
    #[test]
    fn photo_id_validation() {
        assert!(PhotoId::parse("p1.a_b:c-D9").is_ok());
        assert!(PhotoId::parse(&"a".repeat(128)).is_ok());
        assert!(PhotoId::parse(&"a".repeat(129)).is_err());
        assert!(PhotoId::parse("").is_err());
        assert!(PhotoId::parse("a b").is_err());
        assert!(PhotoId::parse("a/b").is_err());
        assert!(PhotoId::parse("é").is_err());
    }

    /// Event ids are free text but bounded and without control characters.
    #[test]
    fn event_id_validation() {
        assert!(EventId::parse("order 42 / retry").is_ok());
        assert!(EventId::parse("").is_err());
        assert!(EventId::parse("a\nb").is_err());
        assert!(EventId::parse(&"x".repeat(257)).is_err());
        assert_ne!(EventId::generate(), EventId::generate());
        let id = EventId::generate();
        assert_eq!(id.as_str().len(), 32);
        assert!(
            id.as_str()
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
    }
}
