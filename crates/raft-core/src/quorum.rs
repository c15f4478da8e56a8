//! Quorum math, pure: which index a quorum has reached and who won a vote,
//! for a simple majority and for a joint (old + new) configuration.

use crate::types::{Index, NodeId};
use std::collections::BTreeSet;

/// The outcome of a vote, as far as the answers so far decide it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    /// A quorum granted it.
    Won,
    /// A quorum can no longer grant it.
    Lost,
    /// Not decided yet.
    Pending,
}

/// One set of voters deciding by simple majority.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MajorityConfig {
    voters: BTreeSet<NodeId>,
}

impl MajorityConfig {
    /// A configuration of `voters`.
    pub fn new(voters: impl IntoIterator<Item = NodeId>) -> Self {
        MajorityConfig {
            voters: voters.into_iter().collect(),
        }
    }

    /// Its voters.
    pub fn voters(&self) -> &BTreeSet<NodeId> {
        &self.voters
    }

    /// Whether `id` votes.
    pub fn contains(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }

    /// How many vote.
    pub fn len(&self) -> usize {
        self.voters.len()
    }

    /// Whether nobody votes.
    pub fn is_empty(&self) -> bool {
        self.voters.is_empty()
    }

    /// The highest index that a majority has reached. An empty
    /// configuration returns `Index::MAX` so it never holds back a joint
    /// configuration's minimum. Voters without a known index count as 0.
    pub fn committed_index(&self, acked: impl Fn(NodeId) -> Option<Index>) -> Index {
        if self.voters.is_empty() {
            return Index::MAX;
        }
        let mut idx: Vec<Index> = self
            .voters
            .iter()
            .map(|&id| acked(id).unwrap_or(0))
            .collect();
        idx.sort_unstable_by(|a, b| b.cmp(a));
        idx[self.voters.len() / 2]
    }

    /// Tallies `votes` (`Some(true)` granted, `Some(false)` rejected, `None`
    /// not yet answered). An empty configuration wins, for the same reason
    /// as in `committed_index`.
    pub fn vote_result(&self, votes: impl Fn(NodeId) -> Option<bool>) -> VoteResult {
        if self.voters.is_empty() {
            return VoteResult::Won;
        }
        let (mut yes, mut missing) = (0, 0);
        for &id in &self.voters {
            match votes(id) {
                Some(true) => yes += 1,
                Some(false) => {}
                None => missing += 1,
            }
        }
        let q = self.voters.len() / 2 + 1;
        if yes >= q {
            VoteResult::Won
        } else if yes + missing >= q {
            VoteResult::Pending
        } else {
            VoteResult::Lost
        }
    }
}

/// Two majority configurations that must both agree (joint consensus,
/// Raft §6). When no change is in progress `outgoing` is empty and this is
/// just `incoming`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JointConfig {
    /// The new voters.
    pub incoming: MajorityConfig,
    /// The old voters during a change; empty otherwise.
    pub outgoing: MajorityConfig,
}

impl JointConfig {
    /// No change in progress: `voters` alone.
    pub fn simple(voters: impl IntoIterator<Item = NodeId>) -> Self {
        JointConfig {
            incoming: MajorityConfig::new(voters),
            outgoing: MajorityConfig::default(),
        }
    }

    /// Whether `id` votes in either half.
    pub fn contains(&self, id: NodeId) -> bool {
        self.incoming.contains(id) || self.outgoing.contains(id)
    }

    /// Every voter of either half, once.
    pub fn ids(&self) -> BTreeSet<NodeId> {
        self.incoming
            .voters()
            .union(self.outgoing.voters())
            .copied()
            .collect()
    }

    /// The highest index both halves have reached.
    pub fn committed_index(&self, acked: impl Fn(NodeId) -> Option<Index>) -> Index {
        self.incoming
            .committed_index(&acked)
            .min(self.outgoing.committed_index(&acked))
    }

