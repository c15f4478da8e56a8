//! The protocol state machine. Inputs are method calls (`tick`, `step`,
//! `propose`, ...); outputs accumulate until the caller drains them with
//! `ready`. No I/O, no clock, no global randomness.
//!
//! `step` first reconciles terms, then dispatches by role. Only the
//! `become_*` methods change the role.

mod conf;
mod election;
mod identity;
mod reads;
mod replication;
mod snapshot;
#[cfg(test)]
mod testkit;
mod transfer;

use crate::config::{Config, InitialState};
use crate::error::Error;
use crate::log::RaftLog;
use crate::membership::{ConfLog, Membership};
use crate::message::{Body, Message, SnapshotMeta};
use crate::ready::{ReadState, Ready};
use crate::rng::Rng;
use crate::tracker::ProgressTracker;
use crate::types::{Entry, HardState, Index, Mode, NodeId, Payload, Role, Term};
use bytes::Bytes;
use reads::ReadQueue;
use std::collections::BTreeMap;

pub use identity::Replaced;

/// One node's protocol state: feed it ticks, messages and requests; take its effects from
/// `ready()`. No I/O, no clock, no global randomness.
pub struct Raft {
    cfg: Config,
    id: NodeId,
    mode: Mode,
    role: Role,
    term: Term,
    vote: Option<NodeId>,
    leader: Option<NodeId>,
    log: RaftLog,
    /// Every configuration the log holds; the latest is in force.
    confs: ConfLog,
    tracker: ProgressTracker,
    rng: Rng,

    /// Ticks since the last leader contact (followers) or the last
    /// check-quorum round (leaders).
    election_elapsed: u64,
    heartbeat_elapsed: u64,
    /// This node campaigns once `election_elapsed` reaches this.
    randomized_timeout: u64,

    /// Leader only: the node leadership is being handed to.
    transferee: Option<NodeId>,
    transfer_elapsed: u64,

    reads: ReadQueue,
    /// The latest snapshot this node has (its own or installed).
    ///
    /// Invariant: `log.first_index() - 1 <= snapshot.index <= applied`
    /// whenever the log has been compacted.
    snapshot: Option<SnapshotMeta>,
    /// Leader: the highest index every member has applied.
    all_applied: Index,
    /// Leader: the commit index moved since followers were last told. One
    /// broadcast per `Ready` tells them, however many acks moved it.
    commit_bcast_pending: bool,

    // Output not yet drained by `ready`.
    last_hard_state: HardState,
    messages: Vec<Message>,
    persisted_messages: Vec<Message>,
    read_states: Vec<ReadState>,
    dropped_reads: Vec<u64>,
    send_snapshots: Vec<(NodeId, SnapshotMeta)>,
    snapshot_msgs: Vec<Message>,
    /// `Config::rebuilding`, until the node sees itself demoted.
    rebuilding: bool,
    /// The commit index up to which the configurations were searched for
    /// that demotion.
    rebuild_seen: Index,
    /// `InitialState::storage`.
    storage: u64,
    /// The storage id each node's messages carried (and this node's own).
    peer_storage: BTreeMap<NodeId, u64>,
    /// Set once this node learns its storage is not the one the cluster
    /// knows for its id; from then on it takes no input.
    replaced: Option<Replaced>,
}

/// A snapshot of one node's view, for status pages and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The node.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// Its mode.
    pub mode: Mode,
    /// Its term.
    pub term: Term,
    /// Who it voted for in that term.
    pub vote: Option<NodeId>,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// The commit index.
    pub commit: Index,
    /// What the state machine applied.
    pub applied: Index,
    /// The last log index.
    pub last_index: Index,
    /// The last index durable here.
    pub persisted: Index,
    /// Leader: the node leadership is being transferred to.
    pub transferee: Option<NodeId>,
    /// It is being rebuilt from its peers and does not vote yet
    /// (`Config::rebuilding`).
    pub rebuilding: bool,
    /// Its storage is not the one the cluster knows for its id: it lost
    /// its state, and stopped (see `raft/identity.rs`).
    pub replaced: Option<Replaced>,
    /// The configuration in force (the latest in the log).
    /// Shared with the node's own record: cloning a status is cheap.
    pub membership: std::sync::Arc<Membership>,
    /// The index of its entry (or of the log start it came with).
    pub conf_index: Index,
    /// The index of the latest snapshot (0: none).
    pub snapshot: Index,
    /// The first index still in the log (earlier ones were compacted).
    pub first_index: Index,
    /// The highest index every member has applied, as the leader knows.
    pub all_applied: Index,
    /// Leader only: every member but this node.
    pub peers: Vec<PeerStatus>,
}

