//! Raft's safety properties, checked incrementally after every simulation
//! step (Raft paper figure 3 and §5.4.3).

use raft_core::{Entry, HardState, Index, NodeId, Payload, Raft, Role, Term};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What the checker remembers about one node across its lives.
#[derive(Default)]
struct Seen {
    term: Term,
    commit: Index,
    was_leader_in: Option<Term>,
    durable: HardState,
}

/// Checks Raft's safety properties (the paper's figure 3) incrementally,
/// as the simulated nodes write, persist, apply and change state.
#[derive(Default)]
pub struct Checker {
    /// Election safety: the leader of each term.
    leaders: BTreeMap<Term, NodeId>,
    /// Log matching: each (index, term) ever seen, with its payload and the
    /// term of the entry before it. If one (index, term) always comes with
    /// the same predecessor term, by induction equal (index, term) means
    /// equal prefixes.
    entries: HashMap<(Index, Term), (Entry, Term)>,
    /// The committed log as the whole cluster knows it (index 1 at [0]),
    /// each entry with the term in which a node first saw it committed.
    committed: Vec<(Entry, Term)>,
    nodes: BTreeMap<NodeId, Seen>,
    /// The members of the latest committed configuration entry.
    committed_members: Option<BTreeSet<NodeId>>,
    /// Nodes a committed configuration removed. Ids are never reused, so
    /// these are out for good.
    removed: BTreeSet<NodeId>,
}

/// What broke, in words (with the seed, enough to replay it).
pub type Violation = String;

impl Checker {
    /// Entries a node just put into its log (a `Ready`'s entries), preceded
    /// by an entry of term `prev_term`.
    pub fn on_log_write(
        &mut self,
        node: NodeId,
        prev_term: Term,
        entries: &[Entry],
    ) -> Result<(), Violation> {
        let mut prev = prev_term;
        for e in entries {
            match self.entries.get(&(e.index, e.term)) {
                Some((seen, seen_prev)) => {
                    if seen != e || *seen_prev != prev {
                        return Err(format!(
                            "log matching: node {node} has {e:?} after term {prev}, but {seen:?} after term {seen_prev} was seen before"
                        ));
                    }
                }
                None => {
                    self.entries.insert((e.index, e.term), (e.clone(), prev));
                }
            }
            prev = e.term;
        }
        Ok(())
    }

    /// A node's durable hard state changed.
    pub fn on_hard_state_persisted(
        &mut self,
        node: NodeId,
        hs: HardState,
    ) -> Result<(), Violation> {
        let seen = self.nodes.entry(node).or_default();
        let old = seen.durable;
        if hs.term < old.term {
            return Err(format!(
                "node {node}: durable term went back from {} to {}",
                old.term, hs.term
            ));
        }
        if hs.term == old.term && old.vote.is_some() && hs.vote != old.vote {
            return Err(format!(
                "node {node}: voted for {:?} and then {:?} in term {}",
                old.vote, hs.vote, hs.term
            ));
        }
        seen.durable = hs;
        Ok(())
    }

    /// Entries a node hands to its state machine.
    pub fn on_apply(&mut self, node: NodeId, entries: &[Entry]) -> Result<(), Violation> {
        for e in entries {
            match self.committed.get(e.index as usize - 1).map(|(c, _)| c) {
                Some(c) if c == e => {}
                Some(c) => {
                    return Err(format!(
                        "state machine safety: node {node} applies {e:?} where {c:?} was committed"
                    ));
                }
                None => {
                    return Err(format!(
                        "node {node} applies {e:?}, which no node has committed"
                    ));
                }
            }
        }
        Ok(())
    }

    /// A follower installed snapshot (`index`, `term`) from the leader: it
    /// must be of a committed entry, and its commit index jumps there.
    pub fn on_restore(&mut self, node: NodeId, index: Index, term: Term) -> Result<(), Violation> {
        match self.committed.get(index as usize - 1) {
            Some((c, _)) if c.term == term => {}
            Some((c, _)) => {
                return Err(format!(
                    "node {node} installed snapshot {term}/{index}, but {c:?} was committed there"
                ));
            }
            None => {
                return Err(format!(
                    "node {node} installed snapshot {term}/{index}, which no node has committed"
                ));
            }
        }
        Ok(())
    }

    /// A node's disk was wiped: its durable state is gone, and what it
    /// does from now on is checked as a new node's (whether the cluster
    /// lets it vote is what log matching, state machine safety and the
    /// linearizability check then judge).
    pub fn on_wipe(&mut self, node: NodeId) {
        let seen = self.nodes.entry(node).or_default();
        seen.durable = HardState::default();
    }

    /// A node restarted: its in-memory indexes start again from storage.
    pub fn on_restart(&mut self, node: NodeId) {
        let seen = self.nodes.entry(node).or_default();
        seen.commit = 0;
        seen.term = seen.durable.term;
        seen.was_leader_in = None;
    }

