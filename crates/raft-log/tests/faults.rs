//! Bad things that must not lose data: a failing disk, and files that are
//! not (or no longer) a valid log.

mod common;

use raft_core::{HardState, LogStore, WriteBatch};
use raft_log::conformance::entry;
use raft_log::{Error, RedbLogStore};

#[test]
fn failed_write_poisons_the_store_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log.redb");
    let (mut s, disk) = RedbLogStore::open_with_faults(&path).expect("open");
    let acked: Vec<_> = (1..=20).map(|i| entry(i, 1)).collect();
    let hs = HardState {
        term: 1,
        vote: Some(1),
        commit: 3,
    };
    s.write(WriteBatch {
        hard_state: Some(hs),
        entries: &acked,
        ..Default::default()
    })
    .expect("write");

    disk.fail(true);
    let more: Vec<_> = (21..=30).map(|i| entry(i, 1)).collect();
    let err = s
        .write(WriteBatch {
            entries: &more,
            ..Default::default()
        })
        .expect_err("the disk is failing");
    assert!(matches!(err, Error::Io(_) | Error::Storage(_)), "{err}");
    assert!(
        err.to_string().contains("no space left"),
        "the cause is named: {err}"
    );

    // The disk recovers, but the store does not trust itself until reopened.
    disk.fail(false);
    let err = s
        .write(WriteBatch {
            entries: &more,
            ..Default::default()
        })
        .expect_err("poisoned");
    assert!(matches!(err, Error::Poisoned(_)), "{err}");
    assert!(matches!(s.purge_to(5), Err(Error::Poisoned(_))));
    // Reads still work.
    assert_eq!(s.entries(1, 21, usize::MAX).expect("read"), acked);
    drop(s);

    let s = RedbLogStore::open(&path).expect("reopen");
    let st = s.state().expect("state");
    assert_eq!(st.hard_state, hs);
    assert_eq!(st.last_index, 20, "the failed batch left nothing behind");
    assert_eq!(s.entries(1, 21, usize::MAX).expect("read"), acked);
}

#[test]
fn a_file_that_is_not_a_log_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notes.txt");
    let garbage = b"these are someone's notes, not a raft log\n".repeat(200);
    std::fs::write(&path, &garbage).expect("write");
    let err = RedbLogStore::open(&path).expect_err("not a log");
    assert!(matches!(err, Error::NotALog { .. }), "{err}");
    assert!(
        err.to_string().contains("notes.txt"),
        "the error names the file: {err}"
    );
    assert!(
        std::fs::read(&path).expect("read") == garbage,
        "never overwritten"
    );
}

#[test]
fn another_programs_redb_database_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("other.redb");
    {
        let db = redb::Database::create(&path).expect("create");
        let tx = db.begin_write().expect("tx");
        {
            let def: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("accounts");
            let mut t = tx.open_table(def).expect("table");
            t.insert("alice", 10).expect("insert");
        }
        tx.commit().expect("commit");
    }
    let err = RedbLogStore::open(&path).expect_err("foreign database");
    assert!(matches!(err, Error::NotALog { .. }), "{err}");
    // Its data is untouched and nothing of ours was added.
    let db = redb::Database::open(&path).expect("still a valid database");
    let tx = redb::ReadableDatabase::begin_read(&db).expect("tx");
    let def: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("accounts");
    let t = tx.open_table(def).expect("table");
    assert_eq!(
        redb::ReadableTable::get(&t, "alice")
            .expect("get")
            .map(|v| v.value()),
        Some(10)
    );
    assert_eq!(tx.list_tables().expect("tables").count(), 1);
}

#[test]
fn a_damaged_log_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log.redb");
    {
        let mut s = RedbLogStore::open(&path).expect("open");
        let e: Vec<_> = (1..=500).map(|i| entry(i, 1)).collect();
        s.write(WriteBatch {
            entries: &e,
            ..Default::default()
        })
        .expect("write");
    }
    let bytes = std::fs::read(&path).expect("read");
    // Cut the file short, then, separately, scribble over its header.
    for damage in 0..2 {
        let mut b = bytes.clone();
        if damage == 0 {
            b.truncate(b.len() / 3);
        } else {
            for x in b.iter_mut().take(512) {
                *x ^= 0x5a;
            }
        }
        std::fs::write(&path, &b).expect("write");
        match RedbLogStore::open(&path) {
            Err(e) => assert!(!e.to_string().is_empty()),
            // redb may recover a truncated file from its other commit
            // slot; then what it returns must still be a valid prefix.
            Ok(s) => {
                let last = s.state().expect("state").last_index;
                let got = s.entries(1, last + 1, usize::MAX).expect("read");
                assert!(
                    got.iter()
                        .enumerate()
                        .all(|(i, e)| *e == entry(i as u64 + 1, 1))
                );
            }
        }
    }
}

