//! `cargo xtask bench cluster`: a 3-node mutual-TLS cluster of raft-mock
//! processes on redb (fsync on), loaded over persistent HTTPS connections:
//! writes (8-byte keys, 256-byte values) at 1, 16, 64 and 256 concurrent
//! clients, then linearizable reads at 64, then transactions of four sets
//! at 64.

use crate::cluster::{build_binaries, ensure_certs};
use bytes::Bytes;
use raft_http::HttpsClient;
use raft_http::client::Method;
use raft_mock::launch::{ProcessCluster, free_ports};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A fresh 3-node cluster of release binaries under `dir`.
fn start_cluster(dir: &Path, memory: bool, flags: &[String]) -> anyhow::Result<ProcessCluster> {
    // A/B runs of two builds: BENCH_RAFT_MOCK names the binary to run.
    let node_bin = match std::env::var_os("BENCH_RAFT_MOCK") {
        Some(bin) => std::path::PathBuf::from(bin),
        None => build_binaries()?.join("raft-mock"),
    };
    let certs = dir.join("certs");
    ensure_certs(&certs)?;
    let data = dir.join("cluster");
    if data.exists() {
        std::fs::remove_dir_all(&data)?;
    }
    let ports = free_ports(6);
    let pairs: Vec<_> = ports.chunks(2).map(|p| (p[0], p[1])).collect();
    let mut c = ProcessCluster::new(&node_bin, &certs, &data, &["active"; 3], &pairs, memory)?;
    c.flags = vec!["-l".into(), "WARNING".into()];
    c.flags.extend(flags.iter().cloned());
    // Extra raft-mock flags for experiments, e.g. "--max-inflight 4".
    if let Ok(extra) = std::env::var("BENCH_NODE_FLAGS") {
        c.flags.extend(extra.split_whitespace().map(String::from));
    }
    c.start_all()?;
    Ok(c)
}

pub fn run(
    dir: &Path,
    seconds: f64,
    clients: &[usize],
    memory: bool,
    watchers: usize,
    leases: usize,
) -> anyhow::Result<Value> {
    // Each watch stream holds a connection, all from this one address.
    let room = |n: usize| (n + watchers).to_string();
    let flags = [
        "--max-connections".into(),
        room(512),
        "--max-connections-per-client".into(),
        room(128),
    ];
    let c = start_cluster(dir, memory, &flags)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let leader = leader(&c).await?;
        let api = c.nodes[leader].api.clone();
        let apis: Vec<String> = c.nodes.iter().map(|n| n.api.clone()).collect();
        let watching = crate::bench_watch::start(&c.client, &apis, watchers).await;
        let watched = Instant::now();
        let probe = crate::bench_watch::Probe::start(&c.client, &api, watchers > 0);
        let mut writes = Vec::new();
        for &n in clients {
            let cpu = Cpu::start(&c);
            let mut w = load(&c.client, &api, n, seconds, Kind::Put, None).await?;
            cpu.report(&mut w);
            writes.push(w);
        }
        let cpu = Cpu::start(&c);
        let mut reads = load(&c.client, &api, 64, seconds, Kind::Read, None).await?;
        cpu.report(&mut reads);
        let cpu = Cpu::start(&c);
        let mut txns = load(&c.client, &api, 64, seconds, Kind::Txn, None).await?;
        cpu.report(&mut txns);
        let probed = probe.stop().await;
        let lease_report = if leases > 0 {
            keep_leases_alive(&c, &api, leases, seconds).await?
        } else {
            Value::Null
        };
        let status = status_of(&c, leader).await;
        let keys = status["keys"].as_u64().unwrap_or(0);
        let mut watch = Value::Null;
        if watchers > 0 {
            let top = status["applied_index"].as_u64().unwrap_or(0);
            watch = crate::bench_watch::report(&watching, top, &probed, watched).await;
            let ops = |v: &Value| v["ops"].as_u64().unwrap_or(0);
            let acked = writes.iter().map(ops).sum::<u64>() + 4 * ops(&txns);
            watch["acknowledged_puts"] = acked.into();
        }
        Ok(json!({
            "watch": watch,
            "cluster": { "nodes": 3, "storage": if memory { "memory" } else { "redb + write-ahead log, fsync per batch" }, "transport": "mutual TLS 1.3", "client": "HTTPS/1.1 keep-alive" },
            "value_bytes": 256,
            "key_bytes": 8,
            "writes": writes,
            "linearizable_reads": reads,
            "transactions_of_4_sets": txns,
            "leases": lease_report,
            "memory": {
                "keys_in_store": keys,
                "nodes_peak_rss_mb": c.nodes.iter().filter_map(|n| n.pid()).map(peak_rss_mb).collect::<Vec<_>>(),
            },
        }))
    })
}

