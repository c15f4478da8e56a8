//! The shared `LogStore` suite, run against both stores.

use raft_log::{MemLogStore, RedbLogStore, conformance};
use std::sync::atomic::{AtomicUsize, Ordering};

#[test]
fn memory_store_conforms() {
    conformance::run(MemLogStore::new, |s| s);
}

#[test]
fn redb_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = AtomicUsize::new(0);
    conformance::run(
        || {
            RedbLogStore::open(
                dir.path()
                    .join(format!("log-{}.redb", n.fetch_add(1, Ordering::Relaxed))),
            )
            .expect("open")
        },
        |s| {
            let path = s.path().to_path_buf();
            drop(s);
            RedbLogStore::open(path).expect("reopen")
        },
    );
}

#[test]
fn redb_store_keeps_its_node_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("id.redb");
    let mut s = RedbLogStore::open(&path).expect("open");
    assert_eq!(s.node_id().expect("read"), None);
    s.set_node_id(0xfeed).expect("write");
    drop(s);
    let s = RedbLogStore::open(&path).expect("reopen");
    assert_eq!(s.node_id().expect("read"), Some(0xfeed));
}
