//! `socket-bridge status`: a photo's status object, as aligned fields or as JSON.

use std::io::Write;

use serde_json::Value;

use super::args::{StatusArgs, StatusFormat};
use super::client::HubClient;
use super::error::CliError;
use super::render::{local_time, progress_bar, table};
use crate::domain::PhotoId;

/// Runs `status`, printing to stdout.
pub async fn status(args: StatusArgs) -> Result<(), CliError> {
    let client = HubClient::new(&args.server)?;
    let photo = PhotoId::parse(&args.photo_id)
        .map_err(|e| CliError::Usage(format!("photo id `{}`: {e}", args.photo_id)))?;
    let status = client
        .get_json(
            &format!("/api/photos/{photo}/status"),
            &format!("photo {photo}"),
        )
        .await?;
    let mut out = std::io::stdout().lock();
    match args.format {
        StatusFormat::Json => writeln!(out, "{status}")?,
        StatusFormat::Table => writeln!(out, "{}", fields(&status))?,
    }
    out.flush()?;
    Ok(())
}

/// One line per field of the status object.
fn fields(status: &Value) -> String {
    let text = |key: &str| status[key].as_str().unwrap_or("-").to_owned();
    let last = format!(
        "{} (seq {})",
        text("lastEventType"),
        status["lastSeq"].as_u64().unwrap_or(0)
    );
    let mut rows = vec![
        ["photo".to_owned(), text("photoId")],
        ["owner".to_owned(), text("userId")],
        ["status".to_owned(), text("status")],
        [
            "progress".to_owned(),
            progress_bar(status["progress"].as_f64().unwrap_or(0.0)),
        ],
        ["last event".to_owned(), last],
        [
            "updated".to_owned(),
            local_time(status["updatedAt"].as_str().unwrap_or("-")),
        ],
    ];
    if let Some(error) = status["error"].as_str() {
        rows.push(["error".to_owned(), error.to_owned()]);
    }
    table(None, rows)
}
