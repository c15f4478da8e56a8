//! Entry points for fuzzing the log's readers (`cargo xtask fuzz`; the
//! targets are in `fuzz/`). Each takes arbitrary bytes and must neither
//! panic nor hang; each also checks what it can of what it read. Built with
//! the `fuzzing` feature only: not part of the API. `tests/fuzz_corpus.rs`
//! runs the kept corpus and every regression through them.

use std::path::{Path, PathBuf};

/// A directory for this fuzzer's files, reused by every run in it: named
/// by the parent process (AFL's fork server), so the children it forks one
/// after another share one, and parallel fuzzers do not.
fn scratch(name: &str) -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!(
        "raftstack-fuzz-{name}-{}",
        std::os::unix::process::parent_id()
    ));
    std::fs::create_dir_all(&dir).expect("a scratch directory for the fuzzer");
    dir
}

/// Removes the scratch directories this process's runs used (a fuzzer's
/// are left for `cargo xtask fuzz` to remove when it ends).
pub fn remove_scratch() {
    for name in ["wal", "seeds"] {
        let _ = std::fs::remove_dir_all(scratch(name));
    }
}

/// `data` as the segments of a write-ahead log, replayed and every entry
/// read back, twice: opening cuts a torn tail, so the second open must
/// find exactly what the first did. The first byte says whether there are
/// one or two segments and the next two where the first ends.
pub fn wal_segments(data: &[u8]) {
    let dir = scratch("wal");
    for e in std::fs::read_dir(&dir).expect("scratch") {
        std::fs::remove_file(e.expect("entry").path()).expect("clear the scratch directory");
    }
    let (two, rest) = match data {
        [flags, a, b, rest @ ..] if flags & 1 == 1 => {
            let at = u16::from_le_bytes([*a, *b]) as usize % (rest.len() + 1);
            (Some(at), rest)
        }
        [_, rest @ ..] => (None, rest),
        [] => return,
    };
    let seg = |id: u32| dir.join(format!("{id:020}.seg"));
    match two {
        Some(at) => {
            std::fs::write(seg(0), &rest[..at]).expect("write");
            std::fs::write(seg(1), &rest[at..]).expect("write");
        }
        None => std::fs::write(seg(0), rest).expect("write"),
    }
    let first = crate::redb_store::replay_wal(&dir).map_err(|e| e.to_string());
    let again = crate::redb_store::replay_wal(&dir).map_err(|e| e.to_string());
    assert_eq!(
        first, again,
        "invariant: opening a log twice reads the same"
    );
}

/// `data` as a snapshot's data file (read to its end through the block
/// reader, which checks every block) and as its meta file.
pub fn snapshot_file(data: &[u8]) {
    crate::snapshots::fuzz_read(data);
}

/// Inputs for `wal_segments` and `snapshot_file` that the real writers
/// wrote: a log's segments (one, and two in a row) after batches with hard
/// states, configurations, a purge and a reset; a snapshot's data and
/// meta files. Each is (target, name, bytes).
pub fn seeds() -> Vec<(String, String, Vec<u8>)> {
    use crate::RedbLogStore;
    use crate::conformance::entry;
    use raft_core::{HardState, LogStore, Membership, SnapshotStore, WriteBatch};
    let dir = scratch("seeds");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    let path = dir.join("log.redb");
    let mut s = RedbLogStore::open(&path).expect("a log in the scratch directory");
    s.set_segment_bytes(1500);
    let m = Membership::new([1, 2, 3]);
    for b in 0..12u64 {
        let e: Vec<_> = (b * 4 + 1..=b * 4 + 4)
            .map(|i| entry(i, 1 + b / 4))
            .collect();
        let hs = HardState {
            term: 1 + b / 4,
            vote: Some(2),
            commit: b * 4,
        };
        s.write(WriteBatch {
            hard_state: Some(hs),
            entries: &e,
            membership: (b % 5 == 0).then_some((b * 4, &m)),
        })
        .expect("write");
        if b == 6 {
            s.purge_to(10).expect("purge");
        }
    }
    let segments = || {
        let mut paths: Vec<_> = std::fs::read_dir(crate::wal_dir(&path))
            .expect("wal")
            .map(|e| e.expect("entry").path())
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| std::fs::read(p).expect("read"))
            .collect::<Vec<_>>()
    };
    let mut segs = segments();
    s.reset_to(60, 4).expect("reset");
    s.write(WriteBatch {
        entries: &[entry(61, 4)],
        ..Default::default()
    })
    .expect("write");
    drop(s);
    segs.extend(segments());
    let mut out = Vec::new();
    for (k, seg) in segs.iter().enumerate() {
        out.push((
            "wal_segments".into(),
            format!("one-{k}"),
            [&[0u8][..], seg].concat(),
        ));
    }
    for (k, w) in segs.windows(2).enumerate() {
        let at = u16::try_from(w[0].len()).expect("small segments");
        let input = [&[1u8][..], &at.to_le_bytes(), &w[0], &w[1]].concat();
        out.push(("wal_segments".into(), format!("two-{k}"), input));
    }
    let snaps = crate::FileSnapshots::open(dir.join("snaps")).expect("snapshots");
    let mut sink = snaps.create().expect("create");
    sink.write_all(&[0x5a; 600]).expect("write");
    let meta = raft_core::SnapshotMeta {
        index: 9,
        term: 2,
        membership: m,
        digest: None,
    };
    sink.commit(&meta).expect("commit");
    for e in std::fs::read_dir(dir.join("snaps")).expect("snaps") {
        let p = e.expect("entry").path();
        let name = p.file_name().expect("name").to_string_lossy().into_owned();
        out.push((
            "snapshot_file".into(),
            name,
            std::fs::read(&p).expect("read"),
        ));
    }
    let _ = std::fs::remove_dir_all(&dir);
    out
}
