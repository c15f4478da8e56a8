//! The durable store against the in-memory one as a model: random
//! appends (with suffix replacement), hard states, configurations, purges,
//! resets and reopenings, on segments small enough that every few writes
//! start a new one and compaction deletes old ones. After every step both
//! stores must report the same state and the same entries.

use proptest::prelude::*;
use raft_core::{HardState, LogStore, Membership, StoredState, WriteBatch};
use raft_log::conformance::entry;
use raft_log::{MemLogStore, RedbLogStore};

#[derive(Clone, Debug)]
enum Op {
    /// Append `n` entries starting `back` below one past the last index.
    Write {
        back: u64,
        n: u64,
        hs: bool,
        conf: bool,
    },
    /// Purge this fraction (in 1/8ths) of the way to the last index.
    Purge(u64),
    /// Reset to this far past the last index.
    Reset(u64),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..4u64, 0..12u64, any::<bool>(), prop::bool::weighted(0.1))
            .prop_map(|(back, n, hs, conf)| Op::Write { back, n, hs, conf }),
        2 => (0..=8u64).prop_map(Op::Purge),
        1 => (0..5u64).prop_map(Op::Reset),
        2 => Just(Op::Reopen),
    ]
}

fn reopen(s: RedbLogStore) -> RedbLogStore {
    let path = s.path().to_path_buf();
    drop(s);
    let mut s = RedbLogStore::open(path).expect("reopen");
    s.set_segment_bytes(700);
    s.set_record_bytes(100);
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn durable_store_matches_the_model(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut disk = RedbLogStore::open(dir.path().join("log.redb")).expect("open");
        disk.set_segment_bytes(700);
        // About three entries a record: most writes span several.
        disk.set_record_bytes(100);
        let disk_storage = disk.storage_id();
        prop_assert_ne!(disk_storage, 0);
        let mut model = MemLogStore::new();
        let mut term = 1;
        for op in ops {
            let st = model.state().expect("state");
            let (purged, last) = (st.purged.0, st.last_index);
            match op {
                Op::Write { back, n, hs, conf } => {
                    term += 1;
                    let first = (last + 1).saturating_sub(back).max(purged + 1);
                    let es: Vec<_> = (first..first + n).map(|i| entry(i, term)).collect();
                    let hs = hs.then_some(HardState { term, vote: Some(term % 3 + 1), commit: purged });
                    let m = Membership::new([1, 2, term]);
                    let batch = WriteBatch {
                        hard_state: hs,
                        entries: &es,
                        membership: conf.then_some((first, &m)),
                    };
                    let (a, b) = (model.write(batch), disk.write(batch));
                    prop_assert_eq!(a.is_ok(), b.is_ok(), "{:?} vs {:?}", a, b);
                }
                Op::Purge(eighths) => {
                    let to = purged + (last - purged) * eighths / 8;
                    model.purge_to(to).expect("model purge");
                    disk.purge_to(to).expect("disk purge");
                }
                Op::Reset(ahead) => {
                    term += 1;
                    model.reset_to(last + ahead, term).expect("model reset");
                    disk.reset_to(last + ahead, term).expect("disk reset");
                }
                Op::Reopen => disk = reopen(disk),
            }
            let (m, d) = (model.state().expect("state"), disk.state().expect("state"));
            // Each store has its own storage id; it stays across reopens.
            prop_assert_eq!(d.storage, disk_storage);
            let m = StoredState { storage: d.storage, ..m };
            prop_assert_eq!(&m, &d);
            if m.last_index > m.purged.0 {
                let lo = m.purged.0 + 1;
                prop_assert_eq!(
                    model.entries(lo, m.last_index + 1, usize::MAX).expect("model read"),
                    disk.entries(lo, m.last_index + 1, usize::MAX).expect("disk read")
                );
                for i in [m.purged.0, lo, m.last_index] {
                    prop_assert_eq!(model.term(i).expect("term"), disk.term(i).expect("term"));
                }
            }
        }
        let disk = reopen(disk);
        let m = StoredState { storage: disk_storage, ..model.state().expect("state") };
        prop_assert_eq!(m, disk.state().expect("state"));
    }
}
