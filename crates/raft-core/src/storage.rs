//! The storage contract: what the driver asks of a durable log. raft-log
//! implements it on redb and in memory; the protocol itself never calls
//! it (it does no I/O), the caller does, with each `Ready`.

use crate::membership::Membership;
use crate::message::SnapshotMeta;
use crate::types::{Entry, HardState, Index, Term};

/// One `Ready`'s durable part: written in one transaction, all or nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteBatch<'a> {
    /// The hard state to write, if it changed.
    pub hard_state: Option<HardState>,
    /// Replace every stored entry at or above `entries[0].index`, then
    /// append these. Must be contiguous, and start no later than one past
    /// the stored last index.
    pub entries: &'a [Entry],
    /// The configuration in force as of an index (bootstrap: 0; a node
    /// that joined: the cluster's configuration index then; a snapshot:
    /// its index). The log's configuration entries above that index
    /// override it.
    pub membership: Option<(Index, &'a Membership)>,
}

/// What a node finds in its storage when it starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredState {
    /// The last hard state written.
    pub hard_state: HardState,
    /// The configuration stored, and the index it is in force as of.
    pub membership: Option<(Index, Membership)>,
    /// The last index and term purged (compacted away); (0, 0) if none.
    pub purged: (Index, Term),
    /// The last stored index (`purged.0` when the log is empty).
    pub last_index: Index,
    /// The storage's id (`InitialState::storage`; 0: the store has none).
    pub storage: u64,
}

/// Where a node keeps its snapshots: the latest complete one, replaced
/// atomically by the next. Shared between the driver and the threads that
/// write and stream snapshots.
///
/// # Correctness requirements
///
/// A node never serves data it cannot verify, so a store must:
/// - give every committed snapshot its digest (`SnapshotMeta::digest`, the
///   SHA-256 of its bytes), and return it from `latest`;
/// - never let a reader from `open` return bytes that differ from those
///   committed: a reader fails with `InvalidData` naming the damage
///   (before handing out a damaged chunk, or at the latest at the end of
///   the stream, where the digest is checked). The driver reads every
///   snapshot it loads or installs to its end, so the digest is always
///   checked;
/// - refuse, in `commit`, bytes that do not match a digest the meta
///   already carries (a snapshot received from the leader).
pub trait SnapshotStore: Send + Sync + 'static {
    /// The latest complete snapshot, if any.
    fn latest(&self) -> std::io::Result<Option<SnapshotMeta>>;
    /// Reads snapshot `meta` from its start (`NotFound` once replaced),
    /// verifying what it reads.
    fn open(&self, meta: &SnapshotMeta) -> std::io::Result<Box<dyn std::io::Read + Send>>;
    /// Starts a new snapshot; it becomes the latest only when committed.
    fn create(&self) -> std::io::Result<Box<dyn SnapshotSink>>;
}

/// A snapshot being written. Dropped without `commit`, it leaves no trace
/// (a crash likewise leaves the previous snapshot in force).
pub trait SnapshotSink: std::io::Write + Send {
    /// Makes the bytes written durable and the latest snapshot, atomically,
    /// and returns `meta` with the bytes' digest. If `meta` already carries
    /// a digest the bytes do not match, nothing is committed and the error
    /// is `InvalidData`.
    fn commit(self: Box<Self>, meta: &SnapshotMeta) -> std::io::Result<SnapshotMeta>;
}

/// A node's durable Raft log and hard state.
///
/// Invariant: the stored entries are exactly the indexes
/// `purged.0 + 1 ..= last_index`, contiguous.
pub trait LogStore {
    /// What a failed read or write reports.
    type Error: std::error::Error + Send + Sync + 'static;

    /// What the store holds: hard state, configuration, purge point, last index.
    fn state(&self) -> Result<StoredState, Self::Error>;

    /// Entries with indexes in `lo..hi`, stopping once `max_bytes` of
    /// payload is exceeded (at least one entry when the range is not
    /// empty). Indexes must lie within the stored range.
    fn entries(&self, lo: Index, hi: Index, max_bytes: usize) -> Result<Vec<Entry>, Self::Error>;

    /// The term of the entry at `index`, or of the last purged one; `None`
    /// outside the stored range.
    fn term(&self, index: Index) -> Result<Option<Term>, Self::Error>;

    /// Writes a batch. When this returns `Ok`, the batch is durable (for a
    /// durable store). On `Err`, nothing of the batch may be assumed
    /// written, and a durable store refuses further writes until reopened.
    fn write(&mut self, batch: WriteBatch<'_>) -> Result<(), Self::Error>;

    /// Drops entries up to and including `index` (after a snapshot covers
    /// them). Purging at or below what is already purged does nothing.
    fn purge_to(&mut self, index: Index) -> Result<(), Self::Error>;

    /// Drops every entry and makes the log start after (`index`, `term`):
    /// a snapshot the log does not lead up to replaced it. Durable on
    /// return, like `write`.
    fn reset_to(&mut self, index: Index, term: Term) -> Result<(), Self::Error>;

    /// True when `write` does no I/O (an in-memory store): the node driver
    /// then writes on its own task instead of handing batches to a storage
    /// thread, saving two thread wake-ups per batch.
    fn writes_are_cheap(&self) -> bool {
        false
    }
}
