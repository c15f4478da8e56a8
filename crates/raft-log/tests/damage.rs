//! Damaged files, byte by byte: a flipped byte anywhere in a log's files
//! ends in a clear refusal or in a log holding exactly what was
//! acknowledged, never a panic and never a different entry. Offsets come
//! from a seed; a failure prints it (`DAMAGE_SEED=<n>` replays it).

mod common;

use raft_core::{HardState, LogStore};
use raft_log::conformance::entry;
use raft_log::{Error, RedbLogStore};
use std::path::{Path, PathBuf};

/// A small deterministic generator (xorshift64*), so a failing case
/// replays from its seed.
struct Seeded(u64);

impl Seeded {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    }
}

fn seed() -> u64 {
    std::env::var("DAMAGE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_da7a)
}

const HS: HardState = HardState {
    term: 4,
    vote: Some(2),
    commit: 40,
};

/// A closed log of 50 entries in five batches (the first with `HS`);
/// returns its path and its newest segment.
fn log_of_50(dir: &Path) -> (PathBuf, PathBuf) {
    common::closed_log(dir, 5, Some(HS))
}

/// Opening `path` refuses clearly, or shows every acknowledged entry and
/// the hard state unchanged.
fn refused_or_whole(path: &Path, what: &str) {
    match RedbLogStore::open(path) {
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&path.display().to_string()) || msg.contains("log.redb"),
                "{what}: the refusal names the file: {msg}"
            );
        }
        Ok(s) => {
            match s.node_id() {
                Ok(id) => assert_eq!(id, Some(3), "{what}: node id"),
                Err(e) => assert!(matches!(e, Error::Corrupt { .. }), "{what}: {e}"),
            }
            let st = s.state().expect("state");
            assert_eq!(st.hard_state, HS, "{what}: hard state");
            assert_eq!(st.last_index, 50, "{what}: an acknowledged entry is gone");
            let got = s.entries(1, 51, usize::MAX).expect("read");
            let want: Vec<_> = (1..=50).map(|i| entry(i, 1)).collect();
            assert_eq!(got, want, "{what}: entries differ");
        }
    }
}

#[test]
fn a_flipped_byte_anywhere_in_the_wal_is_refused_or_harmless() {
    let seed = seed();
    let mut rng = Seeded(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, seg) = log_of_50(dir.path());
    let whole = std::fs::read(&seg).expect("read");
    let mut offsets: Vec<usize> = (0..200).map(|_| rng.below(whole.len())).collect();
    // Every byte of the last two records (the last batch and its mark).
    offsets.extend(whole.len().saturating_sub(400)..whole.len());
    for at in offsets {
        let mut b = whole.clone();
        b[at] ^= 1 << rng.below(8);
        std::fs::write(&seg, &b).expect("write");
        refused_or_whole(&path, &format!("seed {seed}: WAL byte {at} flipped"));
        std::fs::write(&seg, &whole).expect("restore");
    }
}

#[test]
fn an_acknowledged_last_record_with_a_flipped_byte_is_corruption_not_a_torn_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, seg) = log_of_50(dir.path());
    let whole = std::fs::read(&seg).expect("read");
    // The last batch's body starts 21 (its mark) + its length before the end.
    let mut b = whole.clone();
    let at = b.len() - 21 - 30;
    b[at] ^= 0x10;
    std::fs::write(&seg, &b).expect("write");
    let err = RedbLogStore::open(&path).expect_err("the last batch was acknowledged");
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("durable mark"), "{err}");
    // The same damage with the mark gone (the crash came before it was
    // written: that batch was never acknowledged) is a torn write.
    b.truncate(b.len() - 21);
    std::fs::write(&seg, &b).expect("write");
    let s = RedbLogStore::open(&path).expect("a torn write is cut");
    assert_eq!(s.state().expect("state").last_index, 40);
}

