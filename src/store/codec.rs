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

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes a record.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![FORMAT_V1];
    bincode::serde::encode_into_std_write(value, &mut out, config()).map_err(StoreError::Encode)?;
    Ok(out)
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
}
