//! Wire payloads of delivered events, built once per room and event and shared by every socket
//! that receives them.

use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::domain::{EventId, Room, Timestamp, data_text};
use crate::store::{EventLog, StoreError};

/// `{ ...data, eventId, room, seq, timestamp }` for a stored event (`seq` omitted for live-only
/// events). `data` is the event's data object as JSON text; the hub's fields come last so they
/// win over same-named keys in `data`, as `{ ...data, eventId }` does in JavaScript. Data that is
/// not a JSON object (only a corrupt record holds such) is left out: the hub's fields are always
/// there, so the client's seqs stay gap-free (docs/protocol.md, "Sequence numbers").
pub fn event_payload(
    data: &str,
    id: &EventId,
    room: &str,
    seq: Option<u64>,
    timestamp: Timestamp,
) -> Box<RawValue> {
    let with_data = checked_payload(data, id, room, seq, timestamp);
    RawValue::from_string(with_data)
        .or_else(|_| RawValue::from_string(checked_payload("{}", id, room, seq, timestamp)))
        .unwrap_or_else(|_| empty_object())
}

/// The same payload as [`event_payload`], built as text and not parsed: for data that ingest
/// checked to be one JSON object (every event the committer hands on), in a packet that carries
/// it as it is. [`event_payload`] builds it here and then checks it.
pub fn checked_payload(
    data: &str,
    id: &EventId,
    room: &str,
    seq: Option<u64>,
    timestamp: Timestamp,
) -> String {
    // JSON's whitespace is ASCII: no need for the Unicode-aware trim (a visible cost per room
    // event in fan-out 1).
    let body = data.trim_ascii();
    let inner = body
        .strip_prefix('{')
        .and_then(|b| b.strip_suffix('}'))
        .unwrap_or("")
        .trim_ascii();
    let mut out = String::with_capacity(inner.len() + id.as_str().len() + room.len() + 80);
    out.push('{');
    if !inner.is_empty() {
        out.push_str(inner);
        out.push(',');
    }
    out.push_str("\"eventId\":");
    data_text::push_string(&mut out, id.as_str());
    out.push_str(",\"room\":");
    data_text::push_string(&mut out, room);
    if let Some(seq) = seq {
        out.push_str(",\"seq\":");
        out.push_str(itoa::Buffer::new().format(seq));
    }
    out.push_str(",\"timestamp\":\"");
    timestamp.write_rfc3339(&mut out);
    out.push_str("\"}");
    out
}

/// The `replay:truncated` payload (docs/protocol.md, "Truncation"): `{ room, requestedSeq,
/// oldestSeq, status }`, with the photo's status for a photo room, else null.
pub fn truncation_notice(
    log: &EventLog,
    room: &Room,
    requested: u64,
    oldest: u64,
) -> Result<Value, StoreError> {
    let status = match room {
        Room::Photo(photo) => log.status(photo)?.map(|s| json!(s)),
        _ => None,
    };
    Ok(json!({
        "room": room.to_string(),
        "requestedSeq": requested,
        "oldestSeq": oldest,
        "status": status,
    }))
}

fn empty_object() -> Box<RawValue> {
    RawValue::from_string("{}".to_owned()).expect("`{}` is valid JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hub's fields are appended to the data and win over same-named keys.
    #[test]
    fn payload_shape() {
        let id = EventId::parse("e1").expect("id");
        let ts = Timestamp::from_millis(0);
        let p = event_payload(r#"{"photoId":"p1","seq":99}"#, &id, "photo:p1", Some(3), ts);
        let v: serde_json::Value = serde_json::from_str(p.get()).expect("json");
        assert_eq!(v["photoId"], "p1");
        assert_eq!(v["seq"], 3, "the hub's seq wins");
        assert_eq!(v["eventId"], "e1");
        assert_eq!(v["room"], "photo:p1");
        assert_eq!(v["timestamp"], "1970-01-01T00:00:00.000Z");
        let empty = event_payload("{}", &id, "global", None, ts);
        let v: serde_json::Value = serde_json::from_str(empty.get()).expect("json");
        assert!(v.get("seq").is_none());
        assert_eq!(v.as_object().map(|o| o.len()), Some(3));
    }

    /// Ids and room names that need escaping are escaped; the checked payload is the same text
    /// as the parsed one.
    #[test]
    fn names_are_escaped_and_both_payloads_agree() {
        let id = EventId::parse("e\"1\\2é").expect("id");
        let ts = Timestamp::from_millis(1_764_620_000_123);
        let data = r#"{"photoId":"p1","note":"say \"hi\""}"#;
        let checked = checked_payload(data, &id, "photo:p\"1", Some(12), ts);
        let parsed = event_payload(data, &id, "photo:p\"1", Some(12), ts);
        assert_eq!(checked, parsed.get());
        let v: serde_json::Value = serde_json::from_str(&checked).expect("json");
        assert_eq!(v["eventId"], "e\"1\\2é");
        assert_eq!(v["room"], "photo:p\"1");
        assert_eq!(v["note"], "say \"hi\"");
        assert_eq!(v["seq"], 12);
        assert_eq!(v["timestamp"], ts.to_rfc3339());
    }

    /// Data that is not a JSON object (a corrupt record) is left out, never the hub's fields
    /// (found by the `store_record` fuzz target).
    #[test]
    fn corrupt_data_keeps_the_hub_fields() {
        let id = EventId::parse("e1").expect("id");
        let ts = Timestamp::from_millis(0);
        for data in [
            r#"{"photoId":"p1",r"x":5}"#,
            "",
            "[1]",
            r#"{"a":1},{"b":2}"#,
        ] {
            let p = event_payload(data, &id, "photo:p1", Some(7), ts);
            let v: serde_json::Value = serde_json::from_str(p.get()).expect("json");
            assert_eq!(v["eventId"], "e1", "{data}");
            assert_eq!(v["seq"], 7, "{data}");
            assert_eq!(v["room"], "photo:p1", "{data}");
        }
    }
}
