//! Logging (tracing, structured; `RUST_LOG` filters, `LOG_FORMAT=json` for JSON lines) and the
//! process-wide Prometheus recorder, with every metric's name in [`metric`].

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Installs the log subscriber. Safe to call more than once (later calls do nothing).
pub fn init_logging() {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(
            "info,tokio_cron_scheduler=warn,socketioxide=warn,engineioxide=warn,async_nats=warn",
        )
    });
    // Debug lines that print secrets are kept out unless the operator names the crate in
    // RUST_LOG on purpose: the NATS client's print server URLs with their credentials, the
    // Socket.IO server's print each handshake's `auth` (its token) and every message received.
    let rust_log = std::env::var("RUST_LOG").unwrap_or_default();
    for krate in ["async_nats", "socketioxide", "engineioxide"] {
        if !rust_log.contains(krate)
            && let Ok(directive) = format!("{krate}=info").parse()
        {
            filter = filter.add_directive(directive);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let installed = if std::env::var("LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    drop(installed);
}

/// Displays an error with its chain of sources, `outer: inner: innermost`, for logs.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'a));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

/// The process-wide Prometheus handle (the recorder is installed on first use).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(std::time::Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .ok();
            handle
        })
        .clone()
}

/// Every metric the hub records, by name. Recording sites use these constants; the README's list
/// is checked against them by a test.
pub mod metric {
    /// Hub events (`client.*`) dropped because the bus queue was full.
    pub const BUS_PUBLISH_DROPPED_TOTAL: &str = "bus_publish_dropped_total";
    /// Hub events the bus refused.
    pub const BUS_PUBLISH_FAILURES_TOTAL: &str = "bus_publish_failures_total";
    /// Events written to the event log (duplicates not counted).
    pub const EVENT_LOG_EVENTS_APPENDED_TOTAL: &str = "event_log_events_appended_total";
    /// Stored events handed to sockets live by the dispatcher.
    pub const EVENTS_DELIVERED_TOTAL: &str = "events_delivered_total";
    /// Socket.IO connections refused at the handshake, by reason.
    pub const HANDSHAKES_REFUSED_TOTAL: &str = "handshakes_refused_total";
    /// Live subscriptions moved to catching up (gap or full socket queue).
    pub const HUB_SLOW_SUBSCRIPTIONS_TOTAL: &str = "hub_slow_subscriptions_total";
    /// Live-only events dropped because they arrived faster than they could be broadcast.
    pub const LIVE_EVENTS_DROPPED_TOTAL: &str = "live_events_dropped_total";
    /// NATS acks that could not be sent.
    pub const NATS_ACK_FAILURES_TOTAL: &str = "nats_ack_failures_total";
    /// Times the NATS consumer had to be set up again.
    pub const NATS_CONSUMER_FAILURES_TOTAL: &str = "nats_consumer_failures_total";
    /// NATS messages consumed before that came back when their event was no longer stored
    /// (pruned by retention, or refused before); terminated, not stored again.
    pub const NATS_MESSAGES_ALREADY_CONSUMED_TOTAL: &str = "nats_messages_already_consumed_total";
    /// NATS messages refused and kept in the dead-letter stream, by reason.
    pub const NATS_MESSAGES_DEAD_LETTERED_TOTAL: &str = "nats_messages_dead_lettered_total";
    /// NATS messages whose event id was already stored.
    pub const NATS_MESSAGES_DUPLICATE_TOTAL: &str = "nats_messages_duplicate_total";
    /// Live-only NATS messages passed on unstored.
    pub const NATS_MESSAGES_LIVE_TOTAL: &str = "nats_messages_live_total";
    /// NATS messages nak'ed after a store failure.
    pub const NATS_MESSAGES_NACKED_TOTAL: &str = "nats_messages_nacked_total";
    /// NATS messages stored.
    pub const NATS_MESSAGES_STORED_TOTAL: &str = "nats_messages_stored_total";
    /// Photo processing jobs ended, by outcome (`completed`, `failed`, `retried`).
    pub const PHOTO_JOBS_TOTAL: &str = "photo_jobs_total";
    /// Photo uploads accepted (answered 202).
    pub const PHOTO_UPLOADS_TOTAL: &str = "photo_uploads_total";
    /// Photo uploads refused or failed after the token was accepted, by error code.
    pub const PHOTO_UPLOADS_REFUSED_TOTAL: &str = "photo_uploads_refused_total";
    /// Events removed by retention.
    pub const PRUNE_EVENTS_REMOVED_TOTAL: &str = "prune_events_removed_total";
    /// Retention passes that failed.
    pub const PRUNE_FAILURES_TOTAL: &str = "prune_failures_total";
    /// Scheduled retention passes skipped because one was still running.
    pub const PRUNE_RUNS_SKIPPED_TOTAL: &str = "prune_runs_skipped_total";
    /// Retention passes run.
    pub const PRUNE_RUNS_TOTAL: &str = "prune_runs_total";
    /// Corrupt store records met (each counted once), skipped by reads, prune and open.
    pub const STORE_CORRUPT_RECORDS_TOTAL: &str = "store_corrupt_records_total";
    /// Catch-ups started (replay, resume or slow client).
    pub const REPLAYS_STARTED_TOTAL: &str = "replays_started_total";
    /// Pauses of catch-ups because the runtime was busy (the live path goes first).
    pub const REPLAY_PAUSES_TOTAL: &str = "replay_pauses_total";
    /// `replay:truncated` notices sent.
    pub const REPLAYS_TRUNCATED_TOTAL: &str = "replays_truncated_total";
    /// Socket requests refused, by code.
    pub const REQUESTS_REFUSED_TOTAL: &str = "requests_refused_total";
    /// `resume` handshakes served.
    pub const RESUMES_TOTAL: &str = "resumes_total";
    /// Bytes of the event-id index's run filters kept in memory between group commits.
    pub const EVENT_LOG_ID_FILTER_BYTES: &str = "event_log_id_filter_bytes";
    /// Rooms with at least one subscriber.
    pub const HUB_ACTIVE_ROOMS: &str = "hub_active_rooms";
    /// Connected sockets.
    pub const HUB_CONNECTED_SOCKETS: &str = "hub_connected_sockets";
    /// 1 while the NATS consumer is reading, else 0.
    pub const NATS_CONSUMING: &str = "nats_consuming";
    /// Bytes the event log takes on disk.
    pub const STORE_SIZE_ON_DISK_BYTES: &str = "store_size_on_disk_bytes";
    /// Time from an append call to its durable answer.
    pub const EVENT_LOG_APPEND_SECONDS: &str = "event_log_append_seconds";
    /// Time to write and flush one group commit.
    pub const EVENT_LOG_GROUP_COMMIT_SECONDS: &str = "event_log_group_commit_seconds";
    /// Time to process one photo, from `started` to `completed`.
    pub const PHOTO_PROCESSING_SECONDS: &str = "photo_processing_seconds";
    /// Duration of retention passes.
    pub const PRUNE_DURATION_SECONDS: &str = "prune_duration_seconds";
    /// Events replayed per catch-up before going live.
    pub const REPLAY_EVENTS: &str = "replay_events";

