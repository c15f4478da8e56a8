//! The database's `meta` table: a few small values saying what the log
//! is (its format, whether its write-ahead log exists, where replay
//! starts, whose log it is). redb does not checksum what it stores, so
//! from format 4 on every value is sealed: followed by a CRC-32 of its key
//! and bytes, checked on every read. A flipped bit is an error naming the
//! key, never a different node id or floor.

use crate::Error;
use crate::redb_store::redb_err;
use redb::{ReadableTable, Table, TableDefinition};

/// Everything in the database, by name.
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

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
