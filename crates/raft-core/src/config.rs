//! How a node runs the protocol, and the state it starts from.

use crate::error::Error;
use crate::membership::Membership;
use crate::message::SnapshotMeta;
use crate::types::{Entry, HardState, Index, Mode, NodeId, Term};

/// Protocol settings. Time is in ticks: the caller decides how long one is.
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's id (never 0).
    pub id: NodeId,
    /// Followers campaign after a random timeout in
    /// `election_tick..2 * election_tick` ticks without a leader.
    pub election_tick: u64,
    /// A leader sends heartbeats every `heartbeat_tick` ticks.
    pub heartbeat_tick: u64,
    /// Ask for a pre-vote before raising the term (dissertation §9.6), so a
    /// partitioned node rejoining does not depose a healthy leader.
    pub pre_vote: bool,
    /// A leader steps down when it has not heard from a quorum for an
    /// election timeout; followers then also ignore vote requests while
    /// they have a live leader (dissertation §4.2.3).
    pub check_quorum: bool,
    /// Appends in flight per follower in the replicate state.
    pub max_inflight: usize,
    /// Byte budget of one append (at least one entry is always sent).
    pub max_append_bytes: usize,
    /// Entry budget of one append (pyraftlog: 1000).
    pub max_append_entries: usize,
    /// Byte budget of committed entries handed out in one `Ready`.
    pub max_apply_bytes: usize,
    /// This node's mode (pyraftlog's active, reluctant, passive).
    pub mode: Mode,
    /// Seeds this node's randomness: election timeouts, and the tag its
    /// forwarded reads travel under.
    ///
    /// Correctness requirement: every incarnation of a node (each process
    /// start) must get a seed it has not had before, e.g. mixed from the
    /// clock and the process id. Read ids restart with the process, and
    /// an answer the leader sent an earlier incarnation can arrive after a
    /// restart; only a new tag keeps it from completing a new read with an
    /// old read index.
    pub seed: u64,
    /// This node lost its storage and is being rebuilt from its peers
    /// under its old id (`raft-mock --rebuild`). It may have voted, and
    /// acknowledged entries, before it lost them, so until it sees a
    /// committed configuration in which it is a learner (the leader demotes
    /// it when asked to rebuild it, and promotes it again once it has caught
    /// up) it grants no vote or pre-vote and never campaigns, and every term
    /// it enters it records as already voted in (for itself): it never votes
    /// in a term it entered while rebuilding, however it restarts.
    ///
    /// Correctness requirement: set it on every start until
    /// `Status::rebuilding` has been seen false (the caller keeps a durable
    /// marker), so a restart in between does not end it early.
    pub rebuilding: bool,
}

impl Config {
    /// The defaults for node `id`: election after 10-20 ticks, heartbeat every tick, pre-
    /// vote and check-quorum on.
    pub fn new(id: NodeId) -> Self {
        Config {
            id,
            election_tick: 10,
            heartbeat_tick: 1,
            pre_vote: true,
            check_quorum: true,
            max_inflight: 256,
            max_append_bytes: 1 << 20,
            max_append_entries: 1000,
            max_apply_bytes: 16 << 20,
            mode: Mode::Active,
            seed: id,
            rebuilding: false,
        }
    }

    /// Checks the settings make sense (`Error::InvalidConfig` says which does not).
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |why: &str| Err(Error::InvalidConfig(why.to_string()));
        if self.id == 0 {
            return bad("node id 0 is reserved");
        }
        if self.heartbeat_tick == 0 {
            return bad("heartbeat_tick must be at least 1");
        }
        if self.election_tick <= self.heartbeat_tick {
            return bad("election_tick must be greater than heartbeat_tick");
        }
        if self.max_inflight == 0 || self.max_append_entries == 0 {
            return bad("max_inflight and max_append_entries must be at least 1");
        }
        Ok(())
    }
}

/// What a node starts from: nothing (a new cluster) or what its storage
/// holds after a restart.
#[derive(Clone, Debug, Default)]
pub struct InitialState {
    /// The term and vote it had (its last durable hard state).
    pub hard_state: HardState,
    /// The configuration in force at `prev_index`; configuration entries
    /// in `entries` override it.
    pub membership: Membership,
    /// The index `membership` is in force as of: configuration entries at
    /// or below it are older and ignored (a node that joined knows the
    /// newest configuration before it holds the log that led there).
    pub membership_index: Index,
    /// The log after (`prev_index`, `prev_term`), all of it durable.
    pub entries: Vec<Entry>,
    /// The last index compacted away (0 with no compaction).
    pub prev_index: Index,
    /// The term of the entry at `prev_index` (0 with no compaction).
    pub prev_term: Term,
    /// What the state machine has already applied.
    pub applied: Index,
    /// The latest snapshot, if any (`prev_index` is at most its index).
    pub snapshot: Option<SnapshotMeta>,
    /// This node's storage id: a random number its storage drew when it
    /// was created, so that a node id whose storage was lost and made
    /// anew is told from the one the cluster knew (0: none, and no such
    /// checks for or against this node).
    ///
    /// Correctness requirement: the id stays with the storage for its
    /// whole life and is never drawn twice; storage that lost its state
    /// (a wiped disk, a backup put back) must not keep the old id.
    pub storage: u64,
}

impl InitialState {
    /// A brand-new member of a cluster of `voters`.
    pub fn new_cluster(voters: impl IntoIterator<Item = NodeId>) -> Self {
        InitialState {
            membership: Membership::new(voters),
            ..Default::default()
        }
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        let bad = |why: String| Err(Error::InvalidState(why));
        self.membership.validate().map_err(Error::InvalidState)?;
        for (i, e) in self.entries.iter().enumerate() {
            if e.index != self.prev_index + 1 + i as Index {
                return bad(format!(
                    "entry {} out of place (expected index {})",
                    e.index,
                    self.prev_index + 1 + i as Index
                ));
            }
            let prev = if i == 0 {
                self.prev_term
            } else {
                self.entries[i - 1].term
            };
            if e.term < prev || e.term > self.hard_state.term {
                return bad(format!(
                    "entry {} has term {} out of order",
                    e.index, e.term
                ));
            }
        }
        Ok(())
    }
}
