//! The support tools against the real binary: the SSE streams (resume, truncation, refusals,
//! shutdown), the console's endpoints and files, and the `history`, `status` and `tail`
//! subcommands with their exit statuses.

// The shared test kit; this suite uses only part of it.
#[allow(dead_code)]
#[path = "../support/mod.rs"]
mod support;

mod cli;
mod console;
mod hub;
mod logs;
mod query;
mod sse;
