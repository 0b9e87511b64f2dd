//! Event blocks: the events one group commit writes to one room, kept as one record.
//!
//! sled's cost is per record (a tree descent, a page delta, a share of the flush), not per byte,
//! so a group commit writes one record per room it touches rather than one per event: a batch of
//! 1,000 events over 100 rooms is 100 inserts. A block is stored under the key of its LAST seq
//! (`e room NUL last`), so a room's last key is still its head, and the block holding seq `s` is
//! the first key at or after `e room NUL s`.
//!
//! Value: the format byte [`FORMAT_BLOCK`], the number of events (a varint), then each event's
//! [`Entry`], in seq order. A record in the older single-event format (format byte 1, one
//! [`EventRecord`], written up to schema version 5) reads as a block of one event, so stores of
//! older versions need no rewrite.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::StoreError;
use super::codec;
use super::keys;
use super::records::{EventRecord, StoredEvent};
use crate::domain::{EventId, EventType, Timestamp};

/// The format byte of a block record (a single-event record has [`codec::FORMAT_V1`]).
pub(super) const FORMAT_BLOCK: u8 = 2;

/// One event in a block (the room and seq come from the key and the position).
#[derive(Debug, Serialize, Deserialize)]
struct Entry<S> {
    id: S,
    /// The hub generated the id: it is unique by construction and not in the id index.
    id_generated: bool,
    type_code: u8,
    /// The event's `data` object as JSON text.
    data: S,
    /// The producer's `timestamp`.
    timestamp_ms: i64,
    /// When the hub stored it, by its own clock (what retention's age reads).
    stored_ms: i64,
}

/// Encodes one event's entry (done on the appender's task; the committer only copies it into
/// the blocks of the event's rooms).
pub(super) fn encode_entry(
    id: &EventId,
    id_generated: bool,
    event_type: EventType,
    data: &str,
    timestamp: Timestamp,
    stored: Timestamp,
) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(data.len() + id.as_str().len() + 24);
    codec::encode_part(
        &Entry {
            id: id.as_str(),
            id_generated,
            type_code: event_type.code(),
            data,
            timestamp_ms: timestamp.millis(),
            stored_ms: stored.millis(),
        },
        &mut out,
    )?;
    Ok(out)
}

/// Bytes kept free at the front of a block being built for its header: the format byte and the
/// event count (a varint, at most 9 bytes).
const HEADER_ROOM: usize = 10;

/// Entries a new block makes room for at once.
const EXPECTED_ENTRIES: usize = 8;

/// A block being built by a group commit: its entries after room for the header, so that the
/// record's value is one slice of it, not a copy.
#[derive(Debug)]
pub(super) struct BlockBuilder {
    events: u64,
    bytes: Vec<u8>,
}

impl Default for BlockBuilder {
    fn default() -> Self {
        Self {
            events: 0,
            bytes: vec![0; HEADER_ROOM],
        }
    }
}

impl BlockBuilder {
    /// A block whose first event is `entry`, with room for a few more entries of its size
    /// (a group usually brings several events of a room; fewer reallocations as they come).
    pub fn starting_with(entry: &[u8]) -> Self {
        let mut bytes = Vec::with_capacity(HEADER_ROOM + entry.len() * EXPECTED_ENTRIES);
        bytes.resize(HEADER_ROOM, 0);
        bytes.extend_from_slice(entry);
        Self { events: 1, bytes }
    }

    /// Adds the next event (its encoded entry).
    pub fn push(&mut self, entry: &[u8]) {
        self.events += 1;
        self.bytes.extend_from_slice(entry);
    }

    /// The record's value: the header written just before the entries.
    pub fn finish(&mut self) -> Result<&[u8], StoreError> {
        let mut header = Vec::with_capacity(HEADER_ROOM);
        header.push(FORMAT_BLOCK);
        codec::encode_part(&self.events, &mut header)?;
        let start = HEADER_ROOM - header.len().min(HEADER_ROOM);
        self.bytes[start..HEADER_ROOM].copy_from_slice(&header[..HEADER_ROOM - start]);
        Ok(&self.bytes[start..])
    }
}

/// One block holding the events of `blocks`, a room's consecutive blocks in seq order (the
/// writer joins a room's blocks of several group commits into one record). `key` names the
/// joined block in errors.
pub(super) fn join(key: &[u8], blocks: &[&[u8]]) -> Result<Vec<u8>, StoreError> {
    let mut events = 0u64;
    let mut entries = Vec::with_capacity(blocks.len());
    for value in blocks {
        if value.first() != Some(&FORMAT_BLOCK) {
            return Err(StoreError::Corrupt {
                key: keys::display(key),
                reason: "joining a record that is not a block".into(),
            });
        }
        let (count, read): (u64, usize) = codec::decode_part(key, &value[1..])?;
        events += count;
        entries.push(&value[1 + read..]);
    }
    let mut out = Vec::with_capacity(HEADER_ROOM + entries.iter().map(|e| e.len()).sum::<usize>());
    out.push(FORMAT_BLOCK);
    codec::encode_part(&events, &mut out)?;
    for part in entries {
        out.extend_from_slice(part);
    }
    Ok(out)
}

