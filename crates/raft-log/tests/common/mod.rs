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

/// A durable mark's length, header included (format 5).
pub const MARK: usize = 25;
const CHECKED: u32 = 1 << 31;

/// `body` framed as the write-ahead log frames a record (format 5): its
/// length with the top bit set, its CRC-32, and a CRC-32 of those 8 bytes.
pub fn framed(body: &[u8]) -> Vec<u8> {
    let mut r = (body.len() as u32 | CHECKED).to_le_bytes().to_vec();
    r.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    let head = crc32fast::hash(&r);
    r.extend_from_slice(&head.to_le_bytes());
    r.extend_from_slice(body);
    r
}

/// A format 5 segment's records, each header and body.
pub fn records(seg: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < seg.len() {
        let word = u32::from_le_bytes(seg[at..at + 4].try_into().expect("4 bytes"));
        let len = (word & !CHECKED) as usize;
        out.push(seg[at..at + 12 + len].to_vec());
        at += 12 + len;
    }
    out
}

/// Whether a record (header and body) is a durable mark.
pub fn is_mark(r: &[u8]) -> bool {
    r.len() == MARK && r[12] == 0xD0
}

/// A format 5 segment as format 4 wrote it: 8-byte headers (length, CRC-32
/// of the body), each durable mark naming the offset it now starts at;
/// `keep_mark(k)` says whether record `k`, a mark, stays (format 3 wrote
/// none).
pub fn as_format_4(seg: &[u8], keep_mark: impl Fn(usize) -> bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, r) in records(seg).into_iter().enumerate() {
        let mut body = r[12..].to_vec();
        if is_mark(&r) {
            if !keep_mark(k) {
                continue;
            }
            body[5..].copy_from_slice(&(out.len() as u64).to_le_bytes());
        }
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        out.extend_from_slice(&body);
    }
    out
}
