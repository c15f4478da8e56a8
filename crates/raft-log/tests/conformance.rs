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
