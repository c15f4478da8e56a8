//! A deterministic simulator for whole raft-core clusters.
//!
//! N nodes run in one process over a seeded network that drops, delays,
//! duplicates and reorders messages and partitions nodes (both ways or one
//! way). Nodes crash, losing every write not yet acknowledged as durable,
//! and restart from what was. Modes change and leadership moves at random.
//! Clients write and read a small replicated key-value register through
//! the cluster, and their history is recorded.
//!
//! After every step the [`checker`] verifies Raft's safety properties. After
//! the fault phase everything is healed and the cluster must elect a leader
//! and complete client operations within a bounded number of ticks; then
//! the history must be linearizable. A run is a pure function of its seed.

#![deny(missing_docs)]

pub mod checker;
mod churn;
mod cuts;
pub mod linearizability;
pub mod network;
mod snapshots;
mod workload;

use bytes::Bytes;
use checker::Checker;
use cuts::Cuts;
use linearizability::{Key, Op, OpKind, Value};
use network::{Event, Faults, Network, TICK, Time};
use raft_core::{
    Body, Config, Entry, Error, HardState, Index, InitialState, Membership, Message, Mode, NodeId,
    Payload, Raft, Ready, Rng, Role, SnapshotMeta, Term,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use workload::{Client, OpState};

/// A run handling more events than this has a message storm (messages
/// breeding messages); a healthy run handles a few tens of thousands.
const MAX_EVENTS: u64 = 2_000_000;

/// What one run does. Everything not here derives from `seed`.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The seed every random choice derives from.
    pub seed: u64,
    /// Voters to start with.
    pub nodes: usize,
    /// Ticks of faults.
    pub fault_ticks: u64,
    /// Ticks, after healing, within which a leader must be elected and every
    /// client must complete a write and a read.
    pub heal_ticks: u64,
    /// Clients issuing reads and writes.
    pub clients: usize,
    /// Print every event to stderr (for replaying one seed).
    pub trace: bool,
    /// Nodes take snapshots and compact their logs at random; followers
    /// that fall behind the compacted log get snapshots over the lossy
    /// network.
    pub snapshots: bool,
    /// Membership churn: `nodes` voters to start with, and spare nodes up
    /// to five; the leader adds learners, promotes, demotes and removes
    /// members (itself included) at random, between three and five voters.
    pub churn: bool,
    /// Disks are wiped: a down node loses its whole storage (a new storage
    /// id) and is started again as it was, under its old id, at most a
    /// minority of the nodes (so the cluster can go on without them). The
    /// cluster must recognise it (raft-core's storage ids) and never count
    /// it; once it learns it was replaced, it is retired as an operator
    /// would retire the machine. Wipes come only once every other node's
    /// log records the node's storage (a wipe before that is the window
    /// docs/architecture.md names).
    pub wipes: bool,
}

impl SimConfig {
    /// The defaults for a run of `nodes` nodes from `seed`: 1,500 ticks of faults, then 600
    /// to recover.
    pub fn new(seed: u64, nodes: usize) -> Self {
        SimConfig {
            seed,
            nodes,
            fault_ticks: 1500,
            heal_ticks: 600,
            clients: 3,
            trace: false,
            snapshots: true,
            churn: false,
            wipes: false,
        }
    }

    /// With wiped disks (`wipes`).
    pub fn with_wipes(seed: u64, nodes: usize) -> Self {
        SimConfig {
            wipes: true,
            ..SimConfig::new(seed, nodes)
        }
    }

    /// With membership churn. Healing gets longer: a node added late
    /// replays the whole log, and seeds with one-entry appends and a
    /// window of one do that slowly.
    pub fn with_churn(seed: u64, nodes: usize) -> Self {
        SimConfig {
            churn: true,
            heal_ticks: 1500,
            ..SimConfig::new(seed, nodes)
        }
    }
}

/// What a passing run did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Ticks the run took.
    pub ticks: u64,
    /// Completed client operations the linearizability check covered.
    pub ops_checked: usize,
    /// Writes whose outcome the client never learned (still checked: they
    /// may or may not have happened).
    pub ops_indeterminate: usize,
    /// Messages delivered.
    pub messages: u64,
    /// Node crashes (restarted from their disks).
    pub crashes: u64,
    /// Terms that had a leader.
    pub terms_with_leader: usize,
    /// Entries committed.
    pub committed: usize,
    /// Committed configuration entries.
    pub configs: usize,
    /// Snapshots followers installed from a leader.
    pub installs: u64,
    /// Disks wiped (`SimConfig::wipes`), and wiped nodes the cluster told
    /// they were replaced.
    pub wiped: u64,
    /// Wiped nodes the cluster told they were replaced.
    pub replaced: u64,
}

/// A failing run: what broke, and how to replay it.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// Nodes.
    pub nodes: usize,
    /// Whether membership churned.
    pub churn: bool,
    /// Whether disks were wiped.
    pub wipes: bool,
    /// The tick it broke at.
    pub tick: u64,
    /// What broke.
    pub what: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {} failed at tick {}: {}\n  replay: cargo xtask sim --seed {} --nodes {}{}{}",
            self.seed,
            self.tick,
            self.what,
            self.seed,
            self.nodes,
            if self.churn { " --churn" } else { "" },
            if self.wipes { " --wipes" } else { "" }
        )
    }
}

/// What a range of seeds did, added up.
#[derive(Debug, Default)]
pub struct Summary {
    /// Seeds that passed.
    pub passed: u64,
    /// What the passing runs did, added up.
    pub total: Report,
    /// Sorted by seed.
    pub failures: Vec<Failure>,
}

