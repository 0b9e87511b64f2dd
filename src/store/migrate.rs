//! Schema versions: the store records the version it was written with, and opening runs the
//! numbered migrations of `migrations/` that it has not had yet, one at a time, each followed by
//! a flush of the new version number. A store from a newer schema is refused.

use super::StoreError;
use super::codec;
use super::keys;

#[path = "../../migrations/mod.rs"]
mod steps;

/// The schema version this build writes: the number of the last migration.
pub const SCHEMA_VERSION: u32 = 8;

/// One numbered step from version `version - 1` to `version`.
pub(super) struct Migration {
    /// The version the store has after it.
    pub version: u32,
    /// What it does, for logs and errors.
    pub name: &'static str,
    /// The step itself. It must be safe to run again after a crash part way through.
    pub apply: fn(&sled::Db) -> Result<(), StoreError>,
}

/// The store's recorded schema version (0 for a new, empty store).
pub(super) fn version(db: &sled::Db) -> Result<u32, StoreError> {
    let key = keys::meta(keys::META_SCHEMA_VERSION);
    Ok(match db.get(&key)? {
        Some(bytes) => codec::decode(&key, &bytes)?,
        None => 0,
    })
}

/// Brings the store to [`SCHEMA_VERSION`], or refuses one that is newer. An empty directory
/// starts at the current schema with a new epoch; no migration runs for it.
pub(super) fn run(db: &sled::Db) -> Result<(), StoreError> {
    if db.is_empty() {
        let epoch = format!("{:032x}", rand::random::<u128>());
        db.insert(keys::meta(keys::META_EPOCH), codec::encode(&epoch)?)?;
        db.insert(
            keys::meta(keys::META_SCHEMA_VERSION),
            codec::encode(&SCHEMA_VERSION)?,
        )?;
        db.flush()?;
        tracing::info!(version = SCHEMA_VERSION, %epoch, "created a new store");
        return Ok(());
    }
    let found = version(db)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for migration in steps::ALL.iter().filter(|m| m.version > found) {
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "migrating the store"
        );
        (migration.apply)(db).map_err(|e| StoreError::Migration {
            version: migration.version,
            name: migration.name,
            reason: e.to_string(),
        })?;
        db.insert(
            keys::meta(keys::META_SCHEMA_VERSION),
            codec::encode(&migration.version)?,
        )?;
        db.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The migration list is numbered 1..=SCHEMA_VERSION without holes.
    #[test]
    fn migrations_are_numbered_in_order() {
        let versions: Vec<u32> = steps::ALL.iter().map(|m| m.version).collect();
        assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
    }
}
