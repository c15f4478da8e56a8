//! Cluster membership: the configuration in force, the changes an operator
//! asks for, and the history of configurations in the log.
//!
//! A configuration takes effect as soon as its entry is in a node's log,
//! committed or not (Raft §6): a node always uses the latest one it holds,
//! so a restarted node needs no commit index to know its cluster. A voter
//! set change goes through joint consensus: the leader appends a joint
//! configuration (old and new voters must both agree), and once that
//! commits, appends the new one alone.

use crate::error::Error;
use crate::types::{Index, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The voters and learners of a cluster, and where to reach each member.
///
/// Invariant: `voters`, `learners` and `learners_next` are disjoint, and
/// `learners_next` is a subset of `outgoing`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The voters (the incoming ones during a joint change).
    pub voters: BTreeSet<NodeId>,
    /// The previous voters while a change is in joint consensus; empty
    /// otherwise.
    pub outgoing: BTreeSet<NodeId>,
    /// Members that receive the log but neither vote nor count for commit.
    pub learners: BTreeSet<NodeId>,
    /// Outgoing voters that become learners when the joint phase ends (a
    /// node cannot be a voter and a learner at once).
    pub learners_next: BTreeSet<NodeId>,
    /// Each member's address as given when it was added. Opaque to the
    /// protocol; the transport reads it.
    pub addresses: BTreeMap<NodeId, String>,
    /// The storage id of each voter whose storage the leader has heard of
    /// (`InitialState::storage`), published by the leader once it hears
    /// from the voter. A message from a node id whose storage differs is
    /// answered `Body::Replaced` and otherwise ignored; a node that finds
    /// another storage recorded for itself stops. Kept for voters only: a
    /// learner counts for nothing, so it may be rebuilt freely.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub storage: BTreeMap<NodeId, u64>,
}

/// One change an operator asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfChange {
    /// Makes `id` a voter (promoting it if it is a learner).
    AddVoter {
        /// The node.
        id: NodeId,
        /// Its peer address.
        address: String,
    },
    /// Makes `id` a learner (demoting it if it is a voter).
    AddLearner {
        /// The node.
        id: NodeId,
        /// Its peer address.
        address: String,
    },
    /// Removes `id`, voter or learner.
    Remove {
        /// The node.
        id: NodeId,
    },
}

impl Membership {
    /// A cluster of `voters`, with no addresses.
    pub fn new(voters: impl IntoIterator<Item = NodeId>) -> Self {
        Membership {
            voters: voters.into_iter().collect(),
            ..Default::default()
        }
    }

    /// Whether a change is in joint consensus (old and new voters both decide).
    pub fn is_joint(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Whether `id` votes in either half of the configuration.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.outgoing.contains(&id)
    }

    /// Every member: voters of both halves and learners of both phases.
    pub fn members(&self) -> BTreeSet<NodeId> {
        let mut all = self.voters.clone();
        all.extend(&self.outgoing);
        all.extend(&self.learners);
        all.extend(&self.learners_next);
        all
    }

    /// The member at `address`, if any: one address is one member (`apply`
    /// refuses a second). An empty address, as in-process tests use, names
    /// nobody.
    pub fn member_at(&self, address: &str) -> Option<NodeId> {
        let members = self.members();
        self.addresses
            .iter()
            .find(|(o, a)| !address.is_empty() && a.as_str() == address && members.contains(o))
            .map(|(o, _)| *o)
    }