#[test]
fn a_log_is_opened_by_one_process_at_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log.redb");
    let _s = RedbLogStore::open(&path).expect("open");
    assert!(
        RedbLogStore::open(&path).is_err(),
        "a second writer is refused"
    );
}

#[test]
fn a_torn_last_record_is_cut_off_and_the_log_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, seg) = common::closed_log(dir.path(), 5, None);
    let whole = std::fs::read(&seg).expect("read");
    // A power cut during the sixth batch's write: its header and part of
    // its body reached the disk; or the file grew but holds zeroes.
    for tail in [
        common::framed(&[1u8; 60])[..32].to_vec(),
        vec![0u8; 100],
        vec![3u8; 5],
    ] {
        std::fs::write(&seg, [whole.as_slice(), &tail].concat()).expect("write");
        let mut s = RedbLogStore::open(&path).expect("a torn tail is not an error");
        assert_eq!(s.state().expect("state").last_index, 50);
        let more: Vec<_> = (51..=60).map(|i| entry(i, 2)).collect();
        s.write(WriteBatch {
            entries: &more,
            ..Default::default()
        })
        .expect("writes go on after the cut");
        drop(s);
        let s = RedbLogStore::open(&path).expect("reopen");
        assert_eq!(s.entries(41, 61, usize::MAX).expect("read")[10..], more[..]);
        std::fs::write(&seg, &whole).expect("restore");
    }
}

#[test]
fn damage_before_the_last_record_is_corruption_not_silent_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, seg) = common::closed_log(dir.path(), 5, None);
    let whole = std::fs::read(&seg).expect("read");
    for at in [whole.len() / 3, whole.len() / 2] {
        let mut b = whole.clone();
        b[at] ^= 0x40;
        std::fs::write(&seg, &b).expect("write");
        let err = RedbLogStore::open(&path).expect_err("a flipped bit inside the log");
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    }
    std::fs::write(&seg, &whole).expect("restore");
    std::fs::remove_dir_all(raft_log::wal_dir(&path)).expect("rm");
    let err = RedbLogStore::open(&path).expect_err("the write-ahead log is gone");
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn a_damaged_record_header_is_corruption_even_in_the_last_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, seg) = common::closed_log(dir.path(), 5, None);
    let whole = std::fs::read(&seg).expect("read");
    // Any bit of the second record's header flipped: its checksum fails,
    // so no torn write left it (a torn write's header is whole, or the
    // file ends inside it). Cutting there would silently drop the
    // acknowledged records after it.
    let second = common::records(&whole)[0].len();
    for bit in 0..12 * 8 {
        let mut b = whole.clone();
        b[second + bit / 8] ^= 1 << (bit % 8);
        std::fs::write(&seg, &b).expect("write");
        let err = RedbLogStore::open(&path).expect_err("a damaged header");
        assert!(matches!(err, Error::Corrupt { .. }), "bit {bit}: {err}");
    }
    // Format 4 had no checksum over the header; a length no writer writes
    // (its top bit) was the one damage it could name there.
    let mut old = common::as_format_4(&whole, |_| true);
    let first_len = u32::from_le_bytes(old[..4].try_into().unwrap()) as usize;
    old[8 + first_len + 3] |= 0x80;
    std::fs::write(&seg, &old).expect("write");
    let err = RedbLogStore::open(&path).expect_err("an impossible length");
    assert!(err.to_string().contains("over the limit"), "{err}");
    std::fs::write(&seg, &whole).expect("restore");
    assert_eq!(
        RedbLogStore::open(&path)
            .expect("reopen")
            .state()
            .expect("state")
            .last_index,
        50
    );
}

/// A log on 1 KiB segments holding entries 1..=n, written `per` at a time.
fn on_small_segments(
    path: &std::path::Path,
    n: u64,
    per: usize,
) -> (RedbLogStore, Vec<raft_core::Entry>) {
    let mut s = RedbLogStore::open(path).expect("open");
    s.set_segment_bytes(1024);
    let e: Vec<_> = (1..=n).map(|i| entry(i, 1)).collect();
    for chunk in e.chunks(per) {
        s.write(WriteBatch {
            entries: chunk,
            ..Default::default()
        })
        .expect("write");
    }
    (s, e)
}

