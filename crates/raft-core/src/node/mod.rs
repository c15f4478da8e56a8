//! The async node driver: runs [`Raft`](crate::Raft) on tokio over a
//! [`LogStore`], a [`Transport`] and a [`StateMachine`], and hands users a
//! cloneable [`Node`].
//!
//! One task owns the protocol and does, per round: take inputs (ticks,
//! peer messages, user commands, storage completions), drain the `Ready`,
//! send messages at once (so followers write in parallel with the leader's
//! fsync), queue the durable part to the storage thread, apply committed
//! entries, answer waiters. The storage thread owns the `LogStore` (it
//! blocks on fsync), merges whatever is queued into one write, and reports
//! back in order.

mod driver;
pub mod local;
mod members;
mod metrics;
mod snapshot;
mod storage;

use crate::storage::{LogStore, SnapshotStore};
use crate::types::{Entry, Index, Mode, NodeId, Role, Term};
use crate::{ConfChange, Config, Message, Status};
use bytes::Bytes;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

pub use metrics::NodeMetrics;

/// Sends messages to peers. Never blocks; may drop (Raft retransmits).
pub trait Transport: Send + Sync + 'static {
    /// Queues `m` for its receiver.
    fn send(&self, m: Message);
}

impl<T: Transport> Transport for std::sync::Arc<T> {
    fn send(&self, m: Message) {
        (**self).send(m)
    }
}

/// The replicated application. Entries arrive in log order, each exactly
/// once per process lifetime (a restarted node restores its latest
/// snapshot, then replays the log after it).
///
/// Snapshots are taken in two steps so the protocol task never waits for
/// one to be written: `snapshot` takes a point-in-time view (it should be
/// cheap, e.g. a clone of shared structures), and `write_snapshot` streams
/// that view out on a blocking thread. Installing is the reverse:
/// `read_snapshot` on a blocking thread, then `restore` swaps it in.
pub trait StateMachine: Send + 'static {
    /// What applying an entry answers (to the proposer, on the leader).
    type Output: Send + 'static;
    /// A view of the state as of the last entry applied.
    type Snapshot: Send + 'static;
    /// Applies one committed application entry.
    fn apply(&mut self, index: Index, data: &Bytes) -> Self::Output;
    /// A point-in-time view of the state (cheap: a clone of shared structures); the
    /// protocol task calls it.
    fn snapshot(&mut self) -> Self::Snapshot;
    /// Streams `view` out, on a blocking thread.
    fn write_snapshot(view: Self::Snapshot, w: &mut dyn std::io::Write) -> std::io::Result<()>;
    /// Reads a snapshot back, on a blocking thread; an error for damaged data.
    fn read_snapshot(r: &mut dyn std::io::Read) -> std::io::Result<Self::Snapshot>;
    /// Replaces the whole state with `view`.
    fn restore(&mut self, view: Self::Snapshot);
}

/// Driver settings around the protocol's own.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The protocol's settings.
    pub raft: Config,
    /// The initial voters, used when the store holds no membership yet.
    pub voters: Vec<NodeId>,
    /// Their addresses, recorded in the initial membership.
    pub addresses: std::collections::BTreeMap<NodeId, String>,
    /// The index the initial membership is in force as of: 0 for a new
    /// cluster; for a node joining one, the cluster's configuration index.
    pub membership_index: Index,
    /// How long one protocol tick lasts.
    pub tick: Duration,
    /// How long a proposal or read waits before failing with `Timeout`
    /// (or `NoQuorum` when this node leads without a live quorum).
    pub request_timeout: Duration,
    /// Proposals taken into one `Ready` (and so one fsync) at most.
    pub max_batch: usize,
    /// The largest entry `propose` and `append` take (`TooLarge` above).
    /// An entry must fit in one transport frame to ever reach a follower:
    /// keep this well below the transport's frame limit.
    pub max_entry_bytes: usize,
    /// Take a snapshot (and compact the log) after this many entries
    /// applied since the last one; 0 never does.
    pub snapshot_entries: u64,
    /// ... or after this many bytes of entries applied since the last one
    /// (0: no byte limit).
    pub snapshot_bytes: u64,
    /// Entries kept in the log behind a snapshot, so a follower a little
    /// behind catches up from the log rather than by snapshot.
    pub keep_entries: u64,
    /// pyraftlog's log reduction: compact up to the highest index every
    /// member has applied, once that is `reduction_step` past the log's
    /// start.
    pub log_reduction: bool,
    /// With log reduction: how far past the log's start the floor must move before
    /// compacting.
    pub reduction_step: u64,
    /// Bytes per snapshot chunk, and chunks in flight per transfer.
    pub snapshot_chunk: usize,
    /// Snapshot chunks in flight per transfer.
    pub snapshot_window: usize,
    /// A transfer with no acknowledgement for this long resends from the
    /// last acknowledged byte; after `snapshot_retries` such timeouts in a
    /// row it is abandoned (and started again if still needed).
    pub snapshot_ack_timeout: Duration,
    /// Timeouts in a row before a transfer is abandoned.
    pub snapshot_retries: u32,
    /// How often the latest snapshot is re-read and verified (zero: never),
    /// and how fast, in bytes per second (zero: as fast as the disk goes).
    pub scrub_interval: Duration,
    /// Scrub speed in bytes per second (zero: as fast as the disk goes).
    pub scrub_rate: u64,
}

