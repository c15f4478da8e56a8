//! Messages between peers. Every message carries the sender's term and mode
//! (pyraftlog: a reluctant leader needs to know who is active).

use crate::membership::Membership;
use crate::types::{Entry, Index, Mode, NodeId, Term};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::fmt;

/// One message between peers.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The sender.
    pub from: NodeId,
    /// The receiver.
    pub to: NodeId,
    /// The sender's term.
    pub term: Term,
    /// The sender's mode when it sent this message.
    pub mode: Mode,
    /// What it says.
    pub body: Body,
    /// The sender's storage id (`InitialState::storage`; 0: none). Not
    /// part of the message's encoding: a transport sets it on arrival from
    /// what the connection's handshake said (raft-net's `Hello`), so it is
    /// the same for every message of one sender and one connection.
    #[serde(skip)]
    pub storage: u64,
}

/// What a message says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// Leader → follower: entries after (`prev_index`, `prev_term`).
    Append {
        /// The index before the first entry sent.
        prev_index: Index,
        /// The term of that entry.
        prev_term: Term,
        /// The entries (none for a probe).
        entries: Vec<Entry>,
        /// The leader's commit index.
        commit: Index,
    },
    /// Follower → leader, sent only once the follower's log is durable.
    AppendResponse {
        /// On success, the last index the follower now holds from this
        /// append; on rejection, the `prev_index` that did not match.
        index: Index,
        /// Why the append was rejected; `None` for success.
        reject: Option<RejectHint>,
    },
    /// Leader → follower: keeps followers from campaigning, carries the
    /// commit index (capped at what the follower holds) and the latest
    /// ReadIndex round.
    Heartbeat {
        /// The leader's commit index, capped at what the follower holds.
        commit: Index,
        /// The latest ReadIndex round.
        read_round: u64,
        /// The highest index every member has applied, as the leader
        /// knows (log reduction compacts up to it).
        all_applied: Index,
    },
    /// Follower → leader: the heartbeat arrived.
    HeartbeatResponse {
        /// The round it answers.
        read_round: u64,
        /// What the follower's state machine has applied.
        applied: Index,
    },
    /// Leader → follower: bytes of snapshot `meta` from `offset` on;
    /// `done` marks the last chunk.
    SnapshotChunk {
        /// The snapshot.
        meta: SnapshotMeta,
        /// Where these bytes start.
        offset: u64,
        /// The bytes.
        data: Bytes,
        /// The last chunk.
        done: bool,
    },
    /// Follower → leader: snapshot `index` is stored up to `offset` (the
    /// next byte wanted). Paces the transfer and resumes it after a loss.
    SnapshotAck {
        /// The snapshot's index.
        index: Index,
        /// The next byte wanted.
        offset: u64,
    },
    /// (Pre-)candidate → voter. For a pre-vote, `term` is the term the
    /// sender would campaign in; its own term is not raised.
    RequestVote {
        /// A pre-vote (no term is raised).
        pre_vote: bool,
        /// The sender's last log index.
        last_index: Index,
        /// The sender's last log term.
        last_term: Term,
        /// Set when a leadership transfer asked for this election; voters
        /// then skip the leader-lease check.
        transfer: bool,
    },
    /// Voter → (pre-)candidate: the vote.
    VoteResponse {
        /// It answers a pre-vote.
        pre_vote: bool,
        /// Whether the vote was given.
        granted: bool,
    },
    /// Leader → transfer target: campaign now, skipping pre-vote.
    TimeoutNow,
    /// Follower → leader: a ReadIndex request forwarded on behalf of a client.
    ReadIndex {
        /// The follower's id for the read.
        id: u64,
    },
    /// Leader → follower: the read index for request `id`, once safe.
    ReadIndexResponse {
        /// The read's id.
        id: u64,
        /// The index the read waits for.
        index: Index,
    },
    /// Any member → a node whose storage id differs from the one the
    /// configuration records for its node id (`Membership::storage`):
    /// `known` is the recorded one. The node lost the state it had under
    /// that id and must stop (`Status::replaced`).
    Replaced {
        /// The storage id the configuration records.
        known: u64,
    },
}

