//! Watchers for `cargo xtask bench cluster --watchers N`: N streams of
//! every change (`GET /v1/watch/?recurse`) held open on all nodes while
//! the load runs, to measure what serving them costs the writes, how fast
//! events reach them, and whether each saw every change. A probe writes
//! `probe/<n>` every 20 ms; the time from sending it to each watcher
//! seeing it is the delivery latency.

use raft_http::HttpsClient;
use raft_http::client::Method;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The probe writer.
pub struct Probe {
    stop: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<Vec<Option<Instant>>>>,
}

impl Probe {
    /// Starts writing probes (if `on`) through `api`.
    pub fn start(client: &HttpsClient, api: &str, on: bool) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let task = on.then(|| {
            let (client, api, stop) = (client.clone(), api.to_string(), stop.clone());
            tokio::spawn(async move {
                // When each probe was sent, by its number (None: failed).
                let mut sent = Vec::new();
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    sent.push(Some(Instant::now()));
                    let path = format!("/v1/kv/probe/{n}");
                    let body = bytes::Bytes::from_static(b"p");
                    let r = client.request(&api, Method::PUT, &path, &[], body).await;
                    if !r.is_ok_and(|r| r.status.is_success()) {
                        sent[n] = None;
                    }
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                sent
            })
        });
        Probe { stop, task }
    }

    /// Stops probing; when each probe was sent.
    pub async fn stop(mut self) -> Vec<Option<Instant>> {
        self.stop.store(true, Ordering::Relaxed);
        match self.task.take() {
            Some(t) => t.await.unwrap_or_default(),
            None => Vec::new(),
        }
    }
}

/// What one watcher has seen.
#[derive(Default)]
pub struct Seen {
    /// Lines received (the first, a progress line, says it started).
    pub lines: AtomicU64,
    pub events: AtomicU64,
    pub last_index: AtomicU64,
    /// When each probe arrived: (its number, when).
    pub probes: Mutex<Vec<(usize, Instant)>>,
}

/// The fields of a line the counting needs (the rest is skipped, not
/// built: the benchmark's clients share the cores with the nodes).
#[derive(serde::Deserialize)]
struct Line<'a> {
    #[serde(rename = "Op")]
    op: &'a str,
    #[serde(rename = "Index")]
    index: Option<u64>,
    #[serde(rename = "Key", borrow)]
    key: Option<&'a str>,
}

/// Counts a stream's events as they arrive.
struct Counter {
    seen: Arc<Seen>,
    pending: Vec<u8>,
}

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        let Some(end) = self.pending.iter().rposition(|&b| b == b'\n') else {
            return Ok(buf.len());
        };
        let whole: Vec<u8> = self.pending.drain(..=end).collect();
        for line in whole.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let v: Line = serde_json::from_slice(line).map_err(std::io::Error::other)?;
            self.seen.lines.fetch_add(1, Ordering::Relaxed);
            if v.op == "put" {
                self.seen.events.fetch_add(1, Ordering::Relaxed);
                let probe = v.key.and_then(|k| k.strip_prefix("probe/"));
                if let Some(n) = probe.and_then(|n| n.parse().ok()) {
                    self.seen.probes.lock().unwrap().push((n, Instant::now()));
                }
            }
            if let Some(i) = v.index {
                self.seen.last_index.fetch_max(i, Ordering::Relaxed);
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Opens `n` watchers of everything, round robin over `apis`; returns
/// once each has started (so none misses the first writes).
pub async fn start(client: &HttpsClient, apis: &[String], n: usize) -> Vec<Arc<Seen>> {
    let mut all = Vec::new();
    for i in 0..n {
        let seen = Arc::new(Seen::default());
        let mut client = client.clone();
        client.timeout = Duration::MAX;
        let api = apis[i % apis.len()].clone();
        let mut out = Counter {
            seen: seen.clone(),
            pending: Vec::new(),
        };
        tokio::spawn(async move {
            let _ = client.download(&api, "/v1/watch/?recurse", &mut out).await;
        });
        all.push(seen);
    }
    let started = || all.iter().all(|w| w.lines.load(Ordering::Relaxed) > 0);
    let since = std::time::Instant::now();
    while !started() && since.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    all
}

/// Waits (up to 30 s) until every watcher has seen index `top`; what they
/// saw, as JSON, with the delivery latencies of the probes `sent` and the
/// rate of events delivered `since` the watchers started.
pub async fn report(
    watchers: &[Arc<Seen>],
    top: u64,
    sent: &[Option<Instant>],
    since: Instant,
) -> serde_json::Value {
    let caught_up = || {
        watchers
            .iter()
            .all(|w| w.last_index.load(Ordering::Relaxed) >= top)
    };
    let start = std::time::Instant::now();
    while !caught_up() && start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let events: Vec<u64> = watchers
        .iter()
        .map(|w| w.events.load(Ordering::Relaxed))
        .collect();
    let mut lat: Vec<f64> = Vec::new();
    for w in watchers {
        for &(n, at) in w.probes.lock().unwrap().iter() {
            if let Some(Some(t)) = sent.get(n) {
                lat.push(at.duration_since(*t).as_secs_f64() * 1e3);
            }
        }
    }
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p).round() as usize)
            .map(|ms| (ms * 100.0).round() / 100.0)
    };
    let delivered: u64 = events.iter().sum();
    let secs = since.elapsed().as_secs_f64();
    serde_json::json!({
        "watchers": watchers.len(),
        "events_delivered": delivered,
        "events_delivered_per_sec": (delivered as f64 / secs).round(),
        "probe_put_to_watcher_ms": { "p50": pct(0.5), "p99": pct(0.99), "samples": lat.len() },
        "put_events_min": events.iter().min(),
        "put_events_max": events.iter().max(),
        "all_caught_up": caught_up(),
        "caught_up_after_load_ms": start.elapsed().as_millis() as u64,
    })
}
