//! The protocol task: one loop that owns the `Raft`, the state machine and
//! every waiter.

use super::metrics::{self, NodeMetrics};
use super::snapshot::{Incoming, SenderDone, SenderHandle};
use super::storage::{Done, Job, Storage};
use super::{
    Command, MembershipView, Node, NodeConfig, NodeError, NodeStatus, Reply, StateMachine,
    Transport,
};
use crate::message::SnapshotMeta;
use crate::storage::{LogStore, SnapshotStore, WriteBatch};
use crate::types::{HardState, Index, NodeId, Payload, Role, Term};
use crate::{InitialState, Membership, Message, Raft, Ready};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::MissedTickBehavior;

mod scrub;
mod snapshots;

use snapshots::load_snapshot;

/// Inbound messages handled per round before the node looks at anything
/// else, so a flood of peer traffic cannot starve ticks or clients.
const MAX_INBOUND_PER_ROUND: usize = 1024;

/// Work done off the protocol task, reported back to it.
enum Event<V> {
    /// A snapshot of this node's state machine was written (or not).
    Taken(Result<SnapshotMeta, String>),
    /// A snapshot received from the leader was committed and read back.
    Received(Result<(SnapshotMeta, V), String>),
    Sender(SenderDone),
    /// A scrub pass ended: the snapshot verified, was replaced meanwhile,
    /// or is damaged (why).
    Scrubbed(Result<bool, String>),
}

pub(super) fn start<S, T, M>(
    cfg: NodeConfig,
    mut store: S,
    snaps: Arc<dyn SnapshotStore>,
    transport: T,
    inbound: mpsc::Receiver<Message>,
    mut sm: M,
) -> Result<Node<M::Output>, NodeError>
where
    S: LogStore + Send + 'static,
    T: Transport,
    M: StateMachine,
{
    let fail = |e: S::Error| NodeError::Storage(e.to_string());
    let snapshot = load_snapshot(&mut store, &*snaps, &mut sm)?;
    let stored = store.state().map_err(fail)?;
    let stored_conf = match (stored.membership.clone(), &snapshot) {
        (Some((i, _)), Some(s)) if s.index > i => Some((s.index, s.membership.clone())),
        (None, Some(s)) => Some((s.index, s.membership.clone())),
        (m, _) => m,
    };
    let (membership_index, membership) = match stored_conf {
        Some(m) => m,
        None => {
            let mut m = Membership::new(cfg.voters.iter().copied());
            m.addresses = cfg.addresses.clone();
            store
                .write(WriteBatch {
                    membership: Some((cfg.membership_index, &m)),
                    ..Default::default()
                })
                .map_err(fail)?;
            (cfg.membership_index, m)
        }
    };
    let (prev_index, prev_term) = stored.purged;
    let mut entries = Vec::new();
    let mut lo = prev_index + 1;
    while lo <= stored.last_index {
        let chunk = store
            .entries(lo, stored.last_index + 1, 64 << 20)
            .map_err(fail)?;
        lo += chunk.len() as Index;
        entries.extend(chunk);
    }
    let init = InitialState {
        hard_state: stored.hard_state,
        membership,
        membership_index,
        entries,
        prev_index,
        prev_term,
        applied: prev_index,
        snapshot,
        storage: stored.storage,
    };
    let raft = Raft::new(cfg.raft.clone(), init).map_err(NodeError::from_protocol)?;
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let metrics = NodeMetrics::default();
    let storage = Storage::new(store, done_tx, metrics.wal_fsync.clone());
    let (cmd_tx, cmd_rx) = mpsc::channel(cfg.max_batch.max(64));
    let scrub = scrub::Scrub::new(cfg.scrub_interval);
    let first = status_of(&raft, &cfg, None, &scrub);
    let (members_tx, members_rx) = watch::channel(MembershipView {
        index: first.raft.conf_index,
        membership: first.raft.membership.clone(),
        leader: first.raft.leader,
    });
    let (status_tx, status_rx) = watch::channel(first);
    let timeout = cfg.request_timeout;
    let max_entry_bytes = cfg.max_entry_bytes;
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let driver = Driver {
        raft,
        cfg,
        transport: Arc::new(transport),
        sm,
        snaps,
        events: events_tx,
        taking_snapshot: false,
        bytes_since_snapshot: 0,
        senders: HashMap::new(),
        delivered: HashMap::new(),
        incoming: None,
        storage,
        stored_hs: stored.hard_state,
        writes_in_flight: 0,
        proposals: BTreeMap::new(),
        conf_waiters: BTreeMap::new(),
        reads_asked: HashMap::new(),
        reads_ready: BTreeMap::new(),
        next_read: 1,
        status: status_tx,
        members: members_tx,
        failed: None,
        scrub,
        force_snapshot: false,
        proposed_at: VecDeque::new(),
        metrics: metrics.clone(),
    };
    tokio::spawn(driver.run(cmd_rx, inbound, done_rx, events_rx));
    Ok(Node {
        tx: cmd_tx,
        status: status_rx,
        members: members_rx,
        timeout,
        max_entry_bytes,
        metrics,
    })
}

