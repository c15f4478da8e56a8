//! `cargo xtask sim`: many seeded simulations, spread over the cores.

use anyhow::bail;
use raft_sim::{Failure, Report, SimConfig};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// How many seeds to run (from --seed on).
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed; alone, it replays exactly that seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Cluster size.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=9))]
    nodes: u64,
    /// Ticks of faults before healing.
    #[arg(long, default_value_t = 1500)]
    fault_ticks: u64,
    /// Print every event of a single replayed seed to stderr.
    #[arg(long)]
    trace: bool,
    /// Worker threads (default: available cores).
    #[arg(long)]
    jobs: Option<usize>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let single = args.seed.is_some()
        && !std::env::args().any(|a| a == "--seeds" || a.starts_with("--seeds="));
    let first = args.seed.unwrap_or(0);
    let count = if single { 1 } else { args.seeds };
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let next = AtomicU64::new(first);
    let totals = Mutex::new((0u64, Report::default()));
    let failures: Mutex<Vec<Failure>> = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= first + count {
                        break;
                    }
                    let mut cfg = SimConfig::new(seed, args.nodes as usize);
                    cfg.fault_ticks = args.fault_ticks;
                    cfg.trace = args.trace && single;
                    match raft_sim::run(&cfg) {
                        Ok(r) => {
                            if single {
                                println!("{r:?}");
                            }
                            let mut t = totals.lock().expect("no panics while locked");
                            t.0 += 1;
                            add(&mut t.1, &r);
                        }
                        Err(f) => {
                            eprintln!("{f}");
                            failures.lock().expect("no panics while locked").push(f);
                        }
                    }
                }
            });
        }
    });
    let secs = started.elapsed().as_secs_f64();
    let (passed, t) = totals.into_inner().expect("threads done");
    let failed = failures.into_inner().expect("threads done");
    let ops = t.ops_checked + t.ops_indeterminate;
    println!(
        "sim: {} seeds run ({} nodes, from seed {first}), {} operations checked ({} of unknown outcome), {} violations found; {:.0} simulated ops/s, {:.0} ticks/s, {:.1}s",
        passed + failed.len() as u64,
        args.nodes,
        ops,
        t.ops_indeterminate,
        failed.len(),
        ops as f64 / secs,
        t.ticks as f64 / secs,
        secs
    );
    if !failed.is_empty() {
        bail!(
            "{} seed(s) failed; first: {}",
            failed.len(),
            failed.iter().min_by_key(|f| f.seed).expect("not empty")
        );
    }
    Ok(())
}

fn add(total: &mut Report, r: &Report) {
    total.ticks += r.ticks;
    total.ops_checked += r.ops_checked;
    total.ops_indeterminate += r.ops_indeterminate;
    total.messages += r.messages;
    total.crashes += r.crashes;
    total.terms_with_leader += r.terms_with_leader;
    total.committed += r.committed;
}
