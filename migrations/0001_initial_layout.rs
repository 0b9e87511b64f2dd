//! Version 1: the initial layout. A new store gets its epoch (its random identity: "Epoch" under
//! "Words" in `docs/protocol.md`). Events (`e`), heads (`h`) and photo statuses (`s`) need no
//! setup.

use crate::store::StoreError;
use crate::store::codec;
use crate::store::keys;

/// Gives a new store its epoch; refuses a directory that holds other data. Safe to re-run: an
/// epoch already written is kept.
pub(super) fn apply(db: &sled::Db) -> Result<(), StoreError> {
    let epoch_key = keys::meta(keys::META_EPOCH);
    let foreign = db
        .iter()
        .keys()
        .next()
        .transpose()?
        .is_some_and(|k| k != epoch_key);
    if foreign {
        return Err(StoreError::Corrupt {
            key: keys::display(&keys::meta(keys::META_SCHEMA_VERSION)),
            reason: "the directory holds data but no schema version: not a socket-bridge store"
                .into(),
        });
    }
    if db.get(&epoch_key)?.is_none() {
        let epoch = format!("{:032x}", rand::random::<u128>());
        db.insert(epoch_key, codec::encode(&epoch)?)?;
    }
    Ok(())
}
