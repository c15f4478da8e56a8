//! `/metrics` in Prometheus text format: request counters kept here, and
//! the node's gauges read at scrape time.

use super::http::{self, Body};
use super::{ApiContext, TransportCounters};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Response, StatusCode};
use raft_core::node::NodeStatus;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Default)]
pub struct Metrics {
    /// Requests by class: 2xx/3xx, 4xx, 5xx.
    ok: AtomicU64,
    client_errors: AtomicU64,
    server_errors: AtomicU64,
    writes: AtomicU64,
    forwarded: AtomicU64,
    /// Total request time in microseconds.
    busy_us: AtomicU64,
    /// Watch streams open now.
    watchers: Arc<AtomicU64>,
    /// Watchers cut off for falling out of the history.
    watchers_cut: Arc<AtomicU64>,
}

/// Counts one open watch stream while it lives.
pub struct Watching {
    open: Arc<AtomicU64>,
    cut: Arc<AtomicU64>,
}

impl Watching {
    /// This watcher fell out of the history and is cut off.
    pub fn cut(&self) {
        self.cut.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn record(&self, method: &Method, status: StatusCode, took: Duration) {
        let c = if status.is_server_error() {
            &self.server_errors
        } else if status.is_client_error() {
            &self.client_errors
        } else {
            &self.ok
        };
        c.fetch_add(1, Ordering::Relaxed);
        if method != Method::GET {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        self.busy_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn forwarded(&self) {
        self.forwarded.fetch_add(1, Ordering::Relaxed);
    }

    /// A watch stream opened; it counts until the guard drops.
    pub fn watching(&self) -> Watching {
        self.watchers.fetch_add(1, Ordering::Relaxed);
        Watching {
            open: self.watchers.clone(),
            cut: self.watchers_cut.clone(),
        }
    }
}

pub fn render(ctx: &ApiContext) -> Response<Body> {
    let s = ctx.node.status();
    let m = &ctx.metrics;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let (history, leases) = {
        let kv = ctx.kv.read();
        let h = (kv.history().len() as f64, kv.history().floor() as f64);
        (h, kv.leases().len() as f64)
    };
    let (keepalives, expired) = ctx.lessor.counts();
    let rows: [(&str, &str, &str, f64); 27] = [
        (
            "raft_term",
            "Current Raft term.",
            "gauge",
            s.raft.term as f64,
        ),
        (
            "raft_is_leader",
            "1 if this node leads.",
            "gauge",
            flag(s.is_leader()),
        ),
        (
            "raft_has_leader",
            "1 if a leader is known.",
            "gauge",
            flag(s.raft.leader.is_some()),
        ),
        (
            "raft_commit_index",
            "Highest committed log index.",
            "gauge",
            s.raft.commit as f64,
        ),
        (
            "raft_applied_index",
            "Highest applied log index.",
            "gauge",
            s.raft.applied as f64,
        ),
        (
            "raft_last_index",
            "Last log index.",
            "gauge",
            s.raft.last_index as f64,
        ),
        (
            "raft_first_index",
            "First index still in the log (earlier ones are compacted).",
            "gauge",
            s.raft.first_index as f64,
        ),
        (
            "raft_snapshot_index",
            "Index of the latest snapshot (0: none).",
            "gauge",
            s.raft.snapshot as f64,
        ),
        (
            "raft_storage_failed",
            "1 once the log store failed.",
            "gauge",
            flag(s.failed.is_some()),
        ),
        (
            "raft_scrub_runs_total",
            "Passes of the scrub that re-reads and verifies the latest snapshot.",
            "counter",
            s.scrubs as f64,
        ),
        (
            "raft_scrub_damage_total",
            "Scrub passes that found the latest snapshot damaged.",
            "counter",
            s.scrub_damage as f64,
        ),
        (
            "raft_storage_damaged",
            "1 while the scrub's last pass found damage.",
            "gauge",
            flag(s.damage.is_some()),
        ),
        (
            "kv_keys",
            "Keys in all namespaces.",
            "gauge",
            ctx.kv.read().keys() as f64,
        ),
        (
            "kv_watch_history_events",
            "Events the watch history holds.",
            "gauge",
            history.0,
        ),
        (
            "kv_watch_history_oldest_index",
            "The oldest index a watch may start from.",
            "gauge",
            history.1,
        ),
        (
            "kv_watchers",
            "Watch streams open.",
            "gauge",
            get(&m.watchers),
        ),
        (
            "kv_watchers_cut_total",
            "Watchers cut off for falling behind the history.",
            "counter",
            get(&m.watchers_cut),
        ),
        ("kv_leases", "Leases in the state.", "gauge", leases),
        (
            "kv_lease_keepalives_total",
            "Lease keepalives this node served as leader.",
            "counter",
            keepalives as f64,
        ),
        (
            "kv_leases_expired_total",
            "Leases this node expired as leader.",
            "counter",
            expired as f64,
        ),
        (
            "http_requests_ok_total",
            "Requests answered 2xx or 3xx.",
            "counter",
            get(&m.ok),
        ),
        (
            "http_requests_client_error_total",
            "Requests answered 4xx.",
            "counter",
            get(&m.client_errors),
        ),
        (
            "http_requests_server_error_total",
            "Requests answered 5xx.",
            "counter",
            get(&m.server_errors),
        ),
        (
            "http_write_requests_total",
            "Requests other than GET.",
            "counter",
            get(&m.writes),
        ),
        (
            "http_forwarded_total",
            "Writes forwarded to the leader.",
            "counter",
            get(&m.forwarded),
        ),
        (
            "http_request_seconds_total",
            "Time spent answering requests.",
            "counter",
            get(&m.busy_us) / 1e6,
        ),
        (
            "process_uptime_seconds",
            "Seconds since the node started.",
            "gauge",
            ctx.started.elapsed().as_secs_f64(),
        ),
    ];
    let mut out = String::new();
    for (name, help, kind, v) in rows {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
        );
    }
    peer_rows(ctx, &s, &mut out);
    let mut r = Response::new(http::full(out));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

/// One per-peer value, from the peer's and the node's status.
type PeerValue = fn(&raft_core::PeerStatus, &NodeStatus) -> f64;

/// Per-peer series: replication as the leader sees it (only the leader
/// tracks its followers), and the transport's drop counters (any node).
fn peer_rows(ctx: &ApiContext, s: &NodeStatus, out: &mut String) {
    let header = |out: &mut String, name: &str, help: &str, kind: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    let peers = &s.raft.peers;
    let series: [(&str, &str, PeerValue); 4] = [
        (
            "raft_peer_match_index",
            "Leader only: the highest entry known replicated on the peer.",
            |p, _| p.matched as f64,
        ),
        (
            "raft_peer_lag_entries",
            "Leader only: entries the peer is behind the leader's log.",
            |p, s| s.raft.last_index.saturating_sub(p.matched) as f64,
        ),
        (
            "raft_peer_last_contact_seconds",
            "Leader only: time since the peer last answered.",
            |p, s| (p.last_contact * s.tick_ms) as f64 / 1e3,
        ),
        (
            "raft_peer_lost_acknowledged_total",
            "Leader only: times the peer was found to lack entries it had \
             acknowledged as durable (its disk lost them; they were sent again).",
            |p, _| p.lost_tails as f64,
        ),
    ];
    if !peers.is_empty() {
        for (name, help, value) in series {
            let kind = if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            header(out, name, help, kind);
            for p in peers {
                let peer = ctx.name(p.id);
                let _ = writeln!(out, "{name}{{peer=\"{peer}\"}} {}", value(p, s));
            }
        }
    }
    let TransportCounters {
        inbound_dropped,
        dropped,
    } = (ctx.transport_counters)();
    let name = "raft_transport_inbound_dropped_total";
    header(
        out,
        name,
        "Peer messages dropped because the node was behind.",
        "counter",
    );
    let _ = writeln!(out, "{name} {inbound_dropped}");
    let name = "raft_transport_dropped_total";
    header(
        out,
        name,
        "Messages to a peer dropped because its queue was full.",
        "counter",
    );
    for (id, n) in dropped {
        let _ = writeln!(out, "{name}{{peer=\"{}\"}} {n}", ctx.name(id));
    }
}
