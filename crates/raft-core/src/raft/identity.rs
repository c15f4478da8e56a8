//! Storage identity: telling a node id whose storage was lost (a wiped
//! disk) from the one the cluster knew, so a node never votes under an id
//! that may have voted before with state it no longer has.
//!
//! Every storage draws a random id when it is created
//! (`InitialState::storage`), and every message carries its sender's. A
//! leader records each voter's id in the configuration
//! (`Membership::storage`): in the first entry of its term for the voters
//! that elected it, later for the others once it hears from them. Then a
//! message from a node id whose recorded storage differs is ignored and
//! answered `Body::Replaced`, and a node told so (or that finds another id
//! recorded for itself in its log) stops: `Status::replaced`. So a wiped
//! member's vote is never counted by a node whose log records the member,
//! and every node that holds the first entry of a term the member voted
//! in (or any entry after it) does.
//!
//! What is left: a vote given before the voter's id was recorded anywhere
//! (the term that elected the first leader, until its first entry
//! arrives), and a candidate whose log predates the record (a member down
//! since the cluster began). Both need the wipe to come within the first
//! round trips of a cluster's life.
//!
//! A member being rebuilt (`Config::rebuilding`) is told `Replaced` until
//! the leader demotes it (demotion forgets the recorded id), and ignores
//! it.

use super::Raft;
use crate::membership::Membership;
use crate::message::{Body, Message};
use crate::types::{NodeId, Payload, Role};

/// Why a node stopped: its storage is not the one the cluster knows for
/// its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replaced {
    /// The member that said so (`None`: this node's own log records the
    /// other id).
    pub peer: Option<NodeId>,
    /// The storage id recorded for this node's id.
    pub known: u64,
    /// This node's own storage id.
    pub ours: u64,
}

impl Raft {
    /// The first check of every message: `false` if it is to be ignored
    /// (its sender's storage is not the recorded one, or it was a
    /// `Replaced` notice, handled here).
    pub(super) fn admit_storage(&mut self, m: &Message) -> bool {
        if let Body::Replaced { known } = m.body {
            self.on_replaced(Some(m.from), known);
            return false;
        }
        if m.storage == 0 {
            return true;
        }
        match self.confs.latest().1.storage.get(&m.from) {
            Some(&known) if known != m.storage => {
                self.send(m.from, Body::Replaced { known });
                false
            }
            _ => {
                if self.peer_storage.get(&m.from) != Some(&m.storage) {
                    self.peer_storage.insert(m.from, m.storage);
                }
                true
            }
        }
    }

    /// Stops this node if its latest configuration records another
    /// storage id for it.
    pub(super) fn check_own_storage(&mut self) {
        if let Some(&known) = self.confs.latest().1.storage.get(&self.id) {
            self.on_replaced(None, known);
        }
    }

    fn on_replaced(&mut self, peer: Option<NodeId>, known: u64) {
        if self.storage == 0 || known == self.storage || self.rebuilding || self.replaced.is_some()
        {
            return;
        }
        self.replaced = Some(Replaced {
            peer,
            known,
            ours: self.storage,
        });
        self.become_follower(self.term, None);
    }

    /// Leader: records in the configuration the storage ids of voters
    /// (itself included) it has heard from and that are not recorded yet,
    /// once no other configuration change is pending.
    pub(super) fn publish_storage(&mut self) {
        if self.role != Role::Leader || self.transferee.is_some() {
            return;
        }
        let index = self.confs.latest().0;
        let committed = self.log.committed;
        if index > committed || self.log.term(committed) != Some(self.term) {
            return;
        }
        if let Some(next) = self.storage_recorded() {
            self.append_entries(vec![Payload::Config(Box::new(next))]);
            self.bcast_append(false);
        }
    }

    /// The latest configuration with the storage ids of the voters heard
    /// from recorded, if that records any (never in a joint phase).
    pub(super) fn storage_recorded(&self) -> Option<Membership> {
        let conf = self.confs.latest().1;
        let missing = self
            .peer_storage
            .iter()
            .any(|(id, s)| *s != 0 && conf.is_voter(*id) && !conf.storage.contains_key(id));
        if !missing || conf.is_joint() {
            return None;
        }
        conf.with_storage(&self.peer_storage)
    }
}

#[cfg(test)]
mod tests {
    use super::Replaced;
    use crate::Raft;
    use crate::config::InitialState;
    use crate::membership::{ConfChange, Membership};
    use crate::message::{Body, Message};
    use crate::raft::testkit::{leader, msg, node_from, persist, round, vote_granted};
    use crate::types::Payload;

    /// A node whose own log records another storage id for it stops at
    /// its next tick: it is not the member the cluster knows.
    #[test]
    fn a_node_its_log_says_was_replaced_stops() {
        let mut m = Membership::new([1, 2, 3]);
        m.storage.insert(2, 5);
        let state = InitialState {
            storage: 9,
            membership: m,
            ..Default::default()
        };
        let mut r = node_from(2, state, |_| {});
        r.tick();
        let want = Replaced {
            peer: None,
            known: 5,
            ours: 9,
        };
        assert_eq!(r.replaced(), Some(want));
    }

    /// Leader 1 hears node 2 (storage 22) answer a heartbeat.
    fn hear_storage(r: &mut Raft) {
        let body = Body::HeartbeatResponse {
            read_round: 0,
            applied: 0,
        };
        r.step(Message {
            storage: 22,
            ..msg(2, 1, 1, body)
        });
    }

    fn recorded(r: &Raft) -> Option<u64> {
        r.membership().1.storage.get(&2).copied()
    }

    /// The record of a storage id is a configuration change: never
    /// proposed during a leadership transfer, only after it.
    #[test]
    fn no_storage_id_is_recorded_during_a_transfer() {
        let mut r = leader(|_| {});
        hear_storage(&mut r);
        r.transfer_leader(3).unwrap();
        for _ in 0..10 {
            round(&mut r);
            assert_eq!(recorded(&r), None, "recorded during the transfer");
        }
        round(&mut r);
        assert_eq!(recorded(&r), Some(22), "not recorded after the transfer");
    }

    /// Nor while another configuration change is pending.
    #[test]
    fn no_storage_id_is_recorded_while_a_change_is_pending() {
        let mut r = leader(|_| {});
        let learner = ConfChange::AddLearner {
            id: 4,
            address: "h4".into(),
        };
        r.propose_conf_change(&[learner]).unwrap();
        persist(&mut r);
        hear_storage(&mut r);
        r.tick();
        assert_eq!(
            r.log().last_index(),
            2,
            "a second change while one is pending"
        );
    }

    /// Nor in a joint configuration: a leader elected during a joint
    /// phase starts its term with a no-op, not with a record.
    #[test]
    fn no_storage_id_is_recorded_in_a_joint_phase() {
        let mut joint = Membership::new([1, 2, 3]);
        joint.outgoing = [1, 2, 4].into();
        let state = InitialState {
            membership: joint,
            ..Default::default()
        };
        let mut r = node_from(1, state, |_| {});
        r.campaign().unwrap();
        persist(&mut r);
        r.step(Message {
            storage: 22,
            ..vote_granted(2, 1)
        });
        let rd = persist(&mut r);
        let first = rd.entries.first().map(|e| &e.payload);
        assert!(
            matches!(first, Some(Payload::Noop)),
            "the term began with a record"
        );
    }
}
