//! The durable log. Entries and the state that changes with them (hard
//! state, configuration, purge point) go to a write-ahead log of segment
//! files in `<file>.wal/`: one `write` and one `fdatasync` per batch, the
//! least a durable append can cost. The redb database at `<file>` holds
//! the log's identity: its format, the node it belongs to, and whether its
//! write-ahead log was created (so a deleted one is an error, not an empty
//! log). Every entry's place is kept in memory; reads are `pread`s.

use crate::contain::{REMEDY, contained};
use crate::fault::{FaultSwitch, FaultyBackend};
use crate::meta::{self, Format, META, NODE_ID, STORAGE_ID, WAL_FLOOR, read_header};
use crate::record::{self, EntrySpan, Record};
use crate::wal::{self, HEADER, Pos, Visit, Wal};
use crate::{Error, check_batch, check_in_range, codec, migrate};
use bytes::Bytes;
use raft_core::{
    Entry, HardState, Index, LogStore, Membership, NodeId, Payload, StoredState, Term, WriteBatch,
};
use redb::{Database, ReadableDatabase};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// By default a segment is sealed and a new one started once it holds
/// this much.
pub const SEGMENT_BYTES: u64 = 64 << 20;
/// The most `entries` reads with one `pread`.
const MAX_READ: u64 = 4 << 20;
/// A write larger than this is split into several records (one `fdatasync`
/// for all), so no batch, however large, meets the WAL's record limit.
pub const RECORD_BYTES: usize = 64 << 20;

/// About what an entry's payload takes in a record, for splitting writes
/// (a configuration's encoding is small; 1 KiB is plenty).
fn payload_len(p: &Payload) -> usize {
    match p {
        Payload::Normal(b) => b.len(),
        Payload::Noop => 0,
        Payload::Config(_) => 1024,
    }
}

/// How many of `entries` go into the next record: as many as fit in
/// `limit` bytes, and at least one.
fn record_len(entries: &[Entry], limit: usize) -> usize {
    let mut bytes = 0;
    let n = entries
        .iter()
        .take_while(|e| {
            bytes += record::ENTRY_HEADER + payload_len(&e.payload);
            bytes <= limit
        })
        .count();
    n.max(1).min(entries.len())
}

/// Where an entry is.
#[derive(Clone, Copy, Debug)]
struct Loc {
    term: Term,
    /// Offset of the entry's header in its segment.
    offset: u64,
    seg: u32,
    /// Header and payload, and in the top bit whether the header has a
    /// checksum (not a format 3 batch): 24 bytes an entry, not 32.
    len_checked: u32,
}

const CHECKED: u32 = 1 << 31;

impl Loc {
    fn new(term: Term, offset: u64, seg: u32, span: &EntrySpan) -> Self {
        let flag = if span.checked { CHECKED } else { 0 };
        Loc {
            term,
            offset,
            seg,
            len_checked: span.len | flag,
        }
    }
    fn len(&self) -> u32 {
        self.len_checked & !CHECKED
    }
    fn checked(&self) -> bool {
        self.len_checked & CHECKED != 0
    }
}

/// The durable log store: a write-ahead log of segment files (one write
/// and one `fdatasync` per batch) beside a redb file holding the log's
/// identity; see the module docs.
pub struct RedbLogStore {
    /// Always `Some` until dropped: redb's own drop reads the file too, so
    /// it runs contained (`Drop for RedbLogStore`).
    db: Option<Database>,
    path: PathBuf,
    wal: Wal,
    /// Why writes are refused, after a write failed.
    poisoned: Option<String>,
    hard_state: HardState,
    membership: Option<(Index, Membership)>,
    purged: (Index, Term),
    /// Invariant: `locs[i]` is entry `purged.0 + 1 + i`.
    locs: VecDeque<Loc>,
    buf: Vec<u8>,
    spans: Vec<EntrySpan>,
    segment_bytes: u64,
    record_bytes: usize,
    /// `StoredState::storage`.
    storage: u64,
}