/// What a leader knows of one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// The peer.
    pub id: NodeId,
    /// Whether it votes.
    pub voter: bool,
    /// Its mode as last heard.
    pub mode: Mode,
    /// The highest index durable on it.
    pub matched: Index,
    /// The next index to send it.
    pub next: Index,
    /// Whether appends stream to it (else probing or snapshotting).
    pub replicating: bool,
    /// Heard from since the last check-quorum round.
    pub recent_active: bool,
    /// Ticks since the leader last heard from this peer.
    pub last_contact: u64,
    /// What the peer has applied, as it last said.
    pub applied: Index,
    /// A snapshot is being sent to it.
    pub snapshotting: bool,
    /// Times it was found to lack entries it had acknowledged as durable.
    pub lost_tails: u64,
    /// It is being sent such lost entries again.
    pub repairing: bool,
}

impl Raft {
    /// Starts a node from `state` (a new cluster, or what its storage holds); an error for
    /// settings or a state that cannot be right.
    pub fn new(cfg: Config, state: InitialState) -> Result<Self, Error> {
        cfg.validate()?;
        state.validate()?;
        let id = cfg.id;
        let base = state.membership_index.max(state.prev_index);
        let mut confs = ConfLog::new(base, state.membership);
        for e in &state.entries {
            if let Payload::Config(m) = &e.payload {
                confs.push(e.index, (**m).clone());
            }
        }
        let tracker = ProgressTracker::new(confs.latest().1, cfg.max_inflight);
        let log = RaftLog::restore(
            state.prev_index,
            state.prev_term,
            state.entries,
            state.hard_state.commit,
            state.applied,
        );
        let mut r = Raft {
            id,
            mode: cfg.mode,
            role: Role::Follower,
            term: state.hard_state.term,
            vote: state.hard_state.vote,
            leader: None,
            log,
            confs,
            tracker,
            rng: Rng::new(cfg.seed ^ id.wrapping_mul(0x2545_F491_4F6C_DD1D)),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_timeout: 0,
            transferee: None,
            transfer_elapsed: 0,
            // Its own generator, so drawing it moves no election timeout.
            reads: ReadQueue::new(Rng::new(!cfg.seed ^ id).next_u64()),
            snapshot: state.snapshot,
            all_applied: 0,
            commit_bcast_pending: false,
            last_hard_state: state.hard_state,
            messages: Vec::new(),
            persisted_messages: Vec::new(),
            read_states: Vec::new(),
            dropped_reads: Vec::new(),
            send_snapshots: Vec::new(),
            snapshot_msgs: Vec::new(),
            rebuilding: cfg.rebuilding,
            rebuild_seen: 0,
            storage: state.storage,
            peer_storage: BTreeMap::from([(id, state.storage)]),
            replaced: None,
            cfg,
        };
        if r.rebuilding && r.term > 0 {
            // Only possible for a term entered before the marker was set.
            r.vote = Some(id);
        }
        r.reset_election_timer();
        Ok(r)
    }