/// CPU time used during a run, by the nodes together and by this process
/// (the clients): per operation it varies far less with the machine's
/// other load than throughput does, so it is what to compare builds by.
struct Cpu {
    pids: Vec<u32>,
    nodes: f64,
    clients: f64,
}

/// User + system CPU seconds of a process so far, from `/proc`.
pub(crate) fn cpu_seconds(pid: &str) -> f64 {
    static TICK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let hz = *TICK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    });
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses: state is
    // the first, utime the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|w| w.parse().unwrap_or(0.0))
        .collect();
    (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / hz
}

/// A process's peak resident set so far (`VmHWM`), in MB.
fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    (kb / 1024.0 * 10.0).round() / 10.0
}

impl Cpu {
    fn start(c: &ProcessCluster) -> Self {
        let pids: Vec<u32> = c.nodes.iter().filter_map(|n| n.pid()).collect();
        Cpu {
            nodes: pids.iter().map(|p| cpu_seconds(&p.to_string())).sum(),
            clients: cpu_seconds("self"),
            pids,
        }
    }

    /// Adds `cpu_us_per_op` (nodes, clients) to a run's report.
    fn report(self, run: &mut Value) {
        let nodes: f64 = self.pids.iter().map(|p| cpu_seconds(&p.to_string())).sum();
        let clients = cpu_seconds("self");
        let ops = run["ops"].as_f64().unwrap_or(0.0).max(1.0);
        let per = |s: f64| (s / ops * 1e6 * 10.0).round() / 10.0;
        run["cpu_us_per_op"] = json!({
            "nodes": per(nodes - self.nodes),
            "clients": per(clients - self.clients),
        });
    }
}

async fn leader(c: &ProcessCluster) -> anyhow::Result<usize> {
    c.wait_leader(Duration::from_secs(20), &[])
        .await
        .ok_or_else(|| anyhow::anyhow!("no leader within 20 s"))
}

