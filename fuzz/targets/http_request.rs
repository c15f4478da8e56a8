//! Fuzz target: `raft_http::fuzzing::request`.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        raft_http::fuzzing::request(data);
    });
}
