//! Creating a log's write-ahead log, and moving a format 2 log (entries
//! in redb) into one. Both are restartable: the database says the
//! write-ahead log is ready only once it is, durably.

use crate::Error;
use crate::codec;
use crate::fault::FaultSwitch;
use crate::meta::{self, META};
use crate::meta::{FORMAT, FORMAT_KEY, NODE_ID, WAL_FLOOR, WAL_READY};
use crate::record;
use crate::redb_store::{create_wal, redb_err};
use crate::wal::HEADER;
use raft_core::HardState;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;

pub(crate) const FORMAT_2: &[u8] = b"raftstack-log/2";
/// Format 3: format 4 without the seals on meta values (and without
/// durable marks in the write-ahead log, which format 4 reads).
pub(crate) const FORMAT_3: &[u8] = b"raftstack-log/3";
/// Format 2's tables and keys.
const ENTRIES_2: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
const HARD_STATE_2: &str = "hard_state";
const MEMBERSHIP_2: &str = "membership";
const PURGED_2: &str = "purged";

fn set_format(db: &Database, ready: bool) -> Result<(), Error> {
    let wtx = db.begin_write().map_err(redb_err)?;
    {
        let mut t = wtx.open_table(META).map_err(redb_err)?;
        meta::put(&mut t, FORMAT_KEY, FORMAT)?;
        if ready {
            meta::put(&mut t, WAL_READY, b"1")?;
        }
    }
    wtx.commit().map_err(redb_err)
}

/// Makes a new, empty log (or finishes making one a crash interrupted).
pub(crate) fn create(db: &Database, dir: &Path, faults: Option<FaultSwitch>) -> Result<(), Error> {
    set_format(db, false)?;
    create_wal(dir, faults, &HardState::default(), (0, 0), None)?;
    set_format(db, true)
}

/// Moves a format 2 log's entries and state into a new write-ahead log,
/// then drops them from the database.
pub(crate) fn from_format_2(
    db: &Database,
    path: &Path,
    dir: &Path,
    faults: Option<FaultSwitch>,
) -> Result<(), Error> {
    let corrupt = |reason: String| Error::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let rtx = db.begin_read().map_err(redb_err)?;
    let meta = rtx.open_table(META).map_err(redb_err)?;
    let get = |key: &str| -> Result<Option<Vec<u8>>, Error> {
        Ok(meta.get(key).map_err(redb_err)?.map(|v| v.value().to_vec()))
    };
    let hs = match get(HARD_STATE_2)? {
        Some(v) => codec::decode_hard_state(&v).map_err(corrupt)?,
        None => HardState::default(),
    };
    let membership = match get(MEMBERSHIP_2)? {
        Some(v) => Some(codec::decode_stored_membership(&v).map_err(corrupt)?),
        None => None,
    };
    let purged = match get(PURGED_2)? {
        Some(v) => codec::decode_pair(&v).map_err(|e| corrupt(format!("purged: {e}")))?,
        None => (0, 0),
    };
    let m = membership.as_ref().map(|(i, m)| (*i, m));
    let mut wal = create_wal(dir, faults, &hs, purged, m)?;
    let table = rtx.open_table(ENTRIES_2).map_err(redb_err)?;
    let (mut chunk, mut buf, mut spans) = (Vec::new(), Vec::new(), Vec::new());
    let mut next = purged.0 + 1;
    let mut items = table.iter().map_err(redb_err)?.peekable();
    while items.peek().is_some() {
        chunk.clear();
        for item in items.by_ref().take(10_000) {
            let (k, v) = item.map_err(redb_err)?;
            if k.value() != next {
                return Err(corrupt(format!(
                    "entry {} where {next} was expected",
                    k.value()
                )));
            }
            chunk.push(codec::decode_entry(k.value(), v.value()).map_err(&corrupt)?);
            next += 1;
        }
        buf.clear();
        buf.resize(HEADER, 0);
        record::batch(&mut buf, None, None, &chunk, &mut spans);
        wal.append(&mut buf, next - 1)?;
    }
    wal.sync()?;
    drop(items);
    drop((table, meta, rtx));
    let wtx = db.begin_write().map_err(redb_err)?;
    wtx.delete_table(ENTRIES_2).map_err(redb_err)?;
    {
        let mut meta = wtx.open_table(META).map_err(redb_err)?;
        for key in [HARD_STATE_2, MEMBERSHIP_2, PURGED_2] {
            meta.remove(key).map_err(redb_err)?;
        }
        meta.insert(FORMAT_KEY, FORMAT_3).map_err(redb_err)?;
        meta.insert(WAL_READY, b"1".as_slice()).map_err(redb_err)?;
    }
    wtx.commit().map_err(redb_err)?;
    tracing::info!(path = %path.display(), entries = next - 1 - purged.0, "moved the log's entries into its write-ahead log (format 3)");
    Ok(())
}

