//! The Socket.IO handshake `auth` payload: `{ token, clientId, sessionId?, resume?, epoch? }`.

use serde_json::{Value, json};

use crate::auth::{AuthError, Permission, Principal, SocketIdentity, TokenAuthority};
use crate::domain::{ClientId, Room, SessionId, UserId};

/// Permissions of a socket admitted by `--insecure-dev-auth` (those of the original, unauthenticated design).
const DEV_PERMISSIONS: [Permission; 2] = [Permission::ReadPhotos, Permission::WritePhotos];

/// A refused handshake. Its text (`unauthorized`, `invalid_handshake`, `overloaded`) is what the
/// client sees as `connect_error`'s `err.message`; [`HandshakeError::data`] is `err.data`
/// (docs/protocol.md, "Refused connections").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// Missing, bad or expired token; `reason` is the word of [`AuthError::reason`].
    #[error("unauthorized")]
    Unauthorized {
        /// `missing`, `expired`, `bad_signature` or `malformed`.
        reason: &'static str,
    },
    /// A well-authenticated handshake with a missing or malformed `auth` field.
    #[error("invalid_handshake")]
    InvalidHandshake {
        /// What is wrong with the field.
        defect: Defect,
        /// The `auth` field (`clientId`, `resume`, ...), or `auth` for the payload itself.
        field: &'static str,
    },
    /// The hub holds the most connections it allows.
    #[error("overloaded")]
    Overloaded,
}

/// What is wrong with a handshake field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defect {
    /// The field is required and absent.
    Missing,
    /// The field has the wrong type or an invalid value.
    Malformed,
    /// The field names more items than the hub allows (`resume` beyond `--max-resume-rooms`).
    TooMany,
}

impl HandshakeError {
    fn missing(field: &'static str) -> Self {
        Self::InvalidHandshake {
            defect: Defect::Missing,
            field,
        }
    }

    fn malformed(field: &'static str) -> Self {
        Self::InvalidHandshake {
            defect: Defect::Malformed,
            field,
        }
    }

    /// `connect_error`'s `err.data`: `{ reason }`, and `field` for `invalid_handshake`.
    pub fn data(&self) -> Value {
        match *self {
            Self::Unauthorized { reason } => json!({ "reason": reason }),
            Self::InvalidHandshake { defect, field } => {
                let reason = match defect {
                    Defect::Missing => "missing",
                    Defect::Malformed => "malformed",
                    Defect::TooMany => "too_many",
                };
                json!({ "reason": reason, "field": field })
            }
            Self::Overloaded => json!({ "reason": "max_connections" }),
        }
    }
}

/// A refused handshake as the connect middleware returns it. Its text is the whole `connect_error`
/// payload, `{"message":"unauthorized","data":{"reason":"expired"}}`, which the Socket.IO parser
/// sends as it is (patches/socketioxide-parser-common/PATCH.md).
#[derive(Debug, thiserror::Error)]
#[error("{}", json!({ "message": self.0.to_string(), "data": self.0.data() }))]
pub struct Refusal(pub HandshakeError);

/// An accepted handshake.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// Who connected.
    pub identity: SocketIdentity,
    /// Rooms to resume with the last seq the client has in each (`None`: no `resume` given; an
    /// empty map still gets its `resume:complete`).
    pub resume: Option<Vec<(Room, u64)>>,
    /// The store epoch the client's seqs belong to, if it sent one.
    pub epoch: Option<String>,
}

/// Parses and authenticates a handshake whose `resume` may name up to `max_resume_rooms` rooms.
pub fn parse(
    auth: Option<&Value>,
    tokens: &TokenAuthority,
    insecure_dev_auth: bool,
    max_resume_rooms: usize,
) -> Result<Handshake, HandshakeError> {
    let empty = serde_json::Map::new();
    let auth = match auth {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(map)) => map,
        Some(_) => return Err(HandshakeError::malformed("auth")),
    };
    let principal = match auth.get("token") {
        Some(Value::String(token)) => tokens.verify(token).map_err(unauthorized)?,
        None | Some(Value::Null) if insecure_dev_auth => {
            let user = optional_str(auth, "userId")?.ok_or(HandshakeError::missing("userId"))?;
            let user = UserId::parse(user).map_err(|_| HandshakeError::malformed("userId"))?;
            Principal::new(user, DEV_PERMISSIONS)
        }
        None | Some(Value::Null) => return Err(unauthorized(AuthError::Missing)),
        Some(_) => {
            return Err(HandshakeError::Unauthorized {
                reason: "malformed",
            });
        }
    };
    let client_id = optional_str(auth, "clientId")?
        .map(ClientId::parse)
        .transpose()
        .map_err(|_| HandshakeError::malformed("clientId"))?
        .ok_or(HandshakeError::missing("clientId"))?;
    let session_id = optional_str(auth, "sessionId")?
        .map(SessionId::parse)
        .transpose()
        .map_err(|_| HandshakeError::malformed("sessionId"))?;
    let epoch = optional_str(auth, "epoch")?.map(str::to_owned);
    let resume = match auth.get("resume") {
        None | Some(Value::Null) => None,
        Some(Value::Object(rooms)) if rooms.len() > max_resume_rooms => {
            return Err(HandshakeError::InvalidHandshake {
                defect: Defect::TooMany,
                field: "resume",
            });
        }
        Some(Value::Object(rooms)) => Some(
            rooms
                .iter()
                .map(|(room, seq)| {
                    let room: Room = room
                        .parse()
                        .map_err(|_| HandshakeError::malformed("resume"))?;
                    let seq = seq.as_u64().ok_or(HandshakeError::malformed("resume"))?;
                    Ok((room, seq))
                })
                .collect::<Result<_, _>>()?,
        ),
        Some(_) => return Err(HandshakeError::malformed("resume")),
    };
    Ok(Handshake {
        identity: SocketIdentity {
            principal,
            client_id,
            session_id,
        },
        resume,
        epoch,
    })
}

