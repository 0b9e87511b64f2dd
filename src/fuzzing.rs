//! The bodies of the fuzz targets (docs/reliability.md, "Fuzzing"): each takes arbitrary bytes,
//! runs them through a parser that meets untrusted input, and panics when a property the hub
//! relies on breaks. The cargo-fuzz targets in `fuzz/` call them under libFuzzer; the unit tests
//! below replay the committed corpus and crash reproducers (`fuzz/corpus/<target>/`,
//! `fuzz/regressions/<target>/`) through them, so CI needs no fuzzer.
//!
//! Compiled for tests and with the `fuzzing` feature only; the server never contains it.

use std::time::Duration;

use serde_json::Value;

use crate::auth::TokenAuthority;
use crate::bus::nats::StreamIdentity;
use crate::bus::nats::decode::{Incoming, Refusal, decode};
use crate::domain::{Event, UserId};
use crate::domain::{EventType, MAX_EVENT_DATA_BYTES, PhotoId, Room, Timestamp, rooms_for};
use crate::http::events::parse_body;
use crate::realtime::handshake;
use crate::realtime::request::parse_photo_request;

/// A target's body: panics when the input breaks a property.
pub type Target = fn(&[u8]);

/// The targets, by the name of their `fuzz/fuzz_targets/<name>.rs` and corpus directory.
pub const TARGETS: [(&str, Target); 4] = [
    ("http_events", http_events),
    ("nats_message", nats_message),
    ("store_record", store_record),
    ("socketio_payload", socketio_payload),
];

/// Longest event id the hub accepts (docs/protocol.md, "Stored events").
const MAX_EVENT_ID_LEN: usize = 256;

/// Largest NATS message body the target decodes with (the hub's default `--nats-max-bytes`).
const NATS_MAX_BYTES: usize = 1024 * 1024;

/// The HTTP ingest path: a `POST /api/events` body parsed as the handler parses it, then each
/// event validated as ingest validates it. Checks that the two parse paths agree and that every
/// accepted event is bounded and routable.
pub fn http_events(body: &[u8]) {
    let Ok(inputs) = parse_body(body) else {
        return;
    };
    let now = Timestamp::from_millis(1_700_000_000_000);
    for input in inputs {
        if let Ok(event) = Event::from_input(input, now) {
            check_event(&event);
        }
    }
}

/// The NATS message decoder: the first line of the input is the subject, the second the
/// `Nats-Msg-Id` header (absent when empty), the rest the body.
pub fn nats_message(bytes: &[u8]) {
    let mut parts = bytes.splitn(3, |b| *b == b'\n');
    let subject = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let msg_id = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let payload = parts.next().unwrap_or_default();
    let incoming = Incoming {
        subject: &subject,
        payload,
        msg_id: (!msg_id.is_empty()).then_some(&*msg_id),
        stream_sequence: bytes.len() as u64,
    };
    let stream = StreamIdentity::new("PHOTO_EVENTS", 1_700_000_000_000_000_000);
    match decode(
        &incoming,
        &stream,
        Timestamp::from_millis(0),
        NATS_MAX_BYTES,
        crate::settings::DEFAULT_MAX_JSON_DEPTH,
    ) {
        Ok(event) => {
            assert_eq!(event.event_type.as_str(), subject, "type is the subject");
            check_event(&event);
        }
        Err(refusal) => {
            assert!(!refusal.code().is_empty());
            if let Refusal::TypeMismatch { given, .. } = &refusal {
                assert!(given.chars().count() <= 100, "echoed type is cut");
            }
            assert!(refusal.to_string().len() <= 2 * NATS_MAX_BYTES);
        }
    }
}

/// The stored record decoder: see `store::fuzzing`.
pub fn store_record(bytes: &[u8]) {
    crate::store::fuzzing::record(bytes);
}

