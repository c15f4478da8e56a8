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