/// Loads a store of `keys` keys (64-byte values), lets the leader snapshot
/// and compact, then adds a fourth node: the time until it has applied
/// everything committed when it was added, and the write throughput and
/// latency 64 clients see meanwhile (and for as long right after, with
/// four nodes, as the baseline).
pub fn catch_up(dir: &Path, keys: u64, memory: bool) -> anyhow::Result<Value> {
    let mut c = start_cluster(dir, memory, &[])?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let leader = leader(&c).await?;
        let api = c.nodes[leader].api.clone();
        let t0 = Instant::now();
        fill(&c.client, &api, keys, 256).await?;
        let load_s = t0.elapsed().as_secs_f64();
        // The leader must have compacted, so the newcomer needs a snapshot.
        let waited = Instant::now();
        while status_of(&c, leader).await["first_index"].as_u64().unwrap_or(0) <= 1 {
            if waited.elapsed() > Duration::from_secs(60) {
                anyhow::bail!("the leader never compacted its log");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let s = status_of(&c, leader).await;
        let target = s["commit_index"].as_u64().unwrap_or(0);
        let snapshot_index = s["snapshot_index"].as_u64().unwrap_or(0);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let joined = Instant::now();
        let n = c.add_joiner("active", leader)?;
        let during = {
            let (client, api, stop) = (c.client.clone(), api.clone(), stop.clone());
            tokio::spawn(async move { load(&client, &api, 64, 600.0, Kind::Put, Some(stop)).await })
        };
        loop {
            let s = status_of(&c, n).await;
            if s["applied_index"].as_u64().unwrap_or(0) >= target {
                break;
            }
            if joined.elapsed() > Duration::from_secs(600) {
                anyhow::bail!("the new node did not catch up within 10 minutes");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let catch_up_s = joined.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        let during = during.await??;
        let got = status_of(&c, n).await;
        let baseline = load(&c.client, &api, 64, catch_up_s.clamp(2.0, 30.0), Kind::Put, None).await?;
        let snap_bytes = snapshot_bytes(&c, leader);
        Ok(json!({
            "cluster": { "nodes": "3, then a 4th joins", "storage": if memory { "memory" } else { "redb + write-ahead log, fsync per batch" }, "transport": "mutual TLS 1.3" },
            "keys": keys,
            "value_bytes": 64,
            "load_seconds": (load_s * 10.0).round() / 10.0,
            "leader_snapshot_index": snapshot_index,
            "snapshot_file_bytes": snap_bytes,
            "catch_up_seconds": (catch_up_s * 100.0).round() / 100.0,
            "new_node_snapshot_index": got["snapshot_index"],
            "writes_while_catching_up": during,
            "writes_after": baseline,
        }))
    })
}

/// Grants `n` leases (a key on each) and keeps them alive as fast as 64
/// clients can: the nodes' CPU per keepalive, and the leader's idle CPU
/// before and after the leases exist (what holding them costs).
async fn keep_leases_alive(
    c: &ProcessCluster,
    api: &str,
    n: usize,
    seconds: f64,
) -> anyhow::Result<Value> {
    let idle_before = idle_cpu(c, seconds).await;
    let t0 = Instant::now();
    let ids = grant_leases(&c.client, api, n).await?;
    let grant_s = t0.elapsed().as_secs_f64();
    let idle_after = idle_cpu(c, seconds).await;
    let ids: &'static [u64] = Box::leak(ids.into_boxed_slice());
    let cpu = Cpu::start(c);
    let mut run = load(&c.client, api, 64, seconds, Kind::Keepalive(ids), None).await?;
    cpu.report(&mut run);
    Ok(json!({
        "leases": n,
        "ttl_seconds": 60,
        "grants_per_sec_with_a_put_each": (n as f64 / grant_s).round(),
        "keepalives": run,
        "idle_nodes_cpu_percent": { "without_leases": idle_before, "with_leases": idle_after },
    }))
}

/// The nodes' CPU use together over `seconds` of no load, in percent of
/// one core.
async fn idle_cpu(c: &ProcessCluster, seconds: f64) -> f64 {
    let pids: Vec<String> = c
        .nodes
        .iter()
        .filter_map(|n| n.pid())
        .map(|p| p.to_string())
        .collect();
    let used = || pids.iter().map(|p| cpu_seconds(p)).sum::<f64>();
    let before = used();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    ((used() - before) / seconds * 1000.0).round() / 10.0
}

/// Grants `n` leases of 60 s, 64 at a time, each with a key attached.
async fn grant_leases(client: &HttpsClient, api: &str, n: usize) -> anyhow::Result<Vec<u64>> {
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..64usize {
        let (client, api) = (client.clone(), api.to_string());
        tasks.spawn(async move {
            let mut ids = Vec::new();
            for k in (t..n).step_by(64) {
                let r = client
                    .request(&api, Method::PUT, "/v1/lease?ttl=60s", &[], Bytes::new())
                    .await?;
                let id = r.json().and_then(|v| v["ID"].as_u64());
                let id = id.ok_or_else(|| anyhow::anyhow!("grant failed: {}", r.status))?;
                let path = format!("/v1/kv/leased/{k:08x}?lease={id}");
                let r = client
                    .request(&api, Method::PUT, &path, &[], Bytes::from_static(b"up"))
                    .await?;
                anyhow::ensure!(r.status.is_success(), "leased put failed: {}", r.status);
                ids.push(id);
            }
            Ok::<_, anyhow::Error>(ids)
        });
    }
    let mut ids = Vec::new();
    while let Some(r) = tasks.join_next().await {
        ids.extend(r??);
    }
    Ok(ids)
}

async fn status_of(c: &ProcessCluster, i: usize) -> Value {
    c.status(i).await.unwrap_or_default()
}

/// Size of the leader's snapshot file (0 in memory).
fn snapshot_bytes(c: &ProcessCluster, i: usize) -> u64 {
    let Some(f) = &c.nodes[i].file else { return 0 };
    let dir = raft_mock::snapshot_dir(f);
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "bin"))
        .filter_map(|e| e.metadata().ok().map(|m| m.len()))
        .max()
        .unwrap_or(0)
}