/// Runs seeds `first..first + count` on `jobs` threads; `configure` makes
/// each seed's configuration.
pub fn run_seeds(
    first: u64,
    count: u64,
    jobs: usize,
    configure: impl Fn(u64) -> SimConfig + Sync,
) -> Summary {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};
    let next = AtomicU64::new(first);
    let summary = Mutex::new(Summary::default());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= first + count {
                        break;
                    }
                    let result = run(&configure(seed));
                    let mut sum = summary.lock().expect("no panics while locked");
                    match result {
                        Ok(r) => {
                            sum.passed += 1;
                            sum.total.add(&r);
                        }
                        Err(f) => sum.failures.push(f),
                    }
                }
            });
        }
    });
    let mut summary = summary.into_inner().expect("threads done");
    summary.failures.sort_by_key(|f| f.seed);
    summary
}

impl Report {
    fn add(&mut self, r: &Report) {
        self.ticks += r.ticks;
        self.ops_checked += r.ops_checked;
        self.ops_indeterminate += r.ops_indeterminate;
        self.messages += r.messages;
        self.crashes += r.crashes;
        self.terms_with_leader += r.terms_with_leader;
        self.committed += r.committed;
        self.configs += r.configs;
        self.installs += r.installs;
        self.wiped += r.wiped;
        self.replaced += r.replaced;
    }
}

/// Runs one simulation.
pub fn run(cfg: &SimConfig) -> Result<Report, Failure> {
    let mut sim = Sim::new(cfg.clone());
    match sim.run() {
        Ok(()) => Ok(sim.report()),
        Err(what) => Err(Failure {
            seed: cfg.seed,
            nodes: cfg.nodes,
            churn: cfg.churn,
            wipes: cfg.wipes,
            tick: sim.tick,
            what,
        }),
    }
}

/// One disk write in flight: a `Ready`'s durable part and the messages
/// that wait for it.
struct Write {
    hard_state: Option<HardState>,
    entries: Vec<Entry>,
    messages: Vec<Message>,
    /// A snapshot from the leader replaced the log: after this write, the
    /// durable log starts after (index, term), keeping what follows only
    /// if it held that entry.
    reset: Option<(Index, Term)>,
}

/// A snapshot on a node's disk: its meta and the register store.
type Snap = (SnapshotMeta, BTreeMap<Key, Value>);

struct SimNode {
    raft: Option<Raft>,
    /// Bumped on every crash; events of an earlier life are ignored.
    generation: u64,
    mode: Mode,
    durable_hs: HardState,
    /// Durable entries after `log_prev` (index, term).
    durable_log: Vec<Entry>,
    log_prev: (Index, Term),
    /// The latest durable snapshot.
    snap: Option<Snap>,
    /// Writes in flight, completed in order.
    writes: VecDeque<Write>,
    last_write_at: Time,
    kv: BTreeMap<Key, Value>,
    /// The configuration this node starts from, and the index it is in
    /// force as of.
    base: (Index, Membership),
    /// ReadIndex results waiting for the state machine to catch up.
    reads: Vec<(u64, Index)>,
    /// The next read id: from 1 in every incarnation, as the driver
    /// numbers them, so answers meant for an earlier life meet reused ids.
    next_read: u64,
    /// The disk's storage id (`InitialState::storage`), drawn with it.
    storage: u64,
    /// The disk this node's last wipe destroyed: its storage id, and the
    /// entries it held (after its `log_prev`).
    wiped: Option<(u64, (Index, Term), Vec<Entry>)>,
}

struct Sim {
    cfg: SimConfig,
    raft_cfg: Config,
    rng: Rng,
    tick: u64,
    now: Time,
    net: Network,
    ids: Vec<NodeId>,
    nodes: BTreeMap<NodeId, SimNode>,
    /// The cluster a fresh node starts in.
    initial: Membership,
    /// The register store of every snapshot taken, by (index, term).
    snapshot_states: HashMap<(Index, Term), BTreeMap<Key, Value>>,
    /// Snapshot transfers in flight: (leader, follower, deadline tick).
    transfers: Vec<(NodeId, NodeId, u64)>,
    /// A violation found where no error could be returned.
    violation: Option<String>,
    installs: u64,
    /// Nodes out of the cluster (never added, or removed and wiped, as an
    /// operator retires a machine): down until added back.
    retired: BTreeSet<NodeId>,
    checker: Checker,
    clients: Vec<Client>,
    history: Vec<Op>,
    /// History entries to leave out: operations known to have had no effect.
    void: Vec<bool>,
    /// Orders calls and returns for the linearizability check.
    order: u64,
    next_op_id: u64,
    healing: bool,
    /// Events handled so far, against `MAX_EVENTS`.
    events: u64,
    /// Healed and every client done: no new operations.
    quiescing: bool,
    crashes: u64,
    /// Multiplies the rate of every fault.
    intensity: u64,
    /// The term each node was last seen leading.
    led: BTreeMap<NodeId, u64>,
    /// New leaders picked to crash soon after their election, and when:
    /// the moments right after an election are where the subtle commit
    /// rules (Raft figure 8) matter.
    doomed: Vec<(NodeId, u64)>,
    /// Leaders cut off at the moments the commit rules decide.
    cuts: Cuts,
    max_disk_delay: Time,
    /// Disks still to wipe (`SimConfig::wipes`).
    wipes_left: usize,
    /// Disks wiped, and wiped nodes that learnt they were replaced.
    wiped: u64,
    replaced: u64,
}

