//! The support tools against the real binary: the SSE streams (resume, truncation, refusals,
//! shutdown), the console's endpoints and files, and the `history`, `status` and `tail`
//! subcommands with their exit statuses.

mod cli;
mod console;
mod hub;
mod sse;
