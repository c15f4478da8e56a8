//! Fuzz target: `raft_log::fuzzing::wal_segments`.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        raft_log::fuzzing::wal_segments(data);
    });
}
