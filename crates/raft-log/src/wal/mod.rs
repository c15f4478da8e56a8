//! The write-ahead log the durable store keeps its entries in: numbered
//! segment files of checksummed records, each appended with one `write`
//! and made durable with one `fdatasync`, replayed at open.
//!
//! A record is a checksummed header saying the body's length and CRC-32,
//! then the body (`frame.rs`). What a body means is the store's business
//! (`record.rs`); this module only frames, checks, and places them, and
//! writes one record of its own: a durable mark after every `fdatasync`,
//! saying that every byte of the segment before it was on disk. Only bytes
//! after the last mark may be cut off as a torn write; damage below a mark
//! is corruption, because what is there was acknowledged.

use crate::Error;
use crate::fault::FaultSwitch;
use raft_core::Index;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

mod frame;

pub(crate) use frame::HEADER;
use frame::{Bad, Framing, Next, is_mark, is_whole_mark, mark_record, read_record};

/// One segment file, `<id>.seg` (id in 20 decimal digits, so names sort).
#[derive(Debug)]
pub(crate) struct Segment {
    pub id: u32,
    file: File,
    /// Bytes of valid records; the next record goes here.
    pub len: u64,
    /// The highest entry index written into this segment (0: none).
    pub max_index: Index,
    /// Its checkpoint starts a new log (after `reset_to`), so nothing in an
    /// earlier segment matters.
    pub fresh: bool,
    /// How its records are framed (read from its first bytes).
    framing: Framing,
}

/// Where a record's body is: the segment id and the offset of its body.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pos {
    pub seg: u32,
    pub offset: u64,
    /// The record is its segment's first.
    pub first: bool,
}

#[derive(Debug)]
pub(crate) struct Wal {
    dir: PathBuf,
    /// Invariant: ids are consecutive and ascending; the last is the one
    /// appended to. Never empty once opened.
    segments: Vec<Segment>,
    faults: Option<FaultSwitch>,
}

fn seg_name(id: u32) -> String {
    format!("{id:020}.seg")
}

