//! The support CLI (docs/protocol.md, "Support tools"): subcommands that talk to a running hub over
//! HTTP with a bearer token and print for people (aligned tables, local times) or for scripts
//! (JSON, JSONL, CSV).
//!
//! - `args`: the flags of `history`, `status` and `tail`.
//! - `client`: the HTTP client: one request, its refusals as [`CliError`]s.
//! - `error`: [`CliError`], with the exit status of each failure.
//! - `csv`: history events as CSV lines.
//! - `render`: local times, progress bars and the columns of an event.
//! - `history`, `status`, `tail`: the subcommands.
//! - `dead_letters`: `dead-letters list|republish`, which talks to NATS instead of the hub.

pub mod args;
mod client;
mod csv;
mod dead_letters;
mod error;
mod history;
mod render;
mod status;
mod tail;

pub use dead_letters::dead_letters;
pub use error::CliError;
pub use history::history;
pub use status::status;
pub use tail::tail;
