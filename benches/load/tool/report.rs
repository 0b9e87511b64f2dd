//! What a scenario run reports: named figures printed for people, and the same as one JSON line
//! (`RESULT {...}`) that `summarize` turns into a table of medians and ranges over repeated runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::measure::{CpuUse, load_average};

/// Share of a core stolen by the hypervisor from which a run gets a note that it was disturbed.
const STEAL_NOTE: f64 = 0.05;

/// The prefix of the machine-readable line of a run.
pub const RESULT_PREFIX: &str = "RESULT ";

/// The figures of one scenario run, in the order they were added.
pub struct Report {
    scenario: String,
    server: String,
    figures: Vec<(String, Value, &'static str)>,
    notes: Vec<String>,
}

impl Report {
    /// An empty report of `scenario` against `server`, stamped with the load average.
    pub fn new(scenario: &str, server: &str) -> Self {
        let mut report = Self {
            scenario: scenario.to_owned(),
            server: server.to_owned(),
            figures: Vec::new(),
            notes: Vec::new(),
        };
        report.num("load_avg_start", load_average(), "");
        report
    }

    /// Adds a number with its unit.
    pub fn num(&mut self, name: &str, value: f64, unit: &'static str) {
        let value = if value.is_finite() {
            json!((value * 1000.0).round() / 1000.0)
        } else {
            Value::Null
        };
        self.figures.push((name.to_owned(), value, unit));
    }

    /// Adds a count.
    pub fn count(&mut self, name: &str, value: u64) {
        self.figures.push((name.to_owned(), json!(value), ""));
    }

    /// Adds a sentence worth reading beside the figures.
    pub fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    /// Adds the CPU figures of `who` (`server` or `tool`) over `used`, per `count` units of work
    /// named `per` (e.g. `delivery`).
    pub fn cpu(&mut self, who: &str, used: &CpuUse, count: u64, per: &str) {
        self.num(&format!("{who}_cpu_s"), used.cpu.as_secs_f64(), "s");
        self.num(&format!("{who}_us_per_{per}"), used.micros_per(count), "µs");
        self.num(&format!("{who}_util"), used.utilization(), "cores");
        let wall = used.wall.as_secs_f64().max(1e-9);
        if let Some(others) = used.others {
            self.num(
                &format!("{who}_core_others"),
                others.as_secs_f64() / wall,
                "cores",
            );
        }
        if let Some(steal) = used.steal {
            let share = steal.as_secs_f64() / wall;
            self.num(&format!("{who}_core_steal"), share, "cores");
            if share >= STEAL_NOTE {
                self.note(format!(
                    "the hypervisor took {:.0}% of the {who}'s core (steal): this run's figures are \
                     disturbed; compare only with runs as disturbed, or run again",
                    share * 100.0
                ));
            }
        }
    }

    /// Adds p50, p99, p99.9 and max of a µs histogram, in milliseconds, as `<prefix>_p50_ms` ...
    pub fn latency(&mut self, prefix: &str, histogram: &Histogram<u64>) {
        self.count(&format!("{prefix}_samples"), histogram.len());
        if histogram.is_empty() {
            return;
        }
        for (name, q) in [("p50", 0.5), ("p99", 0.99), ("p999", 0.999)] {
            let ms = histogram.value_at_quantile(q) as f64 / 1000.0;
            self.num(&format!("{prefix}_{name}_ms"), ms, "ms");
        }
        self.num(
            &format!("{prefix}_max_ms"),
            histogram.max() as f64 / 1000.0,
            "ms",
        );
    }

    /// Says which side was saturated, from both sides' CPU over the same interval.
    pub fn bottleneck(&mut self, server: Option<&CpuUse>, tool: &CpuUse) {
        const SATURATED: f64 = 0.9;
        let server_busy = server.is_some_and(|s| s.utilization() >= SATURATED);
        let tool_busy = tool.utilization() >= SATURATED;
        let verdict = match (server_busy, tool_busy) {
            (true, true) => "both",
            (true, false) => "server",
            (false, true) => "tool",
            (false, false) => "neither",
        };
        self.figures
            .push(("bottleneck".to_owned(), json!(verdict), ""));
        if tool_busy {
            self.note(
                "the tool's core was saturated: throughput is the tool's limit, not the server's"
                    .to_owned(),
            );
        }
    }

