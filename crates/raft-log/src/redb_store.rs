//! The durable log on redb: one file per node, one write transaction (and
//! so one fsync) per batch.

use crate::codec;
use crate::fault::{FaultSwitch, FaultyBackend};
use crate::{Error, check_batch, check_in_range};
use raft_core::{Entry, HardState, Index, LogStore, NodeId, StoredState, Term, WriteBatch};
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    TableError,
};
use std::path::{Path, PathBuf};

/// Entries by index.
const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("entries");
/// Everything else, by name.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const FORMAT_KEY: &str = "format";
const FORMAT: &[u8] = b"raftstack-log/2";
const HARD_STATE: &str = "hard_state";
const MEMBERSHIP: &str = "membership";
const PURGED: &str = "purged";
const NODE_ID: &str = "node_id";

pub struct RedbLogStore {
    db: Database,
    path: PathBuf,
    /// Why writes are refused, after a write failed.
    poisoned: Option<String>,
    purged: (Index, Term),
    last_index: Index,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for RedbLogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbLogStore")
            .field("path", &self.path)
            .field("last_index", &self.last_index)
            .finish()
    }
}

impl RedbLogStore {
    /// Opens the log at `path`, creating it if the file does not exist or
    /// is empty. A file that is not a raftstack log is refused, never
    /// overwritten.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        let existing = std::fs::metadata(&path)
            .map(|m| m.len() > 0)
            .unwrap_or(false);
        let db = if existing {
            Database::open(&path)
        } else {
            Database::create(&path)
        };
        let db = db.map_err(|e| open_error(&path, e.into()))?;
        Self::init(db, path)
    }

    /// Opens the log with a switch that makes every disk write fail, for
    /// testing what a full or failing disk does.
    pub fn open_with_faults(path: impl AsRef<Path>) -> Result<(Self, FaultSwitch), Error> {
        let path = path.as_ref().to_path_buf();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let backend =
            redb::backends::FileBackend::new(file).map_err(|e| open_error(&path, e.into()))?;
        let switch = FaultSwitch::default();
        let db = Database::builder()
            .create_with_backend(FaultyBackend::new(backend, switch.clone()))
            .map_err(|e| open_error(&path, e.into()))?;
        Ok((Self::init(db, path)?, switch))
    }

    fn init(db: Database, path: PathBuf) -> Result<Self, Error> {
        let corrupt = |reason: String| Error::Corrupt {
            path: path.clone(),
            reason,
        };
        let format = {
            let rtx = db.begin_read().map_err(redb::Error::from)?;
            match rtx.open_table(META) {
                Ok(t) => t
                    .get(FORMAT_KEY)
                    .map_err(redb::Error::from)?
                    .map(|v| v.value().to_vec()),
                Err(TableError::TableDoesNotExist(_)) => {
                    let tables = rtx.list_tables().map_err(redb::Error::from)?.count();
                    if tables > 0 {
                        return Err(Error::NotALog {
                            path,
                            reason: "a redb database with other tables".into(),
                        });
                    }
                    None
                }
                Err(e) => return Err(redb::Error::from(e).into()),
            }
        };
        match format.as_deref() {
            Some(FORMAT) => {}
            Some(other) => {
                let reason = format!("unknown format {:?}", String::from_utf8_lossy(other));
                return Err(Error::NotALog { path, reason });
            }
            None => {
                let wtx = db.begin_write().map_err(redb::Error::from)?;
                {
                    let mut meta = wtx.open_table(META).map_err(redb::Error::from)?;
                    meta.insert(FORMAT_KEY, FORMAT).map_err(redb::Error::from)?;
                    wtx.open_table(ENTRIES).map_err(redb::Error::from)?;
                }
                wtx.commit().map_err(redb::Error::from)?;
            }
        }
        let (purged, last_index) = {
            let rtx = db.begin_read().map_err(redb::Error::from)?;
            let meta = rtx.open_table(META).map_err(redb::Error::from)?;
            let purged = match meta.get(PURGED).map_err(redb::Error::from)? {
                Some(v) => {
                    codec::decode_pair(v.value()).map_err(|e| corrupt(format!("purged: {e}")))?
                }
                None => (0, 0),
            };
            let entries = rtx.open_table(ENTRIES).map_err(redb::Error::from)?;
            let first = entries
                .first()
                .map_err(redb::Error::from)?
                .map(|(k, _)| k.value());
            let last = entries
                .last()
                .map_err(redb::Error::from)?
                .map(|(k, _)| k.value());
            match (first, last) {
                (Some(f), Some(l)) => {
                    // Invariant: stored entries are exactly purged+1..=last.
                    let count = entries.len().map_err(redb::Error::from)?;
                    if f != purged.0 + 1 || count != l - f + 1 {
                        return Err(corrupt(format!(
                            "entries {f}..={l} ({count} stored) do not follow the purged index {}",
                            purged.0
                        )));
                    }
                    (purged, l)
                }
                _ => (purged, purged.0),
            }
        };
        Ok(RedbLogStore {
            db,
            path,
            poisoned: None,
            purged,
            last_index,
            scratch: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn writable(&self) -> Result<(), Error> {
        match &self.poisoned {
            Some(why) => Err(Error::Poisoned(why.clone())),
            None => Ok(()),
        }
    }

    /// Runs a write transaction; any failure poisons the store.
    fn transact(
        &mut self,
        f: impl FnOnce(&redb::WriteTransaction, &mut Vec<u8>) -> Result<(), redb::Error>,
    ) -> Result<(), Error> {
        self.writable()?;
        let result = (|| {
            let mut wtx = self.db.begin_write()?;
            wtx.set_durability(Durability::Immediate)
                .map_err(|e| redb::Error::Corrupted(e.to_string()))?;
            f(&wtx, &mut self.scratch)?;
            wtx.commit()?;
            Ok(())
        })();
        result.map_err(|e: redb::Error| {
            self.poisoned = Some(e.to_string());
            Error::Storage(e)
        })
    }
}

/// Maps a failure to open into what it means for the user.
fn open_error(path: &Path, e: redb::Error) -> Error {
    match e {
        redb::Error::Io(io) if io.kind() != std::io::ErrorKind::InvalidData => Error::Io(io),
        redb::Error::DatabaseAlreadyOpen => Error::Storage(e),
        other => Error::NotALog {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    }
}

impl RedbLogStore {
    /// Removes the stored entries up to `upto` and records `purged` as the
    /// new purge point, in one transaction.
    fn drop_entries(&mut self, upto: Index, purged: (Index, Term)) -> Result<(), Error> {
        let from = self.purged.0 + 1;
        self.transact(|wtx, _| {
            let mut table = wtx.open_table(ENTRIES)?;
            for i in from..=upto {
                table.remove(i)?;
            }
            let mut meta = wtx.open_table(META)?;
            meta.insert(PURGED, codec::encode_pair(purged.0, purged.1).as_slice())?;
            Ok(())
        })?;
        self.purged = purged;
        Ok(())
    }

    /// The id of the node this log belongs to, if one was recorded. A
    /// node's identity must stay with its data: a node that lost its disk
    /// and comes back under its old id could vote twice in a term.
    pub fn node_id(&self) -> Result<Option<NodeId>, Error> {
        let rtx = self.db.begin_read().map_err(redb::Error::from)?;
        let meta = rtx.open_table(META).map_err(redb::Error::from)?;
        let Some(v) = meta.get(NODE_ID).map_err(redb::Error::from)? else {
            return Ok(None);
        };
        let b: [u8; 8] = v.value().try_into().map_err(|_| Error::Corrupt {
            path: self.path.clone(),
            reason: "node id: expected 8 bytes".into(),
        })?;
        Ok(Some(u64::from_le_bytes(b)))
    }

    /// Records the node id (durably).
    pub fn set_node_id(&mut self, id: NodeId) -> Result<(), Error> {
        self.writable()?;
        self.transact(|wtx, _| {
            let mut meta = wtx.open_table(META)?;
            meta.insert(NODE_ID, id.to_le_bytes().as_slice())?;
            Ok(())
        })
    }
}

impl LogStore for RedbLogStore {
    type Error = Error;

    fn state(&self) -> Result<StoredState, Error> {
        let corrupt = |reason: String| Error::Corrupt {
            path: self.path.clone(),
            reason,
        };
        let rtx = self.db.begin_read().map_err(redb::Error::from)?;
        let meta = rtx.open_table(META).map_err(redb::Error::from)?;
        let hard_state = match meta.get(HARD_STATE).map_err(redb::Error::from)? {
            Some(v) => codec::decode_hard_state(v.value()).map_err(corrupt)?,
            None => HardState::default(),
        };
        let membership = match meta.get(MEMBERSHIP).map_err(redb::Error::from)? {
            Some(v) => Some(codec::decode_stored_membership(v.value()).map_err(corrupt)?),
            None => None,
        };
        Ok(StoredState {
            hard_state,
            membership,
            purged: self.purged,
            last_index: self.last_index,
        })
    }

    fn entries(&self, lo: Index, hi: Index, max_bytes: usize) -> Result<Vec<Entry>, Error> {
        if lo >= hi {
            return Ok(Vec::new());
        }
        check_in_range(lo, self.purged.0, self.last_index)?;
        check_in_range(hi - 1, self.purged.0, self.last_index)?;
        let rtx = self.db.begin_read().map_err(redb::Error::from)?;
        let table = rtx.open_table(ENTRIES).map_err(redb::Error::from)?;
        let mut out = Vec::with_capacity((hi - lo).min(1024) as usize);
        let mut bytes = 0;
        for item in table.range(lo..hi).map_err(redb::Error::from)? {
            let (k, v) = item.map_err(redb::Error::from)?;
            let e = codec::decode_entry(k.value(), v.value()).map_err(|reason| Error::Corrupt {
                path: self.path.clone(),
                reason,
            })?;
            bytes += e.size();
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(e);
        }
        Ok(out)
    }

    fn term(&self, index: Index) -> Result<Option<Term>, Error> {
        if index == self.purged.0 {
            return Ok(Some(self.purged.1));
        }
        if index < self.purged.0 || index > self.last_index {
            return Ok(None);
        }
        let rtx = self.db.begin_read().map_err(redb::Error::from)?;
        let table = rtx.open_table(ENTRIES).map_err(redb::Error::from)?;
        let v = table.get(index).map_err(redb::Error::from)?;
        let v = v.ok_or_else(|| Error::Corrupt {
            path: self.path.clone(),
            reason: format!("entry {index} missing"),
        })?;
        codec::decode_term(index, v.value())
            .map(Some)
            .map_err(|reason| Error::Corrupt {
                path: self.path.clone(),
                reason,
            })
    }

    fn write(&mut self, batch: WriteBatch<'_>) -> Result<(), Error> {
        self.writable()?;
        check_batch(&batch, self.purged.0, self.last_index)?;
        let old_last = self.last_index;
        self.transact(|wtx, buf| {
            if !batch.entries.is_empty() {
                let mut table = wtx.open_table(ENTRIES)?;
                let first = batch.entries[0].index;
                for stale in first..=old_last {
                    table.remove(stale)?;
                }
                for e in batch.entries {
                    codec::encode_entry(e, buf);
                    table.insert(e.index, buf.as_slice())?;
                }
            }
            if batch.hard_state.is_some() || batch.membership.is_some() {
                let mut meta = wtx.open_table(META)?;
                if let Some(hs) = batch.hard_state {
                    meta.insert(HARD_STATE, codec::encode_hard_state(&hs).as_slice())?;
                }
                if let Some((index, m)) = batch.membership {
                    let v = codec::encode_stored_membership(index, m);
                    meta.insert(MEMBERSHIP, v.as_slice())?;
                }
            }
            Ok(())
        })?;
        if let Some(last) = batch.entries.last() {
            self.last_index = last.index;
        }
        Ok(())
    }

    fn reset_to(&mut self, index: Index, term: Term) -> Result<(), Error> {
        self.writable()?;
        self.drop_entries(self.last_index, (index, term))?;
        self.last_index = index;
        Ok(())
    }

    fn purge_to(&mut self, index: Index) -> Result<(), Error> {
        if index <= self.purged.0 {
            return Ok(());
        }
        self.writable()?;
        check_in_range(index, self.purged.0, self.last_index)?;
        let term = self.term(index)?.expect("in range");
        self.drop_entries(index, (index, term))
    }
}
