//! Bad things that must not lose data: a failing disk, and files that are
//! not (or no longer) a valid log.

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
    assert!(matches!(err, Error::Storage(_)), "{err}");
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
