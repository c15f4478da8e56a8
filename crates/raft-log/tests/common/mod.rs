//! Set-ups the log's integration tests share.

use raft_core::{HardState, LogStore, WriteBatch};
use raft_log::RedbLogStore;
use raft_log::conformance::entry;
use std::path::{Path, PathBuf};

/// A closed log in `dir` of `batches` batches of 10 entries each (term 1;
/// the first batch carries `hard_state` if given), recorded as node 3's;
/// returns its path and its newest segment file.
pub fn closed_log(dir: &Path, batches: u64, hard_state: Option<HardState>) -> (PathBuf, PathBuf) {
    let path = dir.join("log.redb");
    let mut s = RedbLogStore::open(&path).expect("open");
    s.set_node_id(3).expect("node id");
    for b in 0..batches {
        let e: Vec<_> = (b * 10 + 1..=b * 10 + 10).map(|i| entry(i, 1)).collect();
        s.write(WriteBatch {
            hard_state: hard_state.filter(|_| b == 0),
            entries: &e,
            ..Default::default()
        })
        .expect("write");
    }
    drop(s);
    let mut segs: Vec<_> = std::fs::read_dir(raft_log::wal_dir(&path))
        .expect("wal dir")
        .map(|e| e.expect("entry").path())
        .collect();
    segs.sort();
    (path, segs.pop().expect("a segment"))
}