impl NodeConfig {
    /// The defaults around `raft`, for a cluster of `voters`.
    pub fn new(raft: Config, voters: Vec<NodeId>) -> Self {
        NodeConfig {
            raft,
            voters,
            addresses: Default::default(),
            membership_index: 0,
            tick: Duration::from_millis(50),
            request_timeout: Duration::from_secs(5),
            max_batch: 4096,
            max_entry_bytes: 8 << 20,
            snapshot_entries: 100_000,
            snapshot_bytes: 64 << 20,
            keep_entries: 10_000,
            log_reduction: false,
            reduction_step: 1_000,
            snapshot_chunk: 256 << 10,
            snapshot_window: 4,
            snapshot_ack_timeout: Duration::from_secs(1),
            snapshot_retries: 10,
            scrub_interval: Duration::from_secs(600),
            scrub_rate: 32 << 20,
        }
    }
}

/// Why a request to the node failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// Only the leader does this; nothing changed here.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader this node knows of.
        leader: Option<NodeId>,
    },
    /// No leader is known; nothing changed.
    #[error("no leader is known")]
    NoLeader,
    /// The leader cannot reach a quorum; a write may still commit.
    #[error("the leader cannot reach a quorum")]
    NoQuorum,
    /// No answer in time; a write may still commit.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The entry lost its place to another leader's: it never applies.
    #[error("the entry was replaced by another leader's; it was not applied")]
    Dropped,
    /// The node stopped before answering.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// The outcome of a write in flight when the disk failed is unknown:
    /// it may have reached the disk (and so may still commit).
    #[error("storage failed, the node no longer takes writes: {0}")]
    Storage(String),
    /// The protocol refused the request, as [`crate::Error`] says why;
    /// nothing changed. Whether retrying can help depends on the reason
    /// (a change in progress, yes; an invalid change, never).
    #[error("refused: {0}")]
    Refused(crate::Error),
    /// A new member did not catch up with the log in time; it stays a
    /// learner, and asking again retries.
    #[error("node {id} did not catch up within {waited:?}; it stays a learner")]
    NotCaughtUp {
        /// The learner.
        id: NodeId,
        /// How long the leader waited.
        waited: Duration,
    },
    /// Refused before reaching the log: nothing was written.
    #[error("an entry of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// The entry's size.
        len: usize,
        /// The node's limit (`NodeConfig::max_entry_bytes`).
        max: usize,
    },
}

impl NodeError {
    fn from_protocol(e: crate::Error) -> Self {
        match e {
            crate::Error::NotLeader { leader: None } => NodeError::NoLeader,
            crate::Error::NotLeader { leader } => NodeError::NotLeader { leader },
            other => NodeError::Refused(other),
        }
    }
}

/// What the node publishes after every round, for status pages.
#[derive(Clone, Debug)]
pub struct NodeStatus {
    /// The protocol's status.
    pub raft: Status,
    /// The voters of the configuration in force.
    pub voters: Vec<NodeId>,
    /// Set once storage failed; the node then refuses writes.
    pub failed: Option<String>,
    /// Damage the scrub found in stored data, until a pass finds none.
    pub damage: Option<String>,
    /// Scrub passes finished, and those that found damage.
    pub scrubs: u64,
    /// Scrub passes that found damage.
    pub scrub_damage: u64,
    /// Milliseconds per tick, to turn `last_contact` ticks into time.
    pub tick_ms: u64,
    /// Ticks of an election timeout.
    pub election_tick: u64,
    /// Leader only: whether a quorum was heard from within an election
    /// timeout.
    pub quorum_live: bool,
}

/// The configuration in force and the leader, as a node sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipView {
    /// The index of the configuration's entry.
    pub index: Index,
    /// The configuration.
    pub membership: std::sync::Arc<crate::Membership>,
    /// The leader this node knows of.
    pub leader: Option<NodeId>,
}

impl NodeStatus {
    /// Whether this node leads.
    pub fn is_leader(&self) -> bool {
        self.raft.role == Role::Leader
    }
}

