//! Snapshot stores: files in a directory (durable), or memory.
//!
//! On disk a snapshot is two files: `snap-<index>-<term>.data`, its bytes
//! in checksummed blocks (`blocks.rs`), and `snap-<index>-<term>.meta`,
//! its `SnapshotMeta` with the digest of those bytes (the magic
//! `RSNAPMET`, MessagePack, then a CRC-32 of both). Committing writes both
//! under temporary names, syncs them, renames the data and then the meta
//! into place and syncs the directory: the meta's presence is what makes a
//! snapshot complete, so a crash at any point leaves the previous snapshot
//! in force. Older snapshots are deleted after a commit. Snapshots an
//! older version wrote (`.bin` data, a meta without magic) are still read,
//! unverified, until the next snapshot replaces them.

mod blocks;

pub(crate) use blocks::digest;

use blocks::{BlockReader, BlockWriter};
use raft_core::{Digest, SnapshotMeta, SnapshotSink, SnapshotStore};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const META_MAGIC: &[u8; 8] = b"RSNAPMET";

/// Snapshots as files in one directory.
#[derive(Debug)]
pub struct FileSnapshots {
    dir: PathBuf,
    /// Names temporary files apart when several sinks are open.
    next_tmp: AtomicU64,
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// A meta file's bytes.
fn encode_meta(meta: &SnapshotMeta) -> io::Result<Vec<u8>> {
    let mut out = META_MAGIC.to_vec();
    out.extend(rmp_serde::to_vec(meta).map_err(io::Error::other)?);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Reads a meta file; `legacy`: an older version wrote it (no checksum).
fn decode_meta(path: &Path, bytes: &[u8]) -> io::Result<(SnapshotMeta, bool)> {
    let bad = |what: String| {
        invalid(format!(
            "{}: {what}: the snapshot is damaged; {}",
            path.display(),
            crate::contain::REMEDY
        ))
    };
    let Some(body) = bytes.strip_prefix(META_MAGIC) else {
        let meta = rmp_serde::from_slice(bytes)
            .map_err(|e| bad(format!("not a snapshot meta file ({e})")))?;
        return Ok((meta, true));
    };
    let split = body
        .len()
        .checked_sub(4)
        .ok_or_else(|| bad("too short".into()))?;
    let crc = u32::from_le_bytes(body[split..].try_into().expect("4 bytes"));
    if crc32fast::hash(&bytes[..bytes.len() - 4]) != crc {
        return Err(bad("its checksum does not match".into()));
    }
    let meta = rmp_serde::from_slice(&body[..split]).map_err(|e| bad(e.to_string()))?;
    Ok((meta, false))
}

/// Where a complete snapshot's data is.
#[derive(Debug)]
struct Found {
    meta: SnapshotMeta,
    data: PathBuf,
    legacy: bool,
}

impl FileSnapshots {
    /// Uses `dir` (created if missing), clearing temporary files a crash
    /// left behind.
    pub fn open(dir: impl AsRef<Path>) -> io::Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)?;
        for e in std::fs::read_dir(&dir)? {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "tmp") {
                let _ = std::fs::remove_file(&p);
            }
        }
        Ok(FileSnapshots {
            dir,
            next_tmp: AtomicU64::new(0),
        })
    }

    fn stem(meta: &SnapshotMeta) -> String {
        format!("snap-{:020}-{}", meta.index, meta.term)
    }

    /// Every complete snapshot, oldest first.
    fn complete(&self) -> io::Result<Vec<Found>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir)? {
            let p = e?.path();
            if p.extension().is_none_or(|x| x != "meta") {
                continue;
            }
            let (meta, legacy) = decode_meta(&p, &std::fs::read(&p)?)?;
            let data = p.with_extension(if legacy { "bin" } else { "data" });
            if data.exists() {
                out.push(Found { meta, data, legacy });
            } else if !legacy {
                // The data is renamed into place before the meta.
                return Err(invalid(format!(
                    "{}: its data file {} is missing",
                    p.display(),
                    data.display()
                )));
            }
        }
        out.sort_by_key(|f| (f.meta.index, f.meta.term));
        Ok(out)
    }

    fn find(&self, meta: &SnapshotMeta) -> io::Result<Found> {
        self.complete()?
            .into_iter()
            .find(|f| f.meta == *meta)
            .ok_or_else(|| io::ErrorKind::NotFound.into())
    }
}

