//! `cargo xtask bench cluster`: a 3-node mutual-TLS cluster of raft-mock
//! processes on redb (fsync on), loaded over persistent HTTPS connections:
//! writes (8-byte keys, 256-byte values) at 1, 16, 64 and 256 concurrent
//! clients, then linearizable reads at 64.

use crate::cluster::{build_binaries, ensure_certs};
use bytes::Bytes;
use raft_kv::api::HttpsClient;
use raft_kv::api::client::Method;
use raft_mock::launch::{ProcessCluster, free_ports};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub fn run(dir: &Path, seconds: f64, clients: &[usize], memory: bool) -> anyhow::Result<Value> {
    let bins = build_binaries()?;
    let certs = dir.join("certs");
    ensure_certs(&certs)?;
    let data = dir.join("cluster");
    if data.exists() {
        std::fs::remove_dir_all(&data)?;
    }
    let ports = free_ports(6);
    let pairs: Vec<_> = ports.chunks(2).map(|p| (p[0], p[1])).collect();
    let mut c = ProcessCluster::new(
        &bins.join("raft-mock"),
        &certs,
        &data,
        &["active"; 3],
        &pairs,
        memory,
    )?;
    c.flags = vec!["-l".into(), "WARNING".into()];
    c.start_all()?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let leader = c
            .wait_leader(Duration::from_secs(20), &[])
            .await
            .ok_or_else(|| anyhow::anyhow!("no leader within 20 s"))?;
        let api = c.nodes[leader].api.clone();
        let mut writes = Vec::new();
        for &n in clients {
            writes.push(load(&c.client, &api, n, seconds, true).await?);
        }
        let reads = load(&c.client, &api, 64, seconds, false).await?;
        Ok(json!({
            "cluster": { "nodes": 3, "storage": if memory { "memory" } else { "redb, fsync per batch" }, "transport": "mutual TLS 1.3", "client": "HTTPS/1.1 keep-alive" },
            "value_bytes": 256,
            "key_bytes": 8,
            "writes": writes,
            "linearizable_reads": reads,
        }))
    })
}

async fn load(
    client: &HttpsClient,
    api: &str,
    clients: usize,
    seconds: f64,
    write: bool,
) -> anyhow::Result<Value> {
    let value = Bytes::from(vec![b'v'; 256]);
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for t in 0..clients {
        let (client, api, value, errors) = (
            client.clone(),
            api.to_string(),
            value.clone(),
            errors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut n = 0u64;
            while Instant::now() < until {
                let key = format!("{:08x}", (t as u64) << 20 | (n & 0xfffff));
                let (method, body) = if write {
                    (Method::PUT, value.clone())
                } else {
                    (Method::GET, Bytes::new())
                };
                let path = if write {
                    format!("/v1/kv/{key}")
                } else {
                    format!("/v1/kv/{:08x}?raw", (t as u64) << 20)
                };
                let t0 = Instant::now();
                match client.request(&api, method, &path, &[], body).await {
                    Ok(r) if r.status.is_success() || (!write && r.status == 404) => {
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
