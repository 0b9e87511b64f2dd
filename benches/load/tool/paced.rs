//! Scenario (d) paced delivery: latency from publish to receipt at a set delivery rate, every
//! event durable before it is delivered (one event per `POST /api/events`).
//!
//! `clients` clients are spread over `rooms` photo rooms as in the throughput scenarios; events are
//! posted one per request at `rate / (clients / rooms)` events per second, round-robin over the
//! rooms, for `duration`. Each event carries the time its request was started; each client records
//! receipt minus that time. Requests are not awaited before the next is due (at most
//! `MAX_OUTSTANDING` at once), so a slow answer does not slow the pace.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use super::fleet::{Target, Window, check_exactly_once, owners_of_photos, wait_delivered};
use super::measure::now_us;
use super::publish::progress;
use super::report::Report;

/// Posts outstanding at once before the publisher waits (and the pace slips).
const MAX_OUTSTANDING: usize = 256;

/// The shape of a paced run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Connected clients.
    pub clients: usize,
    /// Photo rooms they are spread over.
    pub rooms: usize,
    /// Deliveries per second to aim at.
    pub rate: u64,
    /// How long events are posted.
    pub duration: Duration,
    /// Clients connecting at once.
    pub connecting: usize,
    /// Longest any wait may take.
    pub limit: Duration,
}

/// Runs the plan against `target` and reports.
pub async fn run(target: &Target, plan: &Plan) -> anyhow::Result<Report> {
    anyhow::ensure!(
        plan.clients >= plan.rooms && plan.rooms > 0 && plan.clients.is_multiple_of(plan.rooms),
        "clients must be a multiple of rooms"
    );
    let fan_out = (plan.clients / plan.rooms) as u64;
    let events_per_s = (plan.rate / fan_out).max(1);
    let events = (events_per_s as f64 * plan.duration.as_secs_f64()).round() as u64;
    let publisher = Arc::new(target.publisher()?);
    let (shared, fleet) = owners_of_photos(
        target,
        &publisher,
        plan.rooms,
        plan.clients,
        plan.connecting,
        plan.limit,
    )
    .await?;

    let photos: Vec<String> = (0..plan.rooms).map(|k| target.photo(k).0).collect();
    let window = Window::start(target)?;
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / events_per_s as f64));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut posts = JoinSet::new();
    let mut slipped = 0u64;
    for n in 0..events {
        ticks.tick().await;
        while let Some(done) = posts.try_join_next() {
            joined(Some(done))?;
        }
        if posts.len() >= MAX_OUTSTANDING {
            slipped += 1;
            joined(posts.join_next().await)?;
        }
        let body = progress(&photos[n as usize % plan.rooms], n, now_us());
        let publisher = Arc::clone(&publisher);
        posts.spawn(async move { publisher.post(body).await });
    }
    while let Some(done) = posts.join_next().await {
        joined(Some(done))?;
    }
    let deliveries = events * fan_out;
    wait_delivered(&shared, deliveries, plan.limit).await?;
    let (server, tool) = window.end(target)?;
    let ends = fleet.stop().await?;
    check_exactly_once(&shared, &ends, &publisher)?;

    let mut report = Report::new("paced", &target.name);
    report.count("clients", plan.clients as u64);
    report.count("rooms", plan.rooms as u64);
    report.count("events", events);
    report.count("deliveries", deliveries);
    report.num(
        "deliveries_per_s",
        deliveries as f64 / tool.wall.as_secs_f64(),
        "/s",
    );
    report.latency("latency", &shared.latency(0));
    if let Some(server) = &server {
        report.cpu("server", server, deliveries, "delivery");
    }
    report.cpu("tool", &tool, deliveries, "delivery");
    report.bottleneck(server.as_ref(), &tool);
    if slipped > 0 {
        report.note(format!(
            "the pace slipped {slipped} times: {MAX_OUTSTANDING} posts were outstanding"
        ));
    }
    report.note(format!(
        "{events_per_s} events/s, one per POST (each durable before it is answered and delivered)"
    ));
    Ok(report)
}

/// The outcome of a finished post task.
fn joined(
    done: Option<Result<anyhow::Result<usize>, tokio::task::JoinError>>,
) -> anyhow::Result<()> {
    if let Some(done) = done {
        done.context("post task")?.context("posting an event")?;
    }
    Ok(())
}
