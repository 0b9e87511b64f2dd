//! `socket-bridge history`: every event of a photo (or any room) from `--after + 1` to the end,
//! or at most `--limit`, read page by page from the history endpoint.

use std::io::Write;

use serde_json::{Value, json};

use super::args::{HistoryArgs, HistoryFormat};
use super::client::HubClient;
use super::csv;
use super::error::CliError;
use super::render::{EVENT_HEADER, event_cells, table};
use crate::domain::{PhotoId, Room};

/// Largest page the hub gives.
const MAX_PAGE: u64 = 1000;

/// Runs `history`, printing to stdout.
pub async fn history(args: HistoryArgs) -> Result<(), CliError> {
    let client = HubClient::new(&args.server)?;
    let (path, what) = target(&args)?;
    let mut out = std::io::stdout().lock();
    let mut printer = Printer::new(args.format, args.after);
    let mut after = args.after;
    let mut left = args.limit;
    let next_after = loop {
        let page_size = left.map_or(MAX_PAGE, |l| l.min(MAX_PAGE));
        if page_size == 0 {
            break (after > args.after).then_some(after);
        }
        let page = client
            .get_json(&format!("{path}?after={after}&limit={page_size}"), &what)
            .await?;
        let events = page["events"]
            .as_array()
            .ok_or_else(|| CliError::Answer("no `events` in a history page".into()))?;
        printer.room = page["room"].as_str().unwrap_or_default().to_owned();
        for event in events {
            printer.event(&mut out, event)?;
        }
        if let Some(l) = left.as_mut() {
            *l = l.saturating_sub(events.len() as u64);
        }
        match page["nextAfter"].as_u64() {
            Some(next) if next > after => after = next,
            _ => break None,
        }
    };
    printer.finish(&mut out, next_after)?;
    out.flush()?;
    Ok(())
}

/// The history path and the words for what it reads.
fn target(args: &HistoryArgs) -> Result<(String, String), CliError> {
    match (&args.photo_id, &args.room) {
        (_, Some(room)) => {
            let room: Room = room
                .parse()
                .map_err(|e| CliError::Usage(format!("--room `{room}`: {e}")))?;
            Ok((format!("/api/rooms/{room}/events"), format!("room {room}")))
        }
        (Some(photo), None) => {
            let photo = PhotoId::parse(photo)
                .map_err(|e| CliError::Usage(format!("photo id `{photo}`: {e}")))?;
            Ok((
                format!("/api/photos/{photo}/events"),
                format!("photo {photo}"),
            ))
        }
        (None, None) => Err(CliError::Usage("give a PHOTO_ID or --room".into())),
    }
}

/// Prints events as they arrive (JSONL, CSV) or once all are read (table, JSON).
struct Printer {
    format: HistoryFormat,
    room: String,
    /// The first seq asked for, to tell a pruned prefix.
    first: u64,
    kept: Vec<Value>,
    /// Whether the CSV header is out.
    csv_started: bool,
}

impl Printer {
    fn new(format: HistoryFormat, after: u64) -> Self {
        Self {
            format,
            room: String::new(),
            first: after + 1,
            kept: Vec::new(),
            csv_started: false,
        }
    }

    fn event(&mut self, out: &mut impl Write, event: &Value) -> Result<(), CliError> {
        match self.format {
            HistoryFormat::Jsonl => writeln!(out, "{event}")?,
            HistoryFormat::Csv => {
                if !self.csv_started {
                    self.csv_started = true;
                    writeln!(out, "{}", csv::HEADER)?;
                }
                writeln!(out, "{}", csv::line(event))?;
            }
            HistoryFormat::Table | HistoryFormat::Json => self.kept.push(event.clone()),
        }
        Ok(())
    }

    fn finish(self, out: &mut impl Write, next_after: Option<u64>) -> Result<(), CliError> {
        match self.format {
            HistoryFormat::Json => writeln!(
                out,
                "{}",
                json!({ "room": self.room, "events": self.kept, "nextAfter": next_after })
            )?,
            HistoryFormat::Table => self.table(out, next_after)?,
            // An empty history still gets its header line.
            HistoryFormat::Csv if !self.csv_started => writeln!(out, "{}", csv::HEADER)?,
            HistoryFormat::Csv => {}
            HistoryFormat::Jsonl => {}
        }
        Ok(())
    }

    fn table(&self, out: &mut impl Write, next_after: Option<u64>) -> Result<(), CliError> {
        let first_seq = self.kept.first().and_then(|e| e["seq"].as_u64());
        let last_seq = self.kept.last().and_then(|e| e["seq"].as_u64());
        let (Some(first_seq), Some(last_seq)) = (first_seq, last_seq) else {
            writeln!(out, "{}: no events after seq {}", self.room, self.first - 1)?;
            return Ok(());
        };
        let count = self.kept.len();
        let plural = if count == 1 { "" } else { "s" };
        writeln!(
            out,
            "{}: {count} event{plural}, seq {first_seq}..{last_seq}",
            self.room
        )?;
        if first_seq > self.first {
            writeln!(
                out,
                "events {}..{} were pruned (retention)",
                self.first,
                first_seq - 1
            )?;
        }
        writeln!(out)?;
        let rows = self.kept.iter().map(|e| {
            event_cells(
                e["seq"].as_u64().unwrap_or(0),
                e["type"].as_str().unwrap_or("?"),
                e["timestamp"].as_str().unwrap_or(""),
                &e["data"],
            )
        });
        writeln!(out, "{}", table(Some(&EVENT_HEADER), rows))?;
        if let Some(next) = next_after {
            writeln!(out, "\nmore after seq {next}: --after {next}")?;
        }
        Ok(())
    }
}