impl Sim {
    fn new(cfg: SimConfig) -> Self {
        let mut rng = Rng::new(cfg.seed);
        let ids: Vec<NodeId> = (1..=cfg.nodes as NodeId).collect();
        let initial = Membership::new(ids.iter().copied());
        let retired = BTreeSet::new();
        let mut raft_cfg = Config::new(1);
        raft_cfg.election_tick = 10;
        raft_cfg.heartbeat_tick = rng.range(1, 4);
        raft_cfg.pre_vote = rng.chance(1, 2);
        raft_cfg.check_quorum = rng.chance(4, 5);
        raft_cfg.max_inflight = rng.range(1, 9) as usize;
        raft_cfg.max_append_entries = rng.range(1, 9) as usize;
        // A quarter of the seeds cut leaders off at the moments the commit
        // rules decide (figure 8), mostly with one-entry appends, which
        // hand an old term's entries over apart from the new term's.
        let cuts = if rng.chance(1, 4) {
            if rng.chance(1, 2) {
                raft_cfg.max_append_entries = 1;
            }
            Cuts::draw(&mut rng)
        } else {
            Cuts::off()
        };
        // How hard this seed shakes the cluster, and how slow its disks are:
        // long writes widen the windows in which a crash loses data.
        let intensity = rng.range(1, 5);
        let max_disk_delay = rng.range(1, 3 * TICK + 1);
        // Swarm testing (Groce et al.): half the seeds hold some messages
        // up for as long as several election timeouts, so stale replies
        // of earlier terms are common in them rather than never seen.
        let slow = rng.chance(1, 2);
        let faults = Faults {
            drop_permille: rng.range(0, 151),
            dup_permille: rng.range(0, 51),
            max_delay: rng.range(2, 21),
            slow_permille: if slow { rng.range(1, 201) } else { 0 },
            // About one to two election timeouts: late enough to cross a
            // term change, early enough to find its candidate still there.
            max_slow: rng.range(10 * TICK, 25 * TICK + 1),
            replay_permille: if rng.chance(1, 2) {
                rng.range(1, 51)
            } else {
                0
            },
        };
        let clients = (0..cfg.clients)
            .map(|i| Client::new(ids[i % ids.len()]))
            .collect();
        let mut sim = Sim {
            raft_cfg,
            rng,
            tick: 0,
            now: 0,
            net: Network::new(faults, cfg.seed),
            nodes: BTreeMap::new(),
            initial,
            snapshot_states: HashMap::new(),
            transfers: Vec::new(),
            violation: None,
            installs: 0,
            retired,
            checker: Checker::default(),
            clients,
            history: Vec::new(),
            void: Vec::new(),
            order: 0,
            next_op_id: 1,
            healing: false,
            events: 0,
            quiescing: false,
            crashes: 0,
            intensity,
            max_disk_delay,
            wipes_left: if cfg.wipes { (cfg.nodes - 1) / 2 } else { 0 },
            wiped: 0,
            replaced: 0,
            led: BTreeMap::new(),
            doomed: Vec::new(),
            cuts,
            ids: ids.clone(),
            cfg,
        };
        for &id in &ids {
            let base = (0, sim.initial.clone());
            sim.add_node(id, base);
        }
        sim
    }

    /// A new machine with an empty disk, starting from configuration
    /// `base`.
    fn add_node(&mut self, id: NodeId, base: (Index, Membership)) {
        let mode = match self.rng.range(0, 10) {
            0 => Mode::Passive,
            1 => Mode::Reluctant,
            _ => Mode::Active,
        };
        self.nodes.insert(
            id,
            SimNode {
                raft: None,
                generation: 0,
                mode,
                durable_hs: HardState::default(),
                durable_log: Vec::new(),
                log_prev: (0, 0),
                snap: None,
                writes: VecDeque::new(),
                last_write_at: 0,
                kv: BTreeMap::new(),
                base,
                reads: Vec::new(),
                next_read: 1,
                storage: self.rng.next_u64() | 1,
                wiped: None,
            },
        );
        if !self.ids.contains(&id) {
            self.ids.push(id);
        }
        self.start_node(id);
    }

    fn run(&mut self) -> Result<(), String> {
        let end_faults = self.cfg.fault_ticks;
        let deadline = end_faults + self.cfg.heal_ticks;
        while self.tick < deadline {
            self.tick += 1;
            if self.tick == end_faults {
                self.heal()?;
            }
            self.step_tick()?;
            if self.healing
                && !self.quiescing
                && self.leader().is_some()
                && self.clients.iter().all(|c| c.healed())
            {
                // Clients stop; every node must now converge on its own.
                self.quiescing = true;
            }
            if self.quiescing && self.converged() {
                return self.finish();
            }
        }
        let leader = self
            .leader()
            .map_or("no leader".to_string(), |l| format!("leader {l}"));
        let waiting: Vec<String> = (self.clients.iter().enumerate())
            .filter(|(_, c)| !c.healed())
            .map(|(i, c)| format!("client {i} {c:?}"))
            .collect();
        if waiting.is_empty() {
            let nodes: Vec<String> = self
                .live()
                .map(|r| {
                    format!(
                        "node {} applied {} of last {}",
                        r.id(),
                        r.log().applied,
                        r.log().last_index()
                    )
                })
                .collect();
            return Err(format!(
                "liveness: {} ticks after healing, {leader}, but the nodes never converged: {}",
                self.cfg.heal_ticks,
                nodes.join(", ")
            ));
        }
        Err(format!(
            "liveness: {} ticks after healing, {leader}; clients not done: {}",
            self.cfg.heal_ticks,
            waiting.join("; ")
        ))
    }

