//! Record encoding: one format version byte, then bincode 2 (serde) with one fixed configuration.
//!
//! bincode 2's `standard()` config would happily decode bytes written by another encoding into
//! wrong values, so the configuration lives only here and every record carries a version byte.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;
use super::keys;

/// The version byte of every record written by this code.
pub const FORMAT_V1: u8 = 1;

/// The most a record's decoding may allocate. bincode allocates what a length prefix claims before
/// reading the bytes, so without a bound one corrupt length aborts the process (found by the
/// `store_record` fuzz target). Far above any record the store writes.
const MAX_DECODED_BYTES: usize = 64 << 20;

/// The one configuration; the limit only bounds decoding and does not change the format.
type Config = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_DECODED_BYTES>,
>;

fn config() -> Config {
    bincode::config::standard().with_limit::<MAX_DECODED_BYTES>()
}

/// Encodes a record.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![FORMAT_V1];
    bincode::serde::encode_into_std_write(value, &mut out, config()).map_err(StoreError::Encode)?;
    Ok(out)
}

/// Appends `value`'s bincode form to `out`, without a version byte (the parts of a record whose
/// version byte is written once for several values: event blocks).
pub fn encode_part<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), StoreError> {
    bincode::serde::encode_into_std_write(value, out, config()).map_err(StoreError::Encode)?;
    Ok(())
}

/// Decodes one value from the front of `bytes` (a part of the record stored under `key`); returns
/// it and how many bytes it took.
pub fn decode_part<T: DeserializeOwned>(
    key: &[u8],
    bytes: &[u8],
) -> Result<(T, usize), StoreError> {
    bincode::serde::decode_from_slice(bytes, config()).map_err(|e| StoreError::Corrupt {
        key: keys::display(key),
        reason: e.to_string(),
    })
}

/// Decodes the record stored under `key`. Never panics: a wrong version byte, truncated or
/// trailing bytes are a [`StoreError::Corrupt`] naming the key.
pub fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: keys::display(key),
        reason,
    };
    let (version, body) = bytes
        .split_first()
        .ok_or_else(|| corrupt("empty record".into()))?;
    if *version != FORMAT_V1 {
        return Err(corrupt(format!("unknown record format {version}")));
    }
    let (value, read) =
        bincode::serde::decode_from_slice(body, config()).map_err(|e| corrupt(e.to_string()))?;
    if read != body.len() {
        return Err(corrupt(format!("{} trailing bytes", body.len() - read)));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A corrupt record is an error naming its key, never a panic.
    #[test]
    fn corrupt_records_are_errors() {
        let bytes = encode(&(7u64, "x".to_string())).expect("encode");
        assert_eq!(
            decode::<(u64, String)>(b"k", &bytes).expect("decode"),
            (7, "x".into())
        );
        for bad in [
            &b""[..],
            &[2u8, 0][..],
            &bytes[..bytes.len() - 1],
            &[bytes.as_slice(), &[0]].concat(),
        ] {
            let err = decode::<(u64, String)>(b"h\x00key", bad).expect_err("must fail");
            assert!(err.to_string().contains("h\\x00key"), "{err}");
        }
    }

    /// A length prefix far beyond the record is an error, not an allocation that aborts the
    /// process (a `store_record` fuzz finding: a placement record claiming a 40 PB room name).
    #[test]
    fn huge_length_prefixes_are_errors() {
        for bad in [
            &[FORMAT_V1, 253, 0, 0, 0, 0, 0, 0, 0, 0x40][..],
            &[FORMAT_V1, 253, 0xf8, 0x8a, 0x89, 0x65, 0x72, 0x21, 0x90, 0][..],
        ] {
            assert!(decode::<String>(b"k", bad).is_err());
            assert!(decode::<Vec<(String, u64)>>(b"k", bad).is_err());
        }
        let big = "x".repeat(1 << 20);
        let bytes = encode(&big).expect("encode");
        assert_eq!(decode::<String>(b"k", &bytes).expect("decode"), big);
    }
}