    /// The configuration `changes` lead to from this one: joint when the
    /// voter set changes, simple when only learners do.
    pub fn apply(&self, changes: &[ConfChange]) -> Result<Membership, Error> {
        let bad = |why: String| Err(Error::InvalidConfChange(why));
        if self.is_joint() {
            return Err(Error::ConfChangeInProgress);
        }
        if changes.is_empty() {
            return bad("no change given".into());
        }
        let mut next = self.clone();
        for c in changes {
            match c {
                ConfChange::AddVoter { id, address } => {
                    if *id == 0 {
                        return bad("node id 0 is reserved".into());
                    }
                    if next.voters.contains(id) {
                        return bad(format!("node {id} is already a voter"));
                    }
                    if let Some(other) = next.member_at(address).filter(|o| o != id) {
                        return bad(format!("{address} is already member {other}'s address"));
                    }
                    next.learners.remove(id);
                    next.voters.insert(*id);
                    next.addresses.insert(*id, address.clone());
                }
                ConfChange::AddLearner { id, address } => {
                    if *id == 0 {
                        return bad("node id 0 is reserved".into());
                    }
                    if next.learners.contains(id) {
                        return bad(format!("node {id} is already a learner"));
                    }
                    if let Some(other) = next.member_at(address).filter(|o| o != id) {
                        return bad(format!("{address} is already member {other}'s address"));
                    }
                    next.voters.remove(id);
                    next.learners.insert(*id);
                    next.addresses.insert(*id, address.clone());
                    next.storage.remove(id);
                }
                ConfChange::Remove { id } => {
                    if !next.voters.remove(id) && !next.learners.remove(id) {
                        return bad(format!("node {id} is not a member"));
                    }
                }
            }
        }
        if next.voters.is_empty() {
            return bad("a cluster needs at least one voter".into());
        }
        if next.voters != self.voters {
            next.outgoing = self.voters.clone();
            // Outgoing voters keep voting until the joint phase ends; those
            // demoted to learners become learners only then.
            let demoted: Vec<NodeId> = next
                .learners
                .iter()
                .copied()
                .filter(|id| next.outgoing.contains(id))
                .collect();
            for id in demoted {
                next.learners.remove(&id);
                next.learners_next.insert(id);
            }
        }
        if next == *self {
            return bad("the configuration would not change".into());
        }
        next.forget_non_members();
        Ok(next)
    }

    /// The configuration that ends this joint phase.
    pub fn leave_joint(&self) -> Membership {
        let mut next = self.clone();
        next.outgoing.clear();
        let demoted = std::mem::take(&mut next.learners_next);
        next.learners.extend(demoted);
        next.forget_non_members();
        next
    }

    fn forget_non_members(&mut self) {
        let members = self.members();
        self.addresses.retain(|id, _| members.contains(id));
        let voters: BTreeSet<NodeId> = self.voters.union(&self.outgoing).copied().collect();
        self.storage.retain(|id, _| voters.contains(id));
    }

    /// This configuration with `found` (voters' storage ids) recorded,
    /// if that records anything new: a voter's recorded id is never
    /// replaced here (only demoting or removing it forgets it).
    pub fn with_storage(&self, found: &BTreeMap<NodeId, u64>) -> Option<Membership> {
        let mut next = self.clone();
        for (&id, &s) in found {
            if s != 0 && self.is_voter(id) {
                next.storage.entry(id).or_insert(s);
            }
        }
        (next != *self).then_some(next)
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.voters.is_empty() {
            return Err("a cluster needs at least one voter".into());
        }
        if self.members().contains(&0) {
            return Err("node id 0 is reserved".into());
        }
        let both = |a: &BTreeSet<NodeId>, b: &BTreeSet<NodeId>| a.intersection(b).next().copied();
        if let Some(id) = both(&self.voters, &self.learners)
            .or_else(|| both(&self.outgoing, &self.learners))
            .or_else(|| both(&self.voters, &self.learners_next))
        {
            return Err(format!("node {id} is both a voter and a learner"));
        }
        if !self.learners_next.is_subset(&self.outgoing) {
            return Err("a pending learner is not an outgoing voter".into());
        }
        Ok(())
    }
}

impl std::fmt::Display for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |s: &BTreeSet<NodeId>| {
            s.iter()
                .map(|id| id.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        write!(f, "voters=[{}]", list(&self.voters))?;
        if self.is_joint() {
            write!(f, "&&[{}]", list(&self.outgoing))?;
        }
        if !self.learners.is_empty() {
            write!(f, " learners=[{}]", list(&self.learners))?;
        }
        if !self.learners_next.is_empty() {
            write!(f, " learners_next=[{}]", list(&self.learners_next))?;
        }
        if !self.storage.is_empty() {
            let ids: Vec<String> = self
                .storage
                .iter()
                .map(|(n, s)| format!("{n}:{s}"))
                .collect();
            write!(f, " storage=[{}]", ids.join(","))?;
        }
        Ok(())
    }
}

/// The configurations a node's log holds: the one in force at the start
/// of the log (from storage or a snapshot) and each configuration entry
/// after it.
///
/// Invariant: `later` is sorted by index, every index above `base.0`.
#[derive(Clone, Debug)]
pub(crate) struct ConfLog {
    /// Shared, so the status published every round takes the latest one
    /// without copying it.
    base: (Index, Arc<Membership>),
    later: Vec<(Index, Arc<Membership>)>,
}

impl ConfLog {
    pub(crate) fn new(index: Index, m: Membership) -> Self {
        ConfLog {
            base: (index, Arc::new(m)),
            later: Vec::new(),
        }
    }

