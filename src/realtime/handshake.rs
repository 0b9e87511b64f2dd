//! The Socket.IO handshake `auth` payload: `{ token, clientId, sessionId?, resume?, epoch? }`.

use serde_json::Value;

use crate::auth::{Permission, Principal, SocketIdentity, TokenAuthority};
use crate::domain::{ClientId, Room, SessionId, UserId};

/// Permissions of a socket admitted by `--insecure-dev-auth` (those of the original, unauthenticated design).
const DEV_PERMISSIONS: [Permission; 2] = [Permission::ReadPhotos, Permission::WritePhotos];

/// A refused handshake; its text is what the client sees as `connect_error`'s `err.message`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// Missing, bad or expired token.
    #[error("unauthorized")]
    Unauthorized,
    /// Missing `clientId`, malformed `resume` (or one naming more rooms than allowed) or other
    /// malformed field.
    #[error("invalid_handshake")]
    InvalidHandshake,
    /// The hub holds the most connections it allows.
    #[error("overloaded")]
    Overloaded,
}

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
        Some(_) => return Err(HandshakeError::InvalidHandshake),
    };
    let principal = match auth.get("token") {
        Some(Value::String(token)) => tokens
            .verify(token)
            .map_err(|_| HandshakeError::Unauthorized)?,
        None | Some(Value::Null) if insecure_dev_auth => {
            let user = optional_str(auth, "userId")?.ok_or(HandshakeError::InvalidHandshake)?;
            let user = UserId::parse(user).map_err(|_| HandshakeError::InvalidHandshake)?;
            Principal::new(user, DEV_PERMISSIONS)
        }
        _ => return Err(HandshakeError::Unauthorized),
    };
    let client_id = optional_str(auth, "clientId")?
        .map(ClientId::parse)
        .transpose()
        .map_err(|_| HandshakeError::InvalidHandshake)?
        .ok_or(HandshakeError::InvalidHandshake)?;
    let session_id = optional_str(auth, "sessionId")?
        .map(SessionId::parse)
        .transpose()
        .map_err(|_| HandshakeError::InvalidHandshake)?;
    let epoch = optional_str(auth, "epoch")?.map(str::to_owned);
    let resume = match auth.get("resume") {
        None | Some(Value::Null) => None,
        Some(Value::Object(rooms)) if rooms.len() > max_resume_rooms => {
            return Err(HandshakeError::InvalidHandshake);
        }
        Some(Value::Object(rooms)) => Some(
            rooms
                .iter()
                .map(|(room, seq)| {
                    let room: Room = room.parse().map_err(|_| HandshakeError::InvalidHandshake)?;
                    let seq = seq.as_u64().ok_or(HandshakeError::InvalidHandshake)?;
                    Ok((room, seq))
                })
                .collect::<Result<_, _>>()?,
        ),
        Some(_) => return Err(HandshakeError::InvalidHandshake),
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

fn optional_str<'a>(
    auth: &'a serde_json::Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, HandshakeError> {
    match auth.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(HandshakeError::InvalidHandshake),
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

    /// Each malformed handshake gets the error the contract names.
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
        let cases = [
            (json!({"clientId": "c1"}), HandshakeError::Unauthorized),
            (
                json!({"token": "garbage", "clientId": "c1"}),
                HandshakeError::Unauthorized,
            ),
            (
                json!({"token": 5, "clientId": "c1"}),
                HandshakeError::Unauthorized,
            ),
            (json!({"token": token}), HandshakeError::InvalidHandshake),
            (
                json!({"token": token, "clientId": "bad id"}),
                HandshakeError::InvalidHandshake,
            ),
            (
                json!({"token": token, "clientId": "c1", "resume": {"photo:p1": -1}}),
                HandshakeError::InvalidHandshake,
            ),
            (
                json!({"token": token, "clientId": "c1", "resume": {"team:x": 1}}),
                HandshakeError::InvalidHandshake,
            ),
            (
                json!({"token": token, "clientId": "c1", "resume": [1]}),
                HandshakeError::InvalidHandshake,
            ),
            (
                json!({"token": token, "clientId": "c1", "resume": {"photo:p1": 4, "global": 0}}),
                HandshakeError::InvalidHandshake,
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
            Some(HandshakeError::Unauthorized)
        );
        let dev = parse(
            Some(&json!({"userId": "u9", "clientId": "c1"})),
            &t,
            true,
            1,
        )
        .expect("dev auth");
        assert_eq!(dev.identity.principal.user.as_str(), "u9");
    }
}
