//! What one round of protocol work asks of the caller.

use crate::message::{Message, SnapshotMeta};
use crate::types::{Entry, HardState, Index, NodeId, Term};

/// A read whose linearization point is settled: it may be served once the
/// state machine has applied `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The caller's id for the read.
    pub id: u64,
    /// The index the state machine must reach first.
    pub index: Index,
}

/// A batch of work, drained by `Raft::ready`. Do it in this order:
/// 1. send `messages` (they need nothing persisted);
/// 2. persist `hard_state` (if any) and `entries` — an entry replaces any
///    stored entry with the same or a higher index — and sync;
/// 3. call `Raft::on_persisted` with `persisted_upto()`, then send
///    `persisted_messages`;
/// 4. apply `committed` in order and call `Raft::on_applied`;
/// 5. serve each of `reads` once applied reaches its index; fail
///    `dropped_reads`.
///
/// Readys may be persisted asynchronously, but in the order they were taken.
#[derive(Clone, Debug, Default)]
pub struct Ready {
    /// A new hard state to persist (term or vote changed).
    pub hard_state: Option<HardState>,
    /// Entries to persist (they replace any stored at the same or higher indexes).
    pub entries: Vec<Entry>,
    /// Messages to send now.
    pub messages: Vec<Message>,
    /// Messages to send once `entries` and `hard_state` are durable.
    pub persisted_messages: Vec<Message>,
    /// Committed entries to apply, in order.
    pub committed: Vec<Entry>,
    /// Reads whose index is settled.
    pub reads: Vec<ReadState>,
    /// Reads that can no longer complete here (leadership was lost).
    pub dropped_reads: Vec<u64>,
    /// Leader: peers that need entries compacted away; stream them the
    /// snapshot `meta` (in `SnapshotChunk` messages), then report failure
    /// with `Raft::report_snapshot` if the transfer dies.
    pub send_snapshots: Vec<(NodeId, SnapshotMeta)>,
    /// Snapshot transfer messages that passed the term checks, for the
    /// caller's transfer code: chunks on a follower (store them, answer
    /// with `Raft::snapshot_ack`, install with `Raft::restore`), acks on a
    /// leader (send more).
    pub snapshot_msgs: Vec<Message>,
}

impl Ready {
    /// The (index, term) to acknowledge once `entries` are durable.
    pub fn persisted_upto(&self) -> Option<(Index, Term)> {
        self.entries.last().map(|e| (e.index, e.term))
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none()
            && self.entries.is_empty()
            && self.messages.is_empty()
            && self.persisted_messages.is_empty()
            && self.committed.is_empty()
            && self.reads.is_empty()
            && self.dropped_reads.is_empty()
            && self.send_snapshots.is_empty()
            && self.snapshot_msgs.is_empty()
    }

    /// Whether step 2 has anything to write.
    pub fn must_persist(&self) -> bool {
        self.hard_state.is_some() || !self.entries.is_empty()
    }
}
