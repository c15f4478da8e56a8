//! Every input kept for the fuzz targets (`fuzz/corpus/<target>/`, the
//! seeds and what AFL++ found) and every crash or hang a run found
//! (`fuzz/regressions/<target>/`), through the same entry points the
//! targets call: a regression stays fixed, and a change that makes a kept
//! input panic fails here before anyone fuzzes again. `cargo xtask fuzz`
//! finds new ones (docs/operations.md, "Fuzzing").

use std::path::{Path, PathBuf};

type Target = fn(&[u8]);

const TARGETS: &[(&str, Target)] = &[
    ("wal_segments", raft_log::fuzzing::wal_segments),
    ("peer_frames", raft_net::fuzzing::peer_frames),
    ("snapshot_file", raft_log::fuzzing::snapshot_file),
    ("kv_snapshot", raft_kv::fuzzing::snapshot),
    ("kv_command", raft_kv::fuzzing::command),
    ("http_request", raft_http::fuzzing::request),
];

fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries.map(|e| e.expect("entry").path()).collect();
    out.sort();
    out
}

fn replay(target: &str, run: Target) -> usize {
    let mut n = 0;
    for kind in ["corpus", "regressions"] {
        for path in inputs(kind, target) {
            let data = std::fs::read(&path).expect("read");
            let caught = std::panic::catch_unwind(|| run(&data));
            assert!(
                caught.is_ok(),
                "{target}: {} panicked (run it alone: cargo test --test fuzz_corpus {target})",
                path.display()
            );
            n += 1;
        }
    }
    n
}

#[test]
fn every_target_has_a_corpus_and_the_xtask_knows_it() {
    let known = xtask::FUZZ_TARGETS;
    for (t, _) in TARGETS {
        assert!(!inputs("corpus", t).is_empty(), "fuzz/corpus/{t} is empty");
        assert!(known.contains(t), "cargo xtask fuzz does not run {t}");
    }
    assert_eq!(
        known.len(),
        TARGETS.len(),
        "a target this test does not replay"
    );
}

macro_rules! replays {
    ($($name:ident => $target:literal),* $(,)?) => {$(
        #[test]
        fn $name() {
            let run = TARGETS.iter().find(|(t, _)| *t == $target).expect("a target").1;
            let n = replay($target, run);
            raft_log::fuzzing::remove_scratch();
            assert!(n > 0);
        }
    )*};
}

replays! {
    wal_segments => "wal_segments",
    peer_frames => "peer_frames",
    snapshot_file => "snapshot_file",
    kv_snapshot => "kv_snapshot",
    kv_command => "kv_command",
    http_request => "http_request",
}
