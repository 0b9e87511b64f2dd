//! Scenario (e) reconnect storm: `clients` clients drop at once while events continue, come back
//! with `resume` having missed about `missed` events each, and must all be resumed, gap-free,
//! within the deadline; meanwhile `live_clients` other clients that never drop measure live
//! latency.
//!
//! The storm clients are spread over `rooms` photo rooms, the live ones over `live_rooms` others.
//! A publisher posts one event to every room each `1 / rate` s (each room gets `rate` events/s)
//! for the whole run: per tick one array for the storm rooms and, at the same time, one for the
//! live rooms, as two producers would, so that live events never wait behind the storm rooms'
//! events of their own request. Timeline: all connect and subscribe; `warm` of live
//! traffic; the storm clients drop their connections (no close handshake); they stay away for
//! `missed / rate` s; they all reconnect within `spread` (each after a random delay, like
//! socket.io-client's randomized reconnection delay) with `resume` set to their last seqs (and, for
//! Node's socket.io, the recovery `pid` and `offset`). A client is resumed when `resume:complete`
//! arrives, which both servers send after the missed events; a failed attempt is tried again with
//! socket.io-client's backoff. Live latency is recorded in four windows: before the drop, while
//! the storm clients are away, from the reconnect until every client has resumed, and one second
//! after. The CPU of both sides is reported for the warm window (per delivery: every client live)
//! and from the reconnect until all have resumed (per resume).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::Semaphore;
use tokio::time::MissedTickBehavior;

use super::client::{Phase, Shared};
use super::fleet::{
    Fleet, Target, Window, check_exactly_once, wait_delivered, wait_for, wait_ready,
};
use super::measure::now_us;
use super::publish::{Publisher, batch, progress};
use super::report::Report;

/// The shape of a storm run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Clients that drop and resume.
    pub clients: usize,
    /// Photo rooms they are spread over.
    pub rooms: usize,
    /// Clients that stay connected and measure latency.
    pub live_clients: usize,
    /// Photo rooms those are spread over.
    pub live_rooms: usize,
    /// Events per second per room.
    pub rate: u64,
    /// Events each storm client should miss.
    pub missed: u64,
    /// Live traffic before the drop.
    pub warm: Duration,
    /// Window over which the reconnects are spread.
    pub spread: Duration,
    /// What the goal allows from reconnect to all resumed (reported against; the wait itself
    /// is bounded by `limit`).
    pub deadline: Duration,
    /// Handshakes in flight at once.
    pub connecting: usize,
    /// Longest any wait may take.
    pub limit: Duration,
}

