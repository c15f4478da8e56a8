//! Writes the seed inputs (`cargo xtask fuzz seeds`): what the real
//! encoders and writers make, as `DIR/<target>/seed-<name>`.

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: write_seeds DIR"));
    let all = [
        raft_net::fuzzing::seeds(),
        raft_log::fuzzing::seeds(),
        raft_kv::fuzzing::seeds(),
        raft_http::fuzzing::seeds(),
    ]
    .concat();
    for (target, name, bytes) in all {
        let at = dir.join(&target);
        std::fs::create_dir_all(&at).expect("create the corpus directory");
        std::fs::write(at.join(format!("seed-{name}")), bytes).expect("write a seed");
    }
}