impl std::fmt::Debug for RedbLogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbLogStore")
            .field("path", &self.path)
            .field("purged", &self.purged)
            .field("last_index", &self.last_index())
            .finish()
    }
}

/// The write-ahead log directory of the log at `path`.
pub fn wal_dir(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".wal");
    PathBuf::from(p)
}

/// Deletes the log at `path`: its database and its write-ahead log.
pub fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(wal_dir(path)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

pub(crate) fn redb_err(e: impl Into<redb::Error>) -> Error {
    Error::Storage(e.into())
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
        let db = contained(&path, || {
            let db = if existing {
                Database::open(&path)
            } else {
                Database::create(&path)
            };
            let mut db = db.map_err(|e| open_error(&path, e.into()))?;
            // redb trusts the pages it reads on a clean open; a damaged one
            // can make it panic. Verify every page's checksum first.
            if existing
                && !db
                    .check_integrity()
                    .map_err(|e| open_error(&path, e.into()))?
            {
                tracing::warn!(path = %path.display(), "redb repaired the database");
            }
            Ok(db)
        })?;
        Self::init(db, path, None)
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
        Ok((Self::init(db, path, Some(switch.clone()))?, switch))
    }

    fn init(db: Database, path: PathBuf, faults: Option<FaultSwitch>) -> Result<Self, Error> {
        let dir = wal_dir(&path);
        let header = contained(&path, || read_header(&db, &path))?;
        let floor = header.floor;
        match header.format {
            Format::Current if header.ready => {}
            Format::Three if header.ready => contained(&path, || migrate::from_format_3(&db))?,
            Format::Four if header.ready => contained(&path, || migrate::from_format_4(&db))?,
            Format::Current | Format::Four | Format::Three | Format::New => {
                if header.format == Format::New && dir.exists() {
                    return Err(Error::NotALog {
                        path,
                        reason: format!("{} exists beside a new database", dir.display()),
                    });
                }
                // New, or created up to the write-ahead log and no further.
                contained(&path, || migrate::create(&db, &dir, faults.clone()))?;
            }
            Format::Two => contained(&path, || {
                migrate::from_format_2(&db, &path, &dir, faults.clone())?;
                migrate::from_format_3(&db)
            })?,
        }
        if !dir.is_dir() {
            return Err(Error::Corrupt {
                path,
                reason: format!("its write-ahead log {} is missing", dir.display()),
            });
        }
        let (from, floor) = match floor {
            Some(v) => {
                let (seg, purged) = codec::decode_floor(&v).map_err(|reason| Error::Corrupt {
                    path: path.clone(),
                    reason: format!("wal floor: {reason}"),
                })?;
                (seg, purged)
            }
            None => (0, (0, 0)),
        };
        let mut replay = Replay {
            floor,
            ..Replay::default()
        };
        let wal = Wal::open(&dir, from, faults, |pos, body| {
            replay.visit(pos, body, &dir)
        })?;
        if !replay.started {
            return Err(Error::Corrupt {
                path: dir,
                reason: "no segment starting with a checkpoint".into(),
            });
        }
        let legacy = wal.active_is_legacy();
        let mut store = RedbLogStore::replayed(Some(db), path, wal, replay);
        if legacy {
            // A segment holds one framing: new records go to a new segment.
            store.roll(false, store.purged)?;
        }
        store.with_storage_id()
    }

    /// A store holding what replay found (its storage id still to read).
    fn replayed(db: Option<Database>, path: PathBuf, wal: Wal, replay: Replay) -> Self {
        RedbLogStore {
            db,
            path,
            wal,
            poisoned: None,
            hard_state: replay.hard_state,
            membership: replay.membership,
            purged: replay.purged,
            locs: replay.locs,
            buf: Vec::new(),
            spans: Vec::new(),
            segment_bytes: SEGMENT_BYTES,
            record_bytes: RECORD_BYTES,
            storage: 0,
        }
    }

    /// Reads the storage id, or draws and records one.
    fn with_storage_id(mut self) -> Result<Self, Error> {
        self.storage = match self.get_meta(STORAGE_ID)? {
            Some(v) => {
                let b: [u8; 8] = v.try_into().map_err(|v: Vec<u8>| Error::Corrupt {
                    path: self.path.clone(),
                    reason: format!("a storage id of {} bytes, not 8", v.len()),
                })?;
                u64::from_le_bytes(b)
            }
            None => {
                let id = meta::draw_storage_id();
                self.put_meta(STORAGE_ID, &id.to_le_bytes())?;
                id
            }
        };
        Ok(self)
    }

    /// This log's storage id (`InitialState::storage`): drawn when the log
    /// was created (or first opened by a version that has them).
    pub fn storage_id(&self) -> u64 {
        self.storage
    }

    /// How large a segment file grows before the next one is started
    /// (disk space is given back a segment at a time, after compaction).
    pub fn set_segment_bytes(&mut self, bytes: u64) {
        self.segment_bytes = bytes.max(1);
    }

    /// How many bytes of entries one WAL record carries at most (a batch
    /// with more becomes several records; tests make it small).
    pub fn set_record_bytes(&mut self, bytes: usize) {
        self.record_bytes = bytes.max(1);
    }

    /// The file the store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn last_index(&self) -> Index {
        self.purged.0 + self.locs.len() as Index
    }

    fn writable(&self) -> Result<(), Error> {
        match &self.poisoned {
            Some(why) => Err(Error::Poisoned(why.clone())),
            None => Ok(()),
        }
    }

    /// Runs a write; any failure poisons the store: after a failed write or
    /// fsync, what the file holds is no longer known.
    fn guard<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, Error>) -> Result<T, Error> {
        self.writable()?;
        f(self).inspect_err(|e| self.poisoned = Some(e.to_string()))
    }

    /// Seals the active segment and starts one with a checkpoint of the
    /// current state, deleting segments nothing needs any more. `fresh`:
    /// the log restarts after `purged`, with no entries.
    fn roll(&mut self, fresh: bool, purged: (Index, Term)) -> Result<(), Error> {
        self.guard(|s| {
            s.buf.clear();
            s.buf.resize(HEADER, 0);
            let m = s.membership.as_ref().map(|(i, m)| (*i, m));
            record::checkpoint(&mut s.buf, fresh, &s.hard_state, purged, m);
            s.wal.roll(&mut s.buf, fresh)?;
            Ok(())
        })
    }

    /// Deletes the segments nothing needs any more. The database first
    /// records where replay starts, so a crash midway leaves a log that
    /// opens the same (and finishes the deletion).
    fn compact_segments(&mut self) -> Result<(), Error> {
        let Some(first) = self.wal.first_needed(self.purged.0) else {
            return Ok(());
        };
        self.guard(|s| {
            s.put_meta(WAL_FLOOR, &codec::encode_floor(first, s.purged))?;
            s.wal.delete_before(first)?;
            Ok(())
        })
    }

    /// Appends one record and makes it durable.
    fn append_synced(&mut self, max_index: Index) -> Result<Pos, Error> {
        self.guard(|s| {
            let pos = s.wal.append(&mut s.buf, max_index)?;
            s.wal.sync()?;
            Ok(pos)
        })
    }

    /// The id of the node this log belongs to, if one was recorded. A
    /// node's identity must stay with its data: a node that lost its disk
    /// and comes back under its old id could vote twice in a term.
    pub fn node_id(&self) -> Result<Option<NodeId>, Error> {
        let Some(v) = self.get_meta(NODE_ID)? else {
            return Ok(None);
        };
        let b: [u8; 8] = v.try_into().map_err(|_| Error::Corrupt {
            path: self.path.clone(),
            reason: "node id: expected 8 bytes".into(),
        })?;
        Ok(Some(u64::from_le_bytes(b)))
    }

    /// Records the node id (durably).
    pub fn set_node_id(&mut self, id: NodeId) -> Result<(), Error> {
        self.guard(|s| s.put_meta(NODE_ID, &id.to_le_bytes()))
    }

    fn db(&self) -> &Database {
        self.db
            .as_ref()
            .expect("the database is only taken on drop")
    }

    /// Reads a key of the database's `meta` table.
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        contained(&self.path, || {
            let rtx = self.db().begin_read().map_err(redb_err)?;
            let t = rtx.open_table(META).map_err(redb_err)?;
            let Some(v) = meta::get_raw(&t, key)? else {
                return Ok(None);
            };
            meta::unseal_in(&self.path, key, &v).map(Some)
        })
    }

    /// Writes a key of the database's `meta` table, durably.
    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        contained(&self.path, || {
            let wtx = self.db().begin_write().map_err(redb_err)?;
            meta::put(&mut wtx.open_table(META).map_err(redb_err)?, key, value)?;
            wtx.commit().map_err(redb_err)
        })
    }

    fn corrupt(&self, reason: String) -> Error {
        Error::Corrupt {
            path: wal_dir(&self.path),
            reason,
        }
    }
}

