//! Fuzz target: `raft_kv::fuzzing::request`.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        raft_kv::fuzzing::request(data);
    });
}
