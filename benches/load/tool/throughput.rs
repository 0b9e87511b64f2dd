//! Scenarios (a) fan-out 100 and (b) fan-out 1: as many deliveries as the server can make.
//!
//! `clients` clients are spread evenly over `rooms` photo rooms (client `i` in room `i % rooms`,
//! subscribed as the photo's owner). Then `events_per_room` `photo.processing.progress` events
//! per room are posted in arrays of `batch`, round-robin over the rooms, with `in_flight` posts
//! outstanding. The measured window runs from the first post to the last in-order delivery.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::fleet::{Target, Window, check_exactly_once, owners_of_photos, wait_delivered};
use super::measure::{SyscallCounter, now_us};
use super::publish::{Publisher, batch, progress};
use super::report::Report;

/// The shape of a throughput run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `fan-out` or `fan-out-1`, for the report.
    pub scenario: &'static str,
    /// Connected clients.
    pub clients: usize,
    /// Photo rooms they are spread over.
    pub rooms: usize,
    /// Events posted per room.
    pub events_per_room: usize,
    /// Events per `POST /api/events`.
    pub batch: usize,
    /// Posts outstanding at once.
    pub in_flight: usize,
    /// Clients connecting at once.
    pub connecting: usize,
    /// Count the server's system calls with `perf stat` during the window.
    pub count_syscalls: bool,
    /// Longest any wait may take.
    pub limit: Duration,
}

/// Runs the plan against `target` and reports.
pub async fn run(target: &Target, plan: &Plan) -> anyhow::Result<Report> {
    anyhow::ensure!(
        plan.clients >= plan.rooms && plan.rooms > 0,
        "need at least one client per room"
    );
    let publisher = target.publisher()?;
    let (shared, fleet) = owners_of_photos(
        target,
        &publisher,
        plan.rooms,
        plan.clients,
        plan.connecting,
        plan.limit,
    )
    .await?;

    let events = plan.rooms * plan.events_per_room;
    let deliveries = (plan.events_per_room * plan.clients) as u64;
    let slow_before = publisher.metric("hub_slow_subscriptions_total").await;
    let syscalls = match (plan.count_syscalls, target.pid) {
        (true, Some(pid)) => Some(SyscallCounter::start(pid)?),
        _ => None,
    };
    let window = Window::start(target)?;
    let posting = Instant::now();
    post_all(&publisher, target, plan, events).await?;
    let posted = posting.elapsed();
    wait_delivered(&shared, deliveries, plan.limit).await?;
    let (server, tool) = window.end(target)?;
    let syscalls = syscalls.map(SyscallCounter::finish).transpose()?;
    let slow_after = publisher.metric("hub_slow_subscriptions_total").await;
    let rss = target.rss()?;

    let ends = fleet.stop().await?;
    check_exactly_once(&shared, &ends, &publisher)?;

    let label = if plan.count_syscalls {
        format!("{} (perf stat)", plan.scenario)
    } else {
        plan.scenario.to_owned()
    };
    let mut report = Report::new(&label, &target.name);
    report.count("clients", plan.clients as u64);
    report.count("rooms", plan.rooms as u64);
    report.count("events", events as u64);
    report.count("deliveries", deliveries);
    report.num("wall_s", tool.wall.as_secs_f64(), "s");
    report.num("post_s", posted.as_secs_f64(), "s");
    let wall = tool.wall.as_secs_f64();
    report.num("deliveries_per_s", deliveries as f64 / wall, "/s");
    report.num("events_per_s", events as f64 / wall, "/s");
    if let Some(server) = &server {
        report.cpu("server", server, deliveries, "delivery");
        report.num(
            "server_us_per_event",
            server.micros_per(events as u64),
            "µs",
        );
    }
    report.cpu("tool", &tool, deliveries, "delivery");
    report.bottleneck(server.as_ref(), &tool);
    if let Some(count) = syscalls {
        report.count("server_syscalls", count);
        report.num(
            "server_syscalls_per_delivery",
            count as f64 / deliveries as f64,
            "",
        );
    }
    if let (Some(before), Some(after)) = (slow_before, slow_after) {
        report.num("slow_subscriptions", after - before, "");
    }
    if let Some(rss) = rss {
        report.num("server_rss_mb", rss as f64 / 1e6, "MB");
    }
    report.latency("latency_under_load", &shared.latency(0));
    report.note(format!(
        "latency here is under saturation (queueing included); scenario paced measures it at a \
         set rate. Posts of {} events, {} outstanding.",
        plan.batch, plan.in_flight
    ));
    Ok(report)
}

/// Posts every event of the plan: batch `b` holds events `b * batch ..` of the round-robin order
/// (event `n` goes to room `n % rooms`), stamped when the batch is built.
async fn post_all(
    publisher: &Publisher,
    target: &Target,
    plan: &Plan,
    events: usize,
) -> anyhow::Result<()> {
    let photos: Vec<String> = (0..plan.rooms).map(|k| target.photo(k).0).collect();
    let mut pending = FuturesUnordered::new();
    let mut next = 0;
    while next < events || !pending.is_empty() {
        while next < events && pending.len() < plan.in_flight {
            let end = (next + plan.batch).min(events);
            let sent = now_us();
            let body = batch((next..end).map(|n| {
                let room = n % plan.rooms;
                progress(&photos[room], (n / plan.rooms) as u64, sent)
            }));
            pending.push(publisher.post(body));
            next = end;
        }
        if let Some(result) = pending.next().await {
            result.context("posting events")?;
        }
    }
    Ok(())
}