    /// Every counter.
    pub const COUNTERS: &[&str] = &[
        BUS_PUBLISH_DROPPED_TOTAL,
        BUS_PUBLISH_FAILURES_TOTAL,
        EVENT_LOG_EVENTS_APPENDED_TOTAL,
        EVENTS_DELIVERED_TOTAL,
        HANDSHAKES_REFUSED_TOTAL,
        HUB_SLOW_SUBSCRIPTIONS_TOTAL,
        LIVE_EVENTS_DROPPED_TOTAL,
        NATS_ACK_FAILURES_TOTAL,
        NATS_CONSUMER_FAILURES_TOTAL,
        NATS_MESSAGES_ALREADY_CONSUMED_TOTAL,
        NATS_MESSAGES_DEAD_LETTERED_TOTAL,
        NATS_MESSAGES_DUPLICATE_TOTAL,
        NATS_MESSAGES_LIVE_TOTAL,
        NATS_MESSAGES_NACKED_TOTAL,
        NATS_MESSAGES_STORED_TOTAL,
        PHOTO_JOBS_TOTAL,
        PHOTO_UPLOADS_REFUSED_TOTAL,
        PHOTO_UPLOADS_TOTAL,
        PRUNE_EVENTS_REMOVED_TOTAL,
        PRUNE_FAILURES_TOTAL,
        PRUNE_RUNS_SKIPPED_TOTAL,
        PRUNE_RUNS_TOTAL,
        REPLAYS_STARTED_TOTAL,
        REPLAY_PAUSES_TOTAL,
        STORE_CORRUPT_RECORDS_TOTAL,
        REPLAYS_TRUNCATED_TOTAL,
        REQUESTS_REFUSED_TOTAL,
        RESUMES_TOTAL,
    ];
    /// Every gauge.
    pub const GAUGES: &[&str] = &[
        EVENT_LOG_ID_FILTER_BYTES,
        HUB_ACTIVE_ROOMS,
        HUB_CONNECTED_SOCKETS,
        NATS_CONSUMING,
        STORE_SIZE_ON_DISK_BYTES,
    ];
    /// Every histogram.
    pub const HISTOGRAMS: &[&str] = &[
        EVENT_LOG_APPEND_SECONDS,
        EVENT_LOG_GROUP_COMMIT_SECONDS,
        PHOTO_PROCESSING_SECONDS,
        PRUNE_DURATION_SECONDS,
        REPLAY_EVENTS,
    ];
}

/// Registers every metric of [`metric`] at zero, so that `/metrics` lists all of them from the
/// start.
pub fn register_metrics() {
    for name in metric::COUNTERS {
        metrics::counter!(*name).absolute(0);
    }
    for name in metric::GAUGES {
        metrics::gauge!(*name).set(0.0);
    }
    for name in metric::HISTOGRAMS {
        drop(metrics::histogram!(*name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The metric names of the README's "Metrics" table.
    fn readme_metrics() -> Vec<String> {
        let readme = include_str!("../README.md");
        let section = readme
            .split("\n## Metrics\n")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("the README has a Metrics section");
        section
            .lines()
            .filter_map(|line| line.strip_prefix("| `"))
            .filter_map(|rest| rest.split('`').next())
            .map(str::to_owned)
            .collect()
    }

    /// The README lists exactly the metrics the hub records, and each of them is in `/metrics`
    /// from the start.
    #[test]
    fn readme_metrics_are_registered_at_start() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, register_metrics);
        let rendered = handle.render();
        let mut listed = readme_metrics();
        listed.sort();
        let mut known: Vec<String> = metric::COUNTERS
            .iter()
            .chain(metric::GAUGES)
            .chain(metric::HISTOGRAMS)
            .map(|m| (*m).to_owned())
            .collect();
        known.sort();
        assert_eq!(listed, known, "README table vs telemetry::metric");
        for name in &known {
            assert!(
                rendered.lines().any(|l| l.starts_with(name.as_str())),
                "{name} is not in /metrics at start"
            );
        }
    }

    /// A chain prints every cause once, outermost first.
    #[test]
    fn error_chain_prints_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(ErrorChain(&e).to_string(), "outer: inner");
    }
}
