//! Authentication: HS256 JWTs (docs/protocol.md, "Tokens and permissions"), the token secret, and who may read what.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::domain::{ClientId, SessionId, UserId};

/// Clock skew tolerated on `exp` by default.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// File name of the generated secret inside the data dir.
const SECRET_FILE: &str = "jwt-secret";

/// A permission a token may grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Read own photos.
    ReadPhotos,
    /// Upload own photos.
    WritePhotos,
    /// Publish events over HTTP.
    EventsPublish,
    /// Read any photo and room history.
    SupportRead,
    /// Everything.
    Admin,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 5] = [
        Permission::ReadPhotos,
        Permission::WritePhotos,
        Permission::EventsPublish,
        Permission::SupportRead,
        Permission::Admin,
    ];

    /// Parses a permission name; unknown names are `None` (ignored in tokens).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The name tokens carry.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ReadPhotos => "read:photos",
            Permission::WritePhotos => "write:photos",
            Permission::EventsPublish => "events:publish",
            Permission::SupportRead => "support:read",
            Permission::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A permission name that is not one of [`Permission::ALL`].
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown permission `{0}`; valid permissions: read:photos, write:photos, events:publish, support:read, admin"
)]
pub struct UnknownPermission(String);

impl std::str::FromStr for Permission {
    type Err = UnknownPermission;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| UnknownPermission(s.to_owned()))
    }
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No token was given.
    #[error("missing token")]
    Missing,
    /// The token's `exp` (plus the leeway) has passed.
    #[error("token expired")]
    Expired,
    /// The token is not signed with this hub's secret and HS256.
    #[error("bad signature")]
    BadSignature,
    /// The token is not a JWT, or lacks `exp` or `sub`.
    #[error("malformed token")]
    Malformed(#[source] jsonwebtoken::errors::Error),
    /// The token's `sub` is not a valid user id.
    #[error("token subject is not a valid user id")]
    BadSubject(#[source] crate::domain::DomainError),
    /// A token could not be signed.
    #[error("could not sign the token")]
    Sign(#[source] jsonwebtoken::errors::Error),
    /// The clock is before 1970.
    #[error("the system clock is before 1970")]
    Clock(#[source] std::time::SystemTimeError),
}

impl AuthError {
    /// One word for clients: `missing`, `expired`, `bad_signature`, `malformed`.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Expired => "expired",
            AuthError::BadSignature => "bad_signature",
            AuthError::Malformed(_) | AuthError::BadSubject(_) => "malformed",
            AuthError::Sign(_) | AuthError::Clock(_) => "internal",
        }
    }
}

impl From<jsonwebtoken::errors::Error> for AuthError {
    fn from(e: jsonwebtoken::errors::Error) -> Self {
        use jsonwebtoken::errors::ErrorKind;
        match e.kind() {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => AuthError::BadSignature,
            _ => AuthError::Malformed(e),
        }
    }
}

/// Why the secret could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Reading or writing the secret file failed.
    #[error("token secret file {path}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The stored secret can be read by other users.
    #[error(
        "token secret file {path} is readable by group or others (mode {mode:o}); run `chmod 600 {path}`"
    )]
    Exposed {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The configured or stored secret is too short.
    #[error("the token secret must be at least 16 bytes")]
    TooShort,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default)]
    permissions: Vec<String>,
}

/// Refuses a secret file that group or others may read.
#[cfg(unix)]
fn refuse_exposed(path: &Path) -> Result<(), SecretError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|source| SecretError::Io {
            path: path.display().to_string(),
            source,
        })?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretError::Exposed {
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn refuse_exposed(_: &Path) -> Result<(), SecretError> {
    Ok(())
}

/// Who is making a request, once authenticated.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user (`sub`).
    pub user: UserId,
    permissions: HashSet<Permission>,
    /// When its token stops being accepted (`exp` plus the leeway); `None` for a principal
    /// without a token.
    pub expires_at: Option<std::time::SystemTime>,
}

