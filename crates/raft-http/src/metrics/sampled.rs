//! The node's state read at scrape time (status, KV, leases, transport)
//! as gauges and counters: values that live elsewhere and are only
//! copied out when Prometheus asks.

use crate::{ApiContext, TransportCounters};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::exemplar::Exemplar;
use std::fmt;

/// One sampled value.
#[derive(Clone, Copy, Debug)]
pub(super) enum Value {
    /// A counter (the encoder adds `_total` to the name).
    Count(u64),
    /// A counter of seconds.
    Seconds(f64),
    /// A gauge that counts or indexes something.
    Int(i64),
    /// A gauge in seconds or bytes.
    Float(f64),
}

impl Value {
    fn metric_type(self) -> MetricType {
        match self {
            Value::Count(_) | Value::Seconds(_) => MetricType::Counter,
            Value::Int(_) | Value::Float(_) => MetricType::Gauge,
        }
    }

    fn encode(self, m: &mut MetricEncoder) -> fmt::Result {
        match self {
            Value::Count(v) => m.encode_counter::<NoLabelSet, _, f64>(&v, None::<&Exemplar<_, _>>),
            Value::Seconds(v) => {
                m.encode_counter::<NoLabelSet, _, f64>(&v, None::<&Exemplar<_, _>>)
            }
            Value::Int(v) => m.encode_gauge(&v),
            Value::Float(v) => m.encode_gauge(&v),
        }
    }
}

/// One series: a value per peer (`peer` label) or a single value.
#[derive(Debug)]
pub(super) struct Series {
    pub name: &'static str,
    pub help: &'static str,
    pub points: Vec<(Option<String>, Value)>,
}

impl Series {
    pub(super) fn one(name: &'static str, help: &'static str, v: Value) -> Self {
        Series {
            name,
            help,
            points: vec![(None, v)],
        }
    }
}

/// Series sampled once, encoded by one scrape.
#[derive(Debug)]
pub(super) struct Sampled(pub Vec<Series>);

impl Collector for Sampled {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        for s in &self.0 {
            let Some(&(_, first)) = s.points.first() else {
                continue;
            };
            let mut m = encoder.encode_descriptor(s.name, s.help, None, first.metric_type())?;
            for (peer, v) in &s.points {
                match peer {
                    None => v.encode(&mut m)?,
                    Some(p) => {
                        let labels = [("peer", p.as_str())];
                        v.encode(&mut m.encode_family(&labels)?)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A 0/1 gauge.
fn flag(b: bool) -> Value {
    Value::Int(b.into())
}

/// An index or a size as a gauge.
fn int(v: u64) -> Value {
    Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
}

/// Everything sampled from the node now.
pub(super) fn sample(ctx: &ApiContext) -> Sampled {
    let s = ctx.node.status();
    let (keys, history, oldest, leases) = {
        let kv = ctx.kv.read();
        let h = kv.history();
        (kv.keys(), h.len(), h.floor(), kv.leases().len())
    };
    let (keepalives, expired) = ctx.lessor.counts();
    let rows = [
        ("raft_term", "Current Raft term", int(s.raft.term)),
        (
            "raft_is_leader",
            "1 if this node leads",
            flag(s.is_leader()),
        ),
        (
            "raft_has_leader",
            "1 if a leader is known",
            flag(s.raft.leader.is_some()),
        ),
        (
            "raft_commit_index",
            "Highest committed log index",
            int(s.raft.commit),
        ),
        (
            "raft_applied_index",
            "Highest applied log index",
            int(s.raft.applied),
        ),
        ("raft_last_index", "Last log index", int(s.raft.last_index)),
        (
            "raft_first_index",
            "First index still in the log (earlier ones are compacted)",
            int(s.raft.first_index),
        ),
        (
            "raft_snapshot_index",
            "Index of the latest snapshot (0: none)",
            int(s.raft.snapshot),
        ),
        (
            "raft_storage_failed",
            "1 once the log store failed",
            flag(s.failed.is_some()),
        ),
        (
            "raft_scrub_runs",
            "Passes of the scrub that re-reads and verifies the latest snapshot",
            Value::Count(s.scrubs),
        ),
        (
            "raft_scrub_damage",
            "Scrub passes that found the latest snapshot damaged",
            Value::Count(s.scrub_damage),
        ),
        (
            "raft_storage_damaged",
            "1 while the scrub's last pass found damage",
            flag(s.damage.is_some()),
        ),
        ("kv_keys", "Keys in all namespaces", int(keys as u64)),
        (
            "kv_watch_history_events",
            "Events the watch history holds",
            int(history as u64),
        ),
        (
            "kv_watch_history_oldest_index",
            "The oldest index a watch may start from",
            int(oldest),
        ),
        ("kv_leases", "Leases in the state", int(leases as u64)),
        (
            "kv_lease_keepalives",
            "Lease keepalives this node served as leader",
            Value::Count(keepalives),
        ),
        (
            "kv_leases_expired",
            "Leases this node expired as leader",
            Value::Count(expired),
        ),
    ];
    let mut series: Vec<Series> = rows
        .into_iter()
        .map(|(name, help, v)| Series::one(name, help, v))
        .collect();
    series.extend(peer_series(ctx, &s));
    Sampled(series)
}

/// Per-peer series: replication as the leader sees it (only the leader
/// tracks its followers), and the transport's drop counters (any node).
fn peer_series(ctx: &ApiContext, s: &raft_core::node::NodeStatus) -> Vec<Series> {
    type PeerValue = fn(&raft_core::PeerStatus, &raft_core::node::NodeStatus) -> Value;
    let per_peer: [(&'static str, &'static str, PeerValue); 4] = [
        (
            "raft_peer_match_index",
            "Leader only: the highest entry known replicated on the peer",
            |p, _| int(p.matched),
        ),
        (
            "raft_peer_lag_entries",
            "Leader only: entries the peer is behind the leader's log",
            |p, s| int(s.raft.last_index.saturating_sub(p.matched)),
        ),
        (
            "raft_peer_last_contact_seconds",
            "Leader only: time since the peer last answered",
            |p, s| Value::Float((p.last_contact * s.tick_ms) as f64 / 1e3),
        ),
        (
            "raft_peer_lost_acknowledged",
            "Leader only: times the peer was found to lack entries it had \
             acknowledged as durable (its disk lost them; they were sent again)",
            |p, _| Value::Count(p.lost_tails),
        ),
    ];
    let mut out: Vec<Series> = per_peer
        .into_iter()
        .map(|(name, help, value)| Series {
            name,
            help,
            points: s
                .raft
                .peers
                .iter()
                .map(|p| (Some(ctx.name(p.id)), value(p, s)))
                .collect(),
        })
        .collect();
    let TransportCounters {
        inbound_dropped,
        dropped,
    } = (ctx.transport_counters)();
    out.push(Series::one(
        "raft_transport_inbound_dropped",
        "Peer messages dropped because the node was behind",
        Value::Count(inbound_dropped),
    ));
    out.push(Series {
        name: "raft_transport_dropped",
        help: "Messages to a peer dropped because its queue was full",
        points: dropped
            .into_iter()
            .map(|(id, n)| (Some(ctx.name(id)), Value::Count(n)))
            .collect(),
    });
    out
}