    fn step_tick(&mut self) -> Result<(), String> {
        let until = self.tick * TICK;
        while let Some((at, event)) = self.net.next_due(until) {
            self.now = at;
            self.events += 1;
            if self.events > MAX_EVENTS {
                return Err(format!("message storm: over {MAX_EVENTS} events"));
            }
            self.handle_event(event)?;
        }
        self.now = until;
        if !self.healing {
            self.inject_faults()?;
        }
        self.retire_replaced();
        for id in self.ids.clone() {
            if let Some(r) = self.raft_mut(id) {
                r.tick();
                self.process(id)?;
            }
        }
        self.expire_transfers()?;
        self.drive_clients()?;
        Ok(())
    }

    fn handle_event(&mut self, event: Event) -> Result<(), String> {
        match event {
            Event::Deliver(m) => {
                let m = *m;
                let to = m.to;
                if self.net.is_blocked(m.from, to) {
                    return Ok(());
                }
                if let Some(r) = self.nodes.get_mut(&to).and_then(|n| n.raft.as_mut()) {
                    if self.cfg.trace {
                        eprintln!("t={} deliver {m}", self.now);
                    }
                    self.net.delivered += 1;
                    r.step(m);
                    self.process(to)?;
                } else if !self.retired.contains(&to) {
                    self.net.hold(self.now, m);
                }
            }
            Event::WriteDone { node, generation } => {
                let n = self.nodes.get_mut(&node).expect("node exists");
                if n.generation != generation || n.raft.is_none() {
                    return Ok(());
                }
                let w = n.writes.pop_front().expect("a write completes only once");
                if let Some(hs) = w.hard_state {
                    n.durable_hs = hs;
                    self.checker.on_hard_state_persisted(node, hs)?;
                }
                let n = self.nodes.get_mut(&node).expect("node exists");
                if let Some(first) = w.entries.first() {
                    let keep = first.index.saturating_sub(n.log_prev.0 + 1) as usize;
                    n.durable_log.truncate(keep);
                    n.durable_log.extend(w.entries.iter().cloned());
                }
                // An installed snapshot's log reset. The node's own
                // compactions reach this disk model at once, not through
                // the write queue, so one taken since the install was
                // queued may already be at or past the snapshot's entry:
                // then the log agrees with the snapshot (both hold only
                // committed entries) and nothing is dropped. (Missing this,
                // the model once lost an entry the node had durably.)
                if let Some((index, term)) = w.reset.filter(|(i, _)| *i > n.log_prev.0) {
                    let holds = n
                        .durable_log
                        .iter()
                        .any(|e| e.index == index && e.term == term);
                    if holds {
                        n.durable_log.retain(|e| e.index > index);
                    } else {
                        n.durable_log.clear();
                    }
                    n.log_prev = (index, term);
                }
                if let Some(last) = w.entries.last() {
                    n.raft
                        .as_mut()
                        .expect("live")
                        .on_persisted(last.index, last.term);
                }
                for m in w.messages {
                    self.net.send(self.now, m, &mut self.rng);
                }
                self.process(node)?;
            }
        }
        Ok(())
    }

    /// Drains a node's `Ready`s, doing what each asks, and checks the node.
    fn process(&mut self, id: NodeId) -> Result<(), String> {
        loop {
            self.check_node(id)?;
            let Some(r) = self.raft_mut(id) else {
                return Ok(());
            };
            if !r.has_ready() {
                return Ok(());
            }
            let rd = r.ready();
            let prev_term = rd
                .entries
                .first()
                .map(|e| r.log().term(e.index - 1).expect("predecessor in log"));
            self.handle_ready(id, rd, prev_term)?;
        }
    }

    fn check_node(&mut self, id: NodeId) -> Result<(), String> {
        let Some(r) = self.nodes[&id].raft.as_ref() else {
            return Ok(());
        };
        if self.cfg.trace {
            let s = r.status();
            eprintln!(
                "t={} node {id}: {:?} {} term {} lead {:?} vote {:?} commit {} last {}/{} persisted {} conf {}@{}",
                self.now,
                s.role,
                s.mode,
                s.term,
                s.leader,
                s.vote,
                s.commit,
                r.log().last_term(),
                s.last_index,
                s.persisted,
                s.membership,
                s.conf_index
            );
        }
        if r.role() == Role::Leader && !self.healing {
            let (term, commit) = (r.term(), r.log().committed);
            if self
                .cuts
                .observe(id, term, commit, self.tick, &mut self.rng)
            {
                if self.cfg.trace {
                    eprintln!("t={} CUT leader {id} off (term {term})", self.now);
                }
                self.net.isolate(id, &self.ids);
            }
        }
        let r = self.nodes[&id].raft.as_ref().expect("live");
        let committed_before = self.checker.committed_len();
        self.checker.on_state(r)?;
        let committed_now = self.checker.committed_len();
        if committed_now > committed_before {
            let leaders: Vec<&Raft> = self.live().filter(|r| r.role() == Role::Leader).collect();
            self.checker
                .check_leaders_hold_committed(&leaders, committed_before)?;
            let r = self.nodes[&id].raft.as_ref().expect("live");
            if r.role() == Role::Leader {
                for i in committed_before as Index + 1..=committed_now as Index {
                    self.check_quorum_holds(r, i)?;
                }
            }
        }
        Ok(())
    }

