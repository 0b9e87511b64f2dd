//! Every key of the store's tree. Key spaces are told apart by their first byte; numbers are
//! fixed-width big-endian so byte order is numeric order.
//!
//! Room names, photo ids and user ids never contain a NUL byte (their alphabet is checked by
//! `domain`), so `room NUL seq` keeps each room's events together and in seq order.

/// `e room NUL seq`: a block of events of one room ending at `seq` (see `block`; before schema
/// version 6 one event per record).
pub const EVENT: u8 = b'e';
/// `h room`: the room's head seq (the last seq ever assigned; survives pruning).
pub const HEAD: u8 = b'h';
/// `s photoId`: the photo's status snapshot (owner included).
pub const STATUS: u8 = b's';
/// `i eventId`: the rooms and seqs an event was stored at (producer-given ids only since schema
/// version 6). Before schema version 7 only: migration 7 moves them into id runs.
pub const ID: u8 = b'i';
/// `x partition run`: an id run's filter; `x partition run firstHash`: one chunk of the run's
/// entries (see `id_runs`).
pub const ID_RUN: u8 = b'x';
/// `c commitNo part`: a group commit whose derived records (photo statuses, id index entries,
/// and since schema version 8 its packed blocks) the writer has not written yet (see
/// `commit_record`; before version 8 the key had no part number).
pub const COMMIT: u8 = b'c';
/// `m name`: store metadata (schema version, epoch).
pub const META: u8 = b'm';
/// `p source`: how far the hub has consumed a source of events (a JetStream stream): the highest
/// stream sequence whose message was stored, refused or passed on.
pub const POSITION: u8 = b'p';

/// Metadata name of the schema version.
pub const META_SCHEMA_VERSION: &str = "schema_version";
/// Metadata name of the epoch.
pub const META_EPOCH: &str = "epoch";
/// Metadata name of the id runs' catalog (see `id_runs`).
pub const META_ID_RUNS: &str = "id_runs";

fn tagged(tag: u8, name: &str, extra: usize) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + name.len() + extra);
    key.push(tag);
    key.extend_from_slice(name.as_bytes());
    key
}

/// The prefix shared by all events of `room`.
pub fn event_prefix(room: &str) -> Vec<u8> {
    let mut key = tagged(EVENT, room, 9);
    key.push(0);
    key
}

/// The first key after every event of `room` (room names never hold a byte below `-`, so no
/// other room's events sort between).
pub fn after_room(room: &str) -> Vec<u8> {
    let mut key = tagged(EVENT, room, 1);
    key.push(1);
    key
}

/// The key of the block of `room` ending at `seq` (the block holding `seq` is the first key at or
/// after this one).
pub fn event(room: &str, seq: u64) -> Vec<u8> {
    let mut key = event_prefix(room);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The room and seq of an event key.
pub fn parse_event(key: &[u8]) -> Option<(&str, u64)> {
    let rest = key.strip_prefix(&[EVENT])?;
    let split = rest.len().checked_sub(9)?;
    let (room, tail) = rest.split_at(split);
    let (nul, seq) = tail.split_first()?;
    if *nul != 0 {
        return None;
    }
    let room = std::str::from_utf8(room).ok()?;
    Some((room, u64::from_be_bytes(seq.try_into().ok()?)))
}

/// The key of a room's head record.
pub fn head(room: &str) -> Vec<u8> {
    tagged(HEAD, room, 0)
}

/// The key of a photo's status record.
pub fn status(photo_id: &str) -> Vec<u8> {
    tagged(STATUS, photo_id, 0)
}

/// The key of an event id's index record.
pub fn id(event_id: &str) -> Vec<u8> {
    tagged(ID, event_id, 0)
}

/// The key of an id run's filter; its chunks' keys start with it.
pub fn id_run(partition: u8, run: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(18);
    key.push(ID_RUN);
    key.push(partition);
    key.extend_from_slice(&run.to_be_bytes());
    key
}

/// The key of the chunk of an id run whose first entry has `first_hash`.
pub fn id_chunk(partition: u8, run: u64, first_hash: u64) -> Vec<u8> {
    let mut key = id_run(partition, run);
    key.extend_from_slice(&first_hash.to_be_bytes());
    key
}

/// The key of a part of a pending group commit's record.
pub fn commit(commit_no: u64, part: u16) -> Vec<u8> {
    let mut key = Vec::with_capacity(11);
    key.push(COMMIT);
    key.extend_from_slice(&commit_no.to_be_bytes());
    key.extend_from_slice(&part.to_be_bytes());
    key
}

/// The key of a source's consumed position.
pub fn position(source: &str) -> Vec<u8> {
    tagged(POSITION, source, 0)
}

/// The key of a metadata entry.
pub fn meta(name: &str) -> Vec<u8> {
    tagged(META, name, 0)
}

/// A key in readable form for error messages (non-printable bytes escaped).
pub fn display(key: &[u8]) -> String {
    key.escape_ascii().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte order of event keys is seq order within a room, and rooms do not interleave even
    /// when one room's name is a prefix of another's.
    #[test]
    fn event_keys_sort_by_room_then_seq() {
        let mut keys = [
            event("photo:a", 256),
            event("photo:ab", 1),
            event("photo:a", 2),
            event("photo:a", 1),
        ];
        keys.sort();
        let parsed: Vec<_> = keys
            .iter()
            .map(|k| parse_event(k).expect("event key"))
            .collect();
        assert_eq!(
            parsed,
            vec![
                ("photo:a", 1),
                ("photo:a", 2),
                ("photo:a", 256),
                ("photo:ab", 1)
            ]
        );
        assert!(event("photo:a", 7).starts_with(&event_prefix("photo:a")));
        assert!(!event("photo:ab", 7).starts_with(&event_prefix("photo:a")));
        assert_eq!(parse_event(b"e"), None);
        assert_eq!(parse_event(&head("photo:a")), None);
    }
}
