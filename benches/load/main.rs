//! `load`: a native load tool for Socket.IO servers that speak socket-bridge's protocol (the hub,
//! and the Node reference server in `benches/peer`). Results and how to read them:
//! docs/benchmarks.md, "Delivery at the limit".
//!
//! ```text
//! cargo bench --bench load -- --url http://127.0.0.1:8080 --secret "$JWT_SECRET" \
//!     --server-pid "$(pgrep -n socket-bridge)" fan-out
//! ```
//!
//! Scenarios: `fan-out` (a), `fan-out-1` (b), `idle` (c), `paced` (d), `storm` (e); `summarize`
//! turns the `RESULT` lines of several runs into a markdown table of medians and ranges.
//! `benches/load/run.sh` builds, starts each server pinned to core 0 and the tool on core 1, and
//! runs them all. Every scenario checks that each client got every seq of its rooms exactly once
//! and in order, and exits non-zero otherwise.
//!
//! Under `cargo test` (no `--bench` argument, no scenario) it does nothing: the smoke runs live in
//! `tests/load`.

mod tool;

use std::io::Read as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tool::fleet::Target;
use tool::publish::Tokens;
use tool::{idle, paced, report, storm, throughput};

/// Drives a Socket.IO server with native websocket clients and measures it.
#[derive(Parser)]
#[command(name = "load")]
struct Cli {
    #[command(flatten)]
    globals: Globals,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Scenario(Scenario),
    /// Prints a markdown table of medians and ranges from the `RESULT` lines of runs (files, or
    /// standard input when none is given).
    Summarize {
        /// Files holding the output of runs.
        files: Vec<std::path::PathBuf>,
    },
}

/// Options of every scenario.
#[derive(Args)]
struct Globals {
    /// The server, `http://host:port`.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The server's HS256 token secret.
    #[arg(long, global = true, env = "JWT_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// The server's process id: its CPU time and RSS are reported when given.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// The server's name in reports.
    #[arg(long, global = true, default_value = "socket-bridge")]
    server_name: String,
    /// Worker threads of the tool (1: a current-thread runtime, best when pinned to one core).
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    /// Handshakes in flight at once.
    #[arg(long, global = true, default_value_t = 500)]
    connecting: usize,
    /// Longest any single wait may take, seconds.
    #[arg(long, global = true, default_value_t = 120)]
    limit_s: u64,
}

#[derive(Subcommand)]
enum Scenario {
    /// (a) Fan-out 100: clients spread over a few photo rooms, events posted as fast as answered.
    FanOut(Throughput),
    /// (b) Fan-out 1: one client per photo room, many events per room in large posts.
    #[command(name = "fan-out-1")]
    FanOutOne(Throughput),
    /// (c) Idle clients: connects per second and server RSS per 1000 connections.
    Idle(IdleArgs),
    /// (d) Paced delivery: latency from publish to receipt at a set rate, durable.
    Paced(PacedArgs),
    /// (e) Reconnect storm: clients drop at once and resume while others measure live latency.
    Storm(StormArgs),
}

/// Arguments of the throughput scenarios; unset ones take the scenario's defaults.
#[derive(Args)]
struct Throughput {
    /// Connected clients [fan-out: 1000, fan-out-1: 100].
    #[arg(long)]
    clients: Option<usize>,
    /// Photo rooms the clients are spread over [fan-out: 10, fan-out-1: 100].
    #[arg(long)]
    rooms: Option<usize>,
    /// Events posted per room [2000].
    #[arg(long)]
    events_per_room: Option<usize>,
    /// Events per POST [fan-out: 100, fan-out-1: 1000].
    #[arg(long)]
    batch: Option<usize>,
    /// POSTs outstanding at once.
    #[arg(long, default_value_t = 2)]
    in_flight: usize,
    /// Count the server's system calls during the run with `perf stat` (needs --server-pid).
    #[arg(long)]
    count_syscalls: bool,
}

/// Defaults of a throughput scenario: clients, rooms, events per room, events per POST.
struct ThroughputDefaults(usize, usize, usize, usize);

impl Throughput {
    fn plan(
        &self,
        scenario: &'static str,
        defaults: ThroughputDefaults,
        cli: &Globals,
    ) -> throughput::Plan {
        let ThroughputDefaults(clients, rooms, events, batch) = defaults;
        throughput::Plan {
            scenario,
            clients: self.clients.unwrap_or(clients),
            rooms: self.rooms.unwrap_or(rooms),
            events_per_room: self.events_per_room.unwrap_or(events),
            batch: self.batch.unwrap_or(batch),
            in_flight: self.in_flight,
            connecting: cli.connecting,
            count_syscalls: self.count_syscalls,
            limit: Duration::from_secs(cli.limit_s),
        }
    }
}

