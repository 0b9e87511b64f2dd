//! The stored record decoder's fuzz target body (see the crate's `fuzzing` module): arbitrary
//! bytes decoded as each kind of record must give a value or [`StoreError::Corrupt`], never a
//! panic or an unbounded allocation, and a decoded value must survive encode then decode.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::StoreError;
use super::block::{self, BlockBuilder};
use super::codec;
use super::id_runs;
use super::ids::PlacementRecord;
use super::keys;
use super::records::{CommitRecord, StatusRecord, StoredEvent};
use crate::realtime::event_payload;

/// The first byte picks the record kind, the rest is the stored value (or, for kind 0, a key).
pub(crate) fn record(bytes: &[u8]) {
    let Some((kind, value)) = bytes.split_first() else {
        return;
    };
    match kind % 8 {
        0 => {
            let parsed = keys::parse_event(value);
            if let Some((room, seq)) = parsed {
                assert_eq!(keys::event(room, seq), value, "event keys round-trip");
            }
            assert!(!keys::display(value).is_empty() || value.is_empty());
        }
        1 => event(value),
        2 => {
            if let Some(record) = round_trip::<StatusRecord>(b"s", value)
                && let Ok(status) = record.into_status()
            {
                let again = codec::encode(&StatusRecord::from(&status)).expect("encode");
                let back: StatusRecord = codec::decode(b"s", &again).expect("decode");
                assert_eq!(back.into_status().as_ref(), Ok(&status));
            }
        }
        3 => drop(round_trip::<CommitRecord>(b"c", value)),
        4 => drop(round_trip::<PlacementRecord>(b"i", value)),
        5 => drop(round_trip::<u64>(b"h", value)),
        6 => drop(round_trip::<u32>(b"m", value)),
        _ => {
            drop(round_trip::<String>(b"m", value));
            id_runs::check_record(value);
        }
    }
}

/// An event block under an event key: decoded, re-encoded, decoded again to the same events;
/// the payload built from each for clients always carries the hub's fields.
fn event(value: &[u8]) {
    let key = keys::event("photo:p1", 7);
    let decoded = match block::decode(&key, value) {
        Ok(decoded) => decoded,
        Err(StoreError::Corrupt { .. }) => return,
        Err(other) => panic!("decoding gave a non-corrupt error: {other}"),
    };
    let mut again = BlockBuilder::default();
    for stored in &decoded.events {
        again.push(
            &block::encode_entry(
                &stored.id,
                stored.id_generated,
                stored.event_type,
                &stored.data,
                stored.timestamp,
                stored.stored_at,
            )
            .expect("encode"),
        );
    }
    let again = again.finish().expect("encode").to_vec();
    let back = block::decode(&key, &again).expect("decode own encoding");
    assert_eq!(back.events, decoded.events);
    for stored in &decoded.events {
        payload_has_hub_fields(stored);
    }
}

fn payload_has_hub_fields(stored: &StoredEvent) {
    let payload = event_payload(
        &stored.data,
        &stored.id,
        "photo:p1",
        Some(stored.seq),
        stored.timestamp,
    );
    // Valid JSON whose last `eventId`, `room`, `seq` and `timestamp` (the ones a JavaScript client
    // keeps) are the hub's. Raw values: JSON numbers have no range, serde_json's `Value` has one.
    let fields: BTreeMap<String, &RawValue> =
        serde_json::from_str(payload.get()).expect("a JSON object");
    let field = |name: &str| fields.get(name).map(|v| v.get().to_owned());
    let json = |s: &str| serde_json::to_string(s).expect("a string");
    assert_eq!(
        field("eventId"),
        Some(json(stored.id.as_str())),
        "{payload}"
    );
    assert_eq!(field("room"), Some(json("photo:p1")), "{payload}");
    assert_eq!(field("seq"), Some(stored.seq.to_string()), "{payload}");
    assert_eq!(
        field("timestamp"),
        Some(json(&stored.timestamp.to_rfc3339())),
        "{payload}"
    );
}

/// Decodes `value` as a `T`; when it decodes, checks that its encoding decodes to the same
/// encoding (bincode's varints may have more than one encoding of a value, so the bytes given
/// need not be the canonical ones).
fn round_trip<T: Serialize + DeserializeOwned>(key: &[u8], value: &[u8]) -> Option<T> {
    match codec::decode::<T>(key, value) {
        Ok(decoded) => {
            let encoded = codec::encode(&decoded).expect("encode");
            let again: T = codec::decode(key, &encoded).expect("decode own encoding");
            assert_eq!(codec::encode(&again).expect("encode"), encoded);
            Some(decoded)
        }
        Err(StoreError::Corrupt { .. }) => None,
        Err(other) => panic!("decoding gave a non-corrupt error: {other}"),
    }
}