    /// The latest configuration and the index of its entry.
    pub(crate) fn latest(&self) -> (Index, &Membership) {
        let (i, m) = self.latest_shared();
        (i, m)
    }

    /// The latest configuration, shared.
    pub(crate) fn latest_shared(&self) -> (Index, &Arc<Membership>) {
        let (i, m) = self.later.last().unwrap_or(&self.base);
        (*i, m)
    }

    /// The configuration in force as of `index`.
    pub(crate) fn at(&self, index: Index) -> &Membership {
        self.at_shared(index)
    }

    fn at_shared(&self, index: Index) -> &Arc<Membership> {
        self.later
            .iter()
            .rev()
            .find(|(i, _)| *i <= index)
            .map_or(&self.base.1, |(_, m)| m)
    }

    /// Every configuration in force at some index in `lo..=hi`.
    pub(crate) fn in_force_between(
        &self,
        lo: Index,
        hi: Index,
    ) -> impl Iterator<Item = &Membership> {
        let later = self.later.iter().filter(move |(i, _)| *i > lo && *i <= hi);
        std::iter::once(self.at(lo)).chain(later.map(|(_, m)| &**m))
    }

    /// Records the configuration entry at `index`; one at or below the
    /// base is older than the base and ignored.
    pub(crate) fn push(&mut self, index: Index, m: Membership) {
        if index <= self.base.0 {
            return;
        }
        assert!(
            index > self.latest().0,
            "invariant broken: configuration entries come in log order"
        );
        self.later.push((index, Arc::new(m)));
    }

    /// The log lost its entries from `index` on.
    pub(crate) fn truncate_from(&mut self, index: Index) {
        self.later.retain(|(i, _)| *i < index);
    }

    /// The log dropped its entries up to `index` (a snapshot covers them).
    pub(crate) fn compact_to(&mut self, index: Index) {
        if index <= self.base.0 {
            return;
        }
        let m = self.at_shared(index).clone();
        self.later.retain(|(i, _)| *i > index);
        self.base = (index, m);
    }