impl Principal {
    /// A principal with the given permissions and no token expiry.
    pub fn new(user: UserId, permissions: impl IntoIterator<Item = Permission>) -> Self {
        Self {
            user,
            permissions: permissions.into_iter().collect(),
            expires_at: None,
        }
    }

    /// The permissions it holds, in [`Permission::ALL`] order.
    pub fn permissions(&self) -> Vec<Permission> {
        Permission::ALL
            .into_iter()
            .filter(|p| self.permissions.contains(p))
            .collect()
    }

    /// Whether the principal holds `p` (admin holds everything).
    pub fn has(&self, p: Permission) -> bool {
        self.permissions.contains(&p) || self.permissions.contains(&Permission::Admin)
    }

    /// Whether it may read anything (support staff and admins).
    pub fn reads_everything(&self) -> bool {
        self.has(Permission::SupportRead)
    }

    /// Whether it may read a photo owned by `owner`.
    pub fn may_read_photo_of(&self, owner: &UserId) -> bool {
        self.reads_everything() || (self.has(Permission::ReadPhotos) && &self.user == owner)
    }

    /// Whether it may read the room of `user`.
    pub fn may_read_user_room(&self, user: &UserId) -> bool {
        self.may_read_photo_of(user)
    }

    /// Whether it may read a client or session room; sockets may always read their own.
    pub fn may_read_connection_room(&self, own: bool) -> bool {
        own || self.reads_everything()
    }
}

/// Verifies and mints tokens with one HS256 secret.
#[derive(Clone)]
pub struct TokenAuthority {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    leeway: Duration,
}

impl std::fmt::Debug for TokenAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenAuthority { .. }")
    }
}