/// A decoded block: its events in seq order, and where each one's entry starts in the value
/// (what retention needs to keep the end of a block).
#[derive(Debug)]
pub(super) struct Block {
    /// The events, in seq order.
    pub events: Vec<StoredEvent>,
    /// The byte offset of each event's entry in the value (empty for a single-event record).
    offsets: Vec<usize>,
}

impl Block {
    /// The value of a block holding this block's events from `index` on (same key: the last seq
    /// does not change). `None` for a single-event record, which has no part to keep.
    pub fn suffix(&self, value: &[u8], index: usize) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(kept) = self
            .offsets
            .get(index)
            .and_then(|&start| value.get(start..))
        else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(kept.len() + 10);
        out.push(FORMAT_BLOCK);
        codec::encode_part(&((self.events.len() - index) as u64), &mut out)?;
        out.extend_from_slice(kept);
        Ok(Some(out))
    }
}

/// Decodes the block (or single-event record) stored under `key`.
pub(super) fn decode(key: &[u8], value: &[u8]) -> Result<Block, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: keys::display(key),
        reason,
    };
    let (_, last) = keys::parse_event(key).ok_or_else(|| corrupt("malformed event key".into()))?;
    match value.first() {
        Some(&codec::FORMAT_V1) => {
            let record: EventRecord = codec::decode(key, value)?;
            let event = stored_event(
                key,
                last,
                Entry {
                    id: record.id,
                    id_generated: false,
                    type_code: record.type_code,
                    data: record.data,
                    timestamp_ms: record.timestamp_ms,
                    stored_ms: record.stored_ms,
                },
            )?;
            Ok(Block {
                events: vec![event],
                offsets: Vec::new(),
            })
        }
        Some(&FORMAT_BLOCK) => {
            let (first, mut at) = block_header(key, last, value)?;
            let count = last - first + 1;
            // Each entry takes at least 5 bytes: a count beyond that is corrupt, not a reason
            // to reserve memory.
            let capacity = usize::try_from(count)
                .unwrap_or(usize::MAX)
                .min(value.len() / 5);
            let mut events = Vec::with_capacity(capacity);
            let mut offsets = Vec::with_capacity(capacity);
            for seq in first..=last {
                offsets.push(at);
                let (entry, read): (Entry<String>, usize) =
                    codec::decode_part(key, value.get(at..).unwrap_or_default())?;
                at += read;
                events.push(stored_event(key, seq, entry)?);
            }
            if at != value.len() {
                return Err(corrupt(format!("{} trailing bytes", value.len() - at)));
            }
            Ok(Block { events, offsets })
        }
        Some(other) => Err(corrupt(format!("unknown record format {other}"))),
        None => Err(corrupt("empty record".into())),
    }
}

/// The first seq of the block stored under `key` (without decoding its events).
pub(super) fn first_seq(key: &[u8], value: &[u8]) -> Result<u64, StoreError> {
    let (_, last) = keys::parse_event(key).ok_or_else(|| StoreError::Corrupt {
        key: keys::display(key),
        reason: "malformed event key".into(),
    })?;
    match value.first() {
        Some(&FORMAT_BLOCK) => Ok(block_header(key, last, value)?.0),
        _ => Ok(last),
    }
}

/// A block's first seq (from its event count and its `last` seq) and where its first entry
/// starts in `value`.
fn block_header(key: &[u8], last: u64, value: &[u8]) -> Result<(u64, usize), StoreError> {
    let (count, read): (u64, usize) = codec::decode_part(key, value.get(1..).unwrap_or_default())?;
    if count == 0 || count > last {
        return Err(StoreError::Corrupt {
            key: keys::display(key),
            reason: format!("a block of {count} events ending at seq {last}"),
        });
    }
    Ok((last - count + 1, 1 + read))
}