impl Drop for RedbLogStore {
    fn drop(&mut self) {
        let db = self.db.take();
        if let Err(e) = contained(&self.path, || {
            drop(db);
            Ok(())
        }) {
            tracing::error!("closing the log: {e}");
        }
    }
}

/// Maps a failure to open into what it means for the user.
fn open_error(path: &Path, e: redb::Error) -> Error {
    match e {
        redb::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => Error::Corrupt {
            path: path.to_path_buf(),
            reason: format!("the database is damaged (shorter than it says: {io}); {REMEDY}"),
        },
        redb::Error::Io(io) if io.kind() != std::io::ErrorKind::InvalidData => Error::Io(io),
        redb::Error::DatabaseAlreadyOpen => Error::Storage(e),
        redb::Error::Corrupted(what) => Error::Corrupt {
            path: path.to_path_buf(),
            reason: format!("the database is damaged (redb: {what}); {REMEDY}"),
        },
        other => Error::NotALog {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    }
}

/// The state rebuilt from the write-ahead log's records, in order.
#[derive(Default)]
struct Replay {
    /// The purge point recorded when segments were last deleted: entries
    /// up to it may have been in them, so replay starts its log there.
    floor: (Index, Term),
    started: bool,
    hard_state: HardState,
    membership: Option<(Index, Membership)>,
    purged: (Index, Term),
    locs: VecDeque<Loc>,
}

impl Replay {
    fn visit(&mut self, pos: Pos, body: &[u8], dir: &Path) -> Result<Visit, Error> {
        let corrupt = |reason: String| Error::Corrupt {
            path: dir.to_path_buf(),
            reason: format!("segment {}, byte {}: {reason}", pos.seg, pos.offset),
        };
        let first_in_segment = pos.first;
        let rec = record::decode(body).map_err(&corrupt)?;
        let last = self.purged.0 + self.locs.len() as Index;
        match rec {
            Record::Checkpoint {
                fresh,
                hard_state,
                purged,
                membership,
            } => {
                if !first_in_segment {
                    return Err(corrupt("a checkpoint inside a segment".into()));
                }
                if self.started && !fresh && purged.0 > self.purged.0 {
                    return Err(corrupt(format!(
                        "checkpoint purged {purged:?}, replay reached {:?}",
                        self.purged
                    )));
                }
                if fresh || !self.started {
                    self.purged = purged;
                    if !self.started && self.floor.0 > purged.0 {
                        self.purged = self.floor;
                    }
                    self.locs.clear();
                }
                self.hard_state = hard_state;
                self.membership = membership;
                self.started = true;
                Ok(Visit {
                    fresh,
                    ..Visit::default()
                })
            }
            _ if first_in_segment => Err(corrupt("no checkpoint at the segment's start".into())),
            Record::Batch {
                hard_state,
                membership,
                first,
                entries,
            } => {
                if let Some(hs) = hard_state {
                    self.hard_state = hs;
                }
                if membership.is_some() {
                    self.membership = membership;
                }
                if entries.is_empty() {
                    return Ok(Visit::default());
                }
                if first == 0 || first > last + 1 {
                    return Err(corrupt(format!(
                        "entries from {first} do not continue the log ({}..={last})",
                        self.purged.0 + 1
                    )));
                }
                // Entries at or below the purge point were purged after this
                // batch was written (the floor moved past them).
                let skip = (self.purged.0 + 1).saturating_sub(first) as usize;
                self.locs
                    .truncate(first.saturating_sub(self.purged.0 + 1) as usize);
                self.locs.extend(
                    entries
                        .iter()
                        .skip(skip)
                        .map(|s| Loc::new(s.term, pos.offset + s.offset as u64, pos.seg, s)),
                );
                Ok(Visit {
                    max_index: Some(first + entries.len() as Index - 1),
                    ..Visit::default()
                })
            }
            Record::Purge(index, term) => {
                if index <= self.purged.0 {
                    return Ok(Visit::default());
                }
                if index > last {
                    return Err(corrupt(format!(
                        "purge to {index} past the log's end {last}"
                    )));
                }
                let drop = (index - self.purged.0) as usize;
                self.locs.drain(..drop);
                self.purged = (index, term);
                Ok(Visit::default())
            }
        }
    }
}

impl LogStore for RedbLogStore {
    type Error = Error;

    fn state(&self) -> Result<StoredState, Error> {
        Ok(StoredState {
            hard_state: self.hard_state,
            membership: self.membership.clone(),
            purged: self.purged,
            last_index: self.last_index(),
            storage: self.storage,
        })
    }

    fn entries(&self, lo: Index, hi: Index, max_bytes: usize) -> Result<Vec<Entry>, Error> {
        if lo >= hi {
            return Ok(Vec::new());
        }
        let last = self.last_index();
        check_in_range(lo, self.purged.0, last)?;
        check_in_range(hi - 1, self.purged.0, last)?;
        let base = self.purged.0 + 1;
        let locs = self.locs.range((lo - base) as usize..(hi - base) as usize);
        let mut out = Vec::with_capacity((hi - lo).min(1024) as usize);
        let mut bytes = 0;
        let mut run: Vec<Loc> = Vec::new();
        let mut index = lo;
        // Reads runs of entries that lie back to back in one segment.
        let mut flush = |run: &mut Vec<Loc>, out: &mut Vec<Entry>, bytes: &mut usize| {
            let (Some(a), Some(z)) = (run.first(), run.last()) else {
                return Ok(true);
            };
            let start = a.offset;
            let data = Bytes::from(self.wal.read(
                a.seg,
                start,
                (z.offset + z.len() as u64 - start) as usize,
            )?);
            for l in run.drain(..) {
                let at = (l.offset - start) as usize;
                let entry = data.slice(at..at + l.len() as usize);
                let e = record::decode_entry(index, entry, l.checked()).map_err(|r| {
                    self.corrupt(format!("segment {}, byte {}: {r}", l.seg, l.offset))
                })?;
                *bytes += e.size();
                if !out.is_empty() && *bytes > max_bytes {
                    return Ok(false);
                }
                out.push(e);
                index += 1;
            }
            Ok::<bool, Error>(true)
        };
        let mut run_bytes = 0u64;
        for l in locs {
            let joins = run
                .last()
                .is_some_and(|p| p.seg == l.seg && p.offset + p.len() as u64 == l.offset);
            let budget = (max_bytes as u64)
                .saturating_sub(bytes as u64)
                .min(MAX_READ);
            if !run.is_empty() && (!joins || run_bytes >= budget) {
                if !flush(&mut run, &mut out, &mut bytes)? {
                    return Ok(out);
                }
                run_bytes = 0;
            }
            run_bytes += l.len() as u64;
            run.push(*l);
        }
        flush(&mut run, &mut out, &mut bytes)?;
        Ok(out)
    }

    fn term(&self, index: Index) -> Result<Option<Term>, Error> {
        if index == self.purged.0 {
            return Ok(Some(self.purged.1));
        }
        if index < self.purged.0 {
            return Ok(None);
        }
        Ok(self
            .locs
            .get((index - self.purged.0 - 1) as usize)
            .map(|l| l.term))
    }

    fn write(&mut self, batch: WriteBatch<'_>) -> Result<(), Error> {
        self.writable()?;
        check_batch(&batch, self.purged.0, self.last_index())?;
        if batch.entries.is_empty() && batch.hard_state.is_none() && batch.membership.is_none() {
            return Ok(());
        }
        if self.wal.active_len() >= self.segment_bytes {
            self.roll(false, self.purged)?;
            self.compact_segments()?;
        }
        // Entries are placed only once all records are durable: after a
        // failed write, reads still show what the log held before.
        let mut placed: Vec<Loc> = Vec::with_capacity(batch.entries.len());
        let mut rest = batch.entries;
        let mut first_record = true;
        while first_record || !rest.is_empty() {
            let take = record_len(rest, self.record_bytes);
            let (chunk, tail) = rest.split_at(take);
            self.buf.clear();
            self.buf.resize(HEADER, 0);
            record::batch(
                &mut self.buf,
                batch.hard_state.as_ref().filter(|_| first_record),
                batch.membership.filter(|_| first_record),
                chunk,
                &mut self.spans,
            );
            let max = chunk.last().map_or(0, |e| e.index);
            let pos = self.guard(|s| Ok(s.wal.append(&mut s.buf, max)?))?;
            placed.extend(
                self.spans
                    .iter()
                    .map(|sp| Loc::new(sp.term, pos.offset + sp.offset as u64, pos.seg, sp)),
            );
            (rest, first_record) = (tail, false);
        }
        self.guard(|s| Ok(s.wal.sync()?))?;
        if let Some(hs) = batch.hard_state {
            self.hard_state = hs;
        }
        if let Some((index, m)) = batch.membership {
            self.membership = Some((index, m.clone()));
        }
        if let Some(first) = batch.entries.first() {
            self.locs
                .truncate((first.index - self.purged.0 - 1) as usize);
            self.locs.extend(placed);
        }
        Ok(())
    }

    fn reset_to(&mut self, index: Index, term: Term) -> Result<(), Error> {
        self.roll(true, (index, term))?;
        self.locs.clear();
        self.purged = (index, term);
        self.compact_segments()
    }

    fn purge_to(&mut self, index: Index) -> Result<(), Error> {
        if index <= self.purged.0 {
            return Ok(());
        }
        self.writable()?;
        check_in_range(index, self.purged.0, self.last_index())?;
        let term = self.term(index)?.expect("in range");
        self.buf.clear();
        self.buf.resize(HEADER, 0);
        record::purge(&mut self.buf, index, term);
        self.append_synced(0)?;
        self.locs.drain(..(index - self.purged.0) as usize);
        self.purged = (index, term);
        self.compact_segments()
    }
}

/// Replays the write-ahead log in `dir` as `open` does, without a
/// database (replay starting at segment 0), and reads back every entry it
/// holds: the fuzz target for the WAL's readers (`crate::fuzzing`).
#[cfg(feature = "fuzzing")]
pub(crate) fn replay_wal(dir: &Path) -> Result<Vec<Entry>, Error> {
    let mut replay = Replay::default();
    let wal = Wal::open(dir, 0, None, |pos, body| replay.visit(pos, body, dir))?;
    let store = RedbLogStore::replayed(None, dir.to_path_buf(), wal, replay);
    store.entries(store.purged.0 + 1, store.last_index() + 1, usize::MAX)
}

/// Writes a first segment holding `hs`, `purged` and `membership` into
/// `dir`, replacing whatever was there.
pub(crate) fn create_wal(
    dir: &Path,
    faults: Option<FaultSwitch>,
    hs: &HardState,
    purged: (Index, Term),
    membership: Option<(Index, &Membership)>,
) -> Result<Wal, Error> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        wal::sync_dir(parent)?;
    }
    let mut buf = vec![0u8; HEADER];
    record::checkpoint(&mut buf, true, hs, purged, membership);
    let mut wal = Wal::open(dir, 0, faults, |_, _| Ok(Visit::default()))?;
    wal.roll(&mut buf, true)?;
    Ok(wal)
}
