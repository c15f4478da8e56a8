//! The plain data the protocol works on: ids, entries, hard state, modes.

use crate::membership::Membership;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A node's identity within one cluster. `0` is never a valid id.
pub type NodeId = u64;
/// A Raft term. Terms start at 0 on a fresh node; the first election makes 1.
pub type Term = u64;
/// A log index. Index 0 is the empty prefix; the first real entry is 1.
pub type Index = u64;

/// What an entry carries.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// Appended by every new leader so it can commit entries of its term
    /// (Raft §5.4.2, §8: the no-op).
    Noop,
    /// Application data, opaque to the protocol.
    Normal(Bytes),
    /// A new cluster configuration, in force from the moment a node
    /// appends it (see `membership`). Boxed: inline it made every entry
    /// three times larger, and entries are moved and cloned on every path.
    Config(Box<Membership>),
}

/// One log entry.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The term it was proposed in.
    pub term: Term,
    /// Its place in the log.
    pub index: Index,
    /// What it carries.
    pub payload: Payload,
}

impl Entry {
    /// Bytes this entry counts for in message size limits.
    pub fn size(&self) -> usize {
        let data = match &self.payload {
            Payload::Noop => 0,
            Payload::Normal(b) => b.len(),
            Payload::Config(m) => {
                16 * m.members().len() + m.addresses.values().map(String::len).sum::<usize>()
            }
        };
        16 + data
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} ", self.term, self.index)?;
        match &self.payload {
            Payload::Noop => write!(f, "noop"),
            Payload::Normal(b) => write!(f, "{:?}", String::from_utf8_lossy(b)),
            Payload::Config(m) => write!(f, "conf {m}"),
        }
    }
}

/// The state that must be durable before the node answers a vote or an
/// append: losing `term` or `vote` could let a node vote twice in a term.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: Term,
    /// Who it voted for in that term.
    pub vote: Option<NodeId>,
    /// Persisted as a hint so a restarted node can apply without waiting for
    /// a leader; it may lag the true commit index, never lead it.
    pub commit: Index,
}

/// pyraftlog's node modes: how willing a node is to lead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Campaigns normally, with a randomized election timeout.
    #[default]
    Active,
    /// Campaigns only after a full (maximal) election timeout without a
    /// leader; as leader, hands over to a caught-up active voter.
    Reluctant,
    /// Votes and replicates, never campaigns.
    Passive,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Active => "active",
            Mode::Reluctant => "reluctant",
            Mode::Passive => "passive",
        })
    }
}

impl std::str::FromStr for Mode {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(Mode::Active),
            "reluctant" => Ok(Mode::Reluctant),
            "passive" => Ok(Mode::Passive),
            other => Err(crate::Error::UnknownMode(other.to_string())),
        }
    }
}

/// A node's role in the protocol. Only `Raft::become_*` changes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asks whether it could win before raising its term (pre-vote).
    PreCandidate,
    /// Campaigns in a new term.
    Candidate,
    /// Leads its term.
    Leader,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
