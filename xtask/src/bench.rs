//! `cargo xtask bench <what>`: measurements printed as JSON. Targets live
//! here and in the issues, never in timed unit tests.

use anyhow::{Context, bail};
use bytes::Bytes;
use raft_core::{Entry, LogStore, Payload, WriteBatch};
use raft_log::{MemLogStore, RedbLogStore};
use serde_json::{Value, json};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// What to measure: `log`, `net`, `cluster`, `core` or `resp`.
    what: String,
    /// Where benchmark files go (on the disk being measured).
    #[arg(long, default_value = "target/bench")]
    dir: PathBuf,
    /// Seconds to spend on each append measurement (`resp`: the requests
    /// per run scale with it; 2 is the default size).
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// `cluster`: concurrent clients of the write runs.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
    clients: Vec<usize>,
    /// `core`: writes per run.
    #[arg(long, default_value_t = 200_000)]
    writes: u64,
    /// `core`: concurrent clients of each run.
    #[arg(long, value_delimiter = ',', default_value = "1,64,256,1024")]
    core_clients: Vec<usize>,
    /// `cluster`: watch streams of every change held open on the
    /// followers during the load runs.
    #[arg(long, default_value_t = 0)]
    watchers: usize,
    /// `cluster`: also grant this many leases (a key attached to each)
    /// and measure keeping them alive: node CPU per keepalive, and the
    /// idle cost of holding them.
    #[arg(long, default_value_t = 0)]
    leases: usize,
    /// `resp`: alternating runs per case (the medians are reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// `cluster`: keep the logs in memory (to see what fsync costs).
    #[arg(long)]
    memory: bool,
    /// `cluster`: instead of the load runs, measure catching up a new node
    /// by snapshot on a store of this many keys (e.g. 1000000), and the
    /// writes clients see meanwhile.
    #[arg(long)]
    catch_up_keys: Option<u64>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let report = match args.what.as_str() {
        "log" => bench_log(&args)?,
        "net" => crate::bench_net::run(&args.dir, args.seconds)?,
        "core" => crate::bench_core::run(args.writes, &args.core_clients)?,
        "cluster" => match args.catch_up_keys {
            Some(keys) => crate::bench_cluster::catch_up(&args.dir, keys, args.memory)?,
            None => crate::bench_cluster::run(
                &args.dir,
                args.seconds,
                &args.clients,
                args.memory,
                args.watchers,
                args.leases,
            )?,
        },
        "resp" => crate::bench_resp::run(&args.dir, args.rounds, args.seconds / 2.0)?,
        other => bail!("unknown benchmark {other:?} (known: log, net, cluster, core, resp)"),
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

const ENTRY_BYTES: usize = 256;

fn entries(first: u64, n: usize) -> Vec<Entry> {
    let data = Bytes::from(vec![0xA5u8; ENTRY_BYTES]);
    (0..n as u64)
        .map(|i| Entry {
            index: first + i,
            term: 1,
            payload: Payload::Normal(data.clone()),
        })
        .collect()
}

/// Latency percentiles and throughput of `op` run repeatedly for `secs`.
struct Samples(Vec<Duration>);

impl Samples {
    fn pct(&mut self, p: f64) -> f64 {
        self.0.sort_unstable();
        let i = ((self.0.len() as f64 - 1.0) * p).round() as usize;
        self.0[i].as_secs_f64() * 1e6
    }
}

fn measure(
    secs: f64,
    mut op: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<(Samples, f64)> {
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < secs || samples.len() < 10 {
        let t = Instant::now();
        op()?;
        samples.push(t.elapsed());
    }
    let total = start.elapsed().as_secs_f64();
    Ok((Samples(samples), total))
}

fn append_bench<S: LogStore>(store: &mut S, batch: usize, secs: f64) -> anyhow::Result<Value>
where
    S::Error: Send + Sync + 'static,
{
    let mut next = store.state()?.last_index + 1;
    let (mut s, total) = measure(secs, || {
        let e = entries(next, batch);
        store.write(WriteBatch {
            entries: &e,
            ..Default::default()
        })?;
        next += batch as u64;
        Ok(())
    })?;
    let n = s.0.len();
    let per_sec = (n * batch) as f64 / total;
    Ok(json!({
        "batch": batch,
        "batches": n,
        "entries_per_sec": per_sec.round(),
        "mb_per_sec": (per_sec * ENTRY_BYTES as f64 / 1e6 * 100.0).round() / 100.0,
        "latency_us": { "p50": s.pct(0.5).round(), "p99": s.pct(0.99).round() },
    }))
}

/// The floor: appending the same bytes to a plain file with fdatasync.
struct RawFile {
    file: std::fs::File,
    path: PathBuf,
}

impl RawFile {
    fn create(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("raw-baseline.bin");
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)?;
        Ok(RawFile { file, path })
    }

    fn append(&mut self) -> anyhow::Result<()> {
        self.file.write_all(&[0xA5u8; ENTRY_BYTES + 16])?;
        self.file.sync_data()?;
        Ok(())
    }
}

impl Drop for RawFile {
    fn drop(&mut self) {
        std::fs::remove_file(&self.path).ok();
    }
}

/// Single-entry durable appends against the raw floor, in alternating
/// slices so that the machine's drift (other load, the disk's mood) hits
/// both alike; the ratio is of the medians of the per-slice p50s.
fn batch1_vs_raw(dir: &Path, secs: f64) -> anyhow::Result<Value> {
    let path = dir.join("log-batch1.redb");
    raft_log::remove(&path).ok();
    let mut store = RedbLogStore::open(&path)?;
    let mut raw = RawFile::create(dir)?;
    let slices = 10;
    let (mut redb_p50s, mut raw_p50s, mut raw_ops) = (Vec::new(), Vec::new(), 0.0);
    let mut next = 1;
    for _ in 0..slices {
        let (mut r, _) = measure(secs / (2.0 * slices as f64), || {
            store.write(WriteBatch {
                entries: &entries(next, 1),
                ..Default::default()
            })?;
            next += 1;
            Ok(())
        })?;
        redb_p50s.push(r.pct(0.5));
        let (mut f, t) = measure(secs / (2.0 * slices as f64), || raw.append())?;
        raw_ops += f.0.len() as f64 / t;
        raw_p50s.push(f.pct(0.5));
    }
    drop(store);
    raft_log::remove(&path).ok();
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (redb, floor) = (median(&mut redb_p50s), median(&mut raw_p50s));
    Ok(json!({
        "slices": slices,
        "log_batch1_p50_us": redb.round(),
        "raw_p50_us": floor.round(),
        "raw_ops_per_sec": (raw_ops / slices as f64).round(),
        "ratio": ((redb / floor) * 100.0).round() / 100.0,
    }))
}

/// Builds (once, then reuses) a log of a million entries and times opening it.
fn open_million(dir: &Path) -> anyhow::Result<Value> {
    const N: u64 = 1_000_000;
    let path = dir.join("log-1m.redb");
    let ready = RedbLogStore::open(&path)
        .ok()
        .and_then(|s| s.state().ok())
        .is_some_and(|st| st.last_index == N);
    if !ready {
        raft_log::remove(&path).ok();
        let mut s = RedbLogStore::open(&path)?;
        let mut next = 1;
        while next <= N {
            let e = entries(next, 10_000);
            s.write(WriteBatch {
                entries: &e,
                ..Default::default()
            })?;
            next += 10_000;
        }
    }
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let s = RedbLogStore::open(&path)?;
        let st = s.state()?;
        times.push(t.elapsed());
        anyhow::ensure!(
            st.last_index == N,
            "expected {N} entries, found {}",
            st.last_index
        );
    }
    let best = times.iter().min().expect("three runs").as_secs_f64() * 1e3;
    let mut size = std::fs::metadata(&path)?.len();
    for seg in std::fs::read_dir(raft_log::wal_dir(&path))? {
        size += seg?.metadata()?.len();
    }
    Ok(
        json!({ "entries": N, "file_mb": size / 1_000_000, "open_ms": (best * 10.0).round() / 10.0 }),
    )
}

