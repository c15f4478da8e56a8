//! A few hundred simulator seeds on every test run. `cargo xtask sim`
//! runs as many more as you like; a failure here prints the command that
//! replays it.

use raft_sim::{SimConfig, run_seeds};

fn check_seeds(nodes: usize, first: u64, count: u64) {
    check(first, count, |seed| SimConfig::new(seed, nodes));
}

fn check(first: u64, count: u64, configure: impl Fn(u64) -> SimConfig + Sync) -> raft_sim::Report {
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let sum = run_seeds(first, count, jobs, configure);
    let failures: Vec<String> = sum.failures.iter().map(|f| f.to_string()).collect();
    assert!(
        failures.is_empty(),
        "{} seed(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Guard against a simulator that quietly stopped doing work.
    assert!(
        sum.total.installs > count / 4,
        "only {} snapshots installed over {count} seeds",
        sum.total.installs
    );
    let ops = sum.total.ops_checked as u64;
    assert!(
        ops > 50 * count,
        "only {ops} operations checked over {count} seeds"
    );
    sum.total
}

#[test]
fn three_nodes_400_seeds() {
    check_seeds(3, 0, 400);
}

#[test]
fn five_nodes_200_seeds() {
    check_seeds(5, 1_000_000, 200);
}

/// Membership churn: three voters growing to five and back, learners
/// added and promoted, voters demoted and removed (the leader too), all
/// under the same faults.
#[test]
fn churn_300_seeds() {
    let total = check(2_000_000, 300, |seed| SimConfig::with_churn(seed, 3));
    assert!(
        total.configs > 5 * 300,
        "only {} configurations committed over 300 seeds",
        total.configs
    );
}

/// Wiped disks: a down node loses its storage and starts again under its
/// old id; the cluster must never count it (issue 24, item 4).
#[test]
fn wiped_disks_300_seeds() {
    let total = check(3_000_000, 300, |seed| SimConfig::with_wipes(seed, 3));
    assert!(
        total.wiped > 30 && total.replaced > 0,
        "only {} disks wiped ({} nodes told) over 300 seeds",
        total.wiped,
        total.replaced
    );
}

/// Seeds that once failed, kept so the bug they found stays fixed.
#[test]
fn regression_seeds() {
    let seeds: &[(u64, usize)] = &[
        // Reluctant nodes with a fixed election timeout campaigned in
        // lockstep and split the vote forever once all three were
        // reluctant.
        (3_002_898, 3),
        // The disk model lost a durable entry when an installed snapshot's
        // log reset completed after the node's own compaction had passed
        // it (a simulator bug: the joint-quorum check then failed).
        (20_020_783, 3),
    ];
    for &(seed, nodes) in seeds {
        let sum = run_seeds(seed, 1, 1, |s| SimConfig::new(s, nodes));
        let failures: Vec<String> = sum.failures.iter().map(|f| f.to_string()).collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
