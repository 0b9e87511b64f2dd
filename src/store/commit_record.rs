//! A group commit's records (`c commitNo part`): the rooms and seq ranges the group wrote, and
//! its small blocks themselves.
//!
//! sled's cost is per record, and single-event appends make groups whose rooms rarely share an
//! event: one block record per room would be about one record per event. So a room's block of a
//! group is packed into the commit record unless it is large ([`PACKED_MAX`]); the writer copies
//! the packed blocks under their own keys later, joined across groups (see `derived`), and
//! removes the commit records in the same batch. A large block is written under its own key in
//! the group commit, as before schema version 8, and only its range is listed. Parts hold about
//! [`PART_BYTES`] each, so that the tree's leaves stay well below sled's blob threshold.
//!
//! Value: the format byte [`FORMAT_PACKED`], the ranges written directly (bincode), the number of
//! packed blocks (a varint), then for each its room, first and last seq and length (bincode)
//! followed by the block record's value. A record of schema version 7 or older (format byte 1,
//! the ranges only) reads as ranges written directly.

use std::sync::Arc;

use super::StoreError;
use super::codec;
use super::keys;
use super::records::CommitRecord;
use super::unwritten::UnwrittenBlock;

/// The format byte of a commit record that may carry blocks.
const FORMAT_PACKED: u8 = 3;

/// The largest block value packed into a commit record; larger ones are written directly (their
/// record's cost is shared by their many events).
pub(super) const PACKED_MAX: usize = 2048;

/// About the most bytes of blocks one commit record part holds.
const PART_BYTES: usize = 6 * 1024;

/// What a group commit's records say.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct CommitContents {
    /// `(room, first, last)`: ranges written as blocks under their own keys in the group commit.
    pub direct: CommitRecord,
    /// `(room, block)`: blocks written only in the commit record.
    pub packed: Vec<(String, UnwrittenBlock)>,
}

impl PartialEq for UnwrittenBlock {
    fn eq(&self, other: &Self) -> bool {
        (self.first, self.last, &self.value[..]) == (other.first, other.last, &other.value[..])
    }
}

impl Eq for UnwrittenBlock {}

/// The values of a group's commit record parts (at least one): the first lists `direct`, the
/// packed blocks follow in order, about [`PART_BYTES`] per part.
pub(super) fn encode(
    direct: &CommitRecord,
    packed: &[(String, UnwrittenBlock)],
) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut parts = Vec::new();
    let mut blocks: &[(String, UnwrittenBlock)] = packed;
    loop {
        let mut bytes = 0;
        let taken = blocks
            .iter()
            .take_while(|(_, block)| {
                let fits = bytes == 0 || bytes + block.value.len() <= PART_BYTES;
                bytes += block.value.len();
                fits
            })
            .count();
        let (these, rest) = blocks.split_at(taken);
        let mut out = Vec::with_capacity(bytes + 16 + these.len() * 32);
        out.push(FORMAT_PACKED);
        let none = CommitRecord::new();
        codec::encode_part(if parts.is_empty() { direct } else { &none }, &mut out)?;
        codec::encode_part(&(these.len() as u64), &mut out)?;
        for (room, block) in these {
            let header = (
                room.as_str(),
                block.first,
                block.last,
                block.value.len() as u64,
            );
            codec::encode_part(&header, &mut out)?;
            out.extend_from_slice(&block.value);
        }
        parts.push(out);
        blocks = rest;
        if blocks.is_empty() {
            return Ok(parts);
        }
    }
}