impl TokenAuthority {
    /// An authority for `secret`.
    pub fn new(secret: &[u8]) -> Result<Self, SecretError> {
        if secret.len() < 16 {
            return Err(SecretError::TooShort);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = DEFAULT_LEEWAY.as_secs();
        validation.validate_exp = true;
        validation.required_spec_claims = ["exp", "sub"].into_iter().map(String::from).collect();
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            leeway: DEFAULT_LEEWAY,
        })
    }

    /// The same authority tolerating `leeway` of clock skew on `exp` (whole seconds).
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.validation.leeway = leeway.as_secs();
        self.leeway = Duration::from_secs(leeway.as_secs());
        self
    }

    /// The configured secret, else the one kept in `data_dir` (created, mode 0600, on first use).
    /// The flag says whether it was generated just now.
    pub fn load(configured: Option<&str>, data_dir: &Path) -> Result<(Self, bool), SecretError> {
        if let Some(secret) = configured {
            return Ok((Self::new(secret.as_bytes())?, false));
        }
        let path = data_dir.join(SECRET_FILE);
        let io = |source| SecretError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(secret) => {
                refuse_exposed(&path)?;
                Ok((Self::new(secret.trim().as_bytes())?, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir).map_err(io)?;
                let secret = format!(
                    "{:032x}{:032x}",
                    rand::random::<u128>(),
                    rand::random::<u128>()
                );
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(&path).map_err(io)?;
                file.write_all(secret.as_bytes()).map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok((Self::new(secret.as_bytes())?, true))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Verifies a token: HS256 only, `exp` required (with the leeway), `sub` a valid user id.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)?;
        let user = UserId::parse(&data.claims.sub).map_err(AuthError::BadSubject)?;
        let expires_at = std::time::UNIX_EPOCH
            .checked_add(Duration::from_secs(data.claims.exp))
            .and_then(|exp| exp.checked_add(self.leeway));
        let permissions = data
            .claims
            .permissions
            .iter()
            .filter_map(|p| Permission::parse(p));
        Ok(Principal {
            expires_at,
            ..Principal::new(user, permissions)
        })
    }

    /// Signs a token for `user` with `permissions`, valid for `ttl`.
    pub fn mint(
        &self,
        user: &str,
        permissions: &[Permission],
        ttl: Duration,
    ) -> Result<String, AuthError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(AuthError::Clock)?;
        let claims = Claims {
            sub: user.to_owned(),
            exp: (now + ttl).as_secs(),
            permissions: permissions.iter().map(|p| p.as_str().to_owned()).collect(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(AuthError::Sign)
    }
}

/// Who a socket is: its principal and the ids it gave at handshake.
#[derive(Debug, Clone)]
pub struct SocketIdentity {
    /// The authenticated user.
    pub principal: Principal,
    /// The client id from the handshake.
    pub client_id: ClientId,
    /// The session id from the handshake, if any.
    pub session_id: Option<SessionId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authority() -> TokenAuthority {
        TokenAuthority::new(b"0123456789abcdef0123456789abcdef").expect("secret")
    }

    /// A minted token verifies and carries its permissions.
    #[test]
    fn mint_then_verify() {
        let a = authority();
        let token = a
            .mint("u1", &[Permission::ReadPhotos], Duration::from_secs(60))
            .expect("mint");
        let p = a.verify(&token).expect("valid");
        assert_eq!(p.user.as_str(), "u1");
        assert!(p.has(Permission::ReadPhotos));
        assert!(!p.has(Permission::SupportRead));
    }

    /// A token naming an unknown permission verifies, without it.
    #[test]
    fn unknown_permissions_in_tokens_are_ignored() {
        let a = authority();
        let claims = Claims {
            sub: "u1".into(),
            exp: u64::MAX / 2,
            permissions: vec!["bogus".into(), "support:read".into()],
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &a.encoding)
            .expect("encode");
        let p = a.verify(&token).expect("valid");
        assert!(p.has(Permission::SupportRead));
        assert!(!p.has(Permission::ReadPhotos));
    }

    /// A generated secret is private and loads again; once others may read it, it is refused.
    #[test]
    fn exposed_secret_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let (_, generated) = TokenAuthority::load(None, dir.path()).expect("generate");
        assert!(generated);
        TokenAuthority::load(None, dir.path()).expect("a private secret loads");
        let path = dir.path().join(SECRET_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            TokenAuthority::load(None, dir.path()),
            Err(SecretError::Exposed { mode: 0o644, .. })
        ));
    }

    /// Every permission's name parses back to it.
    #[test]
    fn permission_names_round_trip() {
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>().ok(), Some(p));
        }
        assert!("read:photo".parse::<Permission>().is_err());
    }

    /// Expired tokens, other secrets, `alg: none` and other algorithms are refused.
    #[test]
    fn refusals() {
        let a = authority();
        let expired = a.mint("u1", &[], Duration::ZERO).expect("mint");
        // exp = now is within the leeway; forge one from long ago instead.
        let claims = Claims {
            sub: "u1".into(),
            exp: 1_000,
            permissions: vec![],
        };
        let old = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &a.encoding)
            .expect("encode");
        assert!(a.verify(&expired).is_ok(), "within leeway");
        assert!(matches!(a.verify(&old), Err(AuthError::Expired)), "expired");
        let other = TokenAuthority::new(b"another-secret-of-32-bytes-long!").expect("secret");
        assert!(
            a.verify(
                &other
                    .mint("u1", &[], Duration::from_secs(60))
                    .expect("mint")
            )
            .is_err()
        );
        let hs384 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS384),
            &Claims {
                sub: "u1".into(),
                exp: u64::MAX / 2,
                permissions: vec![],
            },
            &a.encoding,
        )
        .expect("encode");
        assert!(
            matches!(a.verify(&hs384), Err(AuthError::BadSignature)),
            "other algorithm"
        );
        // {"alg":"none","typ":"JWT"} . {"sub":"u1","exp":9999999999} . (no signature)
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1MSIsImV4cCI6OTk5OTk5OTk5OX0.";
        assert!(a.verify(none).is_err(), "alg none");
        assert_eq!(
            a.verify("not a token").map_err(|e| e.reason()).err(),
            Some("malformed")
        );
    }
}
