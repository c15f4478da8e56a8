//! Shared harness for the multi-process tests: real `raft-mock`
//! processes, real mutual TLS, loopback ports picked free, and every
//! process killed when the test ends (pass or fail).

#![allow(dead_code)]

use raft_http::client::{Method, Reply};
use raft_mock::launch::{ProcessCluster, free_ports};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

pub mod resp;

/// Certificates made once per test binary, by `cargo xtask certs`'s code.
pub fn certs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("raftstack-test-certs-{}", std::process::id()));
        xtask::certs::make_certs(&dir, true).expect("making test certificates");
        dir
    })
}

pub const BIN: &str = env!("CARGO_BIN_EXE_raft-mock");

/// Runs `raftctl` against the given command ports and returns its stdout;
/// fails the test (with its stderr) if it fails.
pub fn raftctl(nodes: &[String], args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_raftctl"))
        .arg("--certs")
        .arg(certs())
        .arg("--nodes")
        .arg(nodes.join(","))
        .args(args)
        .output()
        .expect("running raftctl");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "raftctl {args:?}: {err}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether python3 with `module` is here; when not, the test is skipped,
/// except in CI (`.ci/run` installs the modules the tests use), where
/// that is a failure.
pub fn have_python_module(module: &str) -> bool {
    let here = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|s| s.success());
    if !here {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have python3 with {module} (.ci/run installs it)"
        );
        eprintln!("skipped: no python3 with {module} (pip install {module})");
    }
    here
}

/// Fast timings for tests: 20 ms ticks, elections after 200-400 ms.
pub const FLAGS: &[&str] = &["--tick-ms", "20", "--election-ticks", "10", "-l", "DEBUG"];

pub struct TestCluster {
    pub c: ProcessCluster,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for TestCluster {
    type Target = ProcessCluster;
    fn deref(&self) -> &ProcessCluster {
        &self.c
    }
}

impl std::ops::DerefMut for TestCluster {
    fn deref_mut(&mut self) -> &mut ProcessCluster {
        &mut self.c
    }
}

/// Starts one node per mode (redb files unless `memory`).
pub fn cluster(modes: &[&str], memory: bool) -> TestCluster {
    cluster_with(modes, memory, &[])
}

/// Like `cluster`, with extra flags for every node.
pub fn cluster_with(modes: &[&str], memory: bool, flags: &[&str]) -> TestCluster {
    let mut c = described(modes, memory);
    c.c.flags.extend(flags.iter().map(|s| s.to_string()));
    c.start_all().expect("starting raft-mock");
    c
}

/// A cluster described but not started (to set per-node flags first).
pub fn described(modes: &[&str], memory: bool) -> TestCluster {
    described_with(modes, memory, certs(), free_ports(modes.len() * 2))
}

/// `described`, with the certificates in `certs` and these ports (peer,
/// command port, peer, ...).
pub fn described_with(modes: &[&str], memory: bool, certs: &Path, ports: Vec<u16>) -> TestCluster {
    let dir = tempfile::tempdir().unwrap();
    let pairs: Vec<_> = ports.chunks(2).map(|p| (p[0], p[1])).collect();
    let mut c = ProcessCluster::new(Path::new(BIN), certs, dir.path(), modes, &pairs, memory)
        .expect("cluster set-up");
    c.flags = FLAGS.iter().map(|s| s.to_string()).collect();
    TestCluster { c, _dir: dir }
}

impl TestCluster {
    pub async fn leader(&self, except: &[usize]) -> usize {
        match self.wait_leader(Duration::from_secs(20), except).await {
            Some(l) => l,
            None => {
                self.dump_logs();
                panic!("no leader within 20 s");
            }
        }
    }