    /// Joint quorums respected: an entry a leader commits for the first
    /// time is durable on a majority of each half of the configuration the
    /// leader decided with: the one in force at the entry's index, or (once
    /// a joint phase committed and the leader moved on to the new voters
    /// alone) its latest one.
    ///
    /// A disk wiped since it acknowledged still counts with what it held
    /// while the configuration records its storage: the leader rightly
    /// counted its answer (sent before the wipe, received after), and
    /// losing it is the wipe's doing, within the fault budget, as a wipe
    /// right after the commit would be.
    fn check_quorum_holds(&self, r: &Raft, index: Index) -> Result<(), String> {
        let Some(e) = r.log().entry(index) else {
            return Ok(());
        };
        let on = |(prev, log): ((Index, Term), &[Entry])| {
            index <= prev.0
                || log
                    .get((index - prev.0 - 1) as usize)
                    .is_some_and(|d| d.index == index && d.term == e.term)
        };
        let holds = |v: &NodeId, conf: &Membership| {
            self.nodes.get(v).is_some_and(|n| {
                let destroyed = n
                    .wiped
                    .as_ref()
                    .filter(|w| conf.storage.get(v) == Some(&w.0));
                on((n.log_prev, &n.durable_log)) || destroyed.is_some_and(|w| on((w.1, &w.2)))
            })
        };
        let quorum = |conf: &Membership| {
            [&conf.voters, &conf.outgoing]
                .into_iter()
                .filter(|half| !half.is_empty())
                .all(|half| 2 * half.iter().filter(|v| holds(v, conf)).count() > half.len())
        };
        let (at, latest) = (r.membership_at(index), r.membership().1);
        if quorum(at) || quorum(latest) {
            return Ok(());
        }
        let disks: Vec<String> = self
            .nodes
            .iter()
            .map(|(id, n)| {
                let held: Vec<_> = n.durable_log.iter().map(|d| (d.index, d.term)).collect();
                format!("node {id}: after {:?} holds {held:?}", n.log_prev)
            })
            .collect();
        Err(format!(
            "joint quorum: node {} committed {e:?}, durable on no quorum of {at} nor of {latest} (disks: {})",
            r.id(),
            disks.join("; ")
        ))
    }

    fn handle_ready(
        &mut self,
        id: NodeId,
        rd: Ready,
        prev_term: Option<u64>,
    ) -> Result<(), String> {
        if let Some(prev_term) = prev_term {
            self.checker.on_log_write(id, prev_term, &rd.entries)?;
        }
        let must_persist = rd.must_persist();
        for m in rd.messages {
            self.net.send(self.now, m, &mut self.rng);
        }
        let n = self.nodes.get_mut(&id).expect("node exists");
        if must_persist || !rd.persisted_messages.is_empty() {
            // With nothing to write and no write ahead of them, the
            // messages that wait for the disk can go at once.
            if n.writes.is_empty() && !must_persist {
                for m in rd.persisted_messages {
                    self.net.send(self.now, m, &mut self.rng);
                }
            } else {
                let w = Write {
                    hard_state: rd.hard_state,
                    entries: rd.entries,
                    messages: rd.persisted_messages,
                    reset: None,
                };
                self.queue_write(id, w);
            }
        }
        if !rd.committed.is_empty() {
            self.checker.on_apply(id, &rd.committed)?;
            for e in &rd.committed {
                self.apply(id, e);
            }
            let last = rd.committed.last().expect("not empty").index;
            self.raft_mut(id).expect("live").on_applied(last);
        }
        for (to, meta) in rd.send_snapshots {
            self.send_snapshot(id, to, meta);
        }
        for m in rd.snapshot_msgs {
            self.on_snapshot_msg(id, m)?;
        }
        let n = self.nodes.get_mut(&id).expect("node exists");
        n.reads.extend(rd.reads.iter().map(|rs| (rs.id, rs.index)));
        for read in rd.dropped_reads {
            self.read_failed(id, read);
        }
        self.serve_reads(id);
        Ok(())
    }

    /// Queues a disk write; writes complete in order, each after a random
    /// delay.
    fn queue_write(&mut self, id: NodeId, w: Write) {
        let delay = self.rng.range(1, self.max_disk_delay + 1);
        let n = self.nodes.get_mut(&id).expect("node exists");
        let at = (self.now + delay).max(n.last_write_at);
        n.last_write_at = at;
        n.writes.push_back(w);
        let generation = n.generation;
        self.net.schedule(
            at,
            Event::WriteDone {
                node: id,
                generation,
            },
        );
    }

    fn apply(&mut self, id: NodeId, e: &Entry) {
        if let Payload::Normal(data) = &e.payload {
            let (key, value) = workload::decode(data);
            self.nodes
                .get_mut(&id)
                .expect("node exists")
                .kv
                .insert(key, value);
        }
        let generation = self.nodes[&id].generation;
        for c in 0..self.clients.len() {
            if let Some(OpState::Proposed {
                node,
                generation: g,
                index,
                term,
            }) = self.clients[c].state
                && node == id
                && g == generation
                && index == e.index
            {
                if term == e.term {
                    self.complete(c, None);
                } else {
                    // (index, term) lost: the entry can never commit.
                    self.abandon(c, true);
                }
            }
        }
    }

    fn serve_reads(&mut self, id: NodeId) {
        let n = self.nodes.get_mut(&id).expect("node exists");
        let applied = n.raft.as_ref().map_or(0, |r| r.log().applied);
        let (ready, waiting): (Vec<_>, Vec<_>) =
            n.reads.drain(..).partition(|&(_, idx)| idx <= applied);
        n.reads = waiting;
        for (read_id, _) in ready {
            if let Some(c) = self.clients.iter().position(|c| c.reading(id, read_id)) {
                let key = self.history[self.clients[c].op.expect("reading")].key;
                let value = self.nodes[&id].kv.get(&key).copied();
                self.complete(c, Some(value));
            }
        }
    }