    /// Everything that can be checked from a node's current state.
    pub fn on_state(&mut self, r: &Raft) -> Result<(), Violation> {
        let id = r.id();
        let log = r.log();
        let (term, commit) = (r.term(), log.committed);
        let purged = log.first_index() - 1;
        let snapshot = r.snapshot().map_or(0, |s| s.index);
        // purged <= snapshot <= applied <= committed <= last, persisted <= last.
        if !((purged == 0 || purged <= snapshot)
            && snapshot <= log.applied
            && log.applied <= commit
            && commit <= log.last_index()
            && log.persisted <= log.last_index())
        {
            return Err(format!(
                "node {id}: index order broken: purged {purged} snapshot {snapshot} applied {} commit {commit} persisted {} last {}",
                log.applied,
                log.persisted,
                log.last_index()
            ));
        }
        let (conf_index, conf) = r.membership();
        if conf.voters.is_empty() {
            return Err(format!(
                "node {id}: configuration {conf} at index {conf_index} has no voters"
            ));
        }
        if r.role() == Role::Leader {
            // At most one membership change in flight: a leader's log holds
            // at most one configuration entry above its commit index.
            let pending = (commit + 1..=log.last_index())
                .filter(|&i| matches!(log.entry(i).map(|e| &e.payload), Some(Payload::Config(_))))
                .count();
            if pending > 1 {
                return Err(format!(
                    "node {id} leads with {pending} uncommitted configuration entries"
                ));
            }
        }
        let seen = self.nodes.entry(id).or_default();
        if term < seen.term {
            return Err(format!(
                "node {id}: term went back from {} to {term}",
                seen.term
            ));
        }
        if commit < seen.commit {
            return Err(format!(
                "node {id}: commit index went back from {} to {commit}",
                seen.commit
            ));
        }
        let (old_commit, newly_leader) = (
            seen.commit,
            r.role() == Role::Leader && seen.was_leader_in != Some(term),
        );
        seen.term = term;
        seen.commit = commit;
        if r.role() == Role::Leader {
            seen.was_leader_in = Some(term);
            if let Some(&other) = self.leaders.get(&term)
                && other != id
            {
                return Err(format!(
                    "election safety: nodes {other} and {id} both lead term {term}"
                ));
            }
            self.leaders.insert(term, id);
        }
        // Committed entries never change, whoever commits them. (Entries a
        // snapshot covers are checked when it is installed.)
        for i in (old_commit + 1).max(log.first_index())..=commit {
            let e = log.entry(i).expect("committed entry is in the log").clone();
            match self.committed.get(i as usize - 1).map(|(c, _)| c) {
                Some(c) if *c != e => {
                    return Err(format!(
                        "committed entry changed: node {id} committed {e:?} at {i}, earlier {c:?}"
                    ));
                }
                Some(_) => {}
                None => {
                    assert_eq!(
                        self.committed.len() as Index,
                        i - 1,
                        "the committed log grows in order"
                    );
                    if let Payload::Config(m) = &e.payload {
                        let members = m.members();
                        if let Some(before) = &self.committed_members {
                            self.removed.extend(before.difference(&members));
                        }
                        self.committed_members = Some(members);
                    }
                    self.committed.push((e, term));
                }
            }
        }
        // Leader completeness: a leader holds every entry committed in an
        // earlier term.
        if newly_leader {
            for (c, commit_term) in &self.committed {
                let compacted = c.index < log.first_index();
                if *commit_term < term && !compacted && log.entry(c.index) != Some(c) {
                    return Err(format!(
                        "leader completeness: node {id} leads term {term} without committed entry {c:?}"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Leader completeness, the other way round: entries committed since
    /// `from` must be in the log of every current leader of a later term
    /// than the one they were committed in.
    pub fn check_leaders_hold_committed(
        &self,
        leaders: &[&Raft],
        from: usize,
    ) -> Result<(), Violation> {
        for r in leaders {
            for (c, commit_term) in self.committed.iter().skip(from) {
                let compacted = c.index < r.log().first_index();
                if *commit_term < r.term() && !compacted && r.log().entry(c.index) != Some(c) {
                    return Err(format!(
                        "leader completeness: node {} leads term {} without committed entry {c:?}",
                        r.id(),
                        r.term()
                    ));
                }
            }
        }
        Ok(())
    }

    /// Committed configuration entries (membership changes and the ends of
    /// their joint phases).
    pub fn committed_configs(&self) -> usize {
        self.committed
            .iter()
            .filter(|(e, _)| matches!(e.payload, Payload::Config(_)))
            .count()
    }

    /// Nodes a committed configuration removed.
    pub fn removed(&self) -> &BTreeSet<NodeId> {
        &self.removed
    }

    /// Entries the cluster has committed.
    pub fn committed_len(&self) -> usize {
        self.committed.len()
    }

    /// Terms that had a leader.
    pub fn terms_with_leader(&self) -> usize {
        self.leaders.len()
    }
}