    /// Prints the node logs' tails (shown when a test fails).
    pub fn dump_logs(&self) {
        for n in &self.c.nodes {
            let log = std::fs::read_to_string(&n.log).unwrap_or_default();
            let tail: Vec<_> = log.lines().rev().take(30).collect();
            eprintln!("--- {} ({}) ---", n.name, n.log.display());
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }

    pub async fn put(&self, i: usize, key: &str, value: &str) -> Result<u64, String> {
        let r = self
            .request(i, Method::PUT, &format!("/v1/kv/{key}"), value)
            .await
            .map_err(|e| e.to_string())?;
        if !r.status.is_success() {
            return Err(format!("{} {}", r.status, String::from_utf8_lossy(&r.body)));
        }
        Ok(index(&r))
    }

    /// A put through whichever node leads, asked again of the new leader
    /// when leadership moved under it (a 503 names the new leader: the
    /// write was not proposed). For loads heavy enough to cost a leader
    /// its lease on a loaded machine.
    pub async fn put_at_leader(&self, key: &str, value: &str) -> u64 {
        for attempt in 1.. {
            let l = self.leader(&[]).await;
            match self.put(l, key, value).await {
                Ok(index) => return index,
                Err(e) if attempt < 5 && e.starts_with("503") => {
                    eprintln!("put {key} at node {l}: {e}; asking the leader again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("put {key} at node {l}: {e}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// A key's value read at node `i` (linearizable unless `stale`).
    pub async fn get(&self, i: usize, key: &str, stale: bool) -> Result<Option<String>, String> {
        let q = if stale { "&stale" } else { "" };
        let r = self
            .request(i, Method::GET, &format!("/v1/kv/{key}?raw{q}"), "")
            .await
            .map_err(|e| e.to_string())?;
        match r.status.as_u16() {
            200 => Ok(Some(String::from_utf8_lossy(&r.body).into_owned())),
            404 => Ok(None),
            _ => Err(format!("{} {}", r.status, String::from_utf8_lossy(&r.body))),
        }
    }

    /// Every key and value in the default namespace, as node `i` has it.
    pub async fn dump(&self, i: usize) -> Vec<(String, String)> {
        let r = self
            .request(i, Method::GET, "/v1/kv/?recurse&stale", "")
            .await
            .expect("dump");
        if r.status == 404 {
            return vec![];
        }
        let v = r.json().expect("JSON listing");
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| {
                use base64::Engine;
                let val = base64::engine::general_purpose::STANDARD
                    .decode(e["Value"].as_str().unwrap())
                    .unwrap();
                (
                    e["Key"].as_str().unwrap().to_string(),
                    String::from_utf8(val).unwrap(),
                )
            })
            .collect()
    }

    /// Waits until node `i` has applied at least `index`.
    pub async fn wait_applied(&self, i: usize, index: u64, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(s) = self.status(i).await
                && s["applied_index"].as_u64().unwrap_or(0) >= index
            {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                self.dump_logs();
                panic!("node {i} did not apply {index} within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Node `i`'s applied index, as its status says.
pub async fn index_of(c: &TestCluster, i: usize) -> u64 {
    c.status(i).await.expect("status")["applied_index"]
        .as_u64()
        .unwrap_or(0)
}

pub fn index(r: &Reply) -> u64 {
    r.headers
        .get(raft_http::INDEX_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The seed of a randomized test: `RAFTSTACK_SEED`, or a fresh one;
/// printed with the command that replays it (`how`: the test's filter).
pub fn seed(how: &str) -> u64 {
    let seed = std::env::var("RAFTSTACK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| u64::from(std::process::id()));
    eprintln!("seed {seed}; replay with RAFTSTACK_SEED={seed} cargo test {how}");
    seed
}

/// Runs a test body with a deadline.
pub async fn deadline<F: std::future::Future<Output = ()>>(secs: u64, f: F) {
    if tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .is_err()
    {
        panic!("test over its {secs} s deadline");
    }
}

/// Writes `n` keys `{prefix}{i}` through node `via`, 16 at a time; the
/// highest index acknowledged.
pub async fn write_many(c: &TestCluster, via: usize, n: usize, prefix: &str) -> u64 {
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..16 {
        let client = c.client.clone();
        let api = c.nodes[via].api.clone();
        let prefix = prefix.to_string();
        tasks.spawn(async move {
            let mut top = 0u64;
            for i in (t..n).step_by(16) {
                let path = format!("/v1/kv/{prefix}{i}");
                let body = bytes::Bytes::from(format!("value {i}"));
                let r = client.request(&api, Method::PUT, &path, &[], body).await;
                let r = r.expect("write");
                assert!(r.status.is_success(), "{:?}", r.json());
                top = top.max(index(&r));
            }
            top
        });
    }
    let mut top = 0;
    while let Some(t) = tasks.join_next().await {
        top = top.max(t.unwrap());
    }
    top
}

/// The lines of a watch stream until `stop` says so (or the stream ends).
struct Collect<F: FnMut(&serde_json::Value) -> bool> {
    pending: Vec<u8>,
    lines: Vec<serde_json::Value>,
    stop: F,
}

impl<F: FnMut(&serde_json::Value) -> bool> std::io::Write for Collect<F> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let v: serde_json::Value = serde_json::from_slice(&line).expect("a JSON line");
            let stop = (self.stop)(&v);
            self.lines.push(v);
            if stop {
                return Err(std::io::Error::other("enough"));
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The JSON lines a node streams for `path` (a watch, a log follow) until
/// `stop` says so or the stream ends.
pub async fn stream(
    client: &raft_http::HttpsClient,
    api: &str,
    path: &str,
    stop: impl FnMut(&serde_json::Value) -> bool + Send,
) -> Vec<serde_json::Value> {
    let mut client = client.clone();
    client.timeout = Duration::from_secs(60);
    let mut out = Collect {
        pending: Vec::new(),
        lines: Vec::new(),
        stop,
    };
    if let Err(e) = client.download(api, path, &mut out).await {
        eprintln!("watch {path} on {api} ended: {e}");
    }
    out.lines
}
