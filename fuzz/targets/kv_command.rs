//! Fuzz target: `raft_kv::fuzzing::command`.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        raft_kv::fuzzing::command(data);
    });
}