    fn read_failed(&mut self, node: NodeId, read_id: u64) {
        if let Some(c) = self.clients.iter().position(|c| c.reading(node, read_id)) {
            self.abandon(c, true);
        }
    }

    // ----- faults -----

    fn inject_faults(&mut self) -> Result<(), String> {
        let n = self.ids.len() as u64;
        let k = self.intensity;
        let pick = |rng: &mut Rng| rng.range(1, n + 1);
        for id in self.cuts.due(self.tick) {
            self.net.release(id);
        }
        if self.rng.chance(3 * k, 1000) {
            let id = pick(&mut self.rng);
            self.crash(id);
        }
        let new_leaders: Vec<(NodeId, u64)> = self
            .live()
            .filter(|r| r.role() == Role::Leader && self.led.get(&r.id()) != Some(&r.term()))
            .map(|r| (r.id(), r.term()))
            .collect();
        for (id, term) in new_leaders {
            self.led.insert(id, term);
            if self.rng.chance(k, 16) {
                let at = self.tick + self.rng.range(0, 4);
                self.doomed.push((id, at));
            }
        }
        let tick = self.tick;
        let (due, later): (Vec<_>, Vec<_>) = self.doomed.drain(..).partition(|&(_, at)| at <= tick);
        self.doomed = later;
        for (id, _) in due {
            self.crash(id);
        }
        if self.rng.chance(k, 2000) {
            // A power failure: every node loses its unsynced writes at once.
            for id in self.ids.clone() {
                self.crash(id);
            }
        }
        if self.rng.chance(30, 1000) {
            let id = pick(&mut self.rng);
            if self.nodes[&id].raft.is_none() && !self.retired.contains(&id) {
                self.start_node(id);
                self.process(id)?;
            }
        }
        if self.rng.chance(4 * k, 1000) {
            let mut ids = self.ids.clone();
            for i in (1..ids.len()).rev() {
                ids.swap(i, self.rng.range(0, i as u64 + 1) as usize);
            }
            let k = self.rng.range(1, n) as usize;
            self.net.partition(&ids[..k], &ids[k..]);
        }
        if self.rng.chance(2 * k, 1000) {
            let (a, b) = (pick(&mut self.rng), pick(&mut self.rng));
            if a != b {
                self.net.block_one_way(a, b);
            }
        }
        if self.rng.chance(15, 1000) {
            self.net.heal();
            self.cuts.clear();
        }
        if self.rng.chance(3 * k, 1000) {
            let id = pick(&mut self.rng);
            let mode =
                [Mode::Active, Mode::Reluctant, Mode::Passive][self.rng.range(0, 3) as usize];
            self.set_mode(id, mode)?;
        }
        if self.rng.chance(3 * k, 1000)
            && let Some(l) = self.leader()
        {
            let to = pick(&mut self.rng);
            let _ = self
                .raft_mut(l)
                .expect("leader is live")
                .transfer_leader(to);
            self.process(l)?;
        }
        if self.rng.chance(k, 1000) {
            let id = pick(&mut self.rng);
            if let Some(r) = self.raft_mut(id) {
                let _ = r.campaign();
                self.process(id)?;
            }
        }
        if self.cfg.snapshots && self.rng.chance(k, 100) {
            let id = pick(&mut self.rng);
            self.take_snapshot(id);
            if let Some(v) = self.violation.take() {
                return Err(v);
            }
        }
        if self.cfg.churn {
            self.retire_removed();
            if self.rng.chance(8 * k, 1000) {
                self.change_membership()?;
            }
        }
        if self.wipes_left > 0 && self.rng.chance(k, 200) {
            let id = pick(&mut self.rng);
            self.wipe(id);
        }
        Ok(())
    }

    /// Wipes a down node's disk, if every other node's log records its
    /// storage (`SimConfig::wipes`).
    fn wipe(&mut self, id: NodeId) {
        let storage = self.nodes[&id].storage;
        let down = self.nodes[&id].raft.is_none() && !self.retired.contains(&id);
        let recorded = self.nodes.iter().filter(|(o, _)| **o != id).all(|(_, n)| {
            let logged = n.durable_log.iter().rev().find_map(|e| match &e.payload {
                Payload::Config(m) => Some(&**m),
                _ => None,
            });
            let base = match &n.snap {
                Some((meta, _)) if meta.index > n.base.0 => &meta.membership,
                _ => &n.base.1,
            };
            logged.unwrap_or(base).storage.get(&id) == Some(&storage)
        });
        if !down || !recorded {
            return;
        }
        let fresh = self.rng.next_u64() | 1;
        let n = self.nodes.get_mut(&id).expect("node exists");
        n.wiped = Some((n.storage, n.log_prev, std::mem::take(&mut n.durable_log)));
        n.durable_hs = HardState::default();
        n.log_prev = (0, 0);
        n.snap = None;
        n.base = (0, self.initial.clone());
        n.storage = fresh;
        if self.cfg.trace {
            eprintln!("t={} WIPE node {id} (new storage {fresh})", self.now);
        }
        self.wipes_left -= 1;
        self.wiped += 1;
        self.checker.on_wipe(id);
    }

    /// Retires the live nodes that learnt their storage is not the one the
    /// cluster knows (they take no more input; an operator would rebuild
    /// or remove them).
    fn retire_replaced(&mut self) {
        let gone: Vec<NodeId> = self
            .live()
            .filter(|r| r.replaced().is_some())
            .map(|r| r.id())
            .collect();
        for id in gone {
            self.crash(id);
            self.retired.insert(id);
            self.replaced += 1;
        }
    }