type Reply<T> = oneshot::Sender<Result<T, NodeError>>;

enum Command<O> {
    Propose(Bytes, Reply<(Index, O)>),
    /// Like `Propose`, but answered with (index, term) as soon as the entry
    /// is appended, for callers that follow the log themselves.
    Append(Bytes, Reply<(Index, Term)>),
    Read(Reply<Index>),
    /// Answered once the mode is in effect and shown in the status.
    SetMode(Mode, Reply<()>),
    Transfer(NodeId, Reply<()>),
    /// Answered with the configuration entry's index once it is applied.
    ChangeConf(Vec<ConfChange>, Reply<Index>),
    Campaign(Reply<()>),
    Entries(Index, Index, usize, Reply<Vec<Entry>>),
    Shutdown(oneshot::Sender<()>),
}

/// A cloneable handle to a running node.
pub struct Node<O> {
    tx: mpsc::Sender<Command<O>>,
    status: watch::Receiver<NodeStatus>,
    members: watch::Receiver<MembershipView>,
    timeout: Duration,
    max_entry_bytes: usize,
    metrics: NodeMetrics,
}

impl<O> Clone for Node<O> {
    fn clone(&self) -> Self {
        Node {
            tx: self.tx.clone(),
            status: self.status.clone(),
            members: self.members.clone(),
            timeout: self.timeout,
            max_entry_bytes: self.max_entry_bytes,
            metrics: self.metrics.clone(),
        }
    }
}

