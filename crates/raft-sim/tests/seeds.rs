//! A few hundred simulator seeds on every test run. `cargo xtask sim`
//! runs as many more as you like; a failure here prints the command that
//! replays it.

use raft_sim::{SimConfig, run_seeds};

fn check_seeds(nodes: usize, first: u64, count: u64) {
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let sum = run_seeds(first, count, jobs, |seed| SimConfig::new(seed, nodes));
    let failures: Vec<String> = sum.failures.iter().map(|f| f.to_string()).collect();
    assert!(
        failures.is_empty(),
        "{} seed(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Guard against a simulator that quietly stopped doing work.
    let ops = sum.total.ops_checked as u64;
    assert!(
        ops > 50 * count,
        "only {ops} operations checked over {count} seeds"
    );
}

#[test]
fn three_nodes_400_seeds() {
    check_seeds(3, 0, 400);
}

#[test]
fn five_nodes_200_seeds() {
    check_seeds(5, 1_000_000, 200);
}
