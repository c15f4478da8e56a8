//! What the node driver measures about itself: disk, apply and proposal
//! latencies, leader changes, snapshots. Prometheus-client metrics,
//! shared (cheap clones) between the driver, its storage thread and
//! whoever exposes them ([`NodeMetrics::register`]). Names follow etcd's
//! (`etcd_disk_wal_fsync_duration_seconds` is
//! `raft_disk_wal_fsync_duration_seconds` here).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Instant;

/// The driver's own metrics. Clones share the same series.
#[derive(Clone, Debug)]
pub struct NodeMetrics {
    /// One write to the log store (merged entries and hard state, then
    /// fsync), in seconds.
    pub wal_fsync: Histogram,
    /// Applying one batch of committed entries to the state machine.
    pub apply: Histogram,
    /// From a proposal on this node to its entry applied here.
    pub proposal: Histogram,
    /// Proposals waiting to be applied.
    pub proposals_pending: Gauge,
    /// Times this node saw a new leader.
    pub leader_changes: Counter,
    /// Writing one snapshot of the state machine (its count is the
    /// snapshots taken).
    pub snapshot_save: Histogram,
    /// Snapshots that could not be written.
    pub snapshot_failures: Counter,
    /// Snapshots received from a leader and installed.
    pub snapshots_installed: Counter,
    /// Snapshots this node sent to a follower, fully acknowledged.
    pub snapshots_sent: Counter,
    /// Snapshot transfers to a follower abandoned.
    pub snapshot_sends_failed: Counter,
}

/// Buckets from 0.1 ms doubling to about 13 s: fsyncs, applies and
/// commits all fall inside, on fast and slow disks alike.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

impl Default for NodeMetrics {
    fn default() -> Self {
        NodeMetrics {
            wal_fsync: latency(),
            apply: latency(),
            proposal: latency(),
            proposals_pending: Gauge::default(),
            leader_changes: Counter::default(),
            snapshot_save: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            snapshot_failures: Counter::default(),
            snapshots_installed: Counter::default(),
            snapshots_sent: Counter::default(),
            snapshot_sends_failed: Counter::default(),
        }
    }
}

impl NodeMetrics {
    /// Adds every series to `registry` (counters get their `_total`
    /// suffix from the encoder).
    pub fn register(&self, registry: &mut Registry) {
        let histograms = [
            (
                "raft_disk_wal_fsync_duration_seconds",
                "Time to write one batch to the log store and fsync it",
                &self.wal_fsync,
            ),
            (
                "raft_apply_duration_seconds",
                "Time to apply one batch of committed entries to the state machine",
                &self.apply,
            ),
            (
                "raft_proposal_duration_seconds",
                "Time from a proposal on this node to its entry applied here",
                &self.proposal,
            ),
            (
                "raft_snapshot_save_duration_seconds",
                "Time to write one snapshot of the state machine",
                &self.snapshot_save,
            ),
        ];
        for (name, help, h) in histograms {
            registry.register(name, help, h.clone());
        }
        let counters = [
            (
                "raft_leader_changes_seen",
                "Times this node saw a new leader",
                &self.leader_changes,
            ),
            (
                "raft_snapshot_save_failures",
                "Snapshots of the state machine that could not be written",
                &self.snapshot_failures,
            ),
            (
                "raft_snapshots_installed",
                "Snapshots received from a leader and installed",
                &self.snapshots_installed,
            ),
            (
                "raft_snapshots_sent",
                "Snapshots sent to a follower and fully acknowledged",
                &self.snapshots_sent,
            ),
            (
                "raft_snapshot_sends_failed",
                "Snapshot transfers to a follower abandoned",
                &self.snapshot_sends_failed,
            ),
        ];
        for (name, help, c) in counters {
            registry.register(name, help, c.clone());
        }
        registry.register(
            "raft_proposals_pending",
            "Proposals made on this node and not yet applied",
            self.proposals_pending.clone(),
        );
    }
}

/// Seconds since `t`, for a histogram.
pub(super) fn since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}