/// Reads `data` as a data file to its end and as a meta file; for
/// `crate::fuzzing`.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_read(data: &[u8]) {
    if let Ok(mut r) = BlockReader::new(data, "fuzz".into(), None) {
        let _ = r.read_to_end(&mut Vec::new());
    }
    let _ = decode_meta(Path::new("fuzz"), data);
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl SnapshotStore for FileSnapshots {
    fn latest(&self) -> io::Result<Option<SnapshotMeta>> {
        Ok(self.complete()?.pop().map(|f| f.meta))
    }

    fn open(&self, meta: &SnapshotMeta) -> io::Result<Box<dyn Read + Send>> {
        let found = self.find(meta)?;
        let file = io::BufReader::with_capacity(256 << 10, std::fs::File::open(&found.data)?);
        if found.legacy {
            tracing::warn!(
                path = %found.data.display(),
                "reading a snapshot an older version wrote, without checksums"
            );
            return Ok(Box::new(file));
        }
        let name = found.data.display().to_string();
        Ok(Box::new(BlockReader::new(file, name, found.meta.digest)?))
    }

    fn create(&self) -> io::Result<Box<dyn SnapshotSink>> {
        let n = self.next_tmp.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .dir
            .join(format!("incoming-{}-{n}.tmp", std::process::id()));
        let file = std::fs::File::create(&tmp)?;
        let out = BlockWriter::new(io::BufWriter::with_capacity(256 << 10, file))?;
        Ok(Box::new(FileSink {
            dir: self.dir.clone(),
            tmp,
            file: Some(out),
        }))
    }
}

struct FileSink {
    dir: PathBuf,
    tmp: PathBuf,
    file: Option<BlockWriter<io::BufWriter<std::fs::File>>>,
}

impl Write for FileSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.as_mut().expect("open until commit").write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("open until commit").flush()
    }
}

/// `meta` with `got` as its digest, unless it already says otherwise.
fn with_digest(meta: &SnapshotMeta, got: Digest) -> io::Result<SnapshotMeta> {
    if let Some(want) = meta.digest.filter(|w| *w != got) {
        return Err(invalid(format!(
            "snapshot {} has digest {got} where the leader's says {want}: refused",
            meta.index
        )));
    }
    Ok(SnapshotMeta {
        digest: Some(got),
        ..meta.clone()
    })
}

impl SnapshotSink for FileSink {
    fn commit(mut self: Box<Self>, meta: &SnapshotMeta) -> io::Result<SnapshotMeta> {
        let (file, got) = self.file.take().expect("committed once").finish()?;
        let meta = with_digest(meta, got)?;
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        let stem = FileSnapshots::stem(&meta);
        let meta_tmp = self.dir.join(format!("{stem}.meta.tmp"));
        let mut m = std::fs::File::create(&meta_tmp)?;
        m.write_all(&encode_meta(&meta)?)?;
        m.sync_all()?;
        drop(m);
        std::fs::rename(&self.tmp, self.dir.join(format!("{stem}.data")))?;
        std::fs::rename(&meta_tmp, self.dir.join(format!("{stem}.meta")))?;
        sync_dir(&self.dir)?;
        // Older snapshots are no longer needed (a reader holding one open
        // keeps reading it: the file lives until closed).
        for e in std::fs::read_dir(&self.dir)? {
            let p = e?.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let older = name.starts_with("snap-")
                && !name.starts_with(&stem)
                && name.split('-').nth(1).and_then(|i| i.parse::<u64>().ok()) <= Some(meta.index);
            if older {
                let _ = std::fs::remove_file(&p);
            }
        }
        Ok(meta)
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// A snapshot held in memory: its meta and bytes.
type Held = (SnapshotMeta, Arc<Vec<u8>>);

/// Snapshots in memory (for nodes without a storage file, and tests).
#[derive(Clone, Debug, Default)]
pub struct MemSnapshots {
    latest: Arc<Mutex<Option<Held>>>,
}

impl MemSnapshots {
    /// An empty snapshot store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl SnapshotStore for MemSnapshots {
    fn latest(&self) -> io::Result<Option<SnapshotMeta>> {
        let g = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        Ok(g.as_ref().map(|(m, _)| m.clone()))
    }

    fn open(&self, meta: &SnapshotMeta) -> io::Result<Box<dyn Read + Send>> {
        let g = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        match g.as_ref() {
            Some((m, data)) if m == meta => Ok(Box::new(ArcReader {
                data: data.clone(),
                pos: 0,
            })),
            _ => Err(io::ErrorKind::NotFound.into()),
        }
    }

    fn create(&self) -> io::Result<Box<dyn SnapshotSink>> {
        Ok(Box::new(MemSink {
            store: self.clone(),
            buf: Vec::new(),
        }))
    }
}

struct ArcReader {
    data: Arc<Vec<u8>>,
    pos: usize,
}

impl Read for ArcReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (&self.data[self.pos..]).read(buf)?;
        self.pos += n;
        Ok(n)
    }
}

struct MemSink {
    store: MemSnapshots,
    buf: Vec<u8>,
}