fn corrupt(path: &Path, reason: impl Into<String>) -> Error {
    Error::Corrupt {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Makes a directory's entries (created, renamed, deleted files) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// What the store found in a record, for the segment's bookkeeping.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Visit {
    /// The highest entry index the record wrote.
    pub max_index: Option<Index>,
    /// The record is a checkpoint starting a new log.
    pub fresh: bool,
}

impl Wal {
    /// Opens the segments in `dir` (which must exist) and hands every
    /// valid record to `visit` in order. A torn record at the very end of
    /// the last segment (a crash during its write: every earlier write was
    /// synced before the next began) is cut off; a bad record anywhere
    /// else is corruption.
    ///
    /// Segments before `from` were deleted, or were being deleted when the
    /// process stopped: any left are removed.
    pub fn open(
        dir: &Path,
        from: u32,
        faults: Option<FaultSwitch>,
        mut visit: impl FnMut(Pos, &[u8]) -> Result<Visit, Error>,
    ) -> Result<Wal, Error> {
        let mut ids = Vec::new();
        let mut stale = false;
        for item in std::fs::read_dir(dir)? {
            let name = item?.file_name();
            let name = name.to_string_lossy();
            if let Some(id) = name.strip_suffix(".seg") {
                let id = id
                    .parse::<u32>()
                    .map_err(|_| corrupt(dir, format!("unexpected file {name}")))?;
                if id < from {
                    std::fs::remove_file(dir.join(seg_name(id)))?;
                    stale = true;
                } else {
                    ids.push(id);
                }
            }
        }
        if stale {
            sync_dir(dir)?;
        }
        ids.sort_unstable();
        if ids.first().is_some_and(|&f| f != from) || ids.windows(2).any(|w| w[1] != w[0] + 1) {
            return Err(corrupt(
                dir,
                format!("segments missing: from {from}, found {ids:?}"),
            ));
        }
        let mut wal = Wal {
            dir: dir.to_path_buf(),
            segments: Vec::new(),
            faults,
        };
        let mut body = Vec::new();
        let count = ids.len();
        for (i, id) in ids.into_iter().enumerate() {
            let path = dir.join(seg_name(id));
            let file = OpenOptions::new().read(true).write(true).open(&path)?;
            let mut first = [0u8; 4];
            let n = file.read_at(&mut first, 0)?;
            let mut seg = Segment {
                id,
                file,
                len: 0,
                max_index: 0,
                fresh: false,
                framing: Framing::of(&first[..n]),
            };
            let torn = scan(&mut seg, &mut body, &mut visit)?;
            if let Some(torn) = torn {
                let at = seg.len;
                let fail = |why: String| {
                    let remedy = crate::contain::REMEDY;
                    Err(corrupt(&path, format!("at byte {at}: {why}; {remedy}")))
                };
                if i + 1 != count {
                    return fail(format!("{} in a sealed segment", torn.bad.why));
                }
                if torn.bad.damage {
                    return fail(format!(
                        "{}: damage, not a torn write (a torn write leaves a record's \
                         header whole, or the file ends inside it)",
                        torn.bad.why
                    ));
                }
                if let Some(evidence) = durable_after(&seg, &torn)? {
                    return fail(format!(
                        "{}, {evidence}: these bytes were written before others that \
                         were acknowledged, so this is damage, not a torn write",
                        torn.bad.why
                    ));
                }
                tracing::warn!(
                    path = %path.display(),
                    at,
                    "cutting a torn write off the end of the log ({}): nothing after \
                     the last durable mark was acknowledged",
                    torn.bad.why
                );
                wal.fail_point()?;
                seg.file.set_len(seg.len)?;
                seg.file.sync_all()?;
            }
            if seg.len == 0 && i + 1 == count && count > 1 {
                // A crash while a new segment was being started.
                wal.fail_point()?;
                std::fs::remove_file(&path)?;
                sync_dir(dir)?;
                continue;
            }
            wal.segments.push(seg);
        }
        Ok(wal)
    }

    fn fail_point(&self) -> io::Result<()> {
        match &self.faults {
            Some(f) => f.check(),
            None => Ok(()),
        }
    }

    /// Whether the segment appended to is of an older format: the store
    /// must `roll` before it appends (a segment holds one framing).
    pub fn active_is_legacy(&self) -> bool {
        self.segments
            .last()
            .is_some_and(|s| s.framing == Framing::Legacy)
    }

    /// Appends one framed record: `buf` holds `HEADER` bytes of room, then
    /// the body. Not durable until `sync`. Returns where the body went.
    pub fn append(&mut self, buf: &mut [u8], max_index: Index) -> io::Result<Pos> {
        frame::seal(buf)?;
        self.fail_point()?;
        let seg = self.segments.last_mut().expect("a wal has a segment");
        assert_eq!(
            seg.framing,
            Framing::Checked,
            "invariant: the store rolls past an older segment before appending"
        );
        seg.file.write_all_at(buf, seg.len)?;
        let pos = Pos {
            seg: seg.id,
            offset: seg.len + HEADER as u64,
            first: seg.len == 0,
        };
        seg.len += buf.len() as u64;
        seg.max_index = seg.max_index.max(max_index);
        Ok(pos)
    }

    /// Makes everything appended durable, then appends a durable mark
    /// saying so (itself made durable by the next sync: a crash before
    /// then leaves an acknowledged record without its mark, which only
    /// matters if that record is also damaged).
    pub fn sync(&mut self) -> io::Result<()> {
        self.fail_point()?;
        let seg = self.segments.last_mut().expect("a wal has a segment");
        seg.file.sync_data()?;
        seg.write_mark()
    }

    pub fn active_len(&self) -> u64 {
        self.segments.last().map_or(0, |s| s.len)
    }

    /// Starts a new segment whose first record is `checkpoint` (framed as
    /// for `append`), durably; `fresh`: it starts a new log.
    pub fn roll(&mut self, checkpoint: &mut [u8], fresh: bool) -> io::Result<()> {
        self.fail_point()?;
        let id = self.segments.last().map_or(0, |s| s.id + 1);
        let path = self.dir.join(seg_name(id));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        self.segments.push(Segment {
            id,
            file,
            len: 0,
            max_index: 0,
            fresh,
            framing: Framing::Checked,
        });
        self.append(checkpoint, 0)?;
        let seg = self.segments.last_mut().expect("just pushed");
        seg.file.sync_all()?;
        seg.write_mark()?;
        sync_dir(&self.dir)
    }

    /// The first segment still needed once entries up to `purged` are
    /// gone, if segments before it can be deleted: everything they hold is
    /// purged, or a later segment starts a new log. Never the active one.
    pub fn first_needed(&self, purged: Index) -> Option<u32> {
        let mut keep = None;
        let mut max_before = 0;
        for (k, s) in self.segments.iter().enumerate() {
            if k > 0 && (s.fresh || max_before <= purged) {
                keep = Some(s.id);
            }
            max_before = max_before.max(s.max_index);
        }
        keep
    }

    /// Deletes the segments before `id` (the caller has made a record of
    /// where replay starts first).
    pub fn delete_before(&mut self, id: u32) -> io::Result<()> {
        self.fail_point()?;
        let n = self.segments.iter().take_while(|s| s.id < id).count();
        for s in self.segments.drain(..n) {
            std::fs::remove_file(self.dir.join(seg_name(s.id)))?;
        }
        sync_dir(&self.dir)
    }

    /// Reads `len` bytes at `offset` of segment `seg`.
    pub fn read(&self, seg: u32, offset: u64, len: usize) -> Result<Vec<u8>, Error> {
        let first = self.segments.first().expect("a wal has a segment").id;
        let s = seg
            .checked_sub(first)
            .and_then(|i| self.segments.get(i as usize))
            .ok_or_else(|| corrupt(&self.dir, format!("segment {seg} is gone")))?;
        let mut out = vec![0u8; len];
        s.file.read_exact_at(&mut out, offset)?;
        Ok(out)
    }
}

impl Segment {
    fn write_mark(&mut self) -> io::Result<()> {
        self.file
            .write_all_at(&mark_record(self.id, self.len), self.len)?;
        self.len += self.framing.mark_len();
        Ok(())
    }
}

/// The first record of a segment that does not check, and what the scan
/// knew when it got there.
struct Torn {
    bad: Bad,
    /// The segment has durable marks (a format 3 segment has none).
    marked: bool,
    /// The record before it was the store's, not a mark: one was due here.
    mark_due: bool,
    size: u64,
}

/// Reads `seg`'s records from its start, handing the store's to `visit`
/// and advancing `seg.len` past each; stops at the end or at the first
/// record that does not check.
fn scan(
    seg: &mut Segment,
    body: &mut Vec<u8>,
    visit: &mut impl FnMut(Pos, &[u8]) -> Result<Visit, Error>,
) -> Result<Option<Torn>, Error> {
    let size = seg.file.metadata()?.len();
    let mut reader = io::BufReader::with_capacity(1 << 20, &seg.file);
    let (mut marked, mut mark_due) = (false, false);
    let header = seg.framing.header() as u64;
    loop {
        let bad = match read_record(&mut reader, body, size - seg.len, seg.framing)? {
            Next::End => return Ok(None),
            Next::Bad(bad) => bad,
            Next::Record if is_mark(body, seg.id, seg.len) => {
                (marked, mark_due) = (true, false);
                seg.len += seg.framing.mark_len();
                continue;
            }
            Next::Record => {
                let pos = Pos {
                    seg: seg.id,
                    offset: seg.len + header,
                    first: seg.len == 0,
                };
                let v = visit(pos, body)?;
                if let Some(max) = v.max_index {
                    seg.max_index = seg.max_index.max(max);
                }
                seg.fresh |= v.fresh;
                seg.len += header + body.len() as u64;
                mark_due = true;
                continue;
            }
        };
        return Ok(Some(Torn {
            bad,
            marked,
            mark_due,
            size,
        }));
    }
}

/// Whether anything after the bad record at `seg.len` shows that it was
/// acknowledged: a durable mark at the very end of the file beyond it (a
/// damaged length field cannot hide that one), or one reached by reading
/// on past the bad record (its length was plausible) or past where a mark
/// was due. Says what it found. In a segment without marks (format 3),
/// anything but a bad record reaching the end of the file counts.
fn durable_after(seg: &Segment, torn: &Torn) -> Result<Option<String>, Error> {
    let at = seg.len;
    let below = |end| format!("below the durable mark at byte {end}");
    // First, as a format 3 segment written on by this version has marks
    // only after its older records.
    if let Some(end) = tail_mark(seg, torn.size, at)? {
        return Ok(Some(below(end)));
    }
    if !torn.marked {
        return Ok((!torn.bad.at_end).then(|| "followed by more bytes".to_string()));
    }
    let resume = [
        torn.bad.skip.map(|n| at + n),
        torn.mark_due.then_some(at + seg.framing.mark_len()),
    ];
    for from in resume.into_iter().flatten() {
        if let Some(end) = mark_from(seg, from, torn.size)? {
            return Ok(Some(below(end)));
        }
    }
    Ok(None)
}

/// The durable mark that ends the file, if it lies beyond `at`.
fn tail_mark(seg: &Segment, size: u64, at: u64) -> io::Result<Option<u64>> {
    let len = seg.framing.mark_len();
    let Some(start) = size.checked_sub(len).filter(|&s| s > at) else {
        return Ok(None);
    };
    let mut r = vec![0u8; len as usize];
    seg.file.read_exact_at(&mut r, start)?;
    Ok(is_whole_mark(&r, seg.framing, seg.id, start).then_some(start))
}

/// The first durable mark reached reading records from `from`.
fn mark_from(seg: &Segment, mut from: u64, size: u64) -> io::Result<Option<u64>> {
    if from > size {
        return Ok(None);
    }
    let mut reader = io::BufReader::new(&seg.file);
    io::Seek::seek(&mut reader, io::SeekFrom::Start(from))?;
    let mut body = Vec::new();
    let header = seg.framing.header() as u64;
    while let Next::Record = read_record(&mut reader, &mut body, size - from, seg.framing)? {
        if is_mark(&body, seg.id, from) {
            return Ok(Some(from));
        }
        from += header + body.len() as u64;
    }
    Ok(None)
}