/// Runs the plan against `target` and reports.
pub async fn run(target: &Target, plan: &Plan) -> anyhow::Result<Report> {
    let all_rooms = plan.rooms + plan.live_rooms;
    let publisher = Arc::new(target.publisher()?);
    target.create_photos(&publisher, all_rooms).await?;
    let shared = Shared::new(4);
    let gate = Arc::new(Semaphore::new(plan.connecting));
    let storm_specs = target.owner_clients(0, plan.clients, false, |i| i % plan.rooms)?;
    let live_specs = target.owner_clients(plan.clients, plan.live_clients, true, |i| {
        plan.rooms + i % plan.live_rooms
    })?;
    let storm = Fleet::spawn(target, storm_specs, &shared, &gate);
    let live = Fleet::spawn(target, live_specs, &shared, &gate);
    wait_ready(&shared, plan.clients + plan.live_clients, plan.limit).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let photos: Vec<String> = (0..all_rooms).map(|k| target.photo(k).0).collect();
    let feeding = tokio::spawn(feed(
        Arc::clone(&publisher),
        photos.clone(),
        plan.rooms,
        plan.rate,
        Arc::clone(&stop),
        plan.limit,
    ));
    // The warm window's CPU (from its second tick, after the clients' first frames): what live
    // delivery to every client costs before the storm, on each side.
    let tick = Duration::from_secs_f64(1.0 / plan.rate.max(1) as f64).min(plan.warm);
    tokio::time::sleep(tick).await;
    let warm = Window::start(target)?;
    let warm_from = shared.delivered.load(Ordering::Relaxed);
    tokio::time::sleep(plan.warm - tick).await;
    let (warm_server, warm_tool) = warm.end(target)?;
    let warm_deliveries = shared.delivered.load(Ordering::Relaxed) - warm_from;

    let storm_heads = |p: &Publisher| -> Vec<u64> {
        photos[..plan.rooms]
            .iter()
            .map(|photo| p.head(&format!("photo:{photo}")))
            .collect()
    };
    let at_drop = storm_heads(&publisher);
    shared.record_into(1);
    storm.set(Phase::Drop);
    tokio::time::sleep(Duration::from_secs_f64(
        plan.missed as f64 / plan.rate as f64,
    ))
    .await;
    let at_reconnect = storm_heads(&publisher);
    let missed: u64 = at_reconnect.iter().zip(&at_drop).map(|(r, d)| r - d).sum();
    let missed_avg = missed as f64 / plan.rooms as f64;

    shared.record_into(2);
    shared.reconnect_starts();
    let window = Window::start(target)?;
    storm.set(Phase::Reconnect {
        spread: plan.spread,
    });
    let resumed = wait_for(&shared, "every storm client to resume", plan.limit, || {
        shared.resumed.load(Ordering::Relaxed) >= plan.clients
    })
    .await?;
    let (server, tool) = window.end(target)?;
    shared.record_into(3);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let (ticks, slipped) = feeding.await.context("publisher task")??;

    // Every client must end with every event of its room after the photo's upload (seq 1).
    let head_of = |k: usize| publisher.head(&format!("photo:{}", photos[k])) - 1;
    let expected: u64 = (0..plan.clients)
        .map(|i| head_of(i % plan.rooms))
        .chain((0..plan.live_clients).map(|i| head_of(plan.rooms + i % plan.live_rooms)))
        .sum();
    wait_delivered(&shared, expected, plan.limit).await?;
    let mut ends = storm.stop().await?;
    ends.extend(live.stop().await?);
    check_exactly_once(&shared, &ends, &publisher)?;

    let mut report = Report::new("storm", &target.name);
    report.count("storm_clients", plan.clients as u64);
    report.count("live_clients", plan.live_clients as u64);
    report.num("missed_per_client", missed_avg, "events");
    report.num("all_resumed_s", resumed.as_secs_f64(), "s");
    report.count(
        "recovered_by_socket_io",
        shared.recovered.load(Ordering::Relaxed) as u64,
    );
    report.count(
        "reconnect_retries",
        shared.retries.load(Ordering::Relaxed) as u64,
    );
    report.num("deadline_s", plan.deadline.as_secs_f64(), "s");
    let resume = shared.resume_times();
    for (name, q) in [("resume_p50_s", 0.5), ("resume_p99_s", 0.99)] {
        report.num(name, resume.value_at_quantile(q) as f64 / 1e6, "s");
    }
    report.count("replayed", missed * (plan.clients / plan.rooms) as u64);
    report.count("before_deliveries", warm_deliveries);
    if let Some(server) = &warm_server {
        report.cpu("server_before", server, warm_deliveries, "delivery");
    }
    report.cpu("tool_before", &warm_tool, warm_deliveries, "delivery");
    report.latency("live_before", &shared.latency(0));
    report.latency("live_away", &shared.latency(1));
    report.latency("live_storm", &shared.latency(2));
    report.latency("live_after", &shared.latency(3));
    if let Some(server) = &server {
        report.cpu("server", server, plan.clients as u64, "resume");
    }
    report.cpu("tool", &tool, plan.clients as u64, "resume");
    report.bottleneck(server.as_ref(), &tool);
    report.count("publish_ticks", ticks);
    if slipped > 0 {
        report.note(format!(
            "the publisher fell behind its pace {slipped} times (a post outlasted a tick)"
        ));
    }
    report.note(format!(
        "reconnects spread over {:?}; {} events/s per room over {all_rooms} rooms",
        plan.spread, plan.rate
    ));
    Ok(report)
}

/// Posts one event to each photo every `1 / rate` s until `stop` (or `limit`), the first
/// `split` photos and the others in two concurrent requests; returns the ticks posted and how many
/// of them came late.
async fn feed(
    publisher: Arc<Publisher>,
    photos: Vec<String>,
    split: usize,
    rate: u64,
    stop: Arc<AtomicBool>,
    limit: Duration,
) -> anyhow::Result<(u64, u64)> {
    let period = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let start = tokio::time::Instant::now();
    let (mut n, mut slipped) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) && start.elapsed() < limit {
        let due = ticks.tick().await;
        if due.elapsed() > period {
            slipped += 1;
        }
        let sent = now_us();
        let (storm, live) = photos.split_at(split);
        let body = |photos: &[String]| batch(photos.iter().map(|photo| progress(photo, n, sent)));
        let (storm, live) = tokio::join!(publisher.post(body(storm)), publisher.post(body(live)));
        storm?;
        live?;
        n += 1;
    }
    Ok((n, slipped))
}