fn status_of(
    raft: &Raft,
    cfg: &NodeConfig,
    failed: Option<String>,
    scrub: &scrub::Scrub,
) -> NodeStatus {
    let s = raft.status();
    let election_tick = cfg.raft.election_tick;
    let voters: Vec<_> = raft.voters().into_iter().collect();
    let live = voters
        .iter()
        .filter(|&&v| {
            v == s.id
                || s.peers
                    .iter()
                    .any(|p| p.id == v && p.last_contact < election_tick)
        })
        .count();
    NodeStatus {
        quorum_live: s.role == Role::Leader && live * 2 > voters.len(),
        voters,
        raft: s,
        failed,
        damage: scrub.damage.clone(),
        scrubs: scrub.runs,
        scrub_damage: scrub.found,
        tick_ms: cfg.tick.as_millis() as u64,
        election_tick,
    }
}

struct Driver<T, M: StateMachine> {
    raft: Raft,
    cfg: NodeConfig,
    transport: Arc<T>,
    sm: M,
    snaps: Arc<dyn SnapshotStore>,
    events: mpsc::UnboundedSender<Event<M::Snapshot>>,
    /// A snapshot of this node's state is being written.
    taking_snapshot: bool,
    /// Bytes of entries applied since the last snapshot was started.
    bytes_since_snapshot: u64,
    /// Leader: snapshot transfers running, by peer.
    senders: HashMap<NodeId, SenderHandle>,
    /// Leader: transfers fully acknowledged, waiting for the follower to
    /// report the snapshot installed.
    delivered: HashMap<NodeId, Instant>,
    /// Follower: the snapshot being received.
    incoming: Option<Incoming>,
    storage: Storage,
    /// The hard state last handed to storage.
    stored_hs: HardState,
    /// Jobs queued to the storage thread and not yet reported done.
    writes_in_flight: usize,
    /// Proposals waiting to be applied, by index, with the term they got.
    proposals: BTreeMap<Index, (Term, ApplyReply<M::Output>)>,
    /// Membership changes waiting to be applied, by index.
    conf_waiters: BTreeMap<Index, (Term, Reply<Index>)>,
    /// Reads asked of the protocol, by read id.
    reads_asked: HashMap<u64, Reply<Index>>,
    /// Reads whose index is known, waiting for the state machine to get
    /// there.
    reads_ready: BTreeMap<Index, Vec<Reply<Index>>>,
    next_read: u64,
    status: watch::Sender<NodeStatus>,
    members: watch::Sender<MembershipView>,
    failed: Option<String>,
    scrub: scrub::Scrub,
    /// Take a snapshot even if none is due (the scrub found the latest
    /// one damaged).
    force_snapshot: bool,
    /// Proposal batches not yet applied: last index, count, when
    /// proposed (for the proposal latency histogram).
    proposed_at: VecDeque<(Index, usize, Instant)>,
    metrics: NodeMetrics,
}