    fn set_mode(&mut self, id: NodeId, mode: Mode) -> Result<(), String> {
        let n = self.nodes.get_mut(&id).expect("node exists");
        n.mode = mode;
        if let Some(r) = n.raft.as_mut() {
            r.set_mode(mode);
            self.process(id)?;
        }
        Ok(())
    }

    fn crash(&mut self, id: NodeId) {
        let n = self.nodes.get_mut(&id).expect("node exists");
        if n.raft.take().is_none() {
            return;
        }
        if self.cfg.trace {
            eprintln!(
                "t={} CRASH node {id} (durable: {:?}, {} entries)",
                self.now,
                n.durable_hs,
                n.durable_log.len()
            );
        }
        self.crashes += 1;
        n.generation += 1;
        n.writes.clear();
        n.kv.clear();
        n.reads.clear();
        n.next_read = 1;
        n.last_write_at = 0;
        for c in 0..self.clients.len() {
            if self.clients[c]
                .state
                .as_ref()
                .is_some_and(|s| s.node() == Some(id))
            {
                let is_read = matches!(self.clients[c].state, Some(OpState::Reading { .. }));
                self.abandon(c, is_read);
            }
        }
    }

    fn start_node(&mut self, id: NodeId) {
        let n = self.nodes.get_mut(&id).expect("node exists");
        let mut cfg = self.raft_cfg.clone();
        cfg.id = id;
        cfg.mode = n.mode;
        cfg.seed = self.cfg.seed ^ (n.generation << 32) ^ id;
        // As the driver does: the snapshot loads, and the log is made to
        // agree with it (a crash may have come between the two).
        let mut snapshot = None;
        let mut applied = 0;
        let mut base = n.base.clone();
        n.kv.clear();
        if let Some((meta, kv)) = &n.snap {
            if meta.index > n.log_prev.0 {
                let holds =
                    (n.durable_log.iter()).any(|e| e.index == meta.index && e.term == meta.term);
                if holds {
                    n.durable_log.retain(|e| e.index > meta.index);
                } else {
                    n.durable_log.clear();
                }
                n.log_prev = (meta.index, meta.term);
            }
            if meta.index > base.0 {
                base = (meta.index, meta.membership.clone());
            }
            applied = meta.index;
            n.kv = kv.clone();
            snapshot = Some(meta.clone());
        }
        let state = InitialState {
            hard_state: n.durable_hs,
            membership: base.1,
            membership_index: base.0,
            entries: n.durable_log.clone(),
            prev_index: n.log_prev.0,
            prev_term: n.log_prev.1,
            applied,
            snapshot,
            storage: n.storage,
        };
        n.raft = Some(Raft::new(cfg, state).expect("valid initial state"));
        self.checker.on_restart(id);
    }

