//! The in-memory view of the Raft log, with the indexes that track it
//! through persistence and application.
//!
//! Invariant: `applied <= committed <= last_index()`.
//! Invariant: `persisted <= last_index()` and every entry at or below
//! `persisted` was handed to the caller in a `Ready` and acknowledged.
//! Invariant: entries at or below `committed` are never truncated.

use crate::types::{Entry, Index, Term};

/// The in-memory Raft log: entries after the compaction point, and the commit, persist and
/// apply marks over them.
#[derive(Clone, Debug)]
pub struct RaftLog {
    /// `entries[i].index == start + i`.
    entries: Vec<Entry>,
    /// Index of `entries[0]`; everything before it was compacted.
    start: Index,
    /// Term of the entry at `start - 1` (0 when `start == 1`).
    start_prev_term: Term,
    /// The highest index known committed.
    pub committed: Index,
    /// Committed entries up to here were handed to the caller to apply.
    pub applying: Index,
    /// The caller reported these entries applied.
    pub applied: Index,
    /// The caller acknowledged entries up to here as durable.
    pub persisted: Index,
    /// Entries from here on have not yet been handed out for persistence.
    unstable_from: Index,
}

impl RaftLog {
    /// A log restored from storage: `entries` follow (`prev_index`,
    /// `prev_term`) and are all durable.
    pub fn restore(
        prev_index: Index,
        prev_term: Term,
        entries: Vec<Entry>,
        committed: Index,
        applied: Index,
    ) -> Self {
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(
                e.index,
                prev_index + 1 + i as Index,
                "RaftLog::restore: entries must be contiguous"
            );
        }
        let last = prev_index + entries.len() as Index;
        // What the state machine applied (a snapshot) is committed, even
        // when the persisted commit hint lags it.
        let applied = applied.clamp(prev_index, last);
        let committed = committed.max(applied).clamp(prev_index, last);
        RaftLog {
            entries,
            start: prev_index + 1,
            start_prev_term: prev_term,
            committed,
            applying: applied,
            applied,
            persisted: last,
            unstable_from: last + 1,
        }
    }

    /// The first index still held (one past the compaction point).
    pub fn first_index(&self) -> Index {
        self.start
    }

    /// The last index (the compaction point if the log is empty).
    pub fn last_index(&self) -> Index {
        self.start + self.entries.len() as Index - 1
    }

    /// The term of the last entry (or of the compaction point).
    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(self.start_prev_term, |e| e.term)
    }

    /// The term at `index`, if the log still holds it (or its predecessor term).
    pub fn term(&self, index: Index) -> Option<Term> {
        if index + 1 == self.start {
            return Some(self.start_prev_term);
        }
        if index < self.start || index > self.last_index() {
            return None;
        }
        Some(self.entries[(index - self.start) as usize].term)
    }

    /// Whether the entry at `index` has term `term` (the compaction point counts).
    pub fn matches(&self, index: Index, term: Term) -> bool {
        self.term(index) == Some(term)
    }

    /// The entry at `index`, if it is still held.
    pub fn entry(&self, index: Index) -> Option<&Entry> {
        if index < self.start || index > self.last_index() {
            return None;
        }
        Some(&self.entries[(index - self.start) as usize])
    }

    /// Entries in `lo..=hi`, stopping early past `max_bytes` (at least one
    /// entry is returned when the range is not empty).
    pub fn slice(&self, lo: Index, hi: Index, max_bytes: usize) -> Vec<Entry> {
        let lo = lo.max(self.start);
        let hi = hi.min(self.last_index());
        let mut out = Vec::new();
        let mut bytes = 0;
        for i in lo..=hi {
            let e = &self.entries[(i - self.start) as usize];
            bytes += e.size();
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(e.clone());
        }
        out
    }

    /// Raft's "at least as up-to-date" (§5.4.1): a later last term wins,
    /// then a longer log.
    pub fn is_up_to_date(&self, last_index: Index, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// Leader append: `entries` must start right after the last index.
    pub fn append(&mut self, entries: Vec<Entry>) {
        if let Some(first) = entries.first() {
            assert_eq!(
                first.index,
                self.last_index() + 1,
                "RaftLog::append: entries must extend the log"
            );
        }
        self.entries.extend(entries);
    }

    /// Follower append (§5.3): if the log matches at (`prev_index`,
    /// `prev_term`), drop any conflicting suffix and add what is new.
    /// Returns the index of the last entry the append covered, or `None` on
    /// a mismatch.
    pub fn maybe_append(
        &mut self,
        prev_index: Index,
        prev_term: Term,
        entries: &[Entry],
    ) -> Option<Index> {
        if !self.matches(prev_index, prev_term) {
            // An index below our start is compacted, hence committed and
            // matching; the caller handles that case before calling us.
            return None;
        }
        let last_new = prev_index + entries.len() as Index;
        for e in entries {
            match self.term(e.index) {
                Some(t) if t == e.term => continue,
                Some(_) => {
                    self.truncate_from(e.index);
                    self.append_from(entries, e.index);
                    break;
                }
                None => {
                    self.append_from(entries, e.index);
                    break;
                }
            }
        }
        Some(last_new)
    }

    fn append_from(&mut self, entries: &[Entry], from: Index) {
        let skip = entries
            .iter()
            .position(|e| e.index == from)
            .expect("append_from: index in batch");
        self.append(entries[skip..].to_vec());
    }

    fn truncate_from(&mut self, index: Index) {
        assert!(
            index > self.committed,
            "invariant broken: committed entries are never truncated (truncate at {index}, committed {})",
            self.committed
        );
        self.entries.truncate((index - self.start) as usize);
        self.unstable_from = self.unstable_from.min(index);
        self.persisted = self.persisted.min(index - 1);
    }

    /// Drops entries up to `index` (a snapshot covers them).
    ///
    /// Invariant: only applied, durable entries are compacted.
    pub fn compact_to(&mut self, index: Index) {
        if index < self.start {
            return;
        }
        assert!(
            index <= self.applied && index <= self.persisted,
            "invariant broken: compacting to {index} past applied {} or persisted {}",
            self.applied,
            self.persisted
        );
        let term = self.term(index).expect("compacted index is in the log");
        self.entries.drain(..(index + 1 - self.start) as usize);
        self.start = index + 1;
        self.start_prev_term = term;
    }

    /// The state machine was replaced by a snapshot at (`index`, `term`):
    /// a log that holds that entry keeps what follows it; any other log is
    /// discarded (it conflicts with, or is behind, the snapshot).
    pub fn restore_snapshot(&mut self, index: Index, term: Term) {
        assert!(
            index > self.committed,
            "invariant broken: restoring snapshot {index} at or below commit {}",
            self.committed
        );
        if self.matches(index, term) {
            self.entries.drain(..(index + 1 - self.start) as usize);
            self.persisted = self.persisted.max(index);
            self.unstable_from = self.unstable_from.max(index + 1);
        } else {
            self.entries.clear();
            self.persisted = index;
            self.unstable_from = index + 1;
        }
        self.start = index + 1;
        self.start_prev_term = term;
        self.committed = index;
        self.applying = index;
        self.applied = index;
    }

    /// The first index of the run of `term` that contains `index`.
    pub fn first_index_of_term_at(&self, index: Index) -> Index {
        let term = self.term(index);
        let mut i = index;
        while i > self.start && self.term(i - 1) == term {
            i -= 1;
        }
        i
    }

    /// The last index holding `term`, searching down from `from`.
    pub fn last_index_of_term(&self, term: Term, from: Index) -> Option<Index> {
        let mut i = from.min(self.last_index());
        while i >= self.start {
            let t = self.term(i)?;
            if t == term {
                return Some(i);
            }
            if t < term {
                return None;
            }
            i -= 1;
        }
        None
    }

    /// Raises the commit index to `index`; whether it moved. Panics if `index` is past the
    /// last entry (a broken invariant: only held entries commit).
    pub fn commit_to(&mut self, index: Index) -> bool {
        if index <= self.committed {
            return false;
        }
        assert!(
            index <= self.last_index(),
            "invariant broken: commit index {index} beyond last index {}",
            self.last_index()
        );
        self.committed = index;
        true
    }

    /// Entries not yet handed out for persistence; marks them handed out.
    pub fn take_unstable(&mut self) -> Vec<Entry> {
        if self.unstable_from > self.last_index() {
            return Vec::new();
        }
        let out = self.entries[(self.unstable_from - self.start) as usize..].to_vec();
        self.unstable_from = self.last_index() + 1;
        out
    }

    /// Whether entries wait to be handed out for persistence.
    pub fn has_unstable(&self) -> bool {
        self.unstable_from <= self.last_index()
    }

    /// The caller made entries durable up to (`index`, `term`). Ignored when
    /// the log has since replaced that entry.
    pub fn persisted_to(&mut self, index: Index, term: Term) -> bool {
        if index > self.persisted && index < self.unstable_from && self.matches(index, term) {
            self.persisted = index;
            return true;
        }
        false
    }

    /// Committed, durable entries not yet handed out to apply; marks them
    /// handed out.
    pub fn take_committed(&mut self, max_bytes: usize) -> Vec<Entry> {
        let hi = self.committed.min(self.persisted);
        if hi <= self.applying {
            return Vec::new();
        }
        let out = self.slice(self.applying + 1, hi, max_bytes);
        if let Some(last) = out.last() {
            self.applying = last.index;
        }
        out
    }

    /// Whether committed, durable entries wait to be handed out to apply.
    pub fn has_committed_to_apply(&self) -> bool {
        self.committed.min(self.persisted) > self.applying
    }

    /// The caller applied up to `index`. Panics past what was handed out (a broken
    /// invariant).
    pub fn applied_to(&mut self, index: Index) {
        assert!(
            index <= self.applying,
            "invariant broken: applied {index} beyond entries handed out to apply ({})",
            self.applying
        );
        self.applied = self.applied.max(index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Payload;

    fn ents(terms: &[(Index, Term)]) -> Vec<Entry> {
        terms
            .iter()
            .map(|&(index, term)| Entry {
                index,
                term,
                payload: Payload::Noop,
            })
            .collect()
    }

    fn log_of(terms: &[Term]) -> RaftLog {
        let e: Vec<_> = terms
            .iter()
            .enumerate()
            .map(|(i, &t)| (i as Index + 1, t))
            .collect();
        RaftLog::restore(0, 0, ents(&e), 0, 0)
    }

    #[test]
    fn conflicting_suffix_is_replaced() {
        let mut l = log_of(&[1, 1, 2, 2]);
        assert_eq!(l.maybe_append(2, 1, &ents(&[(3, 3)])), Some(3));
        assert_eq!(l.last_index(), 3);
        assert_eq!(l.term(3), Some(3));
        assert_eq!(l.persisted, 2, "the replaced entries are no longer durable");
        assert_eq!(l.take_unstable().len(), 1);
    }

    #[test]
    fn duplicate_append_keeps_longer_log() {
        let mut l = log_of(&[1, 1, 1]);
        // A delayed, shorter append must not truncate entries after it.
        assert_eq!(l.maybe_append(0, 0, &ents(&[(1, 1)])), Some(1));
        assert_eq!(l.last_index(), 3);
        assert!(!l.has_unstable());
    }

    #[test]
    fn mismatch_is_refused() {
        let mut l = log_of(&[1, 2]);
        assert_eq!(l.maybe_append(2, 1, &ents(&[(3, 2)])), None);
        assert_eq!(l.maybe_append(5, 2, &[]), None);
    }

    #[test]
    fn apply_waits_for_durability() {
        let mut l = log_of(&[1]);
        l.append(ents(&[(2, 1), (3, 1)]));
        l.commit_to(3);
        assert_eq!(
            l.take_committed(usize::MAX).len(),
            1,
            "only the durable entry"
        );
        let _ = l.take_unstable();
        assert!(l.persisted_to(3, 1));
        assert_eq!(l.take_committed(usize::MAX).len(), 2);
    }

    #[test]
    fn stale_persist_ack_is_ignored() {
        let mut l = log_of(&[]);
        l.append(ents(&[(1, 1), (2, 1)]));
        let _ = l.take_unstable();
        l.maybe_append(0, 0, &ents(&[(1, 2)]));
        assert!(!l.persisted_to(2, 1), "entry 2 was replaced");
        assert!(!l.persisted_to(1, 1));
        let _ = l.take_unstable();
        assert!(l.persisted_to(1, 2));
    }

    #[test]
    fn term_search() {
        let l = log_of(&[1, 1, 3, 3, 3, 5]);
        assert_eq!(l.first_index_of_term_at(5), 3);
        assert_eq!(l.last_index_of_term(3, 6), Some(5));
        assert_eq!(l.last_index_of_term(2, 6), None);
    }

    #[test]
    fn entry_is_none_outside_the_log() {
        let mut l = log_of(&[1, 1, 2, 2]);
        l.commit_to(2);
        l.applied_to(0);
        let _ = l.take_committed(usize::MAX);
        l.applied_to(2);
        l.compact_to(2);
        assert!(l.entry(2).is_none(), "compacted");
        assert!(l.entry(5).is_none(), "past the end");
        assert_eq!(l.entry(3).map(|e| e.term), Some(2));
        assert_eq!(l.term(2), Some(1), "the term before the log is kept");
        assert_eq!(l.term(1), None);
    }

    #[test]
    fn slice_stops_past_the_byte_budget() {
        let l = log_of(&[1, 1, 1]);
        let one = l.entry(1).expect("entry").size();
        assert_eq!(l.slice(1, 3, 0).len(), 1, "at least one entry");
        assert_eq!(l.slice(1, 3, 2 * one).len(), 2, "exactly two fit");
        assert_eq!(l.slice(1, 3, 2 * one - 1).len(), 1);
        assert_eq!(l.slice(1, 3, usize::MAX).len(), 3);
        assert_eq!(l.slice(2, 9, usize::MAX).len(), 2, "clamped to the log");
    }

    fn applied_log(terms: &[Term], applied: Index) -> RaftLog {
        let mut l = log_of(terms);
        l.commit_to(applied);
        let _ = l.take_committed(usize::MAX);
        l.applied_to(applied);
        l
    }

    #[test]
    fn compaction_drops_through_the_index_once() {
        let mut l = applied_log(&[1, 1, 2, 2], 3);
        l.compact_to(1);
        assert_eq!(l.first_index(), 2, "the first entry goes");
        l.compact_to(1);
        l.compact_to(0);
        assert_eq!(l.first_index(), 2, "compacting below the log is a no-op");
        l.compact_to(2);
        assert_eq!((l.first_index(), l.term(2)), (3, Some(1)));
        l.compact_to(3);
        assert_eq!(l.term(3), Some(2), "the same term as the first entry");
        assert_eq!(l.first_index_of_term_at(4), 4, "never below the log");
    }

    #[test]
    fn snapshot_keeps_a_matching_tail_still_to_persist() {
        let mut l = log_of(&[1]);
        l.append(ents(&[(2, 1), (3, 1), (4, 1)]));
        l.restore_snapshot(3, 1);
        assert_eq!((l.first_index(), l.last_index()), (4, 4));
        let unstable: Vec<Index> = l.take_unstable().iter().map(|e| e.index).collect();
        assert_eq!(unstable, [4], "only what follows the snapshot");
        assert_eq!((l.committed, l.applied, l.persisted), (3, 3, 3));
    }

    #[test]
    fn snapshot_discards_a_conflicting_log() {
        let mut l = log_of(&[1, 1, 1, 1]);
        l.restore_snapshot(3, 2);
        assert_eq!((l.first_index(), l.last_index(), l.last_term()), (4, 3, 2));
        assert!(l.take_unstable().is_empty());
        assert_eq!(l.persisted, 3, "the discarded entries are not durable");
        l.append(ents(&[(4, 2)]));
        assert_eq!(l.take_unstable().len(), 1);
        assert!(l.persisted_to(4, 2));
    }

    #[test]
    fn persist_acks_count_once_and_only_for_entries_handed_out() {
        let mut l = log_of(&[1]);
        l.append(ents(&[(2, 1), (3, 1)]));
        assert!(!l.persisted_to(2, 1), "not handed out yet");
        let _ = l.take_unstable();
        assert!(l.persisted_to(2, 1));
        assert!(!l.persisted_to(2, 1), "already durable");
        assert!(!l.persisted_to(1, 1), "below what is durable");
        assert!(!l.has_committed_to_apply());
        l.commit_to(2);
        assert!(l.has_committed_to_apply());
        let _ = l.take_committed(usize::MAX);
        assert!(!l.has_committed_to_apply(), "handed out");
    }

    #[test]
    #[should_panic(expected = "committed entries are never truncated")]
    fn truncating_committed_panics() {
        let mut l = log_of(&[1, 1]);
        l.commit_to(2);
        l.maybe_append(1, 1, &ents(&[(2, 2)]));
    }
}
