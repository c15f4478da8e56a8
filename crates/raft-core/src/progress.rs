//! What a leader knows about one follower's log, and how it paces appends.

use crate::types::{Index, Mode};
use std::collections::VecDeque;

/// How a leader sends to one follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// The leader does not know where the follower's log ends: one append
    /// in flight at a time until it learns.
    Probe,
    /// The follower is in step: appends stream ahead optimistically, up to
    /// the in-flight window.
    Replicate,
    /// The follower needs entries the leader compacted away: a snapshot
    /// is being streamed to it; appends wait until it is installed.
    Snapshot,
}

/// The leader's view of one peer.
///
/// Invariant: `matched < next`.
#[derive(Clone, Debug)]
pub struct Progress {
    /// Highest index known to be durable on the peer.
    pub matched: Index,
    /// Next index to send.
    pub next: Index,
    /// How appends are sent now.
    pub state: ProgressState,
    /// In `Probe`: an append is out and unanswered, so wait.
    pub probe_sent: bool,
    /// Appends in flight (in `Replicate`).
    pub inflights: Inflights,
    /// Heard from since the last check-quorum round.
    pub recent_active: bool,
    /// The peer's mode as of its last message.
    pub mode: Mode,
    /// Highest ReadIndex round the peer has acknowledged.
    pub read_round: u64,
    /// `matched` when the peer last answered a heartbeat.
    pub matched_at_heartbeat: Index,
    /// Heartbeat answers in a row that came with appends in flight and no
    /// progress.
    pub stalled_rounds: u8,
    /// Ticks since the leader last heard from this peer (for status).
    pub last_contact: u64,
    /// What the peer's state machine has applied, as it last said.
    pub applied: Index,
    /// In `Snapshot`: the index of the snapshot being sent.
    pub pending_snapshot: Index,
    /// Times the peer was found to lack entries it had acknowledged as
    /// durable (its disk lost them).
    pub lost_tails: u64,
    /// While repairing such a loss: the highest index it had acknowledged
    /// (0 when not repairing).
    pub repair_to: Index,
}

impl Progress {
    /// A peer to probe from `next`, with this in-flight window.
    pub fn new(next: Index, max_inflight: usize) -> Self {
        Progress {
            matched: 0,
            next,
            state: ProgressState::Probe,
            probe_sent: false,
            inflights: Inflights::new(max_inflight),
            recent_active: false,
            mode: Mode::Active,
            read_round: 0,
            matched_at_heartbeat: 0,
            stalled_rounds: 0,
            last_contact: 0,
            applied: 0,
            pending_snapshot: 0,
            lost_tails: 0,
            repair_to: 0,
        }
    }

    /// The peer says its log ends at `holds`, below `matched`, which it had
    /// acknowledged as durable: it lost that tail. Its match index drops to
    /// what it holds, so the commit count no longer counts it for entries
    /// it lacks, and appends resume from there. Returns false while a
    /// snapshot is being sent (the snapshot repairs it).
    pub fn lost_tail(&mut self, holds: Index) -> bool {
        if self.state == ProgressState::Snapshot || holds >= self.matched {
            return false;
        }
        self.lost_tails += 1;
        self.repair_to = self.repair_to.max(self.matched);
        self.matched = holds;
        self.matched_at_heartbeat = self.matched_at_heartbeat.min(holds);
        self.become_probe();
        true
    }

    /// Back to probing from `matched + 1` (an append failed or the peer went quiet).
    pub fn become_probe(&mut self) {
        self.state = ProgressState::Probe;
        self.next = self.matched + 1;
        self.probe_sent = false;
        self.inflights.clear();
    }

    /// Starts sending snapshot `index`; appends pause until the peer
    /// reports it installed.
    pub fn become_snapshot(&mut self, index: Index) {
        self.state = ProgressState::Snapshot;
        self.pending_snapshot = index;
        self.probe_sent = false;
        self.inflights.clear();
    }

    /// Streams appends from `matched + 1` (the peer is in step).
    pub fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.next = self.matched + 1;
        self.probe_sent = false;
        self.inflights.clear();
    }

    /// Whether the leader should hold back appends to this peer.
    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.is_full(),
            ProgressState::Snapshot => true,
        }
    }

    /// Records that an append ending at `last` was sent.
    pub fn sent_append(&mut self, last: Index, n_entries: usize) {
        match self.state {
            ProgressState::Replicate => {
                if n_entries > 0 {
                    self.next = last + 1;
                    self.inflights.add(last);
                }
            }
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Snapshot => {}
        }
    }

    /// A success acknowledged `index`. Returns false if it told us nothing new.
    pub fn maybe_update(&mut self, index: Index) -> bool {
        let updated = index > self.matched;
        if updated {
            self.matched = index;
            self.probe_sent = false;
        }
        if self.matched >= self.repair_to {
            self.repair_to = 0;
        }
        self.next = self.next.max(index + 1);
        self.inflights.free_to(index);
        updated
    }

    /// A rejection of the append after `rejected`; `hint` is where the
    /// leader's search of the follower's conflict says to try next. Returns
    /// false if the rejection is stale (answers an append we no longer care
    /// about).
    pub fn maybe_decr_to(&mut self, rejected: Index, hint: Index) -> bool {
        // The peer acknowledged `matched` as durable, so a rejection at or
        // below it is an old answer (or a peer that lost its disk, which no
        // amount of resending fixes): answering it could loop for ever.
        if rejected <= self.matched {
            return false;
        }
        match self.state {
            ProgressState::Replicate => {
                self.become_probe();
                self.next = hint.min(rejected).max(self.matched + 1);
                true
            }
            ProgressState::Snapshot => false,
            ProgressState::Probe => {
                if self.next != rejected + 1 {
                    return false;
                }
                self.next = hint.min(rejected).max(self.matched + 1);
                self.probe_sent = false;
                true
            }
        }
    }
}

