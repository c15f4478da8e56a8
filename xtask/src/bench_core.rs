//! `cargo xtask bench core`: the protocol and driver alone, shaped like
//! openraft's benchmarks/minimal so the two compare side by side: three
//! voters in one process on the real node driver, in-memory logs, a state
//! machine that stores nothing, messages handed over in memory (no
//! sockets, no serialization, no fsync), empty requests. C client tasks
//! each propose n/C entries one after another on the leader and await
//! each applied result.

use bytes::Bytes;
use raft_core::node::local::LocalNetwork;
use raft_core::node::{Node, NodeConfig, StateMachine};
use raft_core::{Config, Index, Role};
use raft_log::{MemLogStore, MemSnapshots};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

struct Discard;

impl StateMachine for Discard {
    type Output = ();
    type Snapshot = ();
    fn apply(&mut self, _: Index, _: &Bytes) {}
    fn snapshot(&mut self) {}
    fn write_snapshot(_: (), _: &mut dyn std::io::Write) -> std::io::Result<()> {
        Ok(())
    }
    fn read_snapshot(_: &mut dyn std::io::Read) -> std::io::Result<()> {
        Ok(())
    }
    fn restore(&mut self, _: ()) {}
}

/// This process's user + system CPU seconds (from /proc/self/stat).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parens.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    (ticks(11) + ticks(12)) / 100.0
}

pub fn run(total: u64, clients: &[usize]) -> anyhow::Result<Value> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let net = LocalNetwork::new();
        let mut nodes = Vec::new();
        for id in 1..=3 {
            let mut cfg = NodeConfig::new(Config::new(id), vec![1, 2, 3]);
            cfg.tick = Duration::from_millis(10);
            cfg.request_timeout = Duration::from_secs(30);
            let (t, rx) = net.join(id);
            let snaps = std::sync::Arc::new(MemSnapshots::new());
            nodes.push(Node::start(cfg, MemLogStore::new(), snaps, t, rx, Discard)?);
        }
        let leader = loop {
            if let Some(n) = nodes.iter().find(|n| n.status().raft.role == Role::Leader) {
                break n.clone();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let mut runs = Vec::new();
        for &c in clients {
            runs.push(load(&leader, c, total).await?);
        }
        for n in &nodes {
            n.shutdown().await;
        }
        Ok(json!({
            "shape": "openraft benchmarks/minimal: 3 voters in one process, in-memory log, no-op state machine, in-memory messages, empty requests",
            "writes_per_run": total,
            "runs": runs,
        }))
    })
}

async fn load(leader: &Node<()>, clients: usize, total: u64) -> anyhow::Result<Value> {
    let per = (total / clients as u64).max(1);
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let node = leader.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per as usize);
            for _ in 0..per {
                let t = Instant::now();
                node.propose(Bytes::new()).await?;
                lat.push(t.elapsed());
            }
            Ok::<_, raft_core::node::NodeError>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let took = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    all.sort_unstable();
    let pct = |p: f64| {
        let i = ((all.len() as f64 - 1.0) * p).round() as usize;
        (all[i].as_secs_f64() * 1e6).round()
    };
    let n = all.len() as f64;
    Ok(json!({
        "clients": clients,
        "writes": all.len(),
        "writes_per_sec": (n / took).round(),
        "latency_us": { "p50": pct(0.5), "p99": pct(0.99) },
        "cpu_us_per_write": (cpu / n * 1e6 * 100.0).round() / 100.0,
    }))
}
