//! How events and statuses read in a terminal: local times, a progress bar, and the columns of
//! an event (seq, time, type, progress, stage, detail).

use chrono::{DateTime, Local};
use comfy_table::{CellAlignment, Table};
use serde_json::Value;

/// Width of the progress bar, in cells.
const BAR: usize = 10;

/// The columns of an event row.
pub const EVENT_HEADER: [&str; 6] = ["SEQ", "TIME", "TYPE", "PROGRESS", "STAGE", "DETAIL"];

/// `data` fields that have their own column or say nothing new in a row.
const SHOWN_ELSEWHERE: [&str; 8] = [
    "photoId",
    "progress",
    "stage",
    "eventId",
    "room",
    "seq",
    "timestamp",
    "error",
];

/// An RFC 3339 time in this machine's zone, to the millisecond (`2026-11-25 22:18:28.770`);
/// anything else as it is.
pub fn local_time(rfc3339: &str) -> String {
    DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| {
            t.with_timezone(&Local)
                .format("%Y-%m-%d %H:%M:%S%.3f")
                .to_string()
        })
        .unwrap_or_else(|_| rfc3339.to_owned())
}

/// `██████░░░░  60%` for a progress from 0 to 100.
pub fn progress_bar(progress: f64) -> String {
    let progress = progress.clamp(0.0, 100.0);
    let filled = ((progress / 100.0) * BAR as f64).round() as usize;
    format!(
        "{}{} {:>3.0}%",
        "█".repeat(filled),
        "░".repeat(BAR - filled),
        progress
    )
}

/// The cells of one event: `data` is the event's data (or the payload a client gets).
pub fn event_cells(seq: u64, event_type: &str, timestamp: &str, data: &Value) -> [String; 6] {
    let progress = data["progress"].as_f64().map(progress_bar);
    let stage = data["stage"].as_str().unwrap_or("");
    [
        seq.to_string(),
        local_time(timestamp),
        event_type.to_owned(),
        progress.unwrap_or_default(),
        stage.to_owned(),
        detail(data),
    ]
}

/// What else an event says: its error first, then its other fields as `key=value`.
fn detail(data: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(error) = data["error"].as_str() {
        parts.push(format!("error: {error}"));
    }
    if let Some(fields) = data.as_object() {
        for (key, value) in fields {
            if SHOWN_ELSEWHERE.contains(&key.as_str()) {
                continue;
            }
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            parts.push(format!("{key}={value}"));
        }
    }
    parts.join("  ")
}

/// A borderless table (with `header` when given), columns two spaces apart, a `SEQ` column
/// right-aligned, no trailing spaces.
pub fn table<I, R>(header: Option<&[&str]>, rows: I) -> String
where
    I: IntoIterator<Item = R>,
    R: Into<comfy_table::Row>,
{
    let mut table = Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    if let Some(header) = header {
        table.set_header(header.iter().copied());
    }
    for row in rows {
        table.add_row(row);
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    if let Some(first) = table.column_mut(0)
        && header.and_then(|h| h.first()) == Some(&"SEQ")
    {
        first.set_cell_alignment(CellAlignment::Right);
    }
    table
        .lines()
        .map(|line| line.trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The bar fills in tenths and the percentage is aligned.
    #[test]
    fn progress_bars() {
        assert_eq!(progress_bar(0.0), "░░░░░░░░░░   0%");
        assert_eq!(progress_bar(45.0), "█████░░░░░  45%");
        assert_eq!(progress_bar(100.0), "██████████ 100%");
        assert_eq!(progress_bar(250.0), "██████████ 100%");
    }

    /// An event's cells: progress and stage in their columns, the error first in the detail.
    #[test]
    fn event_cells_split_the_data() {
        let data = json!({ "photoId": "p1", "progress": 40, "stage": "resize", "error": "disk", "attempt": 2 });
        let cells = event_cells(7, "photo.processing.failed", "not a time", &data);
        assert_eq!(cells[0], "7");
        assert_eq!(cells[1], "not a time");
        assert_eq!(cells[3], "████░░░░░░  40%");
        assert_eq!(cells[4], "resize");
        assert_eq!(cells[5], "error: disk  attempt=2");
    }
}
