//! `socket-bridge tail`: follows a room's SSE stream, one line per event as it is stored. When
//! the connection drops it reconnects from the last seq it printed, so nothing is lost or
//! printed twice; Ctrl-C stops it.

use std::io::Write;
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::{Value, json};

use super::args::{TailArgs, TailFormat};
use super::client::HubClient;
use super::error::CliError;
use super::render::event_cells;
use crate::domain::Room;

/// Events shown before following, when no `--after` is given.
const LAST_EVENTS: u64 = 10;
/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Runs `tail` until Ctrl-C, the token's expiry, or a refusal.
pub async fn tail(args: TailArgs) -> Result<(), CliError> {
    let client = HubClient::new(&args.server)?;
    let room: Room = args
        .room
        .parse()
        .map_err(|e| CliError::Usage(format!("room `{}`: {e}", args.room)))?;
    let what = format!("room {room}");
    let cursor = match args.after {
        Some(after) => after,
        None => {
            let info = client
                .get_json(&format!("/api/rooms/{room}"), &what)
                .await?;
            let head = info["headSeq"].as_u64().unwrap_or(0);
            let oldest = info["oldestSeq"].as_u64().unwrap_or(1);
            head.saturating_sub(LAST_EVENTS)
                .max(oldest.saturating_sub(1))
        }
    };
    let mut follow = Follow {
        client,
        path: format!("/api/rooms/{room}/stream"),
        what,
        format: args.format,
        cursor,
    };
    if args.format == TailFormat::Table {
        eprintln!(
            "following {room} on {} after seq {cursor} (Ctrl-C to stop)",
            follow.client.server()
        );
        let mut out = std::io::stdout();
        writeln!(
            out,
            "{:>6}  {:<23}  {:<28}  {:<15}  {:<10}  DETAIL",
            "SEQ", "TIME", "TYPE", "PROGRESS", "STAGE"
        )?;
        out.flush()?;
    }
    tokio::select! {
        outcome = follow.run() => outcome,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// A followed room and the last seq printed.
struct Follow {
    client: HubClient,
    path: String,
    what: String,
    format: TailFormat,
    cursor: u64,
}

impl Follow {
    /// Streams, reconnecting after a drop; the first connection must succeed.
    async fn run(&mut self) -> Result<(), CliError> {
        let mut response = self
            .client
            .stream(&self.path, self.cursor, &self.what)
            .await?;
        let mut backoff = Duration::from_millis(500);
        loop {
            let printed = self.print_stream(response).await?;
            if printed {
                backoff = Duration::from_millis(500);
            }
            eprintln!(
                "connection to {} lost; reconnecting after seq {}",
                self.client.server(),
                self.cursor
            );
            response = loop {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                match self
                    .client
                    .stream(&self.path, self.cursor, &self.what)
                    .await
                {
                    Ok(response) => break response,
                    Err(CliError::Unreachable { .. }) => continue,
                    Err(refused) => return Err(refused),
                }
            };
        }
    }

    /// Prints the events of one connection until it ends; says whether it printed any.
    async fn print_stream(&mut self, response: reqwest::Response) -> Result<bool, CliError> {
        let mut events = response.bytes_stream().eventsource();
        let mut printed = false;
        let mut out = std::io::stdout();
        while let Some(event) = events.next().await {
            let Ok(event) = event else {
                break;
            };
            match event.event.as_str() {
                "auth:expired" => {
                    return Err(CliError::Unauthorized {
                        detail: "the token expired; tail again with a fresh one".into(),
                    });
                }
                "replay:truncated" => {
                    let notice: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
                    self.truncated(&mut out, &notice)?;
                }
                event_type => {
                    let Ok(seq) = event.id.parse::<u64>() else {
                        continue;
                    };
                    let payload: Value = serde_json::from_str(&event.data)
                        .map_err(|e| CliError::Answer(format!("event {seq}: {e}")))?;
                    self.event(&mut out, seq, event_type, &payload)?;
                    self.cursor = seq;
                    printed = true;
                }
            }
            out.flush()?;
        }
        Ok(printed)
    }

    fn event(
        &self,
        out: &mut impl Write,
        seq: u64,
        event_type: &str,
        payload: &Value,
    ) -> Result<(), CliError> {
        match self.format {
            TailFormat::Jsonl => writeln!(
                out,
                "{}",
                json!({ "seq": seq, "type": event_type, "data": payload })
            )?,
            TailFormat::Table => {
                let [seq, time, kind, progress, stage, detail] = event_cells(
                    seq,
                    event_type,
                    payload["timestamp"].as_str().unwrap_or(""),
                    payload,
                );
                writeln!(
                    out,
                    "{seq:>6}  {time:<23}  {kind:<28}  {progress:<15}  {stage:<10}  {detail}"
                )?;
            }
        }
        Ok(())
    }

    fn truncated(&self, out: &mut impl Write, notice: &Value) -> Result<(), CliError> {
        match self.format {
            TailFormat::Jsonl => writeln!(
                out,
                "{}",
                json!({ "type": "replay:truncated", "data": notice })
            )?,
            TailFormat::Table => {
                let requested = notice["requestedSeq"].as_u64().unwrap_or(0);
                let oldest = notice["oldestSeq"].as_u64().unwrap_or(0);
                if requested < oldest {
                    writeln!(
                        out,
                        "    --  events {requested}..{} were pruned (retention); going on from seq {oldest}",
                        oldest - 1
                    )?;
                } else {
                    writeln!(
                        out,
                        "    --  seq {requested} is past the room's head (the store was replaced); going on from seq {oldest}"
                    )?;
                }
            }
        }
        Ok(())
    }
}
