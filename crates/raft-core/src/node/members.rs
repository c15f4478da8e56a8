//! Membership operations on the node handle: a change that returns once
//! it is fully in force, and adding a voter the safe way (as a learner
//! first, promoted once caught up, so a slow newcomer never holds back
//! commits).

use super::{Command, Node, NodeError};
use crate::membership::ConfChange;
use crate::types::{Index, NodeId};
use std::time::Duration;

impl<O: Send + 'static> Node<O> {
    /// Changes the members (leader only) and answers once the new
    /// configuration is committed and any joint phase it needed is over,
    /// with the index of the configuration in force.
    pub async fn change_membership(&self, changes: Vec<ConfChange>) -> Result<Index, NodeError> {
        let index = self.call(|r| Command::ChangeConf(changes, r)).await?;
        let mut rx = self.status.clone();
        let done = rx.wait_for(|s| {
            s.failed.is_some()
                || (s.raft.conf_index >= index
                    && s.raft.conf_index <= s.raft.commit
                    && !s.raft.membership.is_joint())
        });
        match tokio::time::timeout(self.timeout, done).await {
            Ok(Ok(s)) => match &s.failed {
                Some(f) => Err(NodeError::Storage(f.clone())),
                None => Ok(s.raft.conf_index),
            },
            Ok(Err(_)) => Err(NodeError::ShuttingDown),
            Err(_) => Err(self.timeout_error()),
        }
    }

    /// Adds `id` as a voter: as a learner first, then, once its log has
    /// caught up with the commit index (within `catch_up`), promoted.
    /// Doing nothing when it already is a voter makes retries safe.
    pub async fn add_voter(
        &self,
        id: NodeId,
        address: String,
        catch_up: Duration,
    ) -> Result<Index, NodeError> {
        let s = self.status();
        let m = &s.raft.membership;
        if m.voters.contains(&id) && !m.is_joint() {
            return Ok(s.raft.conf_index);
        }
        if !m.learners.contains(&id) {
            self.change_membership(vec![ConfChange::AddLearner {
                id,
                address: address.clone(),
            }])
            .await?;
        }
        let target = self.status().raft.commit;
        let mut rx = self.status.clone();
        let caught_up = rx.wait_for(|s| {
            !s.is_leader()
                || s.raft
                    .peers
                    .iter()
                    .any(|p| p.id == id && p.matched >= target)
        });
        match tokio::time::timeout(catch_up, caught_up).await {
            Ok(Ok(s)) if !s.is_leader() => {
                return Err(match s.raft.leader {
                    None => NodeError::NoLeader,
                    leader => NodeError::NotLeader { leader },
                });
            }
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return Err(NodeError::ShuttingDown),
            Err(_) => {
                return Err(NodeError::NotCaughtUp {
                    id,
                    waited: catch_up,
                });
            }
        }
        self.change_membership(vec![ConfChange::AddVoter { id, address }])
            .await
    }
}
