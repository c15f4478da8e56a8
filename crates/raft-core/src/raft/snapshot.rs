//! Snapshots (Raft §7): compacting the log behind one, sending one to a
//! follower that needs compacted entries, and installing one.
//!
//! The bytes travel in `SnapshotChunk`s that the caller streams and paces
//! with `SnapshotAck`s (the protocol only checks their terms and keeps the
//! follower's election timer quiet); the protocol decides when a snapshot
//! is needed and what installing one does to the log and configuration.

use super::Raft;
use crate::error::Error;
use crate::message::{Body, SnapshotMeta};
use crate::progress::ProgressState;
use crate::types::{Index, NodeId, Payload, Role};

impl Raft {
    /// The latest snapshot this node has, if any.
    pub fn snapshot(&self) -> Option<&SnapshotMeta> {
        self.snapshot.as_ref()
    }

    /// The configuration in force as of `index` (for a snapshot's meta).
    pub fn membership_at(&self, index: Index) -> &crate::Membership {
        self.confs.at(index)
    }

    /// The caller durably stored a snapshot of the state machine as of
    /// `meta.index` (at most the applied index). The log is compacted up
    /// to `compact_to` (at most `meta.index`; the caller may keep a tail so
    /// a follower that is only a little behind catches up from the log).
    /// Returns the index the log now starts after.
    pub fn compact(&mut self, meta: SnapshotMeta, compact_to: Index) -> Result<Index, Error> {
        if meta.index > self.log.applied || self.log.term(meta.index) != Some(meta.term) {
            return Err(Error::InvalidSnapshot(format!(
                "snapshot {}/{} is not an applied entry of this log (applied {})",
                meta.term, meta.index, self.log.applied
            )));
        }
        // The same index again is a new copy of the same state (its digest
        // may differ): the latest copy is the one the store holds.
        if self.snapshot.as_ref().is_none_or(|s| s.index <= meta.index) {
            self.snapshot = Some(meta.clone());
        }
        let upto = compact_to.min(meta.index).min(self.log.persisted);
        if upto >= self.log.first_index() {
            self.log.compact_to(upto);
            self.confs.compact_to(upto);
        }
        Ok(self.log.first_index() - 1)
    }

    /// The caller stored snapshot `meta` from the leader durably, reset
    /// its log store to match (`RaftLog::restore_snapshot`'s rule) and
    /// loaded it into the state machine. Tells the leader. Returns false
    /// (and changes nothing) for a snapshot this node no longer needs.
    pub fn restore(&mut self, meta: SnapshotMeta) -> bool {
        if meta.index <= self.log.committed {
            return false;
        }
        self.log.restore_snapshot(meta.index, meta.term);
        self.confs.reset(meta.index, meta.membership.clone());
        for i in self.log.first_index()..=self.log.last_index() {
            if let Some(Payload::Config(m)) = self.log.entry(i).map(|e| &e.payload) {
                let m = m.clone();
                self.confs.push(i, *m);
            }
        }
        self.apply_latest_conf();
        let index = meta.index;
        self.snapshot = Some(meta);
        if let Some(l) = self.leader {
            self.send(
                l,
                Body::AppendResponse {
                    index,
                    reject: None,
                },
            );
        }
        self.check_rebuilt();
        true
    }

    /// Whether the log can be restored to `meta` without losing a
    /// committed entry (for the caller, before it installs).
    pub fn wants_snapshot(&self, meta: &SnapshotMeta) -> bool {
        meta.index > self.log.committed
    }

    /// Follower: acknowledges snapshot `index` stored up to `offset`.
    pub fn snapshot_ack(&mut self, to: NodeId, index: Index, offset: u64) {
        self.send(to, Body::SnapshotAck { index, offset });
    }

    /// Leader: the transfer of a snapshot to `to` failed (the caller gave
    /// up on it); the peer is probed again, which starts a new transfer if
    /// it still needs one.
    pub fn report_snapshot(&mut self, to: NodeId, ok: bool) {
        if ok || self.role != Role::Leader {
            return;
        }
        if let Some(p) = self.tracker.progress.get_mut(&to)
            && p.state == ProgressState::Snapshot
        {
            p.become_probe();
        }
    }

    pub(super) fn start_snapshot(&mut self, to: NodeId) {
        let Some(meta) = self.snapshot.clone() else {
            panic!("invariant broken: the log was compacted without a snapshot (peer {to})");
        };
        let p = self.tracker.progress.get_mut(&to).expect("member");
        p.become_snapshot(meta.index);
        self.send_snapshots.push((to, meta));
    }

    /// Leader: the highest index every member (this node included) has
    /// applied.
    pub(super) fn update_all_applied(&mut self) {
        let me = self.id;
        let mine = self.log.applied;
        self.all_applied = self
            .tracker
            .progress
            .iter()
            .map(|(&id, p)| if id == me { mine } else { p.applied })
            .min()
            .unwrap_or(mine)
            .min(mine);
    }
}
