//! Fuzz target: `raft_kv::fuzzing::snapshot`.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        raft_kv::fuzzing::snapshot(data);
    });
}