/// A bounded window of appends in flight to one peer, by their last index.
#[derive(Clone, Debug)]
pub struct Inflights {
    cap: usize,
    last_indexes: VecDeque<Index>,
}

impl Inflights {
    /// A window of `cap` appends.
    pub fn new(cap: usize) -> Self {
        Inflights {
            cap,
            last_indexes: VecDeque::with_capacity(cap.min(64)),
        }
    }

    /// One more append in flight, ending at `last`. The caller checks `is_full` first.
    pub fn add(&mut self, last: Index) {
        debug_assert!(!self.is_full(), "Inflights::add: window full");
        self.last_indexes.push_back(last);
    }

    /// Everything up to `index` was received.
    pub fn free_to(&mut self, index: Index) {
        while self.last_indexes.front().is_some_and(|&l| l <= index) {
            self.last_indexes.pop_front();
        }
    }

    /// Frees one slot: a heartbeat response shows the peer is alive, so a
    /// lost append must not block the window for ever.
    pub fn free_first(&mut self) {
        self.last_indexes.pop_front();
    }

    /// Whether no more appends may be sent.
    pub fn is_full(&self) -> bool {
        self.last_indexes.len() >= self.cap
    }

    /// Appends in flight.
    pub fn len(&self) -> usize {
        self.last_indexes.len()
    }

    /// Whether none are in flight.
    pub fn is_empty(&self) -> bool {
        self.last_indexes.is_empty()
    }

    /// Forgets every append in flight.
    pub fn clear(&mut self) {
        self.last_indexes.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_pauses_after_one_append() {
        let mut p = Progress::new(5, 4);
        assert!(!p.is_paused());
        p.sent_append(7, 2);
        assert!(p.is_paused());
        assert!(p.maybe_update(7));
        assert!(!p.is_paused());
        assert_eq!((p.matched, p.next), (7, 8));
        p.sent_append(9, 2);
        assert!(!p.maybe_update(7), "a repeated acknowledgement is old news");
        assert!(p.is_paused(), "and does not answer the probe");
    }

    #[test]
    fn replicate_window_fills_and_drains() {
        let mut p = Progress::new(1, 2);
        p.become_replicate();
        p.sent_append(3, 3);
        p.sent_append(5, 2);
        assert!(p.is_paused());
        assert_eq!(p.next, 6);
        p.maybe_update(3);
        assert!(!p.is_paused());
        assert_eq!(p.inflights.len(), 1);
    }

    #[test]
    fn stale_rejections_are_ignored() {
        let mut p = Progress::new(10, 4);
        p.matched = 5;
        // Probe expects a rejection of next-1 = 9 only.
        assert!(!p.maybe_decr_to(7, 6));
        assert!(p.maybe_decr_to(9, 7));
        assert_eq!(p.next, 7);
        // The hint never takes next at or below matched.
        p.next = 7;
        assert!(p.maybe_decr_to(6, 2));
        assert_eq!(p.next, 6);
        p.become_replicate();
        assert!(
            !p.maybe_decr_to(5, 1),
            "rejection at or below matched is stale"
        );
    }

    #[test]
    fn a_replicating_rejection_never_takes_next_to_matched() {
        let mut p = Progress::new(10, 4);
        p.matched = 5;
        p.become_replicate();
        assert!(p.maybe_decr_to(9, 2));
        assert_eq!((p.state, p.next), (ProgressState::Probe, 6));
    }

    #[test]
    fn a_tail_is_lost_only_below_matched() {
        let mut p = Progress::new(10, 4);
        p.matched = 5;
        assert!(!p.lost_tail(5), "it holds what it acknowledged");
        assert!(!p.lost_tail(7));
        assert_eq!((p.matched, p.lost_tails, p.repair_to), (5, 0, 0));
        assert!(p.lost_tail(3));
        assert_eq!((p.matched, p.lost_tails, p.repair_to), (3, 1, 5));
        p.maybe_update(4);
        assert_eq!(p.repair_to, 5, "repairing until it holds 5 again");
        p.maybe_update(5);
        assert_eq!(p.repair_to, 0, "repaired");
    }

    #[test]
    fn empty_appends_take_no_window_slot() {
        let mut p = Progress::new(1, 2);
        p.become_replicate();
        p.sent_append(0, 0);
        assert!(p.inflights.is_empty());
        assert_eq!(p.next, 1);
    }

    #[test]
    fn the_window_frees_its_oldest_slot_and_clears() {
        let mut w = Inflights::new(3);
        assert!(w.is_empty());
        w.add(2);
        w.add(4);
        w.add(6);
        assert!(w.is_full() && !w.is_empty());
        w.free_first();
        assert_eq!(w.len(), 2);
        w.free_to(4);
        assert_eq!(w.len(), 1);
        w.clear();
        assert!(w.is_empty());
        assert_eq!(w.len(), 0);
    }
}