impl<O: Send + 'static> Node<O> {
    /// Starts a node: loads the store, then runs until shut down or every
    /// handle is dropped. Messages from peers arrive on `inbound`.
    pub fn start<S, T, M>(
        cfg: NodeConfig,
        store: S,
        snapshots: std::sync::Arc<dyn SnapshotStore>,
        transport: T,
        inbound: mpsc::Receiver<Message>,
        sm: M,
    ) -> Result<Self, NodeError>
    where
        S: LogStore + Send + 'static,
        T: Transport,
        M: StateMachine<Output = O>,
    {
        driver::start(cfg, store, snapshots, transport, inbound, sm)
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command<O>) -> Result<T, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| NodeError::ShuttingDown)?;
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(NodeError::ShuttingDown),
            Err(_) => Err(self.timeout_error()),
        }
    }

    /// What a request that timed out reports. Never `NotLeader` or
    /// `NoLeader`: those mean "refused, safe to retry elsewhere", while a
    /// timed-out write may still commit.
    fn timeout_error(&self) -> NodeError {
        let s = self.status.borrow();
        if (s.is_leader() && !s.quorum_live) || s.raft.leader.is_none() {
            NodeError::NoQuorum
        } else {
            NodeError::Timeout(self.timeout)
        }
    }

    /// The driver's latency histograms and counters, to expose (see
    /// [`NodeMetrics::register`]).
    pub fn metrics(&self) -> &NodeMetrics {
        &self.metrics
    }

    /// Replicates `data`, and answers once this node applied it, with its
    /// index and the state machine's output. Leader only.
    pub async fn propose(&self, data: Bytes) -> Result<(Index, O), NodeError> {
        self.fits(&data)?;
        self.call(|r| Command::Propose(data, r)).await
    }

    /// Replicates each of `batch` in order (the driver sees them in this
    /// order, so they land in the log in it and usually in one append),
    /// and answers each as `propose` would, in the same order. One
    /// entry's failure does not stop the others.
    pub async fn propose_all(&self, batch: Vec<Bytes>) -> Vec<Result<(Index, O), NodeError>> {
        let mut waiting = Vec::with_capacity(batch.len());
        for data in batch {
            if let Err(e) = self.fits(&data) {
                waiting.push(Err(e));
                continue;
            }
            let (tx, rx) = oneshot::channel();
            match self.tx.send(Command::Propose(data, tx)).await {
                Ok(()) => waiting.push(Ok(rx)),
                Err(_) => waiting.push(Err(NodeError::ShuttingDown)),
            }
        }
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut out = Vec::with_capacity(waiting.len());
        for w in waiting {
            out.push(match w {
                Err(e) => Err(e),
                Ok(rx) => match tokio::time::timeout_at(deadline, rx).await {
                    Ok(Ok(r)) => r,
                    Ok(Err(_)) => Err(NodeError::ShuttingDown),
                    Err(_) => Err(self.timeout_error()),
                },
            });
        }
        out
    }

    /// An entry over the limit could never be replicated (nor, past the
    /// write-ahead log's record limit, written): refused up front.
    fn fits(&self, data: &Bytes) -> Result<(), NodeError> {
        if data.len() > self.max_entry_bytes {
            return Err(NodeError::TooLarge {
                len: data.len(),
                max: self.max_entry_bytes,
            });
        }
        Ok(())
    }

    /// Appends `data` to the log and answers with its (index, term) at once,
    /// before it commits. Leader only.
    pub async fn append(&self, data: Bytes) -> Result<(Index, Term), NodeError> {
        self.fits(&data)?;
        self.call(|r| Command::Append(data, r)).await
    }

    /// A linearizable read barrier (ReadIndex): answers, with the read
    /// index, once this node's state machine has applied everything
    /// committed when the call was made. Works on followers too.
    pub async fn read_barrier(&self) -> Result<Index, NodeError> {
        self.call(Command::Read).await
    }

    /// Sets this node's mode; answers once it is in effect (and shown by
    /// [`Node::status`]).
    pub async fn set_mode(&self, mode: Mode) -> Result<(), NodeError> {
        self.call(|r| Command::SetMode(mode, r)).await
    }

    /// Starts handing leadership to `to` (leader only).
    pub async fn transfer_leader(&self, to: NodeId) -> Result<(), NodeError> {
        self.call(|r| Command::Transfer(to, r)).await
    }

    /// Campaigns now (skips the election timeout).
    pub async fn campaign(&self) -> Result<(), NodeError> {
        self.call(Command::Campaign).await
    }

    /// Committed entries with indexes in `lo..hi`, up to `max_bytes`
    /// (at least one when any is in range).
    pub async fn entries(
        &self,
        lo: Index,
        hi: Index,
        max_bytes: usize,
    ) -> Result<Vec<Entry>, NodeError> {
        self.call(|r| Command::Entries(lo, hi, max_bytes, r)).await
    }

    /// Follows the committed log from index `from`.
    pub fn follow(&self, from: Index) -> LogFollower<O> {
        LogFollower {
            node: self.clone(),
            next: from.max(1),
            status: self.status.clone(),
        }
    }

    /// The status as of the driver's last round.
    pub fn status(&self) -> NodeStatus {
        self.status.borrow().clone()
    }

    /// A receiver that changes whenever the node's status does (every
    /// round of work: for waiting on a condition, not for following).
    pub fn watch_status(&self) -> watch::Receiver<NodeStatus> {
        self.status.clone()
    }

    /// A receiver that changes only when the configuration in force or
    /// the leader does (what a transport follows).
    pub fn watch_membership(&self) -> watch::Receiver<MembershipView> {
        self.members.clone()
    }

    /// Waits until the entry `append` answered (`index`, `term`) for is
    /// committed: `Dropped` if another leader's entry took its index,
    /// `Timeout` once `timeout` passes first.
    pub async fn wait_committed(
        &self,
        index: Index,
        term: Term,
        timeout: Duration,
    ) -> Result<(), NodeError> {
        let mut rx = self.status.clone();
        let r = tokio::time::timeout(timeout, rx.wait_for(|s| s.raft.commit >= index)).await;
        match r.map(|r| r.is_ok()) {
            Ok(true) => {}
            Ok(false) => return Err(NodeError::ShuttingDown),
            Err(_) => return Err(NodeError::Timeout(timeout)),
        }
        let e = self.entries(index, index + 1, usize::MAX).await?;
        match e.first() {
            Some(e) if e.term == term => Ok(()),
            _ => Err(NodeError::Dropped),
        }
    }

    /// Waits until this node has applied `index`, or `timeout` passes.
    pub async fn wait_applied(&self, index: Index, timeout: Duration) -> Result<(), NodeError> {
        let mut rx = self.status.clone();
        let r = tokio::time::timeout(timeout, rx.wait_for(|s| s.raft.applied >= index)).await;
        match r {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(NodeError::ShuttingDown),
            Err(_) => Err(NodeError::Timeout(timeout)),
        }
    }

    /// Stops the node; returns once the protocol task and the storage
    /// thread are done with what they had.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// Reads the committed log in order, waiting for new entries.
pub struct LogFollower<O> {
    node: Node<O>,
    next: Index,
    status: watch::Receiver<NodeStatus>,
}

impl<O: Send + 'static> LogFollower<O> {
    /// The next committed entries (at least one), waiting for them.
    pub async fn next_batch(&mut self) -> Result<Vec<Entry>, NodeError> {
        loop {
            let next = self.next;
            self.status
                .wait_for(|s| s.raft.commit >= next || s.failed.is_some())
                .await
                .map_err(|_| NodeError::ShuttingDown)?;
            if let Some(f) = self.status.borrow().failed.clone() {
                return Err(NodeError::Storage(f));
            }
            let batch = self.node.entries(next, Index::MAX, 1 << 20).await?;
            if let Some(last) = batch.last() {
                self.next = last.index + 1;
                return Ok(batch);
            }
        }
    }
}
