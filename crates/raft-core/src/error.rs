//! Errors the protocol returns to its caller.

use crate::types::NodeId;

/// Why the protocol refused a request. Refusals never change state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Only the leader does this.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader this node knows of.
        leader: Option<NodeId>,
    },
    /// A leadership transfer to this node is in progress: proposals and
    /// other transfers are refused until it ends.
    #[error("a leadership transfer to node {0} is in progress")]
    TransferInProgress(NodeId),
    /// A transfer to a node that does not vote.
    #[error("node {0} is not a voter of this cluster")]
    NotAVoter(NodeId),
    /// A transfer to a passive node, which never leads.
    #[error("node {0} is passive and can never lead")]
    IneligibleTarget(NodeId),
    /// A campaign asked of a passive node.
    #[error("this node is passive and never campaigns")]
    Passive,
    /// A mode name that is not active, reluctant or passive.
    #[error("unknown mode {0:?} (expected active, reluctant or passive)")]
    UnknownMode(String),
    /// Another membership change is not finished (or this leader has
    /// not committed an entry of its term yet); retry once it is.
    #[error("a membership change is in progress; try again once it completes")]
    ConfChangeInProgress,
    /// A change that cannot apply to the configuration in force.
    #[error("invalid membership change: {0}")]
    InvalidConfChange(String),
    /// A snapshot that is not of an applied entry of this log.
    #[error("invalid snapshot: {0}")]
    InvalidSnapshot(String),
    /// Settings that make no sense (`Config::validate`).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A starting state that cannot be right (a bad configuration,
    /// entries out of place or with terms out of order).
    #[error("invalid initial state: {0}")]
    InvalidState(String),
}
