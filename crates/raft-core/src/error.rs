//! Errors the protocol returns to its caller.

use crate::types::NodeId;

/// Why the protocol refused a request. Refusals never change state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    #[error("a leadership transfer to node {0} is in progress")]
    TransferInProgress(NodeId),
    #[error("node {0} is not a voter of this cluster")]
    NotAVoter(NodeId),
    #[error("node {0} is passive and can never lead")]
    IneligibleTarget(NodeId),
    #[error("this node is passive and never campaigns")]
    Passive,
    #[error("unknown mode {0:?} (expected active, reluctant or passive)")]
    UnknownMode(String),
    #[error("a membership change is in progress; try again once it completes")]
    ConfChangeInProgress,
    #[error("invalid membership change: {0}")]
    InvalidConfChange(String),
    #[error("invalid snapshot: {0}")]
    InvalidSnapshot(String),
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    #[error("invalid initial state: {0}")]
    InvalidState(String),
}