fn bench_log(args: &Args) -> anyhow::Result<Value> {
    let path = args.dir.join("log-append.redb");
    raft_log::remove(&path).ok();
    let mut durable = Vec::new();
    {
        let mut s = RedbLogStore::open(&path)?;
        for batch in [1, 16, 256] {
            durable.push(append_bench(&mut s, batch, args.seconds)?);
        }
    }
    raft_log::remove(&path).ok();
    let mut memory = Vec::new();
    let mut m = MemLogStore::new();
    for batch in [1, 16, 256] {
        memory.push(append_bench(&mut m, batch, args.seconds.min(1.0))?);
    }
    drop(m);
    let raw = batch1_vs_raw(&args.dir, args.seconds)?;
    let open = open_million(&args.dir)?;
    let ratio = raw["ratio"].as_f64().unwrap_or(f64::MAX);
    let b256 = durable[2]["entries_per_sec"].as_f64().unwrap_or(0.0);
    let open_ms = open["open_ms"].as_f64().unwrap_or(f64::MAX);
    Ok(json!({
        "benchmark": "log",
        "entry_bytes": ENTRY_BYTES,
        "dir": args.dir.display().to_string(),
        "durable": durable,
        "memory": memory,
        "batch1_vs_raw_write_fdatasync": raw,
        "reopen": open,
        "targets": {
            "batch1_p50_vs_raw": { "value": (ratio * 100.0).round() / 100.0, "target": "<= 1.5", "met": ratio <= 1.5 },
            "batch256_entries_per_sec": { "value": b256, "target": ">= 200000", "met": b256 >= 200_000.0 },
            "reopen_1m_ms": { "value": open_ms, "target": "< 1000", "met": open_ms < 1000.0 },
        },
    }))
}