#[derive(Args)]
struct IdleArgs {
    /// Clients to connect.
    #[arg(long, default_value_t = 5000)]
    clients: usize,
    /// Seconds idle before the server's RSS is read.
    #[arg(long, default_value_t = 3.0)]
    settle_s: f64,
}

#[derive(Args)]
struct PacedArgs {
    /// Connected clients.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Photo rooms the clients are spread over.
    #[arg(long, default_value_t = 10)]
    rooms: usize,
    /// Deliveries per second.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
}

#[derive(Args)]
struct StormArgs {
    /// Clients that drop and resume.
    #[arg(long, default_value_t = 5000)]
    clients: usize,
    /// Photo rooms they are spread over.
    #[arg(long, default_value_t = 50)]
    rooms: usize,
    /// Clients that stay connected and measure live latency.
    #[arg(long, default_value_t = 100)]
    live_clients: usize,
    /// Photo rooms those are spread over.
    #[arg(long, default_value_t = 10)]
    live_rooms: usize,
    /// Events per second per room.
    #[arg(long, default_value_t = 10)]
    rate: u64,
    /// Events each storm client misses.
    #[arg(long, default_value_t = 100)]
    missed: u64,
    /// Seconds of live traffic before the drop.
    #[arg(long, default_value_t = 3.0)]
    warm_s: f64,
    /// Window the reconnects are spread over, milliseconds.
    #[arg(long, default_value_t = 1000)]
    spread_ms: u64,
    /// The goal for all resumed, seconds (reported against).
    #[arg(long, default_value_t = 10.0)]
    deadline_s: f64,
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` appends `--bench`; `cargo test --all-targets` runs this with no arguments.
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    if args.len() == 1 {
        println!("load: no scenario given (nothing to do under cargo test; see --help)");
        return Ok(());
    }
    let Cli {
        globals: cli,
        command,
    } = Cli::parse_from(args);
    let scenario = match command {
        Command::Summarize { files } => return summarize(&files),
        Command::Scenario(scenario) => scenario,
    };
    let runtime = if cli.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cli.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(run(&cli, scenario))
}

/// Prints the table of medians and ranges of the runs in `files` (or standard input).
fn summarize(files: &[std::path::PathBuf]) -> anyhow::Result<()> {
    let mut text = String::new();
    if files.is_empty() {
        std::io::stdin().read_to_string(&mut text)?;
    }
    for file in files {
        text.push_str(
            &std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?,
        );
    }
    print!("{}", report::summarize(&text));
    Ok(())
}

/// Runs one scenario against the server and prints its report.
async fn run(cli: &Globals, scenario: Scenario) -> anyhow::Result<()> {
    let secret = cli
        .secret
        .as_deref()
        .context("give the server's token secret with --secret or JWT_SECRET")?;
    let target = Target {
        base: Arc::from(cli.url.trim_end_matches('/')),
        pid: cli.server_pid,
        name: cli.server_name.clone(),
        tokens: Tokens::new(secret)?,
        run: format!("load{:08x}", rand::random::<u32>()),
    };
    let limit = Duration::from_secs(cli.limit_s);
    let report = match scenario {
        Scenario::FanOut(args) => {
            let plan = args.plan("fan-out", ThroughputDefaults(1000, 10, 2000, 100), cli);
            throughput::run(&target, &plan).await?
        }
        Scenario::FanOutOne(args) => {
            let plan = args.plan("fan-out-1", ThroughputDefaults(100, 100, 2000, 1000), cli);
            throughput::run(&target, &plan).await?
        }
        Scenario::Idle(args) => {
            let plan = idle::Plan {
                clients: args.clients,
                connecting: cli.connecting,
                settle: Duration::from_secs_f64(args.settle_s),
                limit,
            };
            idle::run(&target, &plan).await?
        }
        Scenario::Paced(args) => {
            let plan = paced::Plan {
                clients: args.clients,
                rooms: args.rooms,
                rate: args.rate,
                duration: Duration::from_secs_f64(args.seconds),
                connecting: cli.connecting,
                limit,
            };
            paced::run(&target, &plan).await?
        }
        Scenario::Storm(args) => {
            let plan = storm::Plan {
                clients: args.clients,
                rooms: args.rooms,
                live_clients: args.live_clients,
                live_rooms: args.live_rooms,
                rate: args.rate,
                missed: args.missed,
                warm: Duration::from_secs_f64(args.warm_s),
                spread: Duration::from_millis(args.spread_ms),
                deadline: Duration::from_secs_f64(args.deadline_s),
                connecting: cli.connecting,
                limit,
            };
            storm::run(&target, &plan).await?
        }
    };
    print!("{}", report.render());
    Ok(())
}