    /// The figures for people, then the `RESULT` line.
    pub fn render(mut self) -> String {
        self.num("load_avg_end", load_average(), "");
        let mut out = format!("== {} against {}\n", self.scenario, self.server);
        for (name, value, unit) in &self.figures {
            let _ = writeln!(out, "  {name:<28} {value} {unit}");
        }
        for note in &self.notes {
            let _ = writeln!(out, "  note: {note}");
        }
        let figures: Vec<Value> = self
            .figures
            .into_iter()
            .map(|(name, value, _)| json!([name, value]))
            .collect();
        let line = json!({ "scenario": self.scenario, "server": self.server, "figures": figures });
        let _ = writeln!(out, "{RESULT_PREFIX}{line}");
        out
    }
}

/// A markdown table of the median and range of every numeric figure, per scenario and server,
/// from `RESULT` lines, after a list of the `FAILED` lines `run.sh` writes for failed runs (other
/// lines are skipped).
pub fn summarize(text: &str) -> String {
    // (scenario, server) -> figure -> values, in first-seen order of figures.
    type Figures = Vec<(String, Vec<Value>)>;
    let mut runs: BTreeMap<(String, String), Figures> = BTreeMap::new();
    let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
    for line in text.lines() {
        let Some(json) = line.strip_prefix(RESULT_PREFIX) else {
            continue;
        };
        let Ok(run) = serde_json::from_str::<Value>(json) else {
            continue;
        };
        let key = (
            run["scenario"].as_str().unwrap_or("?").to_owned(),
            run["server"].as_str().unwrap_or("?").to_owned(),
        );
        *counts.entry(key.clone()).or_default() += 1;
        let figures = runs.entry(key).or_default();
        for pair in run["figures"].as_array().into_iter().flatten() {
            let (Some(name), value) = (pair[0].as_str(), pair[1].clone()) else {
                continue;
            };
            match figures.iter_mut().find(|(n, _)| n == name) {
                Some((_, values)) => values.push(value),
                None => figures.push((name.to_owned(), vec![value])),
            }
        }
    }
    let mut out = String::new();
    for failed in text.lines().filter(|line| line.starts_with("FAILED ")) {
        let _ = writeln!(out, "- {failed}");
    }
    for ((scenario, server), figures) in &runs {
        let n = counts[&(scenario.clone(), server.clone())];
        let _ = writeln!(out, "\n### {scenario}: {server} ({n} runs)\n");
        let _ = writeln!(out, "| figure | median | range |");
        let _ = writeln!(out, "|---|---:|---:|");
        for (name, values) in figures {
            let mut sorted: Vec<f64> = values.iter().filter_map(Value::as_f64).collect();
            if sorted.is_empty() {
                // Words (the bottleneck): each run's, in order.
                let words: Vec<&str> = values.iter().filter_map(Value::as_str).collect();
                let _ = writeln!(out, "| {name} | {} | |", words.join(", "));
                continue;
            }
            sorted.sort_by(f64::total_cmp);
            let median = sorted[sorted.len() / 2];
            let (low, high) = (sorted[0], sorted[sorted.len() - 1]);
            let _ = writeln!(
                out,
                "| {name} | {} | {} – {} |",
                short(median),
                short(low),
                short(high)
            );
        }
    }
    out
}

/// A number with at most three significant decimals, without trailing zeros.
fn short(value: f64) -> String {
    let digits = if value.abs() >= 100.0 {
        0
    } else if value.abs() >= 10.0 {
        1
    } else if value.abs() >= 1.0 {
        2
    } else {
        3
    };
    format!("{value:.digits$}")
}