/// Why a follower rejected an append, so the leader can skip a whole
/// conflicting term at once (Raft dissertation §5.3's optimization).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectHint {
    /// The term of the follower's entry at the rejected index, or `None`
    /// when the follower's log is shorter than that index.
    pub conflict_term: Option<Term>,
    /// The first index of `conflict_term` in the follower's log, or the
    /// follower's last index + 1 when `conflict_term` is `None`.
    pub conflict_index: Index,
}

/// What a snapshot covers: the state machine after applying every entry
/// up to `index` (of term `term`), and the configuration in force then.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// The last index it covers.
    pub index: Index,
    /// The term of that entry.
    pub term: Term,
    /// The configuration in force at `index`.
    pub membership: Membership,
    /// The SHA-256 of the snapshot's bytes, set by the snapshot store that
    /// committed them (`SnapshotSink::commit`) and checked by every store
    /// that receives them. `None` only in a meta not yet committed, or one
    /// an older version wrote.
    #[serde(default)]
    pub digest: Option<Digest>,
}

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Digest(pub [u8; 32]);

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl Message {
    /// Messages a leader sends: their arrival proves a live leader.
    pub fn is_from_leader(&self) -> bool {
        matches!(
            self.body,
            Body::Append { .. }
                | Body::Heartbeat { .. }
                | Body::SnapshotChunk { .. }
                | Body::TimeoutNow
                | Body::ReadIndexResponse { .. }
        )
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}->{} term={}", self.from, self.to, self.term)?;
        if self.storage != 0 {
            write!(f, " storage={}", self.storage)?;
        }
        if self.mode != Mode::Active {
            write!(f, " ({})", self.mode)?;
        }
        match &self.body {
            Body::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            } => {
                write!(f, " Append prev={prev_term}/{prev_index} commit={commit}")?;
                if !entries.is_empty() {
                    write!(f, " entries=[")?;
                    for (i, e) in entries.iter().enumerate() {
                        if i > 0 {
                            write!(f, ", ")?;
                        }
                        write!(f, "{e}")?;
                    }
                    write!(f, "]")?;
                }
                Ok(())
            }
            Body::AppendResponse {
                index,
                reject: None,
            } => write!(f, " AppendResponse index={index}"),
            Body::AppendResponse {
                index,
                reject: Some(h),
            } => {
                write!(f, " AppendResponse REJECT index={index} hint=")?;
                match h.conflict_term {
                    Some(t) => write!(f, "{t}/{}", h.conflict_index),
                    None => write!(f, "short/{}", h.conflict_index),
                }
            }
            Body::Heartbeat {
                commit,
                read_round,
                all_applied,
            } => {
                write!(f, " Heartbeat commit={commit} read_round={read_round}")?;
                if *all_applied > 0 {
                    write!(f, " all_applied={all_applied}")?;
                }
                Ok(())
            }
            Body::HeartbeatResponse {
                read_round,
                applied,
            } => {
                write!(f, " HeartbeatResponse read_round={read_round}")?;
                if *applied > 0 {
                    write!(f, " applied={applied}")?;
                }
                Ok(())
            }
            Body::SnapshotChunk {
                meta,
                offset,
                data,
                done,
            } => {
                write!(
                    f,
                    " SnapshotChunk {}/{} offset={offset} len={}",
                    meta.term,
                    meta.index,
                    data.len()
                )?;
                if *done {
                    write!(f, " done")?;
                }
                Ok(())
            }
            Body::SnapshotAck { index, offset } => {
                write!(f, " SnapshotAck index={index} offset={offset}")
            }
            Body::RequestVote {
                pre_vote,
                last_index,
                last_term,
                transfer,
            } => {
                let kind = if *pre_vote { "PreVote" } else { "Vote" };
                write!(f, " {kind} last={last_term}/{last_index}")?;
                if *transfer {
                    write!(f, " transfer")?;
                }
                Ok(())
            }
            Body::VoteResponse { pre_vote, granted } => {
                let kind = if *pre_vote {
                    "PreVoteResponse"
                } else {
                    "VoteResponse"
                };
                let verdict = if *granted { "granted" } else { "REJECT" };
                write!(f, " {kind} {verdict}")
            }
            Body::TimeoutNow => write!(f, " TimeoutNow"),
            Body::ReadIndex { id } => write!(f, " ReadIndex id={id}"),
            Body::ReadIndexResponse { id, index } => {
                write!(f, " ReadIndexResponse id={id} index={index}")
            }
            Body::Replaced { known } => write!(f, " Replaced known={known}"),
        }
    }
}