#[test]
fn a_power_cut_that_tears_the_mark_and_the_next_record_is_a_torn_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, seg) = log_of_50(dir.path());
    let whole = std::fs::read(&seg).expect("read");
    // The last mark's page is lost (garbage where it was) and the next
    // record, never synced, reached the disk in part.
    let mut b = whole.clone();
    let n = b.len();
    b[n - 21..].fill(0x77);
    b.extend_from_slice(&[&90u32.to_le_bytes()[..], &[1u8; 4], &[2u8; 40]].concat());
    std::fs::write(&seg, &b).expect("write");
    let s = RedbLogStore::open(&path).expect("nothing acknowledged is damaged");
    assert_eq!(s.state().expect("state").last_index, 50);
}

#[test]
fn a_flipped_byte_in_the_database_is_refused_or_harmless() {
    let seed = seed();
    let mut rng = Seeded(seed ^ 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = log_of_50(dir.path());
    let whole = std::fs::read(&path).expect("read");
    // Most of a new database is zeroes; aim at the bytes that say something.
    let live: Vec<usize> = (0..whole.len()).filter(|&i| whole[i] != 0).collect();
    for k in 0..std::env::var("DAMAGE_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300)
    {
        let at = if k % 4 == 0 {
            rng.below(whole.len())
        } else {
            live[rng.below(live.len())]
        };
        let mut b = whole.clone();
        b[at] ^= 1 << rng.below(8);
        std::fs::write(&path, &b).expect("write");
        refused_or_whole(&path, &format!("seed {seed}: database byte {at} flipped"));
        std::fs::write(&path, &whole).expect("restore");
    }
}

/// The segment's records as (header + body) byte strings.
fn records(seg: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < seg.len() {
        let len = u32::from_le_bytes(seg[at..at + 4].try_into().unwrap()) as usize;
        out.push(seg[at..at + 8 + len].to_vec());
        at += 8 + len;
    }
    out
}

fn is_mark(r: &[u8]) -> bool {
    r.len() == 21 && r[8] == 0xD0
}

#[test]
fn a_damaged_length_in_records_older_than_the_marks_is_still_caught_by_the_last_mark() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, seg) = log_of_50(dir.path());
    // As a format 3 segment that this version went on writing to: no
    // marks after the first three records, marks (at their new offsets)
    // after that.
    let mut out: Vec<u8> = Vec::new();
    for (k, r) in records(&std::fs::read(&seg).expect("read"))
        .into_iter()
        .enumerate()
    {
        if is_mark(&r) && k < 6 {
            continue;
        }
        let mut r = r;
        if is_mark(&r) {
            r[13..21].copy_from_slice(&(out.len() as u64).to_le_bytes());
            let crc = crc32fast::hash(&r[8..]);
            r[4..8].copy_from_slice(&crc.to_le_bytes());
        }
        out.extend_from_slice(&r);
    }
    std::fs::write(&seg, &out).expect("write");
    refused_or_whole(&path, "marks only after the third record");
    // The second record's length now reaches past the end of the file, as
    // a torn write's would: the mark at the end says it was not one.
    let first = u32::from_le_bytes(out[..4].try_into().unwrap()) as usize;
    out[8 + first..8 + first + 4].copy_from_slice(&(1u32 << 30).to_le_bytes());
    std::fs::write(&seg, &out).expect("write");
    let err = RedbLogStore::open(&path).expect_err("acknowledged records follow");
    assert!(err.to_string().contains("durable mark"), "{err}");
}

#[test]
fn an_entry_damaged_while_the_log_is_open_is_refused_when_read_never_handed_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, seg) = log_of_50(dir.path());
    let s = RedbLogStore::open(&path).expect("open");
    // Bit rot after the open (which checked every record): the payload of
    // entry 25, found by its text, changes under the running store.
    let mut b = std::fs::read(&seg).expect("read");
    let text = b"entry 25 of term 1";
    let at = b
        .windows(text.len())
        .position(|w| w == text)
        .expect("entry 25 on disk");
    b[at + 6] ^= 0x01;
    std::fs::write(&seg, &b).expect("write");
    let err = s
        .entries(20, 30, usize::MAX)
        .expect_err("a damaged entry is refused");
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("entry 25"), "{err}");
    assert_eq!(s.entries(1, 25, usize::MAX).expect("the others").len(), 24);
}
