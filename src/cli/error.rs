//! What can go wrong in a CLI subcommand, each with its exit status (README, "Support tools"):
//! 2 usage, 3 not found, 4 token refused or forbidden, 5 hub unreachable, 1 anything else.

use crate::bus::nats::dead_letters::DeadLetterError;

/// A failed CLI subcommand; its message is the one line printed on stderr.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// No token was given.
    #[error(
        "no token: pass --token or set SOCKET_BRIDGE_TOKEN (mint one with `socket-bridge token --user <you> --permission support:read`)"
    )]
    NoToken,
    /// An argument is invalid.
    #[error("{0}")]
    Usage(String),
    /// The hub did not answer.
    #[error("cannot reach the hub at {server}: {reason}")]
    Unreachable {
        /// The hub's URL.
        server: String,
        /// The innermost cause, in words.
        reason: String,
    },
    /// The hub refused the token (401).
    #[error("the hub refused the token: {detail}")]
    Unauthorized {
        /// Why, as the hub says it.
        detail: String,
    },
    /// The token may not read it (403).
    #[error("forbidden: this token may not read {what}")]
    Forbidden {
        /// What was asked for.
        what: String,
    },
    /// The photo is unknown (404).
    #[error("{what} not found: the hub has nothing stored for it")]
    NotFound {
        /// What was asked for.
        what: String,
    },
    /// Any other refusal or failure of the hub.
    #[error("the hub answered {status}: {detail}")]
    Hub {
        /// The HTTP status.
        status: u16,
        /// The hub's `detail`, or its body.
        detail: String,
    },
    /// The hub's answer does not have the documented shape.
    #[error("unexpected answer from the hub: {0}")]
    Answer(String),
    /// Dead letters could not be read or re-published.
    #[error(transparent)]
    DeadLetters(#[from] crate::bus::nats::dead_letters::DeadLetterError),
    /// Printing failed.
    #[error("writing the output")]
    Output(#[from] std::io::Error),
}

impl CliError {
    /// The process exit status for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::NoToken | CliError::Usage(_) => 2,
            CliError::NotFound { .. } => 3,
            CliError::Unauthorized { .. } | CliError::Forbidden { .. } => 4,
            CliError::Unreachable { .. } => 5,
            CliError::DeadLetters(e) => match e {
                DeadLetterError::NotFound(_) | DeadLetterError::NoStream(_) => 3,
                DeadLetterError::Nats { .. } => 5,
                DeadLetterError::NotRepublishable { .. } => 1,
            },
            CliError::Hub { .. } | CliError::Answer(_) | CliError::Output(_) => 1,
        }
    }

    /// Whether it is only the reader of our output going away (`| head`): not a failure.
    pub fn is_closed_output(&self) -> bool {
        matches!(self, CliError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}
