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
    // The last batch's body ends where its mark starts.
    let mut b = whole.clone();
    let at = b.len() - common::MARK - 30;
    b[at] ^= 0x10;
    std::fs::write(&seg, &b).expect("write");
    let err = RedbLogStore::open(&path).expect_err("the last batch was acknowledged");
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("durable mark"), "{err}");
    // The same damage with the mark gone (the crash came before it was
    // written: that batch was never acknowledged) is a torn write.
    b.truncate(b.len() - common::MARK);
    std::fs::write(&seg, &b).expect("write");
    let s = RedbLogStore::open(&path).expect("a torn write is cut");
    assert_eq!(s.state().expect("state").last_index, 40);
}

#[test]
fn a_power_cut_that_tears_the_mark_and_the_next_record_is_a_torn_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, seg) = log_of_50(dir.path());
    let whole = std::fs::read(&seg).expect("read");
    // The last mark's page is lost (zeroes where it was, as an extent
    // never written reads) and the next record, never synced, reached the
    // disk in part: its header whole, its body not.
    let mut b = whole.clone();
    let n = b.len();
    b[n - common::MARK..].fill(0);
    b.extend_from_slice(&common::framed(&[2u8; 90])[..52]);
    std::fs::write(&seg, &b).expect("write");
    let s = RedbLogStore::open(&path).expect("nothing acknowledged is damaged");
    assert_eq!(s.state().expect("state").last_index, 50);
    drop(s);
    // Garbage where the mark was is no torn write: no write leaves a
    // header that does not check.
    let mut b = whole.clone();
    b[n - common::MARK..].fill(0x77);
    b.extend_from_slice(&common::framed(&[2u8; 90])[..52]);
    std::fs::write(&seg, &b).expect("write");
    let err = RedbLogStore::open(&path).expect_err("a damaged header");
    assert!(err.to_string().contains("header"), "{err}");
}

#[test]
fn a_damaged_length_in_the_last_record_is_corruption_even_with_its_mark_lost() {
    // The case format 4 could not tell from a torn write: the last
    // acknowledged record's length field damaged so that it reaches past
    // the end of the file, and its mark lost (a power cut right after the
    // acknowledgement, or a torn write after it).
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, seg) = log_of_50(dir.path());
    let whole = std::fs::read(&seg).expect("read");
    let recs = common::records(&whole);
    let last = &recs[recs.len() - 2];
    assert!(!common::is_mark(last) && common::is_mark(&recs[recs.len() - 1]));
    let at = whole.len() - common::MARK - last.len();
    let mut b = whole[..whole.len() - common::MARK].to_vec();
    b[at + 2] ^= 0x01;
    std::fs::write(&seg, &b).expect("write");
    let err = RedbLogStore::open(&path).expect_err("an acknowledged record's header");
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("not a torn write"), "{err}");
    // Format 4 framed the same segment without the header's checksum: there
    // the same damage is indistinguishable from a torn write, and is cut.
    let mut old = common::as_format_4(&whole, |_| true);
    old.truncate(old.len() - 21);
    let at = old.len() - (last.len() - 4);
    old[at + 2] ^= 0x01;
    std::fs::write(&seg, &old).expect("write");
    let s = RedbLogStore::open(&path).expect("cut as torn, as format 4 must");
    assert_eq!(s.state().expect("state").last_index, 40);
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

#[test]
fn a_damaged_length_in_records_older_than_the_marks_is_still_caught_by_the_last_mark() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, seg) = log_of_50(dir.path());
    // As a format 3 segment that format 4 went on writing to: no marks
    // after the first three records, marks (at their new offsets) after
    // that.
    let out = common::as_format_4(&std::fs::read(&seg).expect("read"), |k| k >= 6);
    // The second record's length now reaches past the end of the file, as
    // a torn write's would: the mark at the end says it was not one.
    let mut bad = out.clone();
    let first = u32::from_le_bytes(out[..4].try_into().unwrap()) as usize;
    bad[8 + first..8 + first + 4].copy_from_slice(&(1u32 << 30).to_le_bytes());
    std::fs::write(&seg, &bad).expect("write");
    let err = RedbLogStore::open(&path).expect_err("acknowledged records follow");
    assert!(err.to_string().contains("durable mark"), "{err}");
    // Undamaged, it opens whole (and new records go to a new segment).
    std::fs::write(&seg, &out).expect("write");
    refused_or_whole(&path, "marks only after the third record");
    refused_or_whole(&path, "reopened after rolling past it");
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
