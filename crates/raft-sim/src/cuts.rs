//! A targeted schedule for the commit rules around a change of leader
//! (Raft figure 8): leaders cut off from every peer at the moments those
//! rules decide.
//!
//! Figure 8 needs logs whose tails differ in term at the same index, and a
//! leader that hands an entry of an earlier term to a majority before its
//! own term's entries reach them. Random faults rarely line that up (one
//! seed in tens of thousands). In a seed of this class:
//!
//! - a new leader is often cut off at once, before its first entry (its
//!   no-op) leaves it, so each term leaves an entry on one node only and
//!   tails of different terms pile up at the same indexes;
//! - a leader is often cut off the moment its commit index first moves in
//!   its term, so its followers never hear of its later entries and a
//!   rival whose tail has a later term can win the next election with
//!   their votes, which is exactly when committing an earlier term's
//!   entry by counting replicas is unsafe;
//! - a cut heals after a while of its own, on its own, so one node comes
//!   back while another is still away.
//!
//! The decisions are made in the instant the checker sees the node's
//! state, before the messages of its next `Ready` leave, so the cut
//! catches them. All draws come from the simulation's seeded generator.

use raft_core::{Index, NodeId, Rng, Term};
use std::collections::BTreeMap;

/// The shortest and longest cut, in ticks (about half an election timeout
/// to several).
const MIN_CUT: u64 = 5;
const MAX_CUT: u64 = 60;

/// Whether and how hard a seed cuts leaders off.
pub struct Cuts {
    /// Chance, in sixteenths, that a new leader is cut off at once.
    lonely: u64,
    /// Chance, in sixteenths, that a leader is cut off when its commit
    /// index first moves in its term.
    at_commit: u64,
    /// The leader term each node was last seen in, and whether its commit
    /// index has moved in it yet.
    seen: BTreeMap<NodeId, (Term, Index, bool)>,
    /// Nodes cut off, and the tick their links come back.
    cut: Vec<(NodeId, u64)>,
}

impl Cuts {
    /// No cuts: seeds outside the class.
    pub fn off() -> Self {
        Cuts {
            lonely: 0,
            at_commit: 0,
            seen: BTreeMap::new(),
            cut: Vec::new(),
        }
    }

    /// Draws a seed's rates.
    pub fn draw(rng: &mut Rng) -> Self {
        Cuts {
            lonely: rng.range(4, 13),
            at_commit: rng.range(4, 13),
            ..Cuts::off()
        }
    }

    /// Whether this seed is in the class.
    pub fn on(&self) -> bool {
        self.lonely > 0 || self.at_commit > 0
    }

    /// A leader `id` seen in `term` with commit index `commit` at `tick`:
    /// whether to cut it off now.
    pub fn observe(
        &mut self,
        id: NodeId,
        term: Term,
        commit: Index,
        tick: u64,
        rng: &mut Rng,
    ) -> bool {
        if !self.on() || self.cut.iter().any(|&(n, _)| n == id) {
            return false;
        }
        let cut = match self.seen.get(&id).copied() {
            Some((t, c, moved)) if t == term => {
                if moved || commit <= c {
                    return false;
                }
                self.seen.insert(id, (term, commit, true));
                rng.chance(self.at_commit, 16)
            }
            _ => {
                self.seen.insert(id, (term, commit, false));
                rng.chance(self.lonely, 16)
            }
        };
        if cut {
            let until = tick + rng.range(MIN_CUT, MAX_CUT + 1);
            self.cut.push((id, until));
        }
        cut
    }

    /// The nodes whose cut ends by `tick`.
    pub fn due(&mut self, tick: u64) -> Vec<NodeId> {
        let (due, later) = self.cut.drain(..).partition(|&(_, at)| at <= tick);
        self.cut = later;
        due.into_iter().map(|(id, _)| id).collect()
    }

    /// Every cut ends (the network healed).
    pub fn clear(&mut self) {
        self.cut.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_never_cuts() {
        let mut c = Cuts::off();
        let mut rng = Rng::new(1);
        for tick in 0..1000 {
            assert!(!c.observe(1, tick, tick, tick, &mut rng));
        }
    }

    #[test]
    fn cuts_only_at_a_new_term_or_the_first_commit_in_it() {
        let mut c = Cuts {
            lonely: 16,
            at_commit: 16,
            ..Cuts::off()
        };
        let mut rng = Rng::new(1);
        assert!(c.observe(1, 2, 5, 0, &mut rng), "new leader");
        assert!(!c.observe(1, 2, 6, 1, &mut rng), "already cut");
        for id in c.due(MAX_CUT) {
            assert_eq!(id, 1);
        }
        assert!(!c.observe(1, 2, 5, 61, &mut rng), "commit unmoved");
        assert!(c.observe(1, 2, 6, 62, &mut rng), "first commit");
        c.clear();
        assert!(!c.observe(1, 2, 7, 63, &mut rng), "a later commit");
        assert!(c.observe(1, 3, 7, 64, &mut rng), "a new term");
    }
}
