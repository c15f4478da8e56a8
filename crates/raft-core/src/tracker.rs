//! The leader's table of peers: the voter configuration, learners, each
//! peer's progress, and the votes of the current election.

use crate::membership::Membership;
use crate::progress::Progress;
use crate::quorum::{JointConfig, MajorityConfig, VoteResult};
use crate::types::{Index, NodeId};
use std::collections::{BTreeMap, BTreeSet};

/// A leader's view of every member: its progress, who votes, and the votes of an election.
#[derive(Clone, Debug)]
pub struct ProgressTracker {
    /// Who votes (both halves during a change).
    pub voters: JointConfig,
    /// Members that receive the log but do not vote or count for commit.
    pub learners: BTreeSet<NodeId>,
    /// One entry per member, including this node.
    ///
    /// Invariant: the keys are exactly `voters.ids() ∪ learners`.
    pub progress: BTreeMap<NodeId, Progress>,
    votes: BTreeMap<NodeId, bool>,
    max_inflight: usize,
}

impl ProgressTracker {
    /// Progress for every member of `conf`, each with this in-flight window.
    pub fn new(conf: &Membership, max_inflight: usize) -> Self {
        let mut t = ProgressTracker {
            voters: JointConfig::default(),
            learners: BTreeSet::new(),
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            max_inflight,
        };
        t.apply_conf(conf, 1);
        t
    }

    /// Puts `conf` in force: members it adds start with fresh progress
    /// expecting `next`, members it drops lose theirs, the rest keep what
    /// the leader knows of them.
    pub fn apply_conf(&mut self, conf: &Membership, next: Index) {
        self.voters = JointConfig {
            incoming: MajorityConfig::new(conf.voters.iter().copied()),
            outgoing: MajorityConfig::new(conf.outgoing.iter().copied()),
        };
        self.learners = conf.learners.union(&conf.learners_next).copied().collect();
        let members = self.members();
        self.progress.retain(|id, _| members.contains(id));
        for id in members {
            self.progress
                .entry(id)
                .or_insert_with(|| Progress::new(next, self.max_inflight));
        }
    }

    fn members(&self) -> BTreeSet<NodeId> {
        self.voters.ids().union(&self.learners).copied().collect()
    }

    /// Fresh progress for every member, expecting `next` next.
    pub fn reset_progress(&mut self, next: Index) {
        self.progress = self
            .members()
            .into_iter()
            .map(|id| (id, Progress::new(next, self.max_inflight)))
            .collect();
    }

    /// Whether `id` votes.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(id)
    }

    /// The highest index durable on a quorum.
    pub fn committed(&self) -> Index {
        self.voters
            .committed_index(|id| self.progress.get(&id).map(|p| p.matched))
    }

    /// Forgets the votes of the last election.
    pub fn reset_votes(&mut self) {
        self.votes.clear();
    }

    /// Records `id`'s vote (the first one counts) and tallies.
    pub fn record_vote(&mut self, id: NodeId, granted: bool) -> VoteResult {
        self.votes.entry(id).or_insert(granted);
        self.tally()
    }

    /// The election's outcome so far.
    pub fn tally(&self) -> VoteResult {
        self.voters.vote_result(|id| self.votes.get(&id).copied())
    }

    /// Whether a quorum was heard from since the last reset; `self_id` is
    /// always counted.
    pub fn quorum_active(&self, self_id: NodeId) -> bool {
        let r = self.voters.vote_result(|id| {
            Some(id == self_id || self.progress.get(&id).is_some_and(|p| p.recent_active))
        });
        r == VoteResult::Won
    }

    /// Whether a quorum acknowledged ReadIndex round `round` or a later one.
    pub fn read_round_confirmed(&self, round: u64) -> bool {
        self.voters.vote_result(|id| {
            Some(
                self.progress
                    .get(&id)
                    .is_some_and(|p| p.read_round >= round),
            )
        }) == VoteResult::Won
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_counts_voters_only() {
        let mut conf = Membership::new([1, 2, 3]);
        conf.learners.insert(4);
        let mut t = ProgressTracker::new(&conf, 8);
        t.progress.get_mut(&1).unwrap().matched = 5;
        t.progress.get_mut(&4).unwrap().matched = 5;
        assert_eq!(t.committed(), 0, "a learner does not make a quorum");
        t.progress.get_mut(&2).unwrap().matched = 4;
        assert_eq!(t.committed(), 4);
    }

    #[test]
    fn votes_count_once() {
        let mut t = ProgressTracker::new(&Membership::new([1, 2, 3]), 8);
        assert_eq!(t.record_vote(1, true), VoteResult::Pending);
        assert_eq!(t.record_vote(2, false), VoteResult::Pending);
        assert_eq!(
            t.record_vote(2, true),
            VoteResult::Pending,
            "a second answer is ignored"
        );
        assert_eq!(t.record_vote(3, true), VoteResult::Won);
    }
}

#[cfg(test)]
mod conf_tests {
    use super::*;

    #[test]
    fn applying_a_conf_keeps_known_progress() {
        let mut t = ProgressTracker::new(&Membership::new([1, 2, 3]), 8);
        t.progress.get_mut(&2).unwrap().matched = 7;
        let next = Membership::new([1, 2, 3])
            .apply(&[
                crate::ConfChange::Remove { id: 3 },
                crate::ConfChange::AddVoter {
                    id: 4,
                    address: String::new(),
                },
            ])
            .unwrap();
        t.apply_conf(&next, 10);
        assert_eq!(t.progress.keys().copied().collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(t.progress[&2].matched, 7);
        assert_eq!(t.progress[&4].next, 10);
        t.apply_conf(&next.leave_joint(), 10);
        assert_eq!(t.progress.keys().copied().collect::<Vec<_>>(), [1, 2, 4]);
    }
}