impl<T: Transport, M: StateMachine> Driver<T, M> {
    async fn run(
        mut self,
        mut cmds: mpsc::Receiver<Command<M::Output>>,
        mut inbound: mpsc::Receiver<Message>,
        mut done: mpsc::UnboundedReceiver<Done>,
        mut events: mpsc::UnboundedReceiver<Event<M::Snapshot>>,
    ) {
        let mut ticker = tokio::time::interval(self.cfg.tick);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut shutdown: Option<oneshot::Sender<()>> = None;
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    if self.failed.is_none() {
                        self.raft.tick();
                        self.watch_transfers();
                        // Log reduction also follows the other members.
                        self.maybe_snapshot();
                        self.maybe_scrub();
                    }
                }
                Some(e) = events.recv() => self.on_event(e),
                Some(m) = inbound.recv() => {
                    self.step(m);
                    for _ in 1..MAX_INBOUND_PER_ROUND {
                        match inbound.try_recv() {
                            Ok(m) => self.step(m),
                            Err(_) => break,
                        }
                    }
                }
                Some(d) = done.recv() => self.on_done(d),
                c = cmds.recv() => {
                    let Some(c) = c else { break };
                    let mut batch = vec![c];
                    while batch.len() < self.cfg.max_batch {
                        match cmds.try_recv() {
                            Ok(c) => batch.push(c),
                            Err(_) => break,
                        }
                    }
                    if let Some(s) = self.on_commands(batch) {
                        shutdown = Some(s);
                        break;
                    }
                }
            }
            self.advance();
        }
        self.stop(shutdown).await;
    }

    fn step(&mut self, m: Message) {
        if self.failed.is_none() {
            self.raft.step(m);
        }
    }

    /// Handles a batch of user commands; all proposals among them go into
    /// one log append. Returns the shutdown reply when asked to stop.
    fn on_commands(&mut self, batch: Vec<Command<M::Output>>) -> Option<oneshot::Sender<()>> {
        let mut proposals: Vec<(Bytes, Waiter<M::Output>)> = Vec::new();
        let mut shutdown = None;
        for c in batch {
            match c {
                Command::Propose(data, r) => proposals.push((data, Waiter::Applied(r))),
                Command::Append(data, r) => proposals.push((data, Waiter::Appended(r))),
                Command::Read(r) => self.read(r),
                Command::SetMode(mode, r) => {
                    self.raft.set_mode(mode);
                    self.publish();
                    let _ = r.send(Ok(()));
                }
                Command::Transfer(to, r) => {
                    let res = self.raft.transfer_leader(to);
                    let _ = r.send(res.map_err(NodeError::from_protocol));
                }
                Command::ChangeConf(changes, r) => {
                    let res = match &self.failed {
                        Some(f) => Err(NodeError::Storage(f.clone())),
                        None => self
                            .raft
                            .propose_conf_change(&changes)
                            .map_err(NodeError::from_protocol),
                    };
                    match res {
                        Ok(index) => {
                            let term = self.raft.term();
                            self.conf_waiters.insert(index, (term, r));
                        }
                        Err(e) => {
                            let _ = r.send(Err(e));
                        }
                    }
                }
                Command::Campaign(r) => {
                    let res = self.raft.campaign();
                    let _ = r.send(res.map_err(NodeError::from_protocol));
                }
                Command::Entries(lo, hi, max, r) => {
                    // `lo..hi` (exclusive) of the committed log; `slice`
                    // takes an inclusive end. Only committed entries ever
                    // leave: a leader cut off from its followers holds
                    // entries that may yet be replaced.
                    let log = self.raft.log();
                    let last = hi.saturating_sub(1).min(log.committed);
                    let lo = lo.max(log.first_index());
                    let _ = r.send(Ok(if lo <= last {
                        log.slice(lo, last, max)
                    } else {
                        Vec::new()
                    }));
                }
                Command::Shutdown(s) => shutdown = Some(s),
            }
        }
        if !proposals.is_empty() {
            self.propose(proposals);
        }
        shutdown
    }

    fn propose(&mut self, batch: Vec<(Bytes, Waiter<M::Output>)>) {
        if let Some(f) = &self.failed {
            for (_, r) in batch {
                r.fail(NodeError::Storage(f.clone()));
            }
            return;
        }
        let (data, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        match self.raft.propose_batch(data) {
            Ok((first, term)) => {
                let n = replies.len();
                self.proposed_at
                    .push_back((first + n as Index - 1, n, Instant::now()));
                for (i, r) in replies.into_iter().enumerate() {
                    let index = first + i as Index;
                    match r {
                        Waiter::Applied(r) => {
                            self.proposals.insert(index, (term, r));
                        }
                        Waiter::Appended(r) => {
                            let _ = r.send(Ok((index, term)));
                        }
                    }
                }
            }
            Err(e) => {
                let e = NodeError::from_protocol(e);
                for r in replies {
                    r.fail(e.clone());
                }
            }
        }
    }

    fn read(&mut self, r: Reply<Index>) {
        if let Some(f) = &self.failed {
            let _ = r.send(Err(NodeError::Storage(f.clone())));
            return;
        }
        let id = self.next_read;
        self.next_read += 1;
        match self.raft.read_index(id) {
            Ok(()) => {
                self.reads_asked.insert(id, r);
            }
            Err(e) => {
                let _ = r.send(Err(NodeError::from_protocol(e)));
            }
        }
    }

    fn on_done(&mut self, d: Done) {
        match d {
            Done::Persisted {
                jobs,
                upto,
                then_send,
            } => {
                self.writes_in_flight -= jobs;
                if let Some((index, term)) = upto {
                    self.raft.on_persisted(index, term);
                }
                for m in then_send {
                    self.transport.send(m);
                }
            }
            Done::Failed(why) => {
                self.writes_in_flight = 0;
                tracing::error!("storage failed, this node stops taking writes: {why}");
                self.failed = Some(why.clone());
                self.publish();
                for (_, (_, r)) in std::mem::take(&mut self.proposals) {
                    let _ = r.send(Err(NodeError::Storage(why.clone())));
                }
            }
        }
    }

    /// Drains every `Ready` the protocol has, then publishes the status.
    fn advance(&mut self) {
        while self.failed.is_none() && self.raft.has_ready() {
            let rd = self.raft.ready();
            self.handle_ready(rd);
        }
        self.publish();
    }

    fn publish(&self) {
        let s = status_of(&self.raft, &self.cfg, self.failed.clone(), &self.scrub);
        let old = self.status.send_replace(s);
        let new = self.status.borrow();
        let (a, b) = (&old.raft, &new.raft);
        if b.leader.is_some() && a.leader != b.leader {
            self.metrics.leader_changes.inc();
        }
        if (a.role, a.term, a.leader) != (b.role, b.term, b.leader) {
            tracing::info!(
                role = %b.role, term = b.term, leader = ?b.leader, commit = b.commit,
                "role or leader changed"
            );
        }
        if a.conf_index != b.conf_index {
            tracing::info!(index = b.conf_index, "configuration: {}", b.membership);
        }
        if a.conf_index != b.conf_index || a.leader != b.leader {
            self.members.send_replace(MembershipView {
                index: b.conf_index,
                membership: b.membership.clone(),
                leader: b.leader,
            });
        }
    }

    fn handle_ready(&mut self, rd: Ready) {
        let Ready {
            hard_state,
            entries,
            messages,
            persisted_messages,
            committed,
            reads,
            dropped_reads,
            send_snapshots,
            snapshot_msgs,
        } = rd;
        for m in messages {
            self.transport.send(m);
        }
        // The commit index in the hard state is only a restart hint (it
        // may lag, never lead): write it when term or vote change, not on
        // every commit, which would touch a second table per batch.
        let hard_state = hard_state.filter(|hs| {
            let changed = (hs.term, hs.vote) != (self.stored_hs.term, self.stored_hs.vote);
            if changed {
                self.stored_hs = *hs;
            }
            changed
        });
        let must_persist = hard_state.is_some() || !entries.is_empty();
        if must_persist || (!persisted_messages.is_empty() && self.writes_in_flight > 0) {
            // Behind earlier writes: even a job with nothing to write must
            // wait its turn, since its messages may acknowledge them.
            let job = Job {
                hard_state,
                entries,
                then_send: persisted_messages,
                start: None,
            };
            self.queue(job);
        } else {
            for m in persisted_messages {
                self.transport.send(m);
            }
        }
        self.apply(committed);
        for (to, meta) in send_snapshots {
            self.start_sender(to, meta);
        }
        for m in snapshot_msgs {
            self.on_snapshot_msg(m);
        }
        for rs in reads {
            if let Some(r) = self.reads_asked.remove(&rs.id) {
                self.reads_ready.entry(rs.index).or_default().push(r);
            }
        }
        for id in dropped_reads {
            if let Some(r) = self.reads_asked.remove(&id) {
                let leader = self.raft.leader();
                let _ = r.send(Err(match leader {
                    None => NodeError::NoLeader,
                    Some(_) => NodeError::NotLeader { leader },
                }));
            }
        }
        self.serve_reads();
    }

    /// Hands a job to storage (counted in `writes_in_flight`).
    fn queue(&mut self, job: Job) {
        self.writes_in_flight += 1;
        match &mut self.storage {
            Storage::Thread { jobs, .. } => {
                if jobs.send(job).is_err() {
                    self.writes_in_flight -= 1;
                }
            }
            Storage::Inline(write) => {
                let done = write(job);
                self.on_done(done);
            }
        }
    }

    fn apply(&mut self, committed: Vec<crate::Entry>) {
        let Some(last) = committed.last().map(|e| e.index) else {
            return;
        };
        let started = Instant::now();
        for e in committed {
            self.bytes_since_snapshot += e.size() as u64;
            let output = match &e.payload {
                Payload::Normal(data) => Some(self.sm.apply(e.index, data)),
                Payload::Noop | Payload::Config(_) => None,
            };
            if let Payload::Config(_) = e.payload {
                resolve_older(&mut self.conf_waiters, e.index);
                if let Some((term, r)) = self.conf_waiters.remove(&e.index) {
                    let _ = r.send(if term == e.term {
                        Ok(e.index)
                    } else {
                        Err(NodeError::Dropped)
                    });
                }
            }
            resolve_older(&mut self.proposals, e.index);
            if let Some((term, r)) = self.proposals.remove(&e.index) {
                let _ = r.send(match output {
                    Some(o) if term == e.term => Ok((e.index, o)),
                    _ => Err(NodeError::Dropped),
                });
            }
        }
        self.metrics.apply.observe(metrics::since(started));
        self.raft.on_applied(last);
        self.observe_proposals(last);
        self.maybe_snapshot();
    }

    /// Proposal batches up to `applied` are done: observe their latency
    /// (dropped ones too: a proposal lost to a leader change took that
    /// long to be answered).
    fn observe_proposals(&mut self, applied: Index) {
        while let Some(&(last, n, at)) = self.proposed_at.front() {
            if last > applied {
                break;
            }
            let took = metrics::since(at);
            for _ in 0..n {
                self.metrics.proposal.observe(took);
            }
            self.proposed_at.pop_front();
        }
        self.metrics
            .proposals_pending
            .set(self.proposals.len() as i64);
    }

    fn serve_reads(&mut self) {
        let applied = self.raft.log().applied;
        while let Some(entry) = self.reads_ready.first_entry() {
            if *entry.key() > applied {
                break;
            }
            let index = *entry.key();
            for r in entry.remove() {
                let _ = r.send(Ok(index));
            }
        }
    }

    async fn stop(mut self, shutdown: Option<oneshot::Sender<()>>) {
        for (_, (_, r)) in std::mem::take(&mut self.proposals) {
            let _ = r.send(Err(NodeError::ShuttingDown));
        }
        for (_, (_, r)) in std::mem::take(&mut self.conf_waiters) {
            let _ = r.send(Err(NodeError::ShuttingDown));
        }
        // Dropping the job sender ends the storage thread after what it has
        // queued (closing the store); the status channel closing tells
        // watchers.
        if let Storage::Thread { jobs, thread } = self.storage {
            drop(jobs);
            if let Some(t) = thread {
                let _ = tokio::task::spawn_blocking(move || t.join()).await;
            }
        }
        if let Some(s) = shutdown {
            let _ = s.send(());
        }
    }
}

type ApplyReply<O> = Reply<(Index, O)>;

/// Requests waiting at lower indexes than `index`, now being applied, can
/// no longer be applied: their slot went to another entry.
fn resolve_older<T>(waiters: &mut BTreeMap<Index, (Term, Reply<T>)>, index: Index) {
    while let Some(entry) = waiters.first_entry() {
        if *entry.key() >= index {
            break;
        }
        let (_, r) = entry.remove();
        let _ = r.send(Err(NodeError::Dropped));
    }
}

/// Who waits for a proposal: to hear once it is applied, or only appended.
enum Waiter<O> {
    Applied(ApplyReply<O>),
    Appended(Reply<(Index, Term)>),
}

impl<O> Waiter<O> {
    fn fail(self, e: NodeError) {
        match self {
            Waiter::Applied(r) => {
                let _ = r.send(Err(e));
            }
            Waiter::Appended(r) => {
                let _ = r.send(Err(e));
            }
        }
    }
}
