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

#[cfg(test)]
mod tests {
    use crate::membership::{ConfChange, Membership};
    use crate::message::Body;
    use crate::raft::testkit::{ack, leader, msg, node, persist, sends};
    use crate::types::{Entry, Payload, Role};
    use bytes::Bytes;

    fn entry(term: u64, index: u64, payload: Payload) -> Entry {
        Entry {
            term,
            index,
            payload,
        }
    }

    /// A configuration entry that a new leader's log overwrites is no
    /// longer in force on the follower (§6: a node uses the latest
    /// configuration in its log, committed or not).
    #[test]
    fn an_overwritten_configuration_is_no_longer_in_force() {
        let mut r = node(2, |_| {});
        let four = Membership::new([1, 2, 3, 4]);
        let entries = vec![
            entry(1, 1, Payload::Noop),
            entry(1, 2, Payload::Config(Box::new(four))),
        ];
        let body = Body::Append {
            prev_index: 0,
            prev_term: 0,
            entries,
            commit: 1,
        };
        r.step(msg(1, 2, 1, body));
        assert_eq!(r.voters().len(), 4, "test set-up: 4 joined");
        let body = Body::Append {
            prev_index: 1,
            prev_term: 1,
            entries: vec![entry(2, 2, Payload::Noop)],
            commit: 1,
        };
        r.step(msg(3, 2, 2, body));
        assert_eq!(r.log().last_index(), 2);
        assert_eq!(r.voters(), [1, 2, 3].into());
        assert_eq!(r.membership().1, &Membership::new([1, 2, 3]));
    }

    /// A leader whose removal commits hands over to a voter holding its
    /// whole log: node 3 here, not node 2 (one entry behind), and never
    /// itself.
    #[test]
    fn a_removed_leader_hands_over_to_a_caught_up_voter() {
        let mut r = leader(|_| {});
        r.propose_conf_change(&[ConfChange::Remove { id: 1 }])
            .unwrap();
        persist(&mut r);
        ack(&mut r, 2, 2);
        ack(&mut r, 3, 2);
        persist(&mut r);
        assert_eq!(r.membership().0, 3, "test set-up: the joint phase is left");
        r.propose(Bytes::from_static(b"x")).unwrap();
        persist(&mut r);
        ack(&mut r, 2, 3);
        ack(&mut r, 3, 4);
        assert_eq!(r.role(), Role::Follower, "test set-up: the removal commits");
        let rd = r.ready();
        let told = |to| sends(&rd, to, |b| matches!(b, Body::TimeoutNow));
        assert!(told(3) && !told(2) && !told(1), "{:?}", rd.messages);
    }
}
