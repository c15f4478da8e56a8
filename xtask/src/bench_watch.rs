//! Watchers for `cargo xtask bench cluster --watchers N`: N streams of
//! every change (`GET /v1/watch/?recurse`) held open on the followers
//! while the load runs, to measure what serving them costs the writes and
//! whether each saw every change.

use raft_kv::api::HttpsClient;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What one watcher has seen.
#[derive(Default)]
pub struct Seen {
    /// Lines received (the first, a progress line, says it started).
    pub lines: AtomicU64,
    pub events: AtomicU64,
    pub last_index: AtomicU64,
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
            let v: serde_json::Value =
                serde_json::from_slice(line).map_err(std::io::Error::other)?;
            if v["Op"] == "put" {
                self.seen.events.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(i) = v["Index"].as_u64() {
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
/// saw, as JSON.
pub async fn report(watchers: &[Arc<Seen>], top: u64) -> serde_json::Value {
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
    serde_json::json!({
        "watchers": watchers.len(),
        "put_events_min": events.iter().min(),
        "put_events_max": events.iter().max(),
        "all_caught_up": caught_up(),
        "caught_up_after_load_ms": start.elapsed().as_millis() as u64,
    })
}
