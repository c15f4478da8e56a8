//! Fuzz target: `raft_net::fuzzing::peer_frames`.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        raft_net::fuzzing::peer_frames(data);
    });
}
