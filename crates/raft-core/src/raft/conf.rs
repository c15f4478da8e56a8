//! Membership changes (Raft §6): proposing one, following the
//! configurations in the log, leaving a joint phase once it commits, and
//! a leader stepping down once its own removal commits.

use super::Raft;
use crate::error::Error;
use crate::membership::{ConfChange, Membership};
use crate::message::Body;
use crate::types::{Entry, Index, Payload, Role};

impl Raft {
    /// The latest configuration in this node's log (in force, committed or
    /// not) and the index of its entry.
    pub fn membership(&self) -> (Index, &Membership) {
        self.confs.latest()
    }

    /// Proposes a change of members. Voter changes go through a joint
    /// configuration, left automatically once it commits. Refused while a
    /// change is in progress or before this leader has committed an entry
    /// of its own term (so no configuration of an earlier term is still
    /// pending). Returns the index of the configuration entry.
    pub fn propose_conf_change(&mut self, changes: &[ConfChange]) -> Result<Index, Error> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader {
                leader: self.leader,
            });
        }
        if let Some(t) = self.transferee {
            return Err(Error::TransferInProgress(t));
        }
        let (index, conf) = self.confs.latest();
        let committed = self.log.committed;
        if index > committed || self.log.term(committed) != Some(self.term) {
            return Err(Error::ConfChangeInProgress);
        }
        let next = conf.apply(changes)?;
        self.append_entries(vec![Payload::Config(Box::new(next))]);
        self.bcast_append(false);
        Ok(self.log.last_index())
    }

    /// Records the configuration entries among `entries`, just appended by
    /// this leader.
    pub(super) fn confs_appended(&mut self, entries: &[Entry]) {
        let mut changed = false;
        for e in entries {
            if let Payload::Config(m) = &e.payload {
                self.confs.push(e.index, (**m).clone());
                changed = true;
            }
        }
        if changed {
            self.apply_latest_conf();
        }
    }

    /// A follower's log now holds `entries` after `prev_index` (and
    /// nothing after `last_new` if it had to replace a conflicting
    /// suffix): brings the configuration history in line.
    pub(super) fn confs_after_follower_append(
        &mut self,
        prev_index: Index,
        last_new: Index,
        entries: &[Entry],
    ) {
        if self.log.last_index() != last_new {
            // The log is longer and matched every entry: nothing changed.
            return;
        }
        let before = self.confs.latest().0;
        self.confs.truncate_from(prev_index + 1);
        for e in entries {
            if let Payload::Config(m) = &e.payload {
                self.confs.push(e.index, (**m).clone());
            }
        }
        let has_conf = entries
            .iter()
            .any(|e| matches!(e.payload, Payload::Config(_)));
        if has_conf || self.confs.latest().0 != before {
            self.apply_latest_conf();
        }
    }

    pub(super) fn apply_latest_conf(&mut self) {
        let conf = self.confs.latest().1.clone();
        self.tracker.apply_conf(&conf, self.log.last_index() + 1);
    }

    /// Leader, after its commit index moved: a committed joint
    /// configuration is left at once; a committed configuration without
    /// this node as a voter makes it step down, handing over to a
    /// caught-up voter so the cluster need not wait for a timeout.
    pub(super) fn after_commit(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let (index, conf) = self.confs.latest();
        if index > self.log.committed {
            return;
        }
        if conf.is_joint() {
            let next = conf.leave_joint();
            self.append_entries(vec![Payload::Config(Box::new(next))]);
            self.bcast_append(false);
        } else if !conf.voters.contains(&self.id) {
            let last = self.log.last_index();
            let heir = self
                .tracker
                .progress
                .iter()
                .find(|(id, p)| conf.voters.contains(id) && p.matched == last)
                .map(|(&id, _)| id);
            if let Some(heir) = heir {
                self.send(heir, Body::TimeoutNow);
            }
            self.become_follower(self.term, None);
        }
    }
}
