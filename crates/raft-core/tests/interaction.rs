//! Scenario tests: readable transcripts of clusters driven step by step,
//! in `testdata/*.txt`. See `datadriven/mod.rs` for the file format and
//! `Env::run` below for the commands.

mod datadriven;

use bytes::Bytes;
use datadriven::Command;
use raft_core::{
    Body, ConfChange, Config, Entry, HardState, InitialState, Membership, Message, Mode, NodeId,
    Payload, Raft, Ready, Role, SnapshotMeta,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::path::PathBuf;

/// A write held back by `process-ready ... sync=false`.
struct PendingWrite {
    hard_state: Option<HardState>,
    entries: Vec<Entry>,
    messages: Vec<Message>,
}

struct Node {
    raft: Option<Raft>,
    cfg: Config,
    durable_hs: HardState,
    durable_log: Vec<Entry>,
    membership: Membership,
    pending: VecDeque<PendingWrite>,
    /// The disk's storage id (`InitialState::storage`; 0: none).
    storage: u64,
}

#[derive(Default)]
struct Env {
    nodes: BTreeMap<NodeId, Node>,
    /// Messages sent and not yet delivered, in order.
    mailbox: Vec<Message>,
    isolated: BTreeSet<NodeId>,
}

impl Env {
    fn run(&mut self, c: &Command) -> String {
        let mut out = String::new();
        match c.name.as_str() {
            // add-nodes N [voters=1,2,3] [term=T vote=V log=t,t,t commit=C]
            //   [pre-vote=B] [check-quorum=B] [mode=M] [max-entries=N] [max-inflight=N]
            "add-nodes" => self.add_nodes(c, &mut out),
            "campaign" => {
                for id in c.ids() {
                    if let Err(e) = self.raft(id).campaign() {
                        let _ = writeln!(out, "error: {e}");
                    }
                }
            }
            "tick" => {
                let ids = c.ids();
                let n: u64 = c.key("n").map_or(1, |v| v.parse().expect("n=<ticks>"));
                for id in ids {
                    for _ in 0..n {
                        self.raft(id).tick();
                    }
                }
            }
            // Ticks a follower until it campaigns (at most two election
            // timeouts), or a leader through one election timeout.
            "tick-election" => {
                for id in c.ids() {
                    let et = self.nodes[&id].cfg.election_tick;
                    let r = self.raft(id);
                    let (role, term) = (r.role(), r.term());
                    let limit = if role == Role::Leader { et } else { 2 * et };
                    for _ in 0..limit {
                        r.tick();
                        if r.role() != role || r.term() != term {
                            break;
                        }
                    }
                }
            }
            "tick-heartbeat" => {
                for id in c.ids() {
                    let ht = self.nodes[&id].cfg.heartbeat_tick;
                    for _ in 0..ht {
                        self.raft(id).tick();
                    }
                }
            }
            "propose" => {
                let p = c.positional();
                let id: NodeId = p[0].parse().expect("node id");
                let data = Bytes::from(p[1].to_string());
                match self.raft(id).propose(data) {
                    Ok((index, term)) => {
                        let _ = writeln!(out, "ok: index {index} term {term}");
                    }
                    Err(e) => {
                        let _ = writeln!(out, "error: {e}");
                    }
                }
            }
            // propose-conf-change ID v4 l5 r1: add voter 4, learner 5,
            // remove 1 (v promotes a learner, l demotes a voter).
            "propose-conf-change" => {
                let p = c.positional();
                let id: NodeId = p[0].parse().expect("node id");
                let changes: Vec<ConfChange> = p[1..]
                    .iter()
                    .map(|a| {
                        let (kind, n) = a.split_at(1);
                        let n: NodeId = n.parse().expect("v<id>, l<id> or r<id>");
                        let address = format!("n{n}");
                        match kind {
                            "v" => ConfChange::AddVoter { id: n, address },
                            "l" => ConfChange::AddLearner { id: n, address },
                            "r" => ConfChange::Remove { id: n },
                            _ => panic!("line {}: bad change {a}", c.line),
                        }
                    })
                    .collect();
                match self.raft(id).propose_conf_change(&changes) {
                    Ok(index) => {
                        let _ = writeln!(out, "ok: index {index}");
                    }
                    Err(e) => {
                        let _ = writeln!(out, "error: {e}");
                    }
                }
            }
            // compact ID index=N [keep=K]: the caller took a snapshot at N
            // (applied) and compacts the log up to N - K.
            "compact" => {
                let id: NodeId = c.positional()[0].parse().expect("node id");
                let index: u64 = c.key("index").expect("index=N").parse().expect("index");
                let keep: u64 = c.key("keep").map_or(0, |k| k.parse().expect("keep"));
                let r = self.raft(id);
                let meta = SnapshotMeta {
                    index,
                    term: r.log().term(index).unwrap_or(0),
                    membership: r.membership_at(index).clone(),
                    digest: None,
                };
                match r.compact(meta, index.saturating_sub(keep)) {
                    Ok(start) => {
                        let _ = writeln!(out, "log starts after {start}");
                    }
                    Err(e) => {
                        let _ = writeln!(out, "error: {e}");
                    }
                }
            }
            "membership" => {
                for (id, n) in &self.nodes {
                    if let Some(r) = &n.raft {
                        let (index, m) = r.membership();
                        let _ = writeln!(out, "{id}: {m} (index {index})");
                    }
                }
            }
            "read-index" => {
                let p = c.positional();
                let (id, read): (NodeId, u64) =
                    (p[0].parse().expect("id"), p[1].parse().expect("read id"));
                if let Err(e) = self.raft(id).read_index(read) {
                    let _ = writeln!(out, "error: {e}");
                }
            }
            "transfer-leader" => {
                let p = c.ids();
                if let Err(e) = self.raft(p[0]).transfer_leader(p[1]) {
                    let _ = writeln!(out, "error: {e}");
                }
            }
            "set-mode" => {
                let p = c.positional();
                let id: NodeId = p[0].parse().expect("id");
                let mode: Mode = p[1].parse().expect("mode");
                self.raft(id).set_mode(mode);
            }
            // process-ready ID... [sync=false]: with sync=false the durable
            // part stays pending until `persist ID`.
            "process-ready" => {
                let sync = c.key("sync") != Some("false");
                for id in c.ids() {
                    self.process_ready(id, sync, &mut out);
                }
            }
            "persist" => {
                for id in c.ids() {
                    self.persist(id, &mut out);
                }
            }
            // deliver-msgs ID... [drop=true]
            "deliver-msgs" => {
                let drop = c.key("drop") == Some("true");
                for id in c.ids() {
                    self.deliver(id, drop, &mut out);
                }
            }
            "stabilize" => self.stabilize(&mut out),
            "isolate" => self.isolated.extend(c.ids()),
            "heal" => self.isolated.clear(),
            "crash" => {
                for id in c.ids() {
                    let n = self.nodes.get_mut(&id).expect("node");
                    n.raft = None;
                    n.pending.clear();
                    self.mailbox.retain(|m| m.to != id);
                }
            }
            // lose-tail ID... n=K: a crashed node's disk loses its last K
            // durable entries (acknowledged or not).
            "lose-tail" => {
                let k: usize = c.key("n").expect("n=K").parse().expect("a count");
                for id in c.ids() {
                    let n = self.nodes.get_mut(&id).expect("node");
                    assert!(n.raft.is_none(), "line {}: crash node {id} first", c.line);
                    let keep = n.durable_log.len().saturating_sub(k);
                    n.durable_log.truncate(keep);
                    n.durable_hs.commit = n.durable_hs.commit.min(keep as u64);
                }
            }
            // wipe ID... [rebuild=false]: a crashed node loses its whole
            // disk; it restarts under its old id, knowing the configuration
            // it was given, with a new storage id, as a node being rebuilt
            // (Config::rebuilding) unless rebuild=false (a disk wiped and the
            // node simply started again).
            "wipe" => {
                let rebuild = c.key("rebuild") != Some("false");
                for id in c.ids() {
                    let n = self.nodes.get_mut(&id).expect("node");
                    assert!(n.raft.is_none(), "line {}: crash node {id} first", c.line);
                    n.durable_log.clear();
                    n.durable_hs = HardState::default();
                    n.cfg.rebuilding = rebuild;
                    if n.storage != 0 {
                        n.storage += 1;
                    }
                }
            }
            "restart" => {
                for id in c.ids() {
                    self.start(id);
                }
            }
            "raft-state" => {
                for (id, n) in &self.nodes {
                    match &n.raft {
                        None => {
                            let _ = writeln!(out, "{id}: down");
                        }
                        Some(r) => {
                            let s = r.status();
                            let lead = s.leader.map_or("-".into(), |l| l.to_string());
                            let vote = s.vote.map_or("-".into(), |l| l.to_string());
                            let _ = write!(
                                out,
                                "{id}: {} {} term={} lead={lead} vote={vote} commit={} last={}/{}",
                                s.role,
                                s.mode,
                                s.term,
                                s.commit,
                                r.log().last_term(),
                                s.last_index
                            );
                            if s.snapshot > 0 {
                                let _ =
                                    write!(out, " snapshot={} first={}", s.snapshot, s.first_index);
                            }
                            if s.rebuilding {
                                let _ = write!(out, " rebuilding");
                            }
                            if let Some(r) = s.replaced {
                                let by = r.peer.map_or("its log".into(), |p| format!("node {p}"));
                                let _ = write!(out, " REPLACED ({by} knows {})", r.known);
                            }
                            let _ = writeln!(out);
                        }
                    }
                }
            }
            "raft-log" => {
                for id in c.ids() {
                    let r = self.raft(id);
                    let l = r.log();
                    let entries: Vec<String> = (l.first_index()..=l.last_index())
                        .map(|i| l.entry(i).expect("in range").to_string())
                        .collect();
                    let _ = writeln!(
                        out,
                        "{id}: {}",
                        if entries.is_empty() {
                            "(empty)".into()
                        } else {
                            entries.join(", ")
                        }
                    );
                }
            }
            "status" => {
                for id in c.ids() {
                    for p in self.raft(id).status().peers {
                        let state = if p.snapshotting {
                            "snapshot"
                        } else if p.replicating {
                            "replicate"
                        } else {
                            "probe"
                        };
                        let kind = if p.voter { "" } else { " learner" };
                        let active = if p.recent_active { " active" } else { "" };
                        let repair = match (p.lost_tails, p.repairing) {
                            (0, _) => String::new(),
                            (n, true) => format!(" lost-tails={n} repairing"),
                            (n, false) => format!(" lost-tails={n}"),
                        };
                        let _ = writeln!(
                            out,
                            "{}:{kind} {state} match={} next={} {}{active}{repair}",
                            p.id, p.matched, p.next, p.mode
                        );
                    }
                }
            }
            other => panic!("line {}: unknown command {other}", c.line),
        }
        out
    }

    fn add_nodes(&mut self, c: &Command, out: &mut String) {
        let n: u64 = c.positional()[0].parse().expect("add-nodes N");
        let first = self.nodes.keys().last().map_or(1, |l| l + 1);
        let ids: Vec<NodeId> = (first..first + n).collect();
        let list = |k: &str| -> Option<Vec<NodeId>> {
            c.key(k)
                .map(|v| v.split(',').map(|x| x.parse().expect("node id")).collect())
        };
        let mut membership = Membership::new(list("voters").unwrap_or_else(|| ids.clone()));
        membership.learners = list("learners").unwrap_or_default().into_iter().collect();
        let flag = |k: &str, d: bool| c.key(k).map_or(d, |v| v == "true");
        let num = |k: &str, d: u64| c.key(k).map_or(d, |v| v.parse().expect("number"));
        let log: Vec<Entry> = c.key("log").map_or(Vec::new(), |l| {
            l.split(',')
                .enumerate()
                .map(|(i, t)| {
                    let index = i as u64 + 1;
                    let term = t.parse().expect("log=term,term,...");
                    Entry {
                        term,
                        index,
                        payload: Payload::Normal(Bytes::from(format!("e{index}"))),
                    }
                })
                .collect()
        });
        let hs = HardState {
            term: num("term", log.last().map_or(0, |e| e.term)),
            vote: c.key("vote").map(|v| v.parse().expect("vote id")),
            commit: num("commit", 0),
        };
        for &id in &ids {
            let mut cfg = Config::new(id);
            cfg.pre_vote = flag("pre-vote", true);
            cfg.check_quorum = flag("check-quorum", true);
            cfg.mode = c
                .key("mode")
                .map_or(Mode::Active, |m| m.parse().expect("mode"));
            cfg.max_append_entries = num("max-entries", 1000) as usize;
            cfg.max_inflight = num("max-inflight", 256) as usize;
            self.nodes.insert(
                id,
                Node {
                    raft: None,
                    cfg,
                    durable_hs: hs,
                    durable_log: log.clone(),
                    membership: membership.clone(),
                    pending: VecDeque::new(),
                    // storage=true: node N's first disk is N01, its next N02.
                    storage: if flag("storage", false) {
                        id * 100 + 1
                    } else {
                        0
                    },
                },
            );
            self.start(id);
        }
        let _ = writeln!(out, "added nodes {ids:?}");
    }

    fn start(&mut self, id: NodeId) {
        let n = self.nodes.get_mut(&id).expect("node");
        let state = InitialState {
            hard_state: n.durable_hs,
            membership: n.membership.clone(),
            entries: n.durable_log.clone(),
            storage: n.storage,
            ..Default::default()
        };
        n.raft = Some(Raft::new(n.cfg.clone(), state).expect("valid state"));
    }

    fn raft(&mut self, id: NodeId) -> &mut Raft {
        self.nodes
            .get_mut(&id)
            .and_then(|n| n.raft.as_mut())
            .unwrap_or_else(|| panic!("node {id} is down"))
    }

    fn process_ready(&mut self, id: NodeId, sync: bool, out: &mut String) {
        let r = self.raft(id);
        if !r.has_ready() {
            return;
        }
        let rd = r.ready();
        let _ = writeln!(out, "> {id} handling Ready");
        print_ready(&rd, out);
        let Ready {
            hard_state,
            entries,
            messages,
            persisted_messages,
            committed,
            send_snapshots,
            snapshot_msgs,
            ..
        } = rd;
        self.mailbox.extend(messages);
        // Snapshot transfers in one piece: the leader's snapshot goes out as
        // a single last chunk; a follower that receives it installs it.
        let term = self.raft(id).term();
        let mode = self.raft(id).mode();
        for (to, meta) in send_snapshots {
            self.mailbox.push(Message {
                from: id,
                to,
                term,
                mode,
                body: Body::SnapshotChunk {
                    meta,
                    offset: 0,
                    data: Bytes::new(),
                    done: true,
                },
                storage: 0,
            });
        }
        for m in snapshot_msgs {
            if let Body::SnapshotChunk { meta, .. } = m.body {
                let installed = self.raft(id).restore(meta.clone());
                let _ = writeln!(
                    out,
                    "> {id} installs snapshot {}/{}: {installed}",
                    meta.term, meta.index
                );
            }
        }
        let n = self.nodes.get_mut(&id).expect("node");
        n.pending.push_back(PendingWrite {
            hard_state,
            entries,
            messages: persisted_messages,
        });
        if let Some(last) = committed.last() {
            self.raft(id).on_applied(last.index);
        }
        if sync {
            self.persist(id, out);
        }
    }

    fn persist(&mut self, id: NodeId, out: &mut String) {
        while let Some(w) = self.nodes.get_mut(&id).expect("node").pending.pop_front() {
            let n = self.nodes.get_mut(&id).expect("node");
            if let Some(hs) = w.hard_state {
                n.durable_hs = hs;
            }
            if let Some(first) = w.entries.first() {
                n.durable_log.truncate(first.index as usize - 1);
                n.durable_log.extend(w.entries.iter().cloned());
            }
            if let Some(last) = w.entries.last() {
                let _ = writeln!(out, "> {id} persisted up to {}/{}", last.term, last.index);
                self.raft(id).on_persisted(last.index, last.term);
            }
            self.mailbox.extend(w.messages);
        }
    }

    fn deliver(&mut self, id: NodeId, drop: bool, out: &mut String) {
        let (mine, rest): (Vec<Message>, Vec<Message>) =
            self.mailbox.drain(..).partition(|m| m.to == id);
        self.mailbox = rest;
        for m in mine {
            let cut = self.isolated.contains(&m.from) || self.isolated.contains(&m.to);
            if drop || cut || self.nodes[&id].raft.is_none() {
                let _ = writeln!(out, "dropped: {m}");
                continue;
            }
            let _ = writeln!(out, "{m}");
            self.raft(id).step(m);
        }
    }

    fn stabilize(&mut self, out: &mut String) {
        loop {
            let ids: Vec<NodeId> = self
                .nodes
                .iter()
                .filter(|(_, n)| n.raft.as_ref().is_some_and(Raft::has_ready))
                .map(|(id, _)| *id)
                .collect();
            for &id in &ids {
                self.process_ready(id, true, out);
            }
            let targets: BTreeSet<NodeId> = self.mailbox.iter().map(|m| m.to).collect();
            if ids.is_empty() && targets.is_empty() {
                return;
            }
            for id in targets {
                self.deliver(id, false, out);
            }
        }
    }
}

fn print_ready(rd: &Ready, out: &mut String) {
    if let Some(hs) = rd.hard_state {
        let vote = hs.vote.map_or("-".into(), |v| v.to_string());
        let _ = writeln!(
            out,
            "  HardState term={} vote={vote} commit={}",
            hs.term, hs.commit
        );
    }
    let list = |out: &mut String, title: &str, items: Vec<String>| {
        if !items.is_empty() {
            let _ = writeln!(out, "  {title}:");
            for i in items {
                let _ = writeln!(out, "    {i}");
            }
        }
    };
    list(
        out,
        "Entries",
        rd.entries.iter().map(|e| e.to_string()).collect(),
    );
    list(
        out,
        "Messages",
        rd.messages.iter().map(|m| m.to_string()).collect(),
    );
    list(
        out,
        "After persisting",
        rd.persisted_messages
            .iter()
            .map(|m| m.to_string())
            .collect(),
    );
    list(
        out,
        "Committed",
        rd.committed.iter().map(|e| e.to_string()).collect(),
    );
    list(
        out,
        "Reads",
        rd.reads
            .iter()
            .map(|r| format!("id={} index={}", r.id, r.index))
            .collect(),
    );
    list(
        out,
        "Send snapshot",
        rd.send_snapshots
            .iter()
            .map(|(to, m)| format!("to {to}: {}/{}", m.term, m.index))
            .collect(),
    );
    list(
        out,
        "Snapshot messages",
        rd.snapshot_msgs.iter().map(|m| m.to_string()).collect(),
    );
    list(
        out,
        "Dropped reads",
        rd.dropped_reads.iter().map(|r| format!("id={r}")).collect(),
    );
}

#[test]
fn interaction_scenarios() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("testdata dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scenario files in {}", dir.display());
    for f in files {
        let mut env = Env::default();
        datadriven::run_file(&f, |c| env.run(c));
    }
}