fn stored_event(key: &[u8], seq: u64, entry: Entry<String>) -> Result<StoredEvent, StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        key: keys::display(key),
        reason: format!("seq {seq}: {reason}"),
    };
    Ok(StoredEvent {
        seq,
        id: EventId::parse(&entry.id).map_err(|_| corrupt("invalid event id"))?,
        id_generated: entry.id_generated,
        event_type: EventType::from_code(entry.type_code)
            .ok_or_else(|| corrupt("unknown event type"))?,
        data: Arc::from(entry.data),
        timestamp: Timestamp::from_millis(entry.timestamp_ms),
        stored_at: Timestamp::from_millis(entry.stored_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, generated: bool, stored: i64) -> Vec<u8> {
        encode_entry(
            &EventId::parse(id).expect("id"),
            generated,
            EventType::ProcessingProgress,
            r#"{"photoId":"p1","progress":5}"#,
            Timestamp::from_millis(1_000),
            Timestamp::from_millis(stored),
        )
        .expect("encode")
    }

    /// A block's events read back with consecutive seqs ending at the key's seq; a suffix keeps
    /// the last events under the same key; a single-event record of schema 5 reads as a block.
    #[test]
    fn blocks_read_back_in_seq_order() {
        let mut builder = BlockBuilder::default();
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            builder.push(&entry(id, i == 1, 10 + i as i64));
        }
        let value = builder.finish().expect("finish").to_vec();
        let key = keys::event("photo:p1", 12);
        let block = decode(&key, &value).expect("decode");
        let seen: Vec<_> = block
            .events
            .iter()
            .map(|e| {
                (
                    e.seq,
                    e.id.as_str().to_owned(),
                    e.id_generated,
                    e.stored_at.millis(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                (10, "a".into(), false, 10),
                (11, "b".into(), true, 11),
                (12, "c".into(), false, 12)
            ]
        );
        assert_eq!(first_seq(&key, &value).expect("first"), 10);

        let kept = block.suffix(&value, 1).expect("suffix").expect("a block");
        let rest = decode(&key, &kept).expect("decode suffix");
        assert_eq!(rest.events, block.events[1..].to_vec());
        assert_eq!(first_seq(&key, &kept).expect("first"), 11);

        let single = codec::encode(&EventRecord {
            id: "old".into(),
            type_code: EventType::ProcessingProgress.code(),
            data: "{}".into(),
            timestamp_ms: 5,
            stored_ms: 6,
        })
        .expect("encode");
        let key = keys::event("photo:p1", 4);
        let old = decode(&key, &single).expect("decode single");
        assert_eq!(old.events.len(), 1);
        assert_eq!((old.events[0].seq, old.events[0].id_generated), (4, false));
        assert_eq!(first_seq(&key, &single).expect("first"), 4);
        assert!(old.suffix(&single, 0).expect("suffix").is_none());
    }

    /// Joined blocks read back as one block of all their events, in order.
    #[test]
    fn joined_blocks_are_one_block_of_their_events() {
        let block_of = |ids: &[(&str, i64)]| {
            let mut builder = BlockBuilder::default();
            for (id, stored) in ids {
                builder.push(&entry(id, false, *stored));
            }
            builder.finish().expect("finish").to_vec()
        };
        let (a, b) = (block_of(&[("a", 1), ("b", 2)]), block_of(&[("c", 3)]));
        let key = keys::event("photo:p1", 7);
        let joined = join(&key, &[&a, &b]).expect("join");
        let events = decode(&key, &joined).expect("decode").events;
        let seen: Vec<_> = events
            .iter()
            .map(|e| (e.seq, e.id.as_str().to_owned()))
            .collect();
        assert_eq!(
            seen,
            vec![(5, "a".into()), (6, "b".into()), (7, "c".into())]
        );
        assert!(join(&key, &[&a, &[9, 1]]).is_err());
    }

    /// A block started with its first entry is the same record as an empty one it was pushed to.
    #[test]
    fn a_block_started_with_an_entry_is_the_same_record() {
        let (a, b) = (entry("a", false, 1), entry("b", true, 2));
        let mut pushed = BlockBuilder::default();
        pushed.push(&a);
        pushed.push(&b);
        let mut started = BlockBuilder::starting_with(&a);
        started.push(&b);
        assert_eq!(
            started.finish().expect("finish"),
            pushed.finish().expect("finish")
        );
    }

    /// Counts that cannot fit the key's seq or the value, truncation and trailing bytes are
    /// corrupt records, never a panic or a large allocation.
    #[test]
    fn malformed_blocks_are_corrupt() {
        let mut builder = BlockBuilder::default();
        builder.push(&entry("a", false, 1));
        builder.push(&entry("b", false, 2));
        let value = builder.finish().expect("finish").to_vec();
        let key = keys::event("photo:p1", 2);
        assert!(decode(&keys::event("photo:p1", 1), &value).is_err());
        assert!(decode(&key, &value[..value.len() - 1]).is_err());
        assert!(decode(&key, &[value.as_slice(), &[0]].concat()).is_err());
        assert!(decode(&key, &[FORMAT_BLOCK, 0]).is_err());
        assert!(
            decode(
                &keys::event("photo:p1", u64::MAX),
                &[FORMAT_BLOCK, 253, 255, 255, 255, 255, 255, 255, 255, 255]
            )
            .is_err()
        );
        assert!(decode(&key, &[]).is_err());
        assert!(decode(&key, &[9, 1]).is_err());
    }
}
