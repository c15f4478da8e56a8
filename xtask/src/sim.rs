//! `cargo xtask sim`: many seeded simulations, spread over the cores.

use anyhow::bail;
use raft_sim::SimConfig;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// How many seeds to run (from --seed on).
    #[arg(long)]
    seeds: Option<u64>,
    /// The first seed; alone, it replays exactly that seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Cluster size.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=9))]
    nodes: u64,
    /// Ticks of faults before healing.
    #[arg(long, default_value_t = 1500)]
    fault_ticks: u64,
    /// Membership churn (up to five nodes joining and leaving).
    #[arg(long)]
    churn: bool,
    /// Wiped disks: a down node loses its storage and starts again as it
    /// was (a minority of the nodes; without --churn).
    #[arg(long, conflicts_with = "churn")]
    wipes: bool,
    /// Print every event of a single replayed seed to stderr.
    #[arg(long)]
    trace: bool,
    /// Worker threads (default: available cores).
    #[arg(long)]
    jobs: Option<usize>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let configure = |seed| {
        let mut cfg = if args.churn {
            SimConfig::with_churn(seed, args.nodes as usize)
        } else if args.wipes {
            SimConfig::with_wipes(seed, args.nodes as usize)
        } else {
            SimConfig::new(seed, args.nodes as usize)
        };
        cfg.fault_ticks = args.fault_ticks;
        cfg
    };
    if let (Some(seed), None) = (args.seed, args.seeds) {
        let mut cfg = configure(seed);
        cfg.trace = args.trace;
        match raft_sim::run(&cfg) {
            Ok(r) => {
                println!("{r:?}");
                println!(
                    "sim: seed {seed} passed ({} nodes), {} operations checked",
                    args.nodes, r.ops_checked
                );
                return Ok(());
            }
            Err(f) => bail!("{f}"),
        }
    }
    let first = args.seed.unwrap_or(0);
    let count = args.seeds.unwrap_or(100);
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let started = Instant::now();
    let sum = raft_sim::run_seeds(first, count, jobs, configure);
    let secs = started.elapsed().as_secs_f64();
    for f in &sum.failures {
        eprintln!("{f}");
    }
    let t = &sum.total;
    let ops = t.ops_checked + t.ops_indeterminate;
    println!(
        "sim: {} seeds run ({} nodes, from seed {first}), {} operations checked ({} of unknown outcome), {} configurations committed, {} snapshots installed, {}{} violations found; {:.0} simulated ops/s, {:.0} ticks/s, {:.1}s",
        sum.passed + sum.failures.len() as u64,
        args.nodes,
        ops,
        t.ops_indeterminate,
        t.configs,
        t.installs,
        if args.wipes {
            format!(
                "{} disks wiped ({} nodes told they were replaced), ",
                t.wiped, t.replaced
            )
        } else {
            String::new()
        },
        sum.failures.len(),
        ops as f64 / secs,
        t.ticks as f64 / secs,
        secs
    );
    if let Some(f) = sum.failures.first() {
        bail!("{} seed(s) failed; first: {f}", sum.failures.len());
    }
    Ok(())
}