    // ----- accessors -----

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }
    /// This node's storage id (`InitialState::storage`).
    pub fn storage(&self) -> u64 {
        self.storage
    }
    /// Set once this node learnt its storage is not the one the cluster
    /// knows for its id (`Status::replaced`).
    pub fn replaced(&self) -> Option<Replaced> {
        self.replaced
    }
    /// Its role.
    pub fn role(&self) -> Role {
        self.role
    }
    /// Its mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }
    /// Its term.
    pub fn term(&self) -> Term {
        self.term
    }
    /// The leader it knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }
    /// The log.
    pub fn log(&self) -> &RaftLog {
        &self.log
    }
    /// The hard state to persist (term, vote, commit hint).
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed,
        }
    }
    /// The voters of the configuration in force (both halves during a change).
    pub fn voters(&self) -> std::collections::BTreeSet<NodeId> {
        self.tracker.voters.ids()
    }

    /// Everything a status page shows.
    pub fn status(&self) -> Status {
        let peers = if self.role == Role::Leader {
            self.tracker
                .progress
                .iter()
                .filter(|(id, _)| **id != self.id)
                .map(|(&id, p)| PeerStatus {
                    id,
                    voter: self.tracker.is_voter(id),
                    mode: p.mode,
                    matched: p.matched,
                    next: p.next,
                    replicating: p.state == crate::progress::ProgressState::Replicate,
                    recent_active: p.recent_active,
                    last_contact: p.last_contact,
                    applied: p.applied,
                    snapshotting: p.state == crate::progress::ProgressState::Snapshot,
                    lost_tails: p.lost_tails,
                    repairing: p.repair_to > 0,
                })
                .collect()
        } else {
            Vec::new()
        };
        Status {
            id: self.id,
            role: self.role,
            mode: self.mode,
            term: self.term,
            vote: self.vote,
            leader: self.leader,
            commit: self.log.committed,
            applied: self.log.applied,
            last_index: self.log.last_index(),
            persisted: self.log.persisted,
            transferee: self.transferee,
            rebuilding: self.rebuilding,
            replaced: self.replaced,
            membership: self.confs.latest_shared().1.clone(),
            conf_index: self.confs.latest().0,
            snapshot: self.snapshot.as_ref().map_or(0, |s| s.index),
            first_index: self.log.first_index(),
            all_applied: self.all_applied,
            peers,
        }
    }

    // ----- inputs -----

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        if self.replaced.is_some() {
            return;
        }
        self.check_rebuilt();
        self.check_own_storage();
        if self.role == Role::Leader {
            self.publish_storage();
            self.tick_leader();
        } else {
            self.tick_election();
        }
    }

    /// Handles a message from a peer.
    pub fn step(&mut self, m: Message) {
        if m.to != self.id || m.from == self.id || self.replaced.is_some() {
            return;
        }
        if !self.admit_storage(&m) {
            return;
        }
        if m.term > self.term {
            if let Body::RequestVote { transfer, .. } = m.body {
                // §4.2.3: while a live leader is being heard, a vote request
                // comes from a node that was cut off; ignore it entirely, so
                // it cannot raise our term and depose the leader.
                let in_lease = self.cfg.check_quorum
                    && self.leader.is_some()
                    && self.election_elapsed < self.cfg.election_tick;
                if in_lease && !transfer {
                    return;
                }
            }
            match m.body {
                // A pre-vote does not raise the term of either side.
                Body::RequestVote { pre_vote: true, .. } => {}
                Body::VoteResponse {
                    pre_vote: true,
                    granted: true,
                } => {}
                _ => {
                    let leader = m.is_from_leader().then_some(m.from);
                    self.become_follower(m.term, leader);
                }
            }
        } else if m.term < self.term {
            match m.body {
                // A stale leader learns of the newer term from our answer
                // and steps down (otherwise, with pre-vote or check-quorum,
                // it might never hear a higher term).
                Body::Append { .. } | Body::Heartbeat { .. } | Body::SnapshotChunk { .. } => {
                    self.send(
                        m.from,
                        Body::AppendResponse {
                            index: 0,
                            reject: None,
                        },
                    );
                }
                Body::RequestVote { pre_vote: true, .. } => {
                    self.send(
                        m.from,
                        Body::VoteResponse {
                            pre_vote: true,
                            granted: false,
                        },
                    );
                }
                _ => {}
            }
            return;
        }

        if let Body::RequestVote {
            pre_vote,
            last_index,
            last_term,
            ..
        } = m.body
        {
            self.handle_vote_request(&m, pre_vote, last_index, last_term);
            return;
        }
        match self.role {
            Role::Leader => self.step_leader(m),
            Role::Candidate | Role::PreCandidate => self.step_candidate(m),
            Role::Follower => self.step_follower(m),
        }
    }

    /// Appends `data` to the log. Returns the (index, term) the entry got:
    /// it is committed only if that index later commits with that term.
    pub fn propose(&mut self, data: Bytes) -> Result<(Index, Term), Error> {
        let (first, term) = self.propose_batch(std::iter::once(data))?;
        Ok((first, term))
    }

    /// Appends several entries at once; they get consecutive indexes from
    /// the returned first one.
    pub fn propose_batch(
        &mut self,
        data: impl IntoIterator<Item = Bytes>,
    ) -> Result<(Index, Term), Error> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader {
                leader: self.leader,
            });
        }
        if let Some(t) = self.transferee {
            return Err(Error::TransferInProgress(t));
        }
        let first = self.log.last_index() + 1;
        let payloads: Vec<Payload> = data.into_iter().map(Payload::Normal).collect();
        self.append_entries(payloads);
        self.bcast_append(false);
        Ok((first, self.term))
    }

    /// Starts an election now, if this node's mode allows it.
    pub fn campaign(&mut self) -> Result<(), Error> {
        if self.mode == Mode::Passive {
            return Err(Error::Passive);
        }
        if self.role != Role::Leader {
            self.start_campaign(false);
        }
        Ok(())
    }

    /// Changes this node's mode at run time.
    pub fn set_mode(&mut self, mode: Mode) {
        if self.mode == mode {
            return;
        }
        self.mode = mode;
        if self.role != Role::Leader {
            self.reset_election_timer();
        }
    }

    /// The caller made entries durable up to (`index`, `term`), and with
    /// them the hard state of the same `Ready`.
    pub fn on_persisted(&mut self, index: Index, term: Term) {
        if self.log.persisted_to(index, term) && self.role == Role::Leader {
            let persisted = self.log.persisted;
            let me = self.id;
            if let Some(p) = self.tracker.progress.get_mut(&me) {
                p.maybe_update(persisted);
            }
            self.maybe_commit();
        }
    }

    /// The state machine applied everything up to `index`.
    pub fn on_applied(&mut self, index: Index) {
        self.log.applied_to(index);
    }

    /// Whether `ready` has anything.
    pub fn has_ready(&self) -> bool {
        self.commit_bcast_pending
            || self.read_round_due()
            || self.hard_state() != self.last_hard_state
            || self.log.has_unstable()
            || !self.messages.is_empty()
            || !self.persisted_messages.is_empty()
            || self.log.has_committed_to_apply()
            || !self.read_states.is_empty()
            || !self.dropped_reads.is_empty()
            || !self.send_snapshots.is_empty()
            || !self.snapshot_msgs.is_empty()
    }

    /// Drains the pending output. See `Ready` for what to do with it.
    pub fn ready(&mut self) -> Ready {
        if std::mem::take(&mut self.commit_bcast_pending) && self.role == Role::Leader {
            self.bcast_append(true);
        }
        self.start_read_round();
        let hs = self.hard_state();
        let hard_state = (hs != self.last_hard_state).then_some(hs);
        self.last_hard_state = hs;
        Ready {
            hard_state,
            entries: self.log.take_unstable(),
            messages: std::mem::take(&mut self.messages),
            persisted_messages: std::mem::take(&mut self.persisted_messages),
            committed: self.log.take_committed(self.cfg.max_apply_bytes),
            reads: std::mem::take(&mut self.read_states),
            dropped_reads: std::mem::take(&mut self.dropped_reads),
            send_snapshots: std::mem::take(&mut self.send_snapshots),
            snapshot_msgs: std::mem::take(&mut self.snapshot_msgs),
        }
    }

    // ----- role changes -----

    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        // A follower that only learns of a higher term (from a vote request
        // it may well reject) keeps its election timer running: otherwise a
        // node that can never win, campaigning again and again, would keep
        // everyone else from ever campaigning.
        let keep_timer = self.role == Role::Follower && leader.is_none();
        let elapsed = self.election_elapsed;
        if term != self.term {
            self.term = term;
            // A node being rebuilt may have voted in this term before it
            // lost its storage: it counts the term as voted in.
            self.vote = self.rebuilding.then_some(self.id);
        }
        self.leave_role(leader);
        self.role = Role::Follower;
        if keep_timer {
            self.election_elapsed = elapsed;
        }
    }

    fn become_pre_candidate(&mut self) {
        assert_ne!(
            self.role,
            Role::Leader,
            "invariant broken: a leader never becomes a pre-candidate"
        );
        self.leave_role(None);
        self.role = Role::PreCandidate;
        self.tracker.reset_votes();
    }

    fn become_candidate(&mut self) {
        assert_ne!(
            self.role,
            Role::Leader,
            "invariant broken: a leader never becomes a candidate"
        );
        self.term += 1;
        self.vote = Some(self.id);
        self.leave_role(None);
        self.role = Role::Candidate;
        self.tracker.reset_votes();
    }

    fn become_leader(&mut self) {
        assert_eq!(
            self.role,
            Role::Candidate,
            "invariant broken: only a candidate becomes leader"
        );
        self.leave_role(Some(self.id));
        self.role = Role::Leader;
        self.tracker.reset_progress(self.log.last_index() + 1);
        let (me, persisted) = (self.id, self.log.persisted);
        if let Some(p) = self.tracker.progress.get_mut(&me) {
            p.maybe_update(persisted);
            p.become_replicate();
        }
        // §5.4.2: a leader commits entries of earlier terms only by
        // committing one of its own; the no-op makes that happen at once.
        // If it knows storage ids to record (and no configuration is
        // pending), the configuration that records them does it instead:
        // a new cluster's first leader records its voters at once.
        let pending = self.confs.latest().0 > self.log.committed;
        let first = match self.storage_recorded().filter(|_| !pending) {
            Some(m) => Payload::Config(Box::new(m)),
            None => Payload::Noop,
        };
        self.append_entries(vec![first]);
        self.bcast_append(true);
    }

    /// What every role change resets.
    fn leave_role(&mut self, leader: Option<NodeId>) {
        if self.leader != leader {
            self.reads.drop_forwarded(&mut self.dropped_reads);
        }
        if self.role == Role::Leader {
            self.reads.drop_all(self.id, &mut self.dropped_reads);
        }
        self.leader = leader;
        self.transferee = None;
        self.transfer_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.reset_election_timer();
    }

    // ----- helpers shared by the submodules -----

    fn send(&mut self, to: NodeId, body: Body) {
        let m = Message {
            from: self.id,
            to,
            term: self.term,
            mode: self.mode,
            body,
            storage: self.storage,
        };
        // Answers that promise durable state wait for the caller's fsync.
        let after_persist = matches!(
            m.body,
            Body::AppendResponse { .. }
                | Body::VoteResponse {
                    pre_vote: false,
                    ..
                }
                | Body::RequestVote {
                    pre_vote: false,
                    ..
                }
        );
        if after_persist {
            self.persisted_messages.push(m);
        } else {
            self.messages.push(m);
        }
    }

    fn append_entries(&mut self, payloads: Vec<Payload>) {
        let mut index = self.log.last_index();
        let term = self.term;
        let entries = payloads
            .into_iter()
            .map(|payload| {
                index += 1;
                Entry {
                    term,
                    index,
                    payload,
                }
            })
            .collect::<Vec<_>>();
        self.confs_appended(&entries);
        self.log.append(entries);
    }

    fn peers(&self) -> Vec<NodeId> {
        self.tracker
            .progress
            .keys()
            .copied()
            .filter(|&id| id != self.id)
            .collect()
    }
}