/// The Socket.IO handler payloads: the input, as JSON, parsed as a photo request
/// (`subscribe:photo`, `unsubscribe:photo`, `photo:status:request`) and as a handshake `auth`
/// (with and without `--insecure-dev-auth`). A `token` of `"valid"` is replaced by a token the
/// hub accepts, so the fuzzer reaches past authentication.
pub fn socketio_payload(bytes: &[u8]) {
    let Ok(mut value) = serde_json::from_slice::<Value>(bytes) else {
        return;
    };
    if let Ok((photo, since)) = parse_photo_request(Ok::<_, ()>(value.clone())) {
        check_id(photo.as_str());
        assert_eq!(
            value.get("photoId").and_then(Value::as_str),
            Some(photo.as_str())
        );
        assert_eq!(value.get("since").and_then(Value::as_u64), since);
    }
    let tokens = match TokenAuthority::new(b"fuzzing-secret-fuzzing-secret-32") {
        Ok(tokens) => tokens,
        Err(e) => panic!("fixed secret refused: {e}"),
    };
    if let Some(token) = value.get_mut("token").filter(|t| *t == "valid") {
        match tokens.mint("fuzz-user", &[], Duration::from_secs(3600)) {
            Ok(minted) => *token = Value::String(minted),
            Err(e) => panic!("minting refused: {e}"),
        }
    }
    for dev in [false, true] {
        let Ok(accepted) = handshake::parse(
            Some(&value),
            &tokens,
            dev,
            crate::settings::DEFAULT_MAX_RESUME_ROOMS,
        ) else {
            continue;
        };
        let identity = &accepted.identity;
        check_id(identity.principal.user.as_str());
        check_id(identity.client_id.as_str());
        if let Some(session) = &identity.session_id {
            check_id(session.as_str());
        }
        let rooms = value
            .get("resume")
            .and_then(Value::as_object)
            .map(|m| m.len());
        assert_eq!(accepted.resume.as_ref().map(Vec::len), rooms);
        for (room, _) in accepted.resume.iter().flatten() {
            assert_eq!(room.to_string().parse::<Room>().as_ref(), Ok(room));
        }
    }
}

/// What every accepted event satisfies (docs/protocol.md, "Stored events").
fn check_event(event: &Event) {
    assert!(!event.id.as_str().is_empty() && event.id.as_str().len() <= MAX_EVENT_ID_LEN);
    let size = event.data_json.len();
    assert!(size <= MAX_EVENT_DATA_BYTES, "{size}");
    assert!(
        serde_json::from_str::<serde_json::Map<String, Value>>(&event.data_json).is_ok(),
        "data is a JSON object: {}",
        event.data_json
    );
    assert!(event.progress.is_none_or(|p| p <= 100));
    if event.event_type.is_photo_event() {
        let photo = event.photo_id.as_ref().map(PhotoId::as_str);
        assert!(photo.is_some(), "a photo event names its photo");
        photo.into_iter().for_each(check_id);
    } else {
        assert!(event.photo_id.is_none() && event.user_id.is_none());
    }
    if event.event_type == EventType::PhotoUploaded {
        assert!(event.user_id.is_some(), "an upload names its owner");
    }
    event.user_id.iter().map(UserId::as_str).for_each(check_id);
    let rooms = rooms_for(
        event.event_type,
        event.photo_id.as_ref(),
        event.user_id.as_ref(),
    );
    assert_eq!(rooms.is_empty(), !event.event_type.is_stored());
    for room in rooms {
        assert_eq!(room.to_string().parse::<Room>().as_ref(), Ok(&room));
    }
}

/// An id the hub accepted is 1 to 128 characters of `A-Z a-z 0-9 . _ : -`.
fn check_id(id: &str) {
    assert!(!id.is_empty() && id.len() <= 128, "{id:?}");
    assert!(
        id.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".:_-".contains(c)),
        "{id:?}"
    );
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::TARGETS;

    fn files(dir: &Path) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        files
    }

    /// Every committed corpus input and crash reproducer of every target runs through the
    /// target's body without breaking a property, as it did under the fuzzer.
    #[test]
    fn fuzz_corpus_and_regressions_replay() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        for (name, target) in TARGETS {
            let corpus = files(&root.join("corpus").join(name));
            assert!(!corpus.is_empty(), "fuzz/corpus/{name} is empty");
            for file in corpus
                .iter()
                .chain(&files(&root.join("regressions").join(name)))
            {
                let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{file:?}: {e}"));
                if std::panic::catch_unwind(|| target(&bytes)).is_err() {
                    panic!("{name}: {} breaks a property", file.display());
                }
            }
        }
    }
}
