//! `cargo xtask <task>`: the project's tasks that are not plain cargo.

mod bench;
mod bench_cluster;
mod bench_core;
mod bench_net;
mod bench_resp;
mod bench_watch;
use xtask::certs;
mod cluster;
mod fuzz;
mod mutants;
mod sim;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "raftstack project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Run the deterministic cluster simulator over a range of seeds.
    Sim(sim::Args),
    /// Make the test CA and the node and client certificates (certs/).
    Certs(certs::Args),
    /// Start a local mutual-TLS cluster of raft-mock processes and show it
    /// working.
    Cluster(cluster::Args),
    /// Benchmarks; each prints one JSON document.
    Bench(bench::Args),
    /// Fuzz the parsers of untrusted bytes with AFL++ (cargo-afl); prints
    /// one JSON document.
    Fuzz(fuzz::Args),
    /// Mutation testing of raft-core's protocol (cargo-mutants); prints
    /// one JSON document.
    Mutants(mutants::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Sim(args) => sim::run(args),
        Task::Bench(args) => bench::run(args),
        Task::Certs(args) => certs::run(args),
        Task::Cluster(args) => cluster::run(args),
        Task::Fuzz(args) => fuzz::run(args),
        Task::Mutants(args) => mutants::run(args),
    }
}
