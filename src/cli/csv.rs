//! History events as CSV lines (RFC 4180): one column each for what support staff filter on,
//! and the whole `data` object as JSON in the last.

use serde_json::Value;

/// The header line.
pub const HEADER: &str = "seq,timestamp,type,eventId,progress,stage,error,data";

/// One history event (`{ seq, eventId, type, data, timestamp }`) as a CSV line.
pub fn line(event: &Value) -> String {
    let data = &event["data"];
    let fields = [
        text(&event["seq"]),
        text(&event["timestamp"]),
        text(&event["type"]),
        text(&event["eventId"]),
        text(&data["progress"]),
        text(&data["stage"]),
        text(&data["error"]),
        data.to_string(),
    ];
    fields
        .iter()
        .map(|f| quote(f))
        .collect::<Vec<_>>()
        .join(",")
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A field, quoted when it holds a comma, a quote or a line break.
fn quote(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Fields with commas and quotes are quoted; missing ones are empty.
    #[test]
    fn quoting() {
        let event = json!({ "seq": 3, "timestamp": "t", "type": "photo.processing.failed", "eventId": "e,1",
                            "data": { "error": "bad \"jpeg\"" } });
        assert_eq!(
            line(&event),
            r#"3,t,photo.processing.failed,"e,1",,,"bad ""jpeg""","{""error"":""bad \""jpeg\""""}""#
        );
    }
}
