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

#[cfg(test)]
mod tests {
    use crate::message::SnapshotMeta;
    use crate::raft::testkit::{ack, leader, persist, reject};
    use crate::{Error, Membership, Raft};
    use bytes::Bytes;

    fn meta(index: u64, term: u64) -> SnapshotMeta {
        SnapshotMeta {
            index,
            term,
            membership: Membership::new([1, 2, 3]),
            digest: None,
        }
    }

    /// Leader 1 with entries 1..=3 committed (3 never acknowledged
    /// beyond the no-op) and applied up to `applied`.
    fn with_three(applied: u64) -> Raft {
        let mut r = leader(|_| {});
        r.propose_batch([Bytes::from_static(b"x"), Bytes::from_static(b"y")])
            .unwrap();
        persist(&mut r);
        ack(&mut r, 2, 3);
        assert_eq!(r.status().commit, 3, "test set-up");
        let last = r.ready().committed.last().map(|e| e.index);
        assert_eq!(last, Some(3), "test set-up: handed out to apply");
        r.on_applied(applied);
        r
    }

    /// A snapshot must be of an applied entry of this log: an index not
    /// applied yet, or a term the log does not hold there, is refused.
    #[test]
    fn compact_refuses_a_snapshot_not_of_this_logs_applied_entries() {
        let mut r = with_three(2);
        let bad = |r: &mut Raft, m| matches!(r.compact(m, 0), Err(Error::InvalidSnapshot(_)));
        assert!(bad(&mut r, meta(3, 1)), "an entry not applied yet");
        assert!(bad(&mut r, meta(2, 7)), "another term at that index");
        assert_eq!(r.compact(meta(2, 1), 2), Ok(2));
    }

    /// A follower installs only a snapshot past its commit index.
    #[test]
    fn only_a_snapshot_past_the_commit_index_is_wanted() {
        let r = with_three(3);
        assert!(!r.wants_snapshot(&meta(3, 1)));
        assert!(r.wants_snapshot(&meta(4, 1)));
    }

    /// Node 3 lost its log after the leader compacted past it: it gets a
    /// snapshot. A transfer reported done leaves it waiting for the
    /// acknowledgement; one reported failed probes it again.
    #[test]
    fn only_a_failed_snapshot_transfer_is_retried() {
        let mut r = with_three(3);
        r.compact(meta(3, 1), 3).unwrap();
        reject(&mut r, 3, 1, None, 1);
        let snapshotting = |r: &Raft| r.status().peers.iter().any(|p| p.id == 3 && p.snapshotting);
        assert!(snapshotting(&r), "test set-up: 3 needs the snapshot");
        assert_eq!(r.ready().send_snapshots.len(), 1);
        r.report_snapshot(3, true);
        assert!(snapshotting(&r), "a finished transfer was abandoned");
        r.report_snapshot(3, false);
        assert!(!snapshotting(&r), "a failed transfer is not retried");
    }
}
