//! `socket-bridge dead-letters list|republish` (docs/protocol.md, "Dead letters"): reads the
//! dead-letter stream straight from NATS (the hub need not run) and prints it, or publishes dead
//! letters again on their original subject.

use std::io::Write;
use std::time::Duration;

use serde_json::{Value, json};

use super::CliError;
use super::args::{DeadLettersAction, DeadLettersArgs, StatusFormat};
use crate::bus::nats::dead_letters::{self, DeadLetter, Republished};
use crate::bus::nats::redacted;

/// How long connecting to NATS may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Most dead letters one `republish --reason`/`--all` handles.
const REPUBLISH_LIMIT: usize = 100_000;

/// Runs `dead-letters`.
pub async fn dead_letters(args: DeadLettersArgs) -> Result<(), CliError> {
    let client = async_nats::ConnectOptions::new()
        .name("socket-bridge dead-letters")
        .connection_timeout(CONNECT_TIMEOUT)
        .connect(args.nats_url.as_str())
        .await
        .map_err(|e| CliError::Unreachable {
            server: redacted(&args.nats_url),
            reason: e.to_string(),
        })?;
    let js = async_nats::jetstream::new(client);
    let mut out = std::io::stdout().lock();
    match args.action {
        DeadLettersAction::List {
            reason,
            limit,
            format,
        } => {
            let letters = dead_letters::list(&js, &args.stream, reason.as_deref(), limit).await?;
            match format {
                StatusFormat::Json => {
                    let all: Vec<Value> = letters.iter().map(to_json).collect();
                    writeln!(out, "{}", Value::Array(all))?;
                }
                StatusFormat::Table => print_table(&mut out, &letters)?,
            }
            Ok(())
        }
        DeadLettersAction::Republish { seq, reason, all } => {
            let letters = match seq {
                Some(seq) => vec![dead_letters::find(&js, &args.stream, seq).await?],
                None => {
                    let reason = if all { None } else { reason.as_deref() };
                    dead_letters::list(&js, &args.stream, reason, REPUBLISH_LIMIT).await?
                }
            };
            let mut kept = 0;
            for letter in &letters {
                match dead_letters::republish(&js, &args.stream, letter).await {
                    Ok(Republished::Stored(at)) => writeln!(
                        out,
                        "dead letter {} re-published on {} (events stream sequence {at}) and removed",
                        letter.sequence, letter.subject
                    )?,
                    Ok(Republished::Duplicate) => {
                        kept += 1;
                        writeln!(
                            out,
                            "dead letter {} kept: the events stream took it for a duplicate of Nats-Msg-Id {} (its duplicate window has not passed yet)",
                            letter.sequence,
                            letter.msg_id.as_deref().unwrap_or("")
                        )?
                    }
                    Err(e) => {
                        kept += 1;
                        writeln!(out, "dead letter {} kept: {e}", letter.sequence)?
                    }
                }
            }
            if kept > 0 {
                return Err(CliError::Usage(format!(
                    "{kept} of {} dead letters could not be re-published",
                    letters.len()
                )));
            }
            Ok(())
        }
    }
}

fn to_json(letter: &DeadLetter) -> Value {
    json!({
        "seq": letter.sequence,
        "time": letter.time.to_rfc3339(),
        "reason": letter.reason,
        "error": letter.error,
        "subject": letter.subject,
        "stream": letter.stream,
        "streamSequence": letter.stream_sequence,
        "msgId": letter.msg_id,
        "body": String::from_utf8_lossy(&letter.body),
        "bodyOmitted": letter.body_omitted,
    })
}

fn print_table(out: &mut impl Write, letters: &[DeadLetter]) -> Result<(), CliError> {
    let rows: Vec<[String; 5]> = letters
        .iter()
        .map(|l| {
            [
                l.sequence.to_string(),
                l.time.to_rfc3339(),
                l.reason.clone(),
                format!("{} #{}", l.subject, l.stream_sequence),
                l.error.chars().take(80).collect(),
            ]
        })
        .collect();
    let header = ["SEQ", "TIME", "REASON", "SUBJECT #SEQ", "ERROR"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        let [a, b, c, d, e] = cells;
        format!(
            "{a:>w0$}  {b:<w1$}  {c:<w2$}  {d:<w3$}  {e}",
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        )
    };
    writeln!(out, "{}", line(header).trim_end())?;
    for row in &rows {
        let cells = [
            row[0].as_str(),
            row[1].as_str(),
            row[2].as_str(),
            row[3].as_str(),
            row[4].as_str(),
        ];
        writeln!(out, "{}", line(cells).trim_end())?;
    }
    if rows.is_empty() {
        writeln!(out, "no dead letters")?;
    }
    Ok(())
}