impl std::fmt::Debug for Raft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.status())
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::{ack, heartbeat, leader, msg, node, node_from, persist, reject, sends};
    use crate::config::InitialState;
    use crate::message::Body;
    use crate::types::{Mode, Role};
    use bytes::Bytes;

    fn vote_request(from: u64, to: u64, term: u64, pre_vote: bool) -> crate::Message {
        let body = Body::RequestVote {
            pre_vote,
            last_index: 0,
            last_term: 0,
            transfer: false,
        };
        msg(from, to, term, body)
    }

    /// What the driver reads to persist and to route: the storage id it
    /// gave, the mode it configured, the leader this node follows.
    #[test]
    fn accessors_report_the_nodes_state() {
        let state = InitialState {
            storage: 77,
            ..InitialState::new_cluster([1, 2, 3])
        };
        let mut r = node_from(2, state, |c| c.mode = Mode::Reluctant);
        assert_eq!(
            (r.storage(), r.mode(), r.leader()),
            (77, Mode::Reluctant, None)
        );
        r.step(heartbeat(2, 1, 0));
        assert_eq!(r.leader(), Some(1));
    }

    /// A follower that hears its leader ignores vote requests for one
    /// election timeout (dissertation §4.2.3), and no longer: after
    /// `election_tick` ticks of silence the lease is over.
    #[test]
    fn the_leaders_lease_lasts_election_tick_ticks() {
        // Reluctant: its own timeout (20..30 ticks) stays out of the way.
        let mut r = node(2, |c| c.mode = Mode::Reluctant);
        r.step(heartbeat(2, 1, 0));
        for _ in 0..9 {
            r.tick();
        }
        r.step(vote_request(3, 2, 2, false));
        assert_eq!(
            r.term(),
            1,
            "a vote request inside the lease raised the term"
        );
        r.tick();
        r.step(vote_request(3, 2, 2, false));
        assert_eq!(r.term(), 2, "the lease outlived election_tick ticks");
    }

    /// A pre-vote from an earlier term is refused out loud, so the
    /// pre-candidate learns of the newer term and stops asking.
    #[test]
    fn a_pre_vote_from_an_earlier_term_is_refused() {
        let mut r = node(2, |_| {});
        r.step(heartbeat(2, 3, 0));
        r.step(vote_request(3, 2, 2, true));
        let rd = r.ready();
        let refused = |b: &Body| {
            matches!(
                b,
                Body::VoteResponse {
                    pre_vote: true,
                    granted: false
                }
            )
        };
        assert!(sends(&rd, 3, refused), "{:?}", rd.messages);
        assert!(rd.messages.iter().all(|m| m.term == 3));
    }

    /// Only a leader counts acknowledgements. A leader that stepped down
    /// in its own term (check-quorum) still holds a peer's match for an
    /// entry it had not made durable; making it durable as a follower
    /// commits nothing: the next leader says what is committed.
    #[test]
    fn a_follower_commits_nothing_by_its_own_persistence() {
        let mut r = leader(|_| {});
        r.propose(Bytes::from_static(b"x")).unwrap();
        let rd = r.ready();
        assert_eq!(rd.entries.last().map(|e| e.index), Some(2));
        ack(&mut r, 2, 2);
        assert_eq!(r.status().commit, 1, "test set-up: 2 is not durable here");
        for _ in 0..20 {
            r.tick();
        }
        assert_eq!(r.role(), Role::Follower, "test set-up: check-quorum");
        assert_eq!(r.term(), 1);
        r.on_persisted(2, 1);
        assert_eq!(r.status().commit, 1);
    }

    /// A candidate that steps down on hearing a higher term starts a new
    /// election timeout; only a follower that merely hears of a higher
    /// term (and no leader) keeps its timer running.
    #[test]
    fn a_candidate_stepping_down_starts_a_fresh_timeout() {
        for seed in 0..20 {
            // One entry, so the term-2 request (empty log) is refused and
            // the refusal does not reset the timer either.
            let state = InitialState {
                entries: vec![crate::Entry {
                    term: 1,
                    index: 1,
                    payload: crate::Payload::Noop,
                }],
                hard_state: crate::HardState {
                    term: 1,
                    vote: None,
                    commit: 0,
                },
                ..InitialState::new_cluster([1, 2, 3])
            };
            let mut r = node_from(2, state, |c| {
                c.seed = seed;
                c.check_quorum = false;
            });
            r.campaign().unwrap();
            for _ in 0..9 {
                r.tick();
            }
            assert_eq!((r.role(), r.term()), (Role::Candidate, 2), "seed {seed}");
            r.step(vote_request(3, 2, 3, false));
            assert_eq!((r.role(), r.term()), (Role::Follower, 3), "seed {seed}");
            let _ = persist(&mut r);
            for _ in 0..9 {
                r.tick();
            }
            assert_eq!(r.term(), 3, "seed {seed}: campaigned within 9 ticks");
        }
    }

    /// A peer that lost entries it had acknowledged shows as repairing
    /// until it holds them again.
    #[test]
    fn status_shows_a_repair_in_progress() {
        let mut r = leader(|_| {});
        r.propose(Bytes::from_static(b"x")).unwrap();
        persist(&mut r);
        ack(&mut r, 2, 2);
        reject(&mut r, 2, 2, None, 2);
        let p = r.status().peers.into_iter().find(|p| p.id == 2).unwrap();
        assert_eq!((p.lost_tails, p.repairing, p.matched), (1, true, 1));
    }
}