    /// The end of the fault phase: every node up, no partitions, and no
    /// node passive (a cluster of passive nodes can never elect anyone).
    fn heal(&mut self) -> Result<(), String> {
        self.healing = true;
        // Links stay lossy (fair-loss): Raft must make progress and every
        // node converge without a perfect network, only a connected one.
        self.net.heal();
        self.cuts.clear();
        for id in self.ids.clone() {
            if self.nodes[&id].raft.is_none() && !self.retired.contains(&id) {
                self.start_node(id);
                self.process(id)?;
            }
            if self.nodes[&id].mode == Mode::Passive {
                self.set_mode(id, Mode::Active)?;
            }
        }
        for c in &mut self.clients {
            c.healing = true;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), String> {
        let ops: Vec<Op> = self
            .history
            .iter()
            .zip(&self.void)
            .filter(|(_, v)| !**v)
            .map(|(o, _)| o.clone())
            .collect();
        if let Err((key, verdict, ops)) = linearizability::check(&ops) {
            let lines: Vec<String> = ops.iter().map(|o| format!("{o:?}")).collect();
            let what = match verdict {
                linearizability::Verdict::Unknown => {
                    "search budget exhausted (neither proven nor refuted)"
                }
                _ => "no valid order",
            };
            return Err(format!(
                "linearizability: {what} for key {key}:\n    {}",
                lines.join("\n    ")
            ));
        }
        Ok(())
    }

    fn report(&self) -> Report {
        let live: Vec<&Op> = self
            .history
            .iter()
            .zip(&self.void)
            .filter(|(_, v)| !**v)
            .map(|(o, _)| o)
            .collect();
        Report {
            ticks: self.tick,
            ops_checked: live.iter().filter(|o| o.ret.is_some()).count(),
            ops_indeterminate: live.iter().filter(|o| o.ret.is_none()).count(),
            messages: self.net.delivered,
            crashes: self.crashes,
            terms_with_leader: self.checker.terms_with_leader(),
            committed: self.checker.committed_len(),
            configs: self.checker.committed_configs(),
            installs: self.installs,
            wiped: self.wiped,
            replaced: self.replaced,
        }
    }

    // ----- helpers -----

    fn raft_mut(&mut self, id: NodeId) -> Option<&mut Raft> {
        self.nodes.get_mut(&id).and_then(|n| n.raft.as_mut())
    }

    fn live(&self) -> impl Iterator<Item = &Raft> {
        self.nodes.values().filter_map(|n| n.raft.as_ref())
    }

    /// Every member of the leader's configuration is up and has applied
    /// the leader's whole log (removed nodes no longer hear from it).
    fn converged(&self) -> bool {
        let Some(l) = self.leader() else { return false };
        let leader = self.nodes[&l].raft.as_ref().expect("leader is live");
        let last = leader.log().last_index();
        let members = leader.membership().1.members();
        // A retired node (removed, or wiped and told so) is not waited for.
        let waited = members.iter().filter(|id| !self.retired.contains(id));
        waited.into_iter().all(|id| {
            self.nodes[id]
                .raft
                .as_ref()
                .is_some_and(|r| r.log().applied == last)
        })
    }

    /// The leader of the highest term among live nodes.
    fn leader(&self) -> Option<NodeId> {
        self.live()
            .filter(|r| r.role() == Role::Leader)
            .max_by_key(|r| r.term())
            .map(|r| r.id())
    }

    /// A node not retired, at random.
    fn any_node(&mut self) -> NodeId {
        let ids: Vec<NodeId> = (self.ids.iter().copied())
            .filter(|id| !self.retired.contains(id))
            .collect();
        ids[self.rng.range(0, ids.len() as u64) as usize]
    }

    fn next_order(&mut self) -> u64 {
        self.order += 1;
        self.order
    }

    // ----- clients (see workload.rs for their state) -----

    fn drive_clients(&mut self) -> Result<(), String> {
        for c in 0..self.clients.len() {
            self.drive_client(c)?;
        }
        Ok(())
    }

    fn drive_client(&mut self, c: usize) -> Result<(), String> {
        let tick = self.tick;
        match self.clients[c].state {
            Some(OpState::Proposed { .. }) | Some(OpState::Reading { .. }) => {
                if tick - self.clients[c].started >= workload::OP_TIMEOUT {
                    let is_read = matches!(self.clients[c].state, Some(OpState::Reading { .. }));
                    self.abandon(c, is_read);
                }
                return Ok(());
            }
            Some(OpState::Waiting { retry_at }) if tick < retry_at => return Ok(()),
            Some(OpState::Waiting { .. }) => {
                if tick - self.clients[c].started >= workload::OP_TIMEOUT {
                    self.abandon(c, true);
                    return Ok(());
                }
            }
            None => {
                if self.quiescing || !self.rng.chance(1, 3) {
                    return Ok(());
                }
                let key = self.rng.range(0, workload::KEYS) as Key;
                let op_id = self.next_op_id;
                self.next_op_id += 1;
                let kind = if self.rng.chance(3, 5) {
                    OpKind::Put(op_id)
                } else {
                    OpKind::Get(None)
                };
                let call = self.next_order();
                self.history.push(Op {
                    client: c,
                    key,
                    kind,
                    call,
                    ret: None,
                });
                self.void.push(false);
                // Some operations go to any node, not the client's usual
                // one, as clients of a real cluster do.
                if self.rng.chance(1, 4) {
                    self.clients[c].target = self.any_node();
                }
                let cl = &mut self.clients[c];
                cl.op = Some(self.history.len() - 1);
                cl.op_id = Some(op_id);
                cl.started = tick;
            }
        }
        self.submit(c)
    }

    fn submit(&mut self, c: usize) -> Result<(), String> {
        let target = self.clients[c].target;
        let op = self.clients[c].op.expect("op in progress");
        let op_id = self.clients[c].op_id.expect("op in progress");
        let (key, is_put) = (
            self.history[op].key,
            matches!(self.history[op].kind, OpKind::Put(_)),
        );
        let generation = self.nodes[&target].generation;
        let Some(r) = self.raft_mut(target) else {
            self.retry_elsewhere(c);
            return Ok(());
        };
        let result = if is_put {
            r.propose(Bytes::from(workload::encode(key, op_id)))
                .map(|(index, term)| OpState::Proposed {
                    node: target,
                    generation,
                    index,
                    term,
                })
        } else {
            let n = self.nodes.get_mut(&target).expect("node exists");
            let read_id = n.next_read;
            n.next_read += 1;
            let r = n.raft.as_mut().expect("live");
            r.read_index(read_id).map(|()| OpState::Reading {
                node: target,
                read_id,
            })
        };
        match result {
            Ok(state) => {
                self.clients[c].state = Some(state);
                self.process(target)?;
            }
            Err(Error::NotLeader { leader: Some(l) }) => {
                self.clients[c].target = l;
                self.clients[c].state = Some(OpState::Waiting {
                    retry_at: self.tick + 1,
                });
            }
            Err(_) => self.retry_elsewhere(c),
        }
        Ok(())
    }

    fn retry_elsewhere(&mut self, c: usize) {
        self.clients[c].target = self.any_node();
        self.clients[c].state = Some(OpState::Waiting {
            retry_at: self.tick + 3,
        });
    }

    /// The client got its answer.
    fn complete(&mut self, c: usize, read: Option<Option<Value>>) {
        let ret = self.next_order();
        let op = self.clients[c].op.expect("op in progress");
        self.history[op].ret = Some(ret);
        if let Some(v) = read {
            self.history[op].kind = OpKind::Get(v);
        }
        let is_put = read.is_none();
        self.clients[c].finish(is_put);
    }

    /// The client gives up on its operation. `no_effect`: it surely did not
    /// happen (a read, or a write never accepted or overwritten), so it
    /// leaves the history; otherwise it stays, with unknown outcome.
    fn abandon(&mut self, c: usize, no_effect: bool) {
        if let Some(op) = self.clients[c].op {
            let never_proposed = matches!(self.clients[c].state, Some(OpState::Waiting { .. }));
            if no_effect || never_proposed || matches!(self.history[op].kind, OpKind::Get(_)) {
                self.void[op] = true;
            }
        }
        self.clients[c].reset();
    }
}