fn unauthorized(e: AuthError) -> HandshakeError {
    HandshakeError::Unauthorized { reason: e.reason() }
}

fn optional_str<'a>(
    auth: &'a serde_json::Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, HandshakeError> {
    match auth.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(HandshakeError::malformed(field)),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    fn tokens() -> TokenAuthority {
        TokenAuthority::new(b"0123456789abcdef0123456789abcdef").expect("secret")
    }

    /// Each malformed handshake gets the error the contract names, with its reason and field.
    #[test]
    fn handshake_errors() {
        let t = tokens();
        let token = t.mint("u1", &[], Duration::from_secs(60)).expect("mint");
        let ok = parse(
            Some(&json!({"token": token, "clientId": "c1", "resume": {"photo:p1": 4}})),
            &t,
            false,
            1,
        )
        .expect("valid");
        assert_eq!(ok.resume.map(|r| r.len()), Some(1));
        let unauthorized = |reason| HandshakeError::Unauthorized { reason };
        let cases = [
            (json!({"clientId": "c1"}), unauthorized("missing")),
            (
                json!({"token": "garbage", "clientId": "c1"}),
                unauthorized("malformed"),
            ),
            (
                json!({"token": 5, "clientId": "c1"}),
                unauthorized("malformed"),
            ),
            (json!({"token": token}), HandshakeError::missing("clientId")),
            (
                json!({"token": token, "clientId": "bad id"}),
                HandshakeError::malformed("clientId"),
            ),
            (
                json!({"token": token, "clientId": "c1", "sessionId": 3}),
                HandshakeError::malformed("sessionId"),
            ),
            (
                json!({"token": token, "clientId": "c1", "resume": {"photo:p1": -1}}),
                HandshakeError::malformed("resume"),
            ),
            (
                json!({"token": token, "clientId": "c1", "resume": {"team:x": 1}}),
                HandshakeError::malformed("resume"),
            ),
            (
                json!({"token": token, "clientId": "c1", "resume": [1]}),
                HandshakeError::malformed("resume"),
            ),
            (json!("a string"), HandshakeError::malformed("auth")),
            (
                json!({"token": token, "clientId": "c1", "resume": {"photo:p1": 4, "global": 0}}),
                HandshakeError::InvalidHandshake {
                    defect: Defect::TooMany,
                    field: "resume",
                },
            ),
        ];
        for (auth, expected) in cases {
            assert_eq!(
                parse(Some(&auth), &t, false, 1).err(),
                Some(expected),
                "{auth}"
            );
        }
        assert_eq!(
            parse(None, &t, false, 1).err(),
            Some(unauthorized("missing"))
        );
        let dev = parse(
            Some(&json!({"userId": "u9", "clientId": "c1"})),
            &t,
            true,
            1,
        )
        .expect("dev auth");
        assert_eq!(dev.identity.principal.user.as_str(), "u9");
        assert_eq!(
            parse(Some(&json!({"clientId": "c1"})), &t, true, 1).err(),
            Some(HandshakeError::missing("userId"))
        );
    }

    /// The `connect_error` payload is `{ message, data: { reason, field? } }`.
    #[test]
    fn connect_error_payloads() {
        let payload = |e: HandshakeError| -> Value {
            serde_json::from_str(&Refusal(e).to_string()).expect("the payload is JSON")
        };
        assert_eq!(
            payload(HandshakeError::Unauthorized { reason: "expired" }),
            json!({"message": "unauthorized", "data": {"reason": "expired"}})
        );
        assert_eq!(
            payload(HandshakeError::missing("clientId")),
            json!({"message": "invalid_handshake", "data": {"reason": "missing", "field": "clientId"}})
        );
        assert_eq!(
            payload(HandshakeError::Overloaded),
            json!({"message": "overloaded", "data": {"reason": "max_connections"}})
        );
    }
}
