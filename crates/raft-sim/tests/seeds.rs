//! A few hundred simulator seeds on every test run. `cargo xtask sim`
//! runs as many more as you like; a failure here prints the command that
//! replays it.

use raft_sim::{SimConfig, run};
use std::sync::atomic::{AtomicU64, Ordering};

fn run_seeds(nodes: usize, first: u64, count: u64) {
    let next = AtomicU64::new(first);
    let failures = std::sync::Mutex::new(Vec::new());
    let (ops, runs) = (AtomicU64::new(0), AtomicU64::new(0));
    std::thread::scope(|s| {
        for _ in 0..std::thread::available_parallelism().map_or(2, |n| n.get()) {
            s.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= first + count {
                        break;
                    }
                    match run(&SimConfig::new(seed, nodes)) {
                        Ok(r) => {
                            ops.fetch_add(r.ops_checked as u64, Ordering::Relaxed);
                            runs.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(f) => failures.lock().expect("lock").push(f.to_string()),
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().expect("lock");
    assert!(
        failures.is_empty(),
        "{} seed(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Guard against a simulator that quietly stopped doing work.
    let ops = ops.load(Ordering::Relaxed);
    assert!(
        ops > 50 * count,
        "only {ops} operations checked over {count} seeds"
    );
}

#[test]
fn three_nodes_400_seeds() {
    run_seeds(3, 0, 400);
}

#[test]
fn five_nodes_200_seeds() {
    run_seeds(5, 1_000_000, 200);
}