#[test]
fn segments_roll_and_compaction_gives_their_space_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log.redb");
    let segments = || {
        std::fs::read_dir(raft_log::wal_dir(&path))
            .expect("dir")
            .count()
    };
    let (mut s, e) = on_small_segments(&path, 400, 7);
    let before = segments();
    assert!(before > 5, "{before} segments");
    s.purge_to(390).expect("purge");
    assert!(segments() <= 2, "{} segments after compaction", segments());
    drop(s);
    let mut s = RedbLogStore::open(&path).expect("reopen");
    let st = s.state().expect("state");
    assert_eq!((st.purged.0, st.last_index), (390, 400));
    assert_eq!(s.entries(391, 401, usize::MAX).expect("read"), e[390..]);
    s.reset_to(1000, 3).expect("reset");
    assert_eq!(segments(), 1, "a reset leaves one segment");
    drop(s);
    let s = RedbLogStore::open(&path).expect("reopen");
    let st = s.state().expect("state");
    assert_eq!((st.purged, st.last_index), ((1000, 3), 1000));
}

#[test]
fn a_crash_between_segment_steps_is_finished_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log.redb");
    let wal = raft_log::wal_dir(&path);
    let listing = || {
        let mut v: Vec<_> = std::fs::read_dir(&wal)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .collect();
        v.sort();
        v
    };
    let (mut s, e) = on_small_segments(&path, 200, 5);
    let first = listing()[0].clone();
    let old_first = std::fs::read(wal.join(&first)).expect("read");
    s.purge_to(190).expect("purge");
    drop(s);
    let kept = listing();
    assert!(!kept.contains(&first), "compaction deleted {first}");

    // Killed after the database recorded the new floor but before the
    // old segments were deleted: they are back, and opening deletes them.
    std::fs::write(wal.join(&first), &old_first).expect("write");
    // Killed right after a new segment file was created, before its
    // checkpoint was written.
    let last: u64 = kept.last().expect("a segment")[..20].parse().expect("id");
    std::fs::write(wal.join(format!("{:020}.seg", last + 1)), b"").expect("write");

    let s = RedbLogStore::open(&path).expect("reopen finishes the job");
    assert_eq!(listing(), kept);
    let st = s.state().expect("state");
    assert_eq!((st.purged.0, st.last_index), (190, 200));
    assert_eq!(s.entries(191, 201, usize::MAX).expect("read"), e[190..]);
}

/// Rewrites the database's format key, sealed as the log seals it.
fn set_format(path: &std::path::Path, format: &[u8]) {
    let db = redb::Database::open(path).expect("db");
    let tx = db.begin_write().expect("tx");
    {
        let def: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");
        let mut t = tx.open_table(def).expect("meta");
        let mut h = crc32fast::Hasher::new();
        h.update(b"format");
        h.update(format);
        let sealed = [format, &h.finalize().to_le_bytes()].concat();
        t.insert("format", sealed.as_slice()).expect("insert");
    }
    tx.commit().expect("commit");
}

fn format_of(path: &std::path::Path) -> Vec<u8> {
    let db = redb::Database::open(path).expect("db");
    let tx = redb::ReadableDatabase::begin_read(&db).expect("tx");
    let def: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");
    let t = tx.open_table(def).expect("meta");
    let v = redb::ReadableTable::get(&t, "format")
        .expect("get")
        .expect("a format");
    v.value()[..v.value().len() - 4].to_vec()
}

#[test]
fn a_format_4_log_opens_whole_and_goes_on_in_a_format_5_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, seg) = common::closed_log(dir.path(), 5, None);
    let whole = std::fs::read(&seg).expect("read");
    std::fs::write(&seg, common::as_format_4(&whole, |_| true)).expect("write");
    set_format(&path, b"raftstack-log/4");
    let mut s = RedbLogStore::open(&path).expect("a format 4 log opens");
    let want: Vec<_> = (1..=50).map(|i| entry(i, 1)).collect();
    assert_eq!(s.entries(1, 51, usize::MAX).expect("read"), want);
    let more: Vec<_> = (51..=60).map(|i| entry(i, 2)).collect();
    s.write(WriteBatch {
        entries: &more,
        ..Default::default()
    })
    .expect("writes go on");
    drop(s);
    assert_eq!(format_of(&path), b"raftstack-log/5");
    let mut segs: Vec<_> = std::fs::read_dir(raft_log::wal_dir(&path))
        .expect("wal dir")
        .map(|e| e.expect("entry").path())
        .collect();
    segs.sort();
    assert_eq!(segs.len(), 2, "{segs:?}");
    assert_eq!(segs[0], seg, "the old segment is kept as it was");
    let new = std::fs::read(&segs[1]).expect("read");
    assert!(new[3] & 0x80 != 0, "the new segment is format 5");
    let s = RedbLogStore::open(&path).expect("reopen");
    assert_eq!(s.entries(1, 61, usize::MAX).expect("read")[50..], more[..]);
    assert_eq!(s.state().expect("state").last_index, 60);
}