/// Writes keys 0..n (64-byte values) with `clients` concurrent clients.
async fn fill(client: &HttpsClient, api: &str, n: u64, clients: u64) -> anyhow::Result<()> {
    let value = Bytes::from(vec![b'v'; 64]);
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..clients {
        let (client, api, value) = (client.clone(), api.to_string(), value.clone());
        tasks.spawn(async move {
            let mut k = t;
            while k < n {
                let path = format!("/v1/kv/{k:08x}");
                let r = client
                    .request(&api, Method::PUT, &path, &[], value.clone())
                    .await?;
                if !r.status.is_success() {
                    anyhow::bail!("write {k} failed: {}", r.status);
                }
                k += clients;
            }
            Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

/// What a load run sends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `PUT /v1/kv/<key>`, a new key each time.
    Put,
    /// Linearizable `GET /v1/kv/<key>?raw`.
    Read,
    /// `PUT /v1/txn` of four `set`s of new keys.
    Txn,
    /// `PUT /v1/lease/<id>/keepalive` of one of these leases.
    Keepalive(&'static [u64]),
}

impl Kind {
    /// Client `t`'s `n`th request: method, path, body.
    fn request(self, t: usize, n: u64, value: &Bytes) -> (Method, String, Bytes) {
        let key = |k: u64| format!("{:08x}", (t as u64) << 20 | (k & 0xfffff));
        match self {
            Kind::Put => (Method::PUT, format!("/v1/kv/{}", key(n)), value.clone()),
            Kind::Read => (Method::GET, format!("/v1/kv/{}?raw", key(0)), Bytes::new()),
            Kind::Keepalive(ids) => {
                let id = ids[((t as u64) << 32 | n) as usize % ids.len()];
                let path = format!("/v1/lease/{id}/keepalive");
                (Method::PUT, path, Bytes::new())
            }
            Kind::Txn => {
                use base64::Engine;
                let v = base64::engine::general_purpose::STANDARD.encode(value);
                let ops: Vec<Value> = (0..4)
                    .map(|k| json!({ "KV": { "Verb": "set", "Key": format!("t{}", key(n * 4 + k)), "Value": v } }))
                    .collect();
                (
                    Method::PUT,
                    "/v1/txn".into(),
                    Bytes::from(Value::from(ops).to_string()),
                )
            }
        }
    }
}

async fn load(
    client: &HttpsClient,
    api: &str,
    clients: usize,
    seconds: f64,
    kind: Kind,
    stop: Option<Arc<std::sync::atomic::AtomicBool>>,
) -> anyhow::Result<Value> {
    let value = Bytes::from(vec![b'v'; 256]);
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for t in 0..clients {
        let (client, api, value, errors, stop) = (
            client.clone(),
            api.to_string(),
            value.clone(),
            errors.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut n = 0u64;
            let stopped = || stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed));
            while Instant::now() < until && !stopped() {
                let (method, path, body) = kind.request(t, n, &value);
                let t0 = Instant::now();
                match client.request(&api, method, &path, &[], body).await {
                    Ok(r) if r.status.is_success() || (kind == Kind::Read && r.status == 404) => {
                        lat.push(t0.elapsed())
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                n += 1;
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    let took = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        if all.is_empty() {
            return 0.0;
        }
        let i = ((all.len() as f64 - 1.0) * p).round() as usize;
        (all[i].as_secs_f64() * 1e6).round()
    };
    Ok(json!({
        "clients": clients,
        "ops": all.len(),
        "ops_per_sec": (all.len() as f64 / took).round(),
        "latency_us": { "p50": pct(0.5), "p99": pct(0.99) },
        "errors": errors.load(Ordering::Relaxed),
    }))
}
