//! Scenario (c) idle clients: how fast `clients` connect, and what they cost the server in
//! memory once connected and idle.
//!
//! Each client connects with its own user's token (no photo subscription: it is in its default
//! rooms `user:`, `client:` and `global`) and counts once it has `connection:established`; at most
//! `connecting` handshakes are in flight. After `settle`, the server's RSS is read, and one
//! `system.maintenance` event to `global` must reach every client exactly once: the connections
//! are alive, not just counted.

use std::sync::Arc;
use std::time::Duration;

use socket_bridge::auth::Permission;
use tokio::sync::Semaphore;

use super::client::{ClientSpec, Shared};
use super::fleet::{Fleet, Target, Window, check_exactly_once, wait_delivered, wait_ready};
use super::report::Report;

/// The shape of an idle run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Clients to connect.
    pub clients: usize,
    /// Handshakes in flight at once.
    pub connecting: usize,
    /// How long they stay idle before the RSS is read.
    pub settle: Duration,
    /// Longest any wait may take.
    pub limit: Duration,
}

/// Runs the plan against `target` and reports.
pub async fn run(target: &Target, plan: &Plan) -> anyhow::Result<Report> {
    let publisher = target.publisher()?;
    let specs = (0..plan.clients)
        .map(|i| {
            let user = format!("{}-idle{i}", target.run);
            Ok(ClientSpec {
                name: format!("c{i}"),
                token: target.tokens.mint(&user, &[Permission::ReadPhotos])?,
                client_id: format!("{}-c{i}", target.run),
                photo: None,
                measure: false,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let rss_before = target.rss()?;
    let shared = Shared::new(1);
    let gate = Arc::new(Semaphore::new(plan.connecting));
    let window = Window::start(target)?;
    let fleet = Fleet::spawn(target, specs, &shared, &gate);
    let took = wait_ready(&shared, plan.clients, plan.limit).await?;
    let (server, tool) = window.end(target)?;
    tokio::time::sleep(plan.settle).await;
    let rss_after = target.rss()?;

    publisher
        .post(r#"{"type":"system.maintenance","data":{"load":"idle-check"}}"#.to_owned())
        .await?;
    wait_delivered(&shared, plan.clients as u64, plan.limit).await?;
    let ends = fleet.stop().await?;
    check_exactly_once(&shared, &ends, &publisher)?;
    let short: Vec<&str> = ends
        .iter()
        .filter(|end| end.last("global") != Some(publisher.head("global")))
        .map(|end| end.name.as_str())
        .collect();
    anyhow::ensure!(
        short.is_empty(),
        "EXACTLY-ONCE IN ORDER VIOLATED: {} clients missed the global event: {:?}",
        short.len(),
        &short[..short.len().min(10)]
    );

    let mut report = Report::new("idle", &target.name);
    report.count("clients", plan.clients as u64);
    report.num("connect_s", took.as_secs_f64(), "s");
    report.num(
        "connects_per_s",
        plan.clients as f64 / took.as_secs_f64(),
        "/s",
    );
    let connects = plan.clients as u64;
    if let Some(server) = &server {
        report.cpu("server", server, connects, "connect");
    }
    report.cpu("tool", &tool, connects, "connect");
    report.bottleneck(server.as_ref(), &tool);
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        report.num("server_rss_before_mb", before as f64 / 1e6, "MB");
        report.num("server_rss_after_mb", after as f64 / 1e6, "MB");
        let per_1000 = (after as f64 - before as f64) / plan.clients as f64 * 1000.0;
        report.num("server_rss_per_1000_mb", per_1000 / 1e6, "MB");
    }
    report.note(format!(
        "{} handshakes in flight at once; RSS read after {:?} idle",
        plan.connecting, plan.settle
    ));
    Ok(report)
}