/// Seals a format 3 log's meta values, in one transaction.
pub(crate) fn from_format_3(db: &Database) -> Result<(), Error> {
    let wtx = db.begin_write().map_err(redb_err)?;
    {
        let mut t = wtx.open_table(META).map_err(redb_err)?;
        for key in [WAL_READY, WAL_FLOOR, NODE_ID] {
            if let Some(v) = meta::get_raw(&t, key)? {
                meta::put(&mut t, key, &v)?;
            }
        }
        meta::put(&mut t, FORMAT_KEY, FORMAT)?;
    }
    wtx.commit().map_err(redb_err)
}

/// Marks a format 4 log as format 5 (its older segments are still read;
/// the store rolls past them before it appends), so an older version
/// refuses it by name rather than as damage.
pub(crate) fn from_format_4(db: &Database) -> Result<(), Error> {
    let wtx = db.begin_write().map_err(redb_err)?;
    {
        let mut t = wtx.open_table(META).map_err(redb_err)?;
        meta::put(&mut t, FORMAT_KEY, FORMAT)?;
    }
    wtx.commit().map_err(redb_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RedbLogStore;
    use bytes::Bytes;
    use raft_core::{Entry, LogStore, Membership, Payload};

    /// A log as format 2 wrote it.
    fn write_format_2(path: &Path, entries: &[Entry], hs: &HardState, m: &Membership) {
        let db = Database::create(path).unwrap();
        let wtx = db.begin_write().unwrap();
        {
            let mut meta = wtx.open_table(META).unwrap();
            meta.insert(FORMAT_KEY, FORMAT_2).unwrap();
            meta.insert(HARD_STATE_2, codec::encode_hard_state(hs).as_slice())
                .unwrap();
            meta.insert(
                MEMBERSHIP_2,
                codec::encode_stored_membership(0, m).as_slice(),
            )
            .unwrap();
            meta.insert(PURGED_2, codec::encode_pair(2, 1).as_slice())
                .unwrap();
            let mut t = wtx.open_table(ENTRIES_2).unwrap();
            let mut buf = Vec::new();
            for e in entries {
                codec::encode_entry(e, &mut buf);
                t.insert(e.index, buf.as_slice()).unwrap();
            }
        }
        wtx.commit().unwrap();
    }

    #[test]
    fn a_format_2_log_is_moved_into_a_write_ahead_log_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.redb");
        let entries: Vec<Entry> = (3..=25_000)
            .map(|i| Entry {
                index: i,
                term: 1 + i / 10_000,
                payload: Payload::Normal(Bytes::from(i.to_le_bytes().to_vec())),
            })
            .collect();
        let hs = HardState {
            term: 3,
            vote: Some(2),
            commit: 20_000,
        };
        let m = Membership::new([1, 2, 3]);
        write_format_2(&path, &entries, &hs, &m);
        for _ in 0..2 {
            let s = RedbLogStore::open(&path).expect("open migrates");
            let st = s.state().unwrap();
            assert_eq!(st.hard_state, hs);
            assert_eq!(st.membership, Some((0, m.clone())));
            assert_eq!((st.purged, st.last_index), ((2, 1), 25_000));
            assert_eq!(s.entries(3, 25_001, usize::MAX).unwrap(), entries);
        }
        let db = Database::open(&path).unwrap();
        let rtx = db.begin_read().unwrap();
        assert!(rtx.open_table(ENTRIES_2).is_err(), "the old table is gone");
    }

    #[test]
    fn a_format_3_log_gets_its_meta_values_sealed_and_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("three.redb");
        {
            let mut s = RedbLogStore::open(&path).unwrap();
            s.set_node_id(9).unwrap();
            s.write(raft_core::WriteBatch {
                entries: &[crate::conformance::entry(1, 1)],
                ..Default::default()
            })
            .unwrap();
        }
        // Rewrite the meta table as format 3 left it: values unsealed.
        {
            let db = Database::open(&path).unwrap();
            let wtx = db.begin_write().unwrap();
            {
                let mut t = wtx.open_table(META).unwrap();
                for key in [WAL_READY, NODE_ID] {
                    let v = meta::get_raw(&t, key).unwrap().unwrap();
                    let v = meta::unseal(key, &v).unwrap();
                    t.insert(key, v.as_slice()).unwrap();
                }
                t.insert(FORMAT_KEY, FORMAT_3).unwrap();
            }
            wtx.commit().unwrap();
        }
        for _ in 0..2 {
            let s = RedbLogStore::open(&path).expect("a format 3 log opens");
            assert_eq!(s.node_id().unwrap(), Some(9));
            assert_eq!(s.state().unwrap().last_index, 1);
        }
        let db = Database::open(&path).unwrap();
        let rtx = db.begin_read().unwrap();
        let t = rtx.open_table(META).unwrap();
        let format = meta::get_raw(&t, FORMAT_KEY).unwrap().unwrap();
        assert_eq!(meta::unseal(FORMAT_KEY, &format).unwrap(), FORMAT);
    }
}