    /// The vote's outcome: both halves must grant it.
    pub fn vote_result(&self, votes: impl Fn(NodeId) -> Option<bool>) -> VoteResult {
        let a = self.incoming.vote_result(&votes);
        let b = self.outgoing.vote_result(&votes);
        match (a, b) {
            (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
            (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
            _ => VoteResult::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// The definition, spelled out: the largest index that more than half of
    /// the voters have reached.
    fn naive_committed(voters: &BTreeSet<NodeId>, acked: &BTreeMap<NodeId, Index>) -> Index {
        if voters.is_empty() {
            return Index::MAX;
        }
        let candidates: BTreeSet<Index> = voters
            .iter()
            .map(|id| acked.get(id).copied().unwrap_or(0))
            .collect();
        candidates
            .into_iter()
            .filter(|&i| {
                let n = voters
                    .iter()
                    .filter(|id| acked.get(id).copied().unwrap_or(0) >= i)
                    .count();
                2 * n > voters.len()
            })
            .max()
            .unwrap_or(0)
    }

    fn naive_vote(voters: &BTreeSet<NodeId>, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
        if voters.is_empty() {
            return VoteResult::Won;
        }
        let yes = voters
            .iter()
            .filter(|id| votes.get(id) == Some(&true))
            .count();
        let no = voters
            .iter()
            .filter(|id| votes.get(id) == Some(&false))
            .count();
        if 2 * yes > voters.len() {
            VoteResult::Won
        } else if 2 * no >= voters.len() {
            VoteResult::Lost
        } else {
            VoteResult::Pending
        }
    }

    fn voters() -> impl Strategy<Value = BTreeSet<NodeId>> {
        proptest::collection::btree_set(1u64..10, 0..8)
    }

    fn acks() -> impl Strategy<Value = BTreeMap<NodeId, Index>> {
        proptest::collection::btree_map(1u64..10, 0u64..20, 0..10)
    }

    fn votes() -> impl Strategy<Value = BTreeMap<NodeId, bool>> {
        proptest::collection::btree_map(1u64..10, any::<bool>(), 0..10)
    }

    proptest! {
        #[test]
        fn majority_committed_matches_definition(v in voters(), a in acks()) {
            let c = MajorityConfig::new(v.iter().copied());
            prop_assert_eq!(c.committed_index(|id| a.get(&id).copied()), naive_committed(&v, &a));
        }

        #[test]
        fn majority_vote_matches_definition(v in voters(), votes in votes()) {
            let c = MajorityConfig::new(v.iter().copied());
            prop_assert_eq!(c.vote_result(|id| votes.get(&id).copied()), naive_vote(&v, &votes));
        }

        #[test]
        fn joint_committed_is_min_of_halves(v1 in voters(), v2 in voters(), a in acks()) {
            let j = JointConfig { incoming: MajorityConfig::new(v1.iter().copied()), outgoing: MajorityConfig::new(v2.iter().copied()) };
            let want = naive_committed(&v1, &a).min(naive_committed(&v2, &a));
            prop_assert_eq!(j.committed_index(|id| a.get(&id).copied()), want);
        }

        #[test]
        fn joint_vote_needs_both_halves(v1 in voters(), v2 in voters(), votes in votes()) {
            let j = JointConfig { incoming: MajorityConfig::new(v1.iter().copied()), outgoing: MajorityConfig::new(v2.iter().copied()) };
            let (a, b) = (naive_vote(&v1, &votes), naive_vote(&v2, &votes));
            let want = if a == VoteResult::Won && b == VoteResult::Won {
                VoteResult::Won
            } else if a == VoteResult::Lost || b == VoteResult::Lost {
                VoteResult::Lost
            } else {
                VoteResult::Pending
            };
            prop_assert_eq!(j.vote_result(|id| votes.get(&id).copied()), want);
        }

        /// Monotonicity: more acknowledgements never lower the committed index.
        #[test]
        fn committed_is_monotone(v in voters(), a in acks(), id in 1u64..10, bump in 0u64..5) {
            let c = MajorityConfig::new(v.iter().copied());
            let before = c.committed_index(|x| a.get(&x).copied());
            let mut b = a.clone();
            *b.entry(id).or_insert(0) += bump;
            prop_assert!(c.committed_index(|x| b.get(&x).copied()) >= before);
        }
    }

    #[test]
    fn examples() {
        let c = MajorityConfig::new([1, 2, 3]);
        let acked = |id| Some([0, 5, 3, 1][id as usize]);
        assert_eq!(c.committed_index(acked), 3);
        assert_eq!(
            c.vote_result(|id| (id == 1).then_some(true)),
            VoteResult::Pending
        );
        assert_eq!(c.vote_result(|id| Some(id != 3)), VoteResult::Won);
        assert_eq!(c.vote_result(|id| Some(id == 3)), VoteResult::Lost);
        // A joint config is held back by its slower half.
        let j = JointConfig {
            incoming: MajorityConfig::new([1, 2, 3]),
            outgoing: MajorityConfig::new([3, 4, 5]),
        };
        let acked = |id| Some([0, 9, 9, 2, 1, 1][id as usize]);
        assert_eq!(j.committed_index(acked), 1);
    }

    #[test]
    fn sizes_and_the_simple_joint_config() {
        let m = MajorityConfig::new([1, 2, 3]);
        assert_eq!((m.len(), m.is_empty()), (3, false));
        let none = MajorityConfig::default();
        assert_eq!((none.len(), none.is_empty()), (0, true));
        let j = JointConfig::simple([4, 5]);
        assert_eq!((j.incoming.len(), j.outgoing.len()), (2, 0));
        assert!(j.incoming.contains(4) && !j.incoming.contains(1));
    }
}
