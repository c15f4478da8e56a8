//! Fuzz target: `raft_log::fuzzing::snapshot_file`.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        raft_log::fuzzing::snapshot_file(data);
    });
}
