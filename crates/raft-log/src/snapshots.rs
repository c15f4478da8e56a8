//! Snapshot stores: files in a directory (durable), or memory.
//!
//! On disk a snapshot is two files, `snap-<index>-<term>.bin` (the state
//! machine's bytes) and `snap-<index>-<term>.meta` (its `SnapshotMeta`,
//! MessagePack). Committing writes both under temporary names, syncs
//! them, renames the data and then the meta into place and syncs the
//! directory: the meta's presence is what makes a snapshot complete, so a
//! crash at any point leaves the previous snapshot in force. Older
//! snapshots are deleted after a commit.

use raft_core::{SnapshotMeta, SnapshotSink, SnapshotStore};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Snapshots as files in one directory.
#[derive(Debug)]
pub struct FileSnapshots {
    dir: PathBuf,
    /// Names temporary files apart when several sinks are open.
    next_tmp: AtomicU64,
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
    fn complete(&self) -> io::Result<Vec<(SnapshotMeta, PathBuf)>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir)? {
            let p = e?.path();
            if p.extension().is_none_or(|x| x != "meta") {
                continue;
            }
            let bytes = std::fs::read(&p)?;
            let meta: SnapshotMeta = rmp_serde::from_slice(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: not a snapshot meta file: {e}", p.display()),
                )
            })?;
            let data = p.with_extension("bin");
            if data.exists() {
                out.push((meta, data));
            }
        }
        out.sort_by_key(|(m, _)| (m.index, m.term));
        Ok(out)
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl SnapshotStore for FileSnapshots {
    fn latest(&self) -> io::Result<Option<SnapshotMeta>> {
        Ok(self.complete()?.pop().map(|(m, _)| m))
    }

    fn open(&self, meta: &SnapshotMeta) -> io::Result<Box<dyn Read + Send>> {
        let p = self.dir.join(format!("{}.bin", Self::stem(meta)));
        Ok(Box::new(io::BufReader::with_capacity(
            256 << 10,
            std::fs::File::open(p)?,
        )))
    }

    fn create(&self) -> io::Result<Box<dyn SnapshotSink>> {
        let n = self.next_tmp.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .dir
            .join(format!("incoming-{}-{n}.tmp", std::process::id()));
        let file = std::fs::File::create(&tmp)?;
        Ok(Box::new(FileSink {
            dir: self.dir.clone(),
            tmp,
            file: Some(io::BufWriter::with_capacity(256 << 10, file)),
        }))
    }
}

struct FileSink {
    dir: PathBuf,
    tmp: PathBuf,
    file: Option<io::BufWriter<std::fs::File>>,
}

impl Write for FileSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.as_mut().expect("open until commit").write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("open until commit").flush()
    }
}

impl SnapshotSink for FileSink {
    fn commit(mut self: Box<Self>, meta: &SnapshotMeta) -> io::Result<()> {
        let file = self.file.take().expect("committed once");
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        let stem = FileSnapshots::stem(meta);
        let meta_tmp = self.dir.join(format!("{stem}.meta.tmp"));
        let mut m = std::fs::File::create(&meta_tmp)?;
        m.write_all(&rmp_serde::to_vec(meta).map_err(io::Error::other)?)?;
        m.sync_all()?;
        drop(m);
        std::fs::rename(&self.tmp, self.dir.join(format!("{stem}.bin")))?;
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
        Ok(())
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
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
    fn commit(self: Box<Self>, meta: &SnapshotMeta) -> io::Result<()> {
        let mut g = self.store.latest.lock().unwrap_or_else(|p| p.into_inner());
        *g = Some((meta.clone(), Arc::new(self.buf)));
        Ok(())
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
        }
    }

    fn round_trip(store: &dyn SnapshotStore) {
        assert_eq!(store.latest().unwrap(), None);
        let mut s = store.create().unwrap();
        s.write_all(b"first").unwrap();
        s.commit(&meta(10)).unwrap();
        // A sink dropped without commit changes nothing.
        let mut s = store.create().unwrap();
        s.write_all(b"abandoned").unwrap();
        drop(s);
        assert_eq!(store.latest().unwrap(), Some(meta(10)));
        let mut s = store.create().unwrap();
        s.write_all(b"second").unwrap();
        s.commit(&meta(20)).unwrap();
        assert_eq!(store.latest().unwrap(), Some(meta(20)));
        let mut got = String::new();
        store
            .open(&meta(20))
            .unwrap()
            .read_to_string(&mut got)
            .unwrap();
        assert_eq!(got, "second");
        assert!(store.open(&meta(10)).is_err(), "the older one is gone");
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
        std::fs::write(dir.path().join("snap-00000000000000000030-2.bin"), b"x").unwrap();
        std::fs::write(dir.path().join("incoming-1-1.tmp"), b"partial").unwrap();
        let store = FileSnapshots::open(dir.path()).unwrap();
        assert_eq!(store.latest().unwrap(), Some(meta(20)));
        assert!(!dir.path().join("incoming-1-1.tmp").exists());
    }
}
