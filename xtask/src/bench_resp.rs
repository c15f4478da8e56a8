//! `cargo xtask bench resp`: redis-benchmark (SET and GET, 256-byte
//! values, random keys; -c 1, -c 64, -c 64 -P 16) against the 3-node
//! cluster's RESP port (mutual TLS, redb with fsync) and, in alternating
//! runs in the same window, against one redis-server with appendonly yes
//! and appendfsync always over TLS with the same certificates. Medians of
//! the runs, the ratio, and the node CPU per operation.

use crate::bench_cluster::cpu_seconds;
use crate::cluster::build_binaries;
use anyhow::{Context, bail};
use raft_mock::launch::{ProcessCluster, free_ports};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// One redis-benchmark case: test, clients, pipeline, requests per run.
const CASES: &[(&str, usize, usize, u64)] = &[
    ("set", 1, 1, 3_000),
    ("set", 64, 1, 40_000),
    ("set", 64, 16, 200_000),
    ("get", 1, 1, 10_000),
    ("get", 64, 1, 100_000),
    ("get", 64, 16, 400_000),
];

/// A system under test: where it listens and the processes whose CPU
/// counts.
struct Target {
    name: &'static str,
    port: u16,
    pids: Vec<u32>,
}

pub fn run(dir: &Path, rounds: usize, scale: f64) -> anyhow::Result<Value> {
    for tool in ["redis-benchmark", "redis-server"] {
        if Command::new(tool).arg("--version").output().is_err() {
            bail!("{tool} is missing: apt-get install redis-tools redis-server");
        }
    }
    // Absolute: redis-server reads its certificates after moving to --dir.
    let dir = &std::path::absolute(dir)?;
    let certs = dir.join("certs");
    crate::cluster::ensure_certs(&certs)?;
    let cluster = start_cluster(dir, &certs)?;
    let mut redis = start_redis(dir, &certs)?;
    let rt = tokio::runtime::Runtime::new()?;
    let leader = rt
        .block_on(cluster.c.wait_leader(Duration::from_secs(20), &[]))
        .context("no leader within 20 s")?;
    let ours = Target {
        name: "raftstack",
        port: cluster.resp[leader],
        pids: cluster.c.nodes.iter().filter_map(|n| n.pid()).collect(),
    };
    let theirs = Target {
        name: "redis",
        port: redis.port,
        pids: vec![redis.child.id()],
    };
    wait_serving(&certs, &theirs)?;
    let mut results = Vec::new();
    for &(test, clients, pipeline, n) in CASES {
        let n = ((n as f64 * scale) as u64).max(100);
        let mut runs: [Vec<Value>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..rounds {
            for (k, t) in [&ours, &theirs].into_iter().enumerate() {
                runs[k].push(one_run(&certs, t, test, clients, pipeline, n)?);
            }
        }
        let (a, b) = (summary(&runs[0]), summary(&runs[1]));
        let ratio = a["rps"].as_f64().unwrap_or(0.0) / b["rps"].as_f64().unwrap_or(1.0).max(1.0);
        results.push(json!({
            "test": test, "clients": clients, "pipeline": pipeline, "requests": n,
            "raftstack": a, "redis": b,
            "ratio": (ratio * 100.0).round() / 100.0,
        }));
    }
    drop(cluster);
    let _ = redis.child.kill();
    let _ = redis.child.wait();
    Ok(json!({
        "benchmark": "resp",
        "what": "redis-benchmark -d 256 -r 1000000 over mutual TLS: raftstack's 3-node cluster \
                 (leader's RESP port, redb fsync) vs one redis-server (appendonly yes, \
                 appendfsync always), alternating runs, medians",
        "rounds": rounds,
        "results": results,
    }))
}

struct Cluster {
    c: ProcessCluster,
    resp: Vec<u16>,
}

fn start_cluster(dir: &Path, certs: &Path) -> anyhow::Result<Cluster> {
    let node_bin = build_binaries()?.join("raft-mock");
    let data = dir.join("resp-cluster");
    if data.exists() {
        std::fs::remove_dir_all(&data)?;
    }
    let ports = free_ports(9);
    let pairs: Vec<_> = ports[..6].chunks(2).map(|p| (p[0], p[1])).collect();
    let mut c = ProcessCluster::new(&node_bin, certs, &data, &["active"; 3], &pairs, false)?;
    c.flags = ["-l", "WARNING", "--max-connections-per-client", "512"]
        .map(String::from)
        .to_vec();
    let resp = ports[6..].to_vec();
    for (n, p) in c.nodes.iter_mut().zip(&resp) {
        n.extra = vec!["--resp-port".into(), p.to_string()];
    }
    c.start_all()?;
    Ok(Cluster { c, resp })
}

struct Redis {
    child: Child,
    port: u16,
}

fn start_redis(dir: &Path, certs: &Path) -> anyhow::Result<Redis> {
    let data = dir.join("redis");
    if data.exists() {
        std::fs::remove_dir_all(&data)?;
    }
    std::fs::create_dir_all(&data)?;
    let port = free_ports(1)[0];
    let f = |name: &str| certs.join(name).display().to_string();
    let child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args(["--tls-cert-file", &f("transport-consensus.crt")])
        .args(["--tls-key-file", &f("transport-consensus.key")])
        .args([
            "--tls-ca-cert-file",
            &f("transport-ca.pem"),
            "--tls-auth-clients",
            "yes",
        ])
        .args([
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
        ])
        .args(["--dir", &data.display().to_string(), "--daemonize", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting redis-server")?;
    Ok(Redis { child, port })
}

fn tls_args(certs: &Path) -> Vec<String> {
    let f = |name: &str| certs.join(name).display().to_string();
    vec![
        "--tls".into(),
        "--cacert".into(),
        f("transport-ca.pem"),
        "--cert".into(),
        f("transport-client.crt"),
        "--key".into(),
        f("transport-client.key"),
    ]
}

/// Waits until `t` answers a benchmark at all.
fn wait_serving(certs: &Path, t: &Target) -> anyhow::Result<()> {
    for _ in 0..100 {
        let probe = Command::new("timeout")
            .args(["2", "redis-cli"])
            .args(tls_args(certs))
            .args(["-p", &t.port.to_string(), "PING"])
            .output();
        if probe.is_ok_and(|o| o.stdout.starts_with(b"PONG")) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{} never served on port {}", t.name, t.port)
}

/// One redis-benchmark run: its rate, latency percentiles and the CPU the
/// target's processes spent per request.
fn one_run(
    certs: &Path,
    t: &Target,
    test: &str,
    clients: usize,
    pipeline: usize,
    n: u64,
) -> anyhow::Result<Value> {
    let cpu = |pids: &[u32]| -> f64 { pids.iter().map(|p| cpu_seconds(&p.to_string())).sum() };
    let before = cpu(&t.pids);
    // redis-benchmark waits forever on a server that went away.
    let out = Command::new("timeout")
        .args(["300", "redis-benchmark"])
        .args(tls_args(certs))
        .args(["-h", "127.0.0.1", "-p", &t.port.to_string(), "-t", test])
        .args(["-n", &n.to_string(), "-c", &clients.to_string()])
        .args([
            "-P",
            &pipeline.to_string(),
            "-d",
            "256",
            "-r",
            "1000000",
            "--csv",
        ])
        .output()
        .context("running redis-benchmark")?;
    let spent = cpu(&t.pids) - before;
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text
        .lines()
        .find(|l| l.starts_with(&format!("\"{}\"", test.to_uppercase())))
        .with_context(|| format!("redis-benchmark against {}: {text}", t.name))?;
    let f: Vec<f64> = row
        .split(',')
        .skip(1)
        .map(|v| v.trim_matches('"').parse().unwrap_or(0.0))
        .collect();
    if f.len() < 7 {
        bail!("redis-benchmark's CSV row {row:?}");
    }
    Ok(json!({
        "rps": f[0], "p50_ms": f[3], "p99_ms": f[5],
        "cpu_us_per_op": (spent / n as f64 * 1e6 * 10.0).round() / 10.0,
    }))
}

/// The median of each field over the runs.
fn summary(runs: &[Value]) -> Value {
    let med = |k: &str| {
        let mut v: Vec<f64> = runs.iter().filter_map(|r| r[k].as_f64()).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    json!({
        "rps": med("rps"), "p50_ms": med("p50_ms"), "p99_ms": med("p99_ms"),
        "cpu_us_per_op": med("cpu_us_per_op"),
        "runs_rps": runs.iter().map(|r| r["rps"].clone()).collect::<Vec<_>>(),
    })
}
