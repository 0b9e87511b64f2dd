//! The `socket-bridge` binary: `serve` (the default), `token`, `prune`, `compact`, and the support CLI
//! (`history`, `status`, `tail`, `dead-letters`).

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use socket_bridge::app::{AppError, Application, STORE_FAILURE_GRACE};
use socket_bridge::auth::TokenAuthority;
use socket_bridge::cli::{self, CliError};
use socket_bridge::config::{Cli, Command, ServeArgs};
use socket_bridge::domain::Timestamp;
use socket_bridge::photos::PhotoFiles;
use socket_bridge::retention::ForgetPhotos;
use socket_bridge::settings;
use socket_bridge::store::EventLog;
use socket_bridge::telemetry::{self, ErrorChain};

/// jemalloc: in the same load runs it took 21% less hub CPU per event than glibc's malloc with
/// fan-out 1 and 12% less per delivery with fan-out 100, for 5% more memory per idle connection;
/// mimalloc saved as much CPU but held 44 MB more at start (docs/benchmarks.md, "Allocator").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// How long shutdown may take before the process exits anyway.
const SHUTDOWN_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long the runtime waits for blocking tasks at exit (one may be stuck in a write of a failed
/// store).
const RUNTIME_EXIT_LIMIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs the command; a failure is printed as one line (with what to do, when there is a usual
/// remedy) and exits with status 1, or the support CLI's status for its failures.
fn main() -> ExitCode {
    let outcome = tokio::runtime::Runtime::new()
        .context("starting the async runtime")
        .and_then(|runtime| {
            let outcome = runtime.block_on(run(Cli::parse().into_command()));
            runtime.shutdown_timeout(RUNTIME_EXIT_LIMIT);
            outcome
        });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let cli = e.chain().find_map(|cause| cause.downcast_ref::<CliError>());
            if cli.is_some_and(CliError::is_closed_output) {
                return ExitCode::SUCCESS;
            }
            let hint = e
                .chain()
                .find_map(|cause| cause.downcast_ref::<AppError>())
                .and_then(AppError::hint)
                .map(|hint| format!("; {hint}"))
                .unwrap_or_default();
            eprintln!("socket-bridge: error: {e:#}{hint}");
            cli.map_or(ExitCode::FAILURE, |e| ExitCode::from(e.exit_code()))
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve(*args).await,
        Command::Prune(args) => {
            telemetry::init_logging();
            let store_dir = settings::store_dir(&args.data_dir);
            let log = EventLog::open(&store_dir)
                .map_err(AppError::from)
                .with_context(|| format!("opening the store in {}", args.data_dir.display()))?;
            let report = log
                .prune(&args.retention.policy(), Timestamp::now(), args.dry_run)
                .context("pruning")?;
            log.close().context("closing the store")?;
            if !args.dry_run {
                PhotoFiles::new(&args.data_dir).forget(&report.photos_forgotten);
            }
            let verb = if args.dry_run {
                "would remove"
            } else {
                "removed"
            };
            println!(
                "{verb} {} events from {} of {} rooms and {} deleted photos' status and files in {} ms",
                report.events_removed,
                report.rooms_pruned,
                report.rooms,
                report.statuses_removed,
                report.duration_ms
            );
            Ok(())
        }
        Command::Compact(args) => {
            telemetry::init_logging();
            let store_dir = settings::store_dir(&args.data_dir);
            let report = socket_bridge::store::compact(&store_dir)
                .with_context(|| format!("compacting the store in {}", args.data_dir.display()))?;
            println!(
                "compacted {} records ({} bytes of keys and values): {} -> {} bytes on disk in {} ms",
                report.records,
                report.record_bytes,
                report.bytes_before,
                report.bytes_after,
                report.duration_ms
            );
            Ok(())
        }
        Command::History(args) => Ok(cli::history(args).await?),
        Command::Status(args) => Ok(cli::status(args).await?),
        Command::Tail(args) => Ok(cli::tail(args).await?),
        Command::DeadLetters(args) => Ok(cli::dead_letters(args).await?),
        Command::Token(args) => {
            let (tokens, _) =
                TokenAuthority::load(args.data.jwt_secret.as_deref(), &args.data.data_dir)
                    .context("loading the token secret")?;
            let token = tokens
                .mint(&args.user, &args.permissions, args.ttl.into())
                .context("signing the token")?;
            println!("{token}");
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    telemetry::init_logging();
    let settings = args.into_settings()?;
    let app = Application::build(&settings).await?;
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel();
    let shutdown = async move {
        shutdown_signal().await;
        let _ = stopping_tx.send(());
    };
    let store_failed = app.store_failed();
    let run = tokio::spawn(app.run_until_stopped(shutdown));
    tokio::pin!(run);
    let limit = tokio::select! {
        finished = &mut run => return finished.context("server task")?.context("serving"),
        _ = stopping_rx => SHUTDOWN_LIMIT,
        () = store_failed => STORE_FAILURE_GRACE + SHUTDOWN_LIMIT,
    };
    match tokio::time::timeout(limit, run).await {
        Ok(finished) => finished.context("server task")?.context("shutting down"),
        Err(_) => anyhow::bail!("shutdown took longer than {limit:?}"),
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(term) => term,
            Err(e) => {
                tracing::error!(error = %ErrorChain(&e), "cannot listen for SIGTERM; only SIGINT stops the hub");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