impl Write for MemSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl SnapshotSink for MemSink {
    fn commit(self: Box<Self>, meta: &SnapshotMeta) -> io::Result<SnapshotMeta> {
        let meta = with_digest(meta, digest(&self.buf))?;
        let mut g = self.store.latest.lock().unwrap_or_else(|p| p.into_inner());
        *g = Some((meta.clone(), Arc::new(self.buf)));
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::Membership;

    fn meta(index: u64) -> SnapshotMeta {
        SnapshotMeta {
            index,
            term: 2,
            membership: Membership::new([1, 2, 3]),
            digest: None,
        }
    }

    fn commit(
        store: &dyn SnapshotStore,
        bytes: &[u8],
        m: &SnapshotMeta,
    ) -> io::Result<SnapshotMeta> {
        let mut s = store.create()?;
        s.write_all(bytes)?;
        s.commit(m)
    }

    fn round_trip(store: &dyn SnapshotStore) {
        assert_eq!(store.latest().unwrap(), None);
        let first = commit(store, b"first", &meta(10)).unwrap();
        assert_eq!(first.digest, Some(digest(b"first")));
        // A sink dropped without commit changes nothing.
        let mut s = store.create().unwrap();
        s.write_all(b"abandoned").unwrap();
        drop(s);
        assert_eq!(store.latest().unwrap(), Some(first.clone()));
        // A snapshot from the leader whose bytes do not match its digest.
        let claimed = SnapshotMeta {
            digest: Some(digest(b"what the leader sent")),
            ..meta(15)
        };
        let e = commit(store, b"what arrived", &claimed).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        assert_eq!(
            store.latest().unwrap(),
            Some(first.clone()),
            "nothing committed"
        );
        let second = commit(store, b"second", &meta(20)).unwrap();
        assert_eq!(store.latest().unwrap(), Some(second.clone()));
        let mut got = String::new();
        store
            .open(&second)
            .unwrap()
            .read_to_string(&mut got)
            .unwrap();
        assert_eq!(got, "second");
        assert!(store.open(&first).is_err(), "the older one is gone");
    }

    #[test]
    fn memory_snapshots() {
        round_trip(&MemSnapshots::new());
    }

    #[test]
    fn file_snapshots_survive_reopen_and_ignore_incomplete_ones() {
        let dir = tempfile::tempdir().unwrap();
        round_trip(&FileSnapshots::open(dir.path()).unwrap());
        // A crash after the data rename but before the meta's leaves a
        // data file without meta: not a snapshot.
        std::fs::write(dir.path().join("snap-00000000000000000030-2.data"), b"x").unwrap();
        std::fs::write(dir.path().join("incoming-1-1.tmp"), b"partial").unwrap();
        let store = FileSnapshots::open(dir.path()).unwrap();
        assert_eq!(store.latest().unwrap().map(|m| m.index), Some(20));
        assert!(!dir.path().join("incoming-1-1.tmp").exists());
        assert!(dir.path().read_dir().unwrap().all(|e| {
            let name = e.unwrap().file_name();
            !name.to_string_lossy().contains("-00000000000000000015-")
        }));
    }

    fn files(dir: &Path, ext: &str) -> PathBuf {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == ext))
            .unwrap()
    }

    #[test]
    fn a_flipped_byte_in_either_file_is_refused_never_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileSnapshots::open(dir.path()).unwrap();
        let bytes: Vec<u8> = (0..600_000u32).map(|i| (i % 253) as u8).collect();
        let m = commit(&store, &bytes, &meta(10)).unwrap();
        let read_all = || -> io::Result<Vec<u8>> {
            let mut out = Vec::new();
            store.open(&m)?.read_to_end(&mut out)?;
            Ok(out)
        };
        assert_eq!(read_all().unwrap(), bytes);
        let (data, meta_file) = (files(dir.path(), "data"), files(dir.path(), "meta"));
        for (path, at) in [
            (&data, 100),
            (&data, 300_000),
            (&data, 599_990),
            (&meta_file, 12),
        ] {
            let whole = std::fs::read(path).unwrap();
            let mut b = whole.clone();
            let at = at.min(b.len() - 1);
            b[at] ^= 0x08;
            std::fs::write(path, &b).unwrap();
            let read = store.latest().and_then(|l| {
                let mut out = Vec::new();
                store.open(&l.unwrap())?.read_to_end(&mut out)?;
                Ok(out)
            });
            let e = read.expect_err("damage is refused");
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
            assert!(e.to_string().contains("damaged"), "{e}");
            if path == &data {
                assert!(read_all().is_err(), "opening it by its meta fails too");
            }
            std::fs::write(path, &whole).unwrap();
        }
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_of_a_meta_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileSnapshots::open(dir.path()).unwrap();
        commit(&store, b"state", &meta(10)).unwrap();
        let path = files(dir.path(), "meta");
        let whole = std::fs::read(&path).unwrap();
        for at in 0..whole.len() {
            let mut b = whole.clone();
            b[at] ^= 0x01;
            assert!(decode_meta(&path, &b).is_err(), "byte {at}");
            assert!(decode_meta(&path, &whole[..at]).is_err(), "cut at {at}");
        }
        assert_eq!(decode_meta(&path, &whole).unwrap().0.index, 10);
    }

    #[test]
    fn a_snapshot_an_older_version_wrote_is_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let old = meta(7);
        let stem = FileSnapshots::stem(&old);
        std::fs::write(dir.path().join(format!("{stem}.bin")), b"old bytes").unwrap();
        std::fs::write(
            dir.path().join(format!("{stem}.meta")),
            rmp_serde::to_vec(&old).unwrap(),
        )
        .unwrap();
        let store = FileSnapshots::open(dir.path()).unwrap();
        assert_eq!(store.latest().unwrap(), Some(old.clone()));
        let mut got = Vec::new();
        store.open(&old).unwrap().read_to_end(&mut got).unwrap();
        assert_eq!(got, b"old bytes");
    }
}
