//! The database's `meta` table: a few small values saying what the log
//! is (its format, whether its write-ahead log exists, where replay
//! starts, whose log it is). redb does not checksum what it stores, so
//! from format 4 on every value is sealed: followed by a CRC-32 of its key
//! and bytes, checked on every read. A flipped bit is an error naming the
//! key, never a different node id or floor.

use crate::Error;
use crate::contain::REMEDY;
use crate::migrate;
use crate::redb_store::redb_err;
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition, TableError};
use std::path::Path;

/// Everything in the database, by name.
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

pub(crate) const FORMAT_KEY: &str = "format";
pub(crate) const FORMAT: &[u8] = b"raftstack-log/5";
/// Format 4: the same database, write-ahead log records without a
/// checksum over their headers.
pub(crate) const FORMAT_4: &[u8] = b"raftstack-log/4";
/// Present once the write-ahead log exists.
pub(crate) const WAL_READY: &str = "wal";
/// Where replay starts: the first segment kept (u64 LE), and the purge
/// point (index, term) that made the ones before it unnecessary.
pub(crate) const WAL_FLOOR: &str = "wal_floor";
pub(crate) const NODE_ID: &str = "node_id";
/// The storage id (u64 LE): `InitialState::storage`.
pub(crate) const STORAGE_ID: &str = "storage_id";

/// A new storage id: random, never 0.
pub(crate) fn draw_storage_id() -> u64 {
    use ring::rand::SecureRandom;
    let rng = ring::rand::SystemRandom::new();
    loop {
        let mut b = [0u8; 8];
        rng.fill(&mut b)
            .expect("invariant: the system's random source works");
        let id = u64::from_le_bytes(b);
        if id != 0 {
            return id;
        }
    }
}

/// Which layout a database has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// No format key: a new (or never finished) database.
    New,
    /// Entries in redb.
    Two,
    /// Entries in the write-ahead log, meta values unsealed.
    Three,
    /// Meta values sealed; write-ahead log headers not checksummed.
    Four,
    /// This one.
    Current,
}

impl Format {
    /// Its meta values are sealed.
    fn sealed(self) -> bool {
        matches!(self, Format::Four | Format::Current)
    }
}

/// What the database says about the log.
pub(crate) struct Header {
    pub format: Format,
    pub ready: bool,
    pub floor: Option<Vec<u8>>,
}

/// Reads the database's `meta` table, checking every value's seal.
pub(crate) fn read_header(db: &Database, path: &Path) -> Result<Header, Error> {
    let rtx = db.begin_read().map_err(redb_err)?;
    let t = match rtx.open_table(META) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => {
            if rtx.list_tables().map_err(redb_err)?.count() > 0 {
                return Err(Error::NotALog {
                    path: path.to_path_buf(),
                    reason: "a redb database with other tables".into(),
                });
            }
            return Ok(Header {
                format: Format::New,
                ready: false,
                floor: None,
            });
        }
        Err(e) => return Err(redb_err(e)),
    };
    let corrupt = |reason: String| Error::Corrupt {
        path: path.to_path_buf(),
        reason: format!("{reason}; {REMEDY}"),
    };
    let raw = get_raw(&t, FORMAT_KEY)?;
    let format = match raw.as_deref() {
        None => Format::New,
        Some(migrate::FORMAT_2) => Format::Two,
        Some(migrate::FORMAT_3) => Format::Three,
        Some(v) if v.starts_with(FORMAT) => {
            unseal_in(path, FORMAT_KEY, v)?;
            Format::Current
        }
        Some(v) if v.starts_with(FORMAT_4) => {
            unseal_in(path, FORMAT_KEY, v)?;
            Format::Four
        }
        Some(other) => {
            let reason = format!("unknown format {:?}", String::from_utf8_lossy(other));
            return Err(Error::NotALog {
                path: path.to_path_buf(),
                reason,
            });
        }
    };
    if format.sealed() {
        // A flipped byte in a key's name leaves a key no writer writes (and
        // the named key missing): damage, not a log without that key.
        if let Some(key) =
            unknown_key(&t, &[FORMAT_KEY, WAL_READY, WAL_FLOOR, NODE_ID, STORAGE_ID])?
        {
            return Err(corrupt(format!("an unknown key {key:?} in its meta table")));
        }
    }
    let get = |key| -> Result<Option<Vec<u8>>, Error> {
        match get_raw(&t, key)? {
            Some(v) if format.sealed() => Ok(Some(unseal_in(path, key, &v)?)),
            other => Ok(other),
        }
    };
    Ok(Header {
        format,
        ready: get(WAL_READY)?.is_some(),
        floor: get(WAL_FLOOR)?,
    })
}

fn crc(key: &str, value: &[u8]) -> [u8; 4] {
    let mut h = crc32fast::Hasher::new();
    h.update(key.as_bytes());
    h.update(value);
    h.finalize().to_le_bytes()
}

/// `value` followed by its seal.
pub(crate) fn seal(key: &str, value: &[u8]) -> Vec<u8> {
    [value, &crc(key, value)].concat()
}

/// The value a sealed `stored` holds, if its seal matches.
pub(crate) fn unseal(key: &str, stored: &[u8]) -> Result<Vec<u8>, String> {
    let split = stored
        .len()
        .checked_sub(4)
        .ok_or_else(|| format!("{key}: too short"))?;
    let (value, seal) = stored.split_at(split);
    if seal != crc(key, value) {
        return Err(format!(
            "{key}: its checksum does not match (the database file is damaged)"
        ));
    }
    Ok(value.to_vec())
}

/// `unseal`, with a broken seal reported as damage to the database at
/// `path`.
pub(crate) fn unseal_in(path: &Path, key: &str, stored: &[u8]) -> Result<Vec<u8>, Error> {
    unseal(key, stored).map_err(|reason| Error::Corrupt {
        path: path.to_path_buf(),
        reason: format!("{reason}; {REMEDY}"),
    })
}

/// The raw bytes stored under `key`.
pub(crate) fn get_raw(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<Vec<u8>>, Error> {
    Ok(table
        .get(key)
        .map_err(redb_err)?
        .map(|v| v.value().to_vec()))
}

/// The first key of `table` not in `known`.
pub(crate) fn unknown_key(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    known: &[&str],
) -> Result<Option<String>, Error> {
    for item in table.iter().map_err(redb_err)? {
        let (k, _) = item.map_err(redb_err)?;
        if !known.contains(&k.value()) {
            return Ok(Some(k.value().to_string()));
        }
    }
    Ok(None)
}

/// Stores `value` under `key`, sealed.
pub(crate) fn put(table: &mut Table<&str, &[u8]>, key: &str, value: &[u8]) -> Result<(), Error> {
    table
        .insert(key, seal(key, value).as_slice())
        .map_err(redb_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seal_catches_any_flipped_bit_and_a_value_moved_to_another_key() {
        let stored = seal("node_id", &7u64.to_le_bytes());
        assert_eq!(unseal("node_id", &stored).unwrap(), 7u64.to_le_bytes());
        for bit in 0..stored.len() * 8 {
            let mut b = stored.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(unseal("node_id", &b).is_err(), "bit {bit}");
        }
        assert!(unseal("wal_floor", &stored).is_err());
        assert!(unseal("x", &[1, 2]).is_err());
    }
}