    /// Replaces everything with `m` in force as of `index` (a snapshot
    /// was installed).
    pub(crate) fn reset(&mut self, index: Index, m: Membership) {
        *self = ConfLog::new(index, m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(id: NodeId) -> ConfChange {
        ConfChange::AddVoter {
            id,
            address: format!("n{id}"),
        }
    }

    /// One address is one member: adding another id at a member's
    /// address is refused (it made a phantom member the cluster waited on
    /// for good, and removal by address then removed the phantom).
    #[test]
    fn an_address_names_one_member() {
        let learner = |id, address: &str| ConfChange::AddLearner {
            id,
            address: address.into(),
        };
        let m = Membership::new([1, 2]).apply(&[learner(3, "n3")]).unwrap();
        let twin = m.apply(&[learner(9, "n3")]);
        assert!(
            matches!(&twin, Err(Error::InvalidConfChange(w)) if w.contains("n3")),
            "{twin:?}"
        );
        let twin = m.apply(&[add(9)]).map(|j| j.leave_joint());
        assert!(twin.is_ok(), "another address is fine");
        // The member itself at its own address (a promotion) is fine, and
        // a removed member's address is free again.
        assert!(m.apply(&[add(3)]).is_ok());
        let gone = m.apply(&[ConfChange::Remove { id: 3 }]).unwrap();
        assert!(gone.apply(&[learner(9, "n3")]).is_ok());
    }

    #[test]
    fn voter_changes_go_joint_and_leave() {
        let m = Membership::new([1, 2, 3]);
        let j = m.apply(&[add(4), ConfChange::Remove { id: 1 }]).unwrap();
        assert!(j.is_joint());
        assert_eq!(j.to_string(), "voters=[2,3,4]&&[1,2,3]");
        assert_eq!(j.apply(&[add(5)]), Err(Error::ConfChangeInProgress));
        let done = j.leave_joint();
        assert_eq!(done.to_string(), "voters=[2,3,4]");
        assert_eq!(done.addresses.keys().copied().collect::<Vec<_>>(), [4]);
    }

    #[test]
    fn learners_change_without_joint_phase() {
        let m = Membership::new([1, 2, 3]);
        let l = m
            .apply(&[ConfChange::AddLearner {
                id: 4,
                address: "n4".into(),
            }])
            .unwrap();
        assert!(!l.is_joint());
        assert_eq!(l.to_string(), "voters=[1,2,3] learners=[4]");
        // Promotion changes the voters, so it is joint.
        let p = l.apply(&[add(4)]).unwrap();
        assert_eq!(p.to_string(), "voters=[1,2,3,4]&&[1,2,3]");
        assert!(p.validate().is_ok());
    }

    #[test]
    fn demotion_waits_for_the_joint_phase_to_end() {
        let m = Membership::new([1, 2, 3]);
        let d = m
            .apply(&[ConfChange::AddLearner {
                id: 3,
                address: "n3".into(),
            }])
            .unwrap();
        assert_eq!(d.to_string(), "voters=[1,2]&&[1,2,3] learners_next=[3]");
        assert!(d.validate().is_ok());
        assert_eq!(d.leave_joint().to_string(), "voters=[1,2] learners=[3]");
    }

    #[test]
    fn bad_changes_are_refused() {
        let m = Membership::new([1]);
        for bad in [
            vec![ConfChange::Remove { id: 1 }],
            vec![ConfChange::Remove { id: 9 }],
            vec![add(1)],
            vec![add(0)],
            vec![],
        ] {
            assert!(
                matches!(m.apply(&bad), Err(Error::InvalidConfChange(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn conf_log_follows_truncation_and_compaction() {
        let mut c = ConfLog::new(0, Membership::new([1]));
        c.push(5, Membership::new([1, 2]));
        c.push(9, Membership::new([1, 2, 3]));
        assert_eq!(c.at(7), &Membership::new([1, 2]));
        c.truncate_from(9);
        assert_eq!(c.latest(), (5, &Membership::new([1, 2])));
        c.compact_to(6);
        assert_eq!(c.latest(), (6, &Membership::new([1, 2])));
        c.truncate_from(6);
        assert_eq!(c.latest().0, 6, "the base is never truncated");
    }

    #[test]
    fn a_removed_member_leaves_no_address_or_storage() {
        let mut m = Membership::new([1, 2])
            .apply(&[add(3)])
            .unwrap()
            .leave_joint();
        m.storage = BTreeMap::from([(1, 11), (3, 33)]);
        let gone = m.apply(&[ConfChange::Remove { id: 3 }]).unwrap();
        assert_eq!(gone.storage.get(&3), Some(&33), "still an outgoing voter");
        assert!(gone.addresses.contains_key(&3));
        let done = gone.leave_joint();
        assert!(!done.storage.contains_key(&3), "{done:?}");
        assert!(!done.addresses.contains_key(&3), "{done:?}");
        assert_eq!(done.storage.get(&1), Some(&11));
    }

    #[test]
    fn storage_is_recorded_for_voters_once() {
        let m = Membership::new([1, 2])
            .apply(&[ConfChange::AddLearner {
                id: 3,
                address: "n3".into(),
            }])
            .unwrap();
        assert_eq!(m.with_storage(&BTreeMap::from([(3, 7)])), None, "a learner");
        assert_eq!(m.with_storage(&BTreeMap::from([(1, 0)])), None, "no id");
        let r = m.with_storage(&BTreeMap::from([(1, 7)])).expect("new");
        assert_eq!(r.storage, BTreeMap::from([(1, 7)]));
        assert_eq!(r.with_storage(&BTreeMap::from([(1, 8)])), None, "kept");
    }

    #[test]
    fn invalid_configurations_are_named() {
        let mut m = Membership::new([1, 2]);
        assert!(m.validate().is_ok());
        m.learners.insert(2);
        assert!(m.validate().unwrap_err().contains("node 2"));
        let mut m = Membership::new([1, 2]);
        m.learners_next.insert(3);
        assert!(m.validate().unwrap_err().contains("pending learner"));
        assert!(Membership::new([0, 1]).validate().is_err());
        assert!(Membership::new([]).validate().is_err());
    }

    #[test]
    fn in_force_between_is_the_configurations_of_that_range() {
        let mut c = ConfLog::new(0, Membership::new([1]));
        c.push(5, Membership::new([1, 2]));
        c.push(9, Membership::new([1, 2, 3]));
        let got =
            |lo, hi| -> Vec<usize> { c.in_force_between(lo, hi).map(|m| m.voters.len()).collect() };
        assert_eq!(got(5, 7), [2]);
        assert_eq!(got(4, 9), [1, 2, 3]);
        assert_eq!(got(1, 3), [1]);
    }

    #[test]
    fn reset_replaces_every_configuration() {
        let mut c = ConfLog::new(0, Membership::new([1]));
        c.push(5, Membership::new([1, 2]));
        c.reset(3, Membership::new([7]));
        assert_eq!(c.latest(), (3, &Membership::new([7])));
        assert_eq!(c.at(9), &Membership::new([7]));
    }
}