/// Decodes the commit record part stored under `key` (of any schema version).
pub(super) fn decode(key: &[u8], value: &[u8]) -> Result<CommitContents, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: keys::display(key),
        reason,
    };
    match value.first() {
        Some(&codec::FORMAT_V1) => Ok(CommitContents {
            direct: codec::decode(key, value)?,
            packed: Vec::new(),
        }),
        Some(&FORMAT_PACKED) => {
            let mut at = 1;
            let (direct, read): (CommitRecord, usize) = codec::decode_part(key, &value[at..])?;
            at += read;
            let (count, read): (u64, usize) = codec::decode_part(key, &value[at..])?;
            at += read;
            // Each packed block takes at least 5 bytes: a count beyond that is corrupt.
            let capacity = usize::try_from(count)
                .unwrap_or(usize::MAX)
                .min(value.len() / 5);
            let mut packed = Vec::with_capacity(capacity);
            for _ in 0..count {
                let ((room, first, last, len), read): ((String, u64, u64, u64), usize) =
                    codec::decode_part(key, value.get(at..).unwrap_or_default())?;
                at += read;
                let end = usize::try_from(len)
                    .ok()
                    .and_then(|len| at.checked_add(len))
                    .filter(|end| *end <= value.len())
                    .ok_or_else(|| corrupt(format!("a block of {len} bytes past the end")))?;
                if first == 0 || first > last {
                    return Err(corrupt(format!("a block from seq {first} to {last}")));
                }
                let block = UnwrittenBlock {
                    first,
                    last,
                    value: Arc::from(&value[at..end]),
                };
                at = end;
                packed.push((room, block));
            }
            if at != value.len() {
                return Err(corrupt(format!("{} trailing bytes", value.len() - at)));
            }
            Ok(CommitContents { direct, packed })
        }
        Some(other) => Err(corrupt(format!("unknown record format {other}"))),
        None => Err(corrupt("empty record".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(first: u64, last: u64, bytes: usize) -> UnwrittenBlock {
        UnwrittenBlock {
            first,
            last,
            value: Arc::from(vec![first as u8; bytes]),
        }
    }

    /// Ranges and blocks read back as written, split into parts of about `PART_BYTES`; the first
    /// part alone lists the direct ranges.
    #[test]
    fn parts_read_back_as_written() {
        let direct: CommitRecord = vec![("photo:big".into(), 3, 40)];
        let packed: Vec<(String, UnwrittenBlock)> = (1..=9)
            .map(|i| (format!("photo:p{i}"), block(i, i + 1, 1500)))
            .collect();
        let parts = encode(&direct, &packed).expect("encode");
        assert_eq!(parts.len(), 3, "9 blocks of 1.5 KB in parts of 6 KB");
        let key = keys::commit(1, 0);
        let decoded: Vec<CommitContents> = parts
            .iter()
            .map(|part| decode(&key, part).expect("decode"))
            .collect();
        assert_eq!(decoded[0].direct, direct);
        assert!(decoded[1..].iter().all(|part| part.direct.is_empty()));
        let blocks: Vec<_> = decoded.into_iter().flat_map(|part| part.packed).collect();
        assert_eq!(blocks, packed);

        let only_direct = encode(&direct, &[]).expect("encode");
        assert_eq!(only_direct.len(), 1);
        assert_eq!(
            decode(&key, &only_direct[0]).expect("decode").direct,
            direct
        );
    }

    /// A record of schema version 7 (the ranges only) reads as ranges written directly.
    #[test]
    fn a_version_7_record_reads_as_direct_ranges() {
        let ranges: CommitRecord = vec![("photo:a".into(), 1, 2), ("user:u".into(), 5, 5)];
        let old = codec::encode(&ranges).expect("encode");
        let contents = decode(&keys::commit(4, 0), &old).expect("decode");
        assert_eq!(contents.direct, ranges);
        assert!(contents.packed.is_empty());
    }

    /// Truncation, trailing bytes, impossible ranges and counts are corrupt records, never a
    /// panic or a large allocation.
    #[test]
    fn malformed_parts_are_corrupt() {
        let key = keys::commit(1, 0);
        let parts = encode(&Vec::new(), &[("photo:a".into(), block(1, 1, 20))]).expect("encode");
        let value = &parts[0];
        assert!(decode(&key, &value[..value.len() - 1]).is_err());
        assert!(decode(&key, &[value.as_slice(), &[0]].concat()).is_err());
        let backwards =
            encode(&Vec::new(), &[("photo:a".into(), block(5, 4, 20))]).expect("encode");
        assert!(decode(&key, &backwards[0]).is_err());
        assert!(
            decode(
                &key,
                &[
                    FORMAT_PACKED,
                    0,
                    253,
                    255,
                    255,
                    255,
                    255,
                    255,
                    255,
                    255,
                    255
                ]
            )
            .is_err()
        );
        assert!(decode(&key, &[]).is_err());
        assert!(decode(&key, &[9]).is_err());
    }
}
