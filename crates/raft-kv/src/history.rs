//! The watch history: the changes the KV applied (puts, deletes, expiries),
//! in log order, the latest `keep` of them. Watchers read it from any index
//! they name, so one that reconnects (to any node: every replica applies the
//! same entries and so records the same changes) misses and repeats
//! nothing. It is part of the state, so it is in snapshots and survives
//! restarts.
//!
//! Invariant: every change at an index `>= floor` is held, and the events
//! are in index order (one entry may make several, which share its index).

use crate::store::Key;
use bytes::Bytes;
use imbl::Vector;
use raft_core::Index;
use serde::{Deserialize, Serialize};

/// How many events a node keeps by default.
pub const DEFAULT_KEEP: usize = 100_000;

/// What happened to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// It was written (created or changed).
    Put,
    /// It was deleted (on its own, under a prefix, or with its namespace).
    Delete,
    /// It was deleted because its lease ended (expired or revoked).
    Expire,
}

impl Change {
    /// The name watchers see.
    pub fn name(self) -> &'static str {
        match self {
            Change::Put => "put",
            Change::Delete => "delete",
            Change::Expire => "expire",
        }
    }
}

/// One change to one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The log index of the entry that made it.
    pub index: Index,
    /// Put or delete.
    pub change: Change,
    /// The key's namespace.
    pub ns: Key,
    /// The key.
    pub key: Key,
    /// The new value (puts only).
    pub value: Option<Bytes>,
    /// When the key was created (puts only; 0 otherwise).
    pub create_index: Index,
    /// The event as watchers are sent it, made by the first that asks
    /// and shared by the rest (not part of its value: not compared, not
    /// in snapshots).
    #[serde(skip)]
    pub(crate) encoded: Encoded,
}

/// A lazily made, shared encoding of an event.
#[derive(Clone, Debug, Default)]
pub(crate) struct Encoded(std::sync::Arc<std::sync::OnceLock<Bytes>>);

impl Encoded {
    /// The encoding, made by `make` if no one has yet.
    pub(crate) fn get_or(&self, make: impl FnOnce() -> Bytes) -> Bytes {
        self.0.get_or_init(make).clone()
    }
}

impl Event {
    /// The event as watchers are sent it: made by `make` for the first
    /// watcher that asks, then shared by the rest.
    pub fn encoded_or(&self, make: impl FnOnce() -> Bytes) -> Bytes {
        self.encoded.get_or(make)
    }
}

impl PartialEq for Encoded {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Encoded {}

/// The latest changes; see the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History {
    events: Vector<Event>,
    floor: Index,
    keep: usize,
}

impl Default for History {
    fn default() -> Self {
        History::new(DEFAULT_KEEP)
    }
}

/// A watcher asked for changes older than the history holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compacted {
    /// The oldest index still served.
    pub oldest: Index,
}

impl History {
    /// An empty history of everything from the first entry on, keeping at
    /// most `keep` events (0 keeps none: every watcher then falls out of
    /// the history at the first change, so nodes serving watches keep some).
    pub fn new(keep: usize) -> Self {
        History {
            events: Vector::new(),
            floor: 1,
            keep,
        }
    }

    /// A history that holds nothing before `floor` (a state restored from
    /// a snapshot that carried none).
    pub(crate) fn starting_at(floor: Index, keep: usize) -> Self {
        History {
            floor,
            ..History::new(keep)
        }
    }

    /// The oldest index whose changes are all held.
    pub fn floor(&self) -> Index {
        self.floor
    }

    /// How many events are held.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether no event is held.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The most events kept.
    pub fn keep(&self) -> usize {
        self.keep
    }

    /// Keeps at most `keep` events from now on (dropping the oldest now).
    pub(crate) fn set_keep(&mut self, keep: usize) {
        self.keep = keep;
        self.trim();
    }

    /// Adds a change. Its index must not be below the last one's. A change
    /// of an entry whose earlier changes were trimmed already (one entry
    /// with more changes than `keep`) is below the floor, so not held.
    pub(crate) fn record(&mut self, e: Event) {
        if e.index < self.floor {
            return;
        }
        if let Some(last) = self.events.last() {
            assert!(
                e.index >= last.index,
                "invariant broken: history events out of index order ({} after {})",
                e.index,
                last.index
            );
        }
        self.events.push_back(e);
        self.trim();
    }

    /// Drops the oldest events beyond `keep`, whole indexes at a time (a
    /// watcher never sees part of an entry's changes).
    fn trim(&mut self) {
        while self.events.len() > self.keep {
            let Some(gone) = self.events.pop_front() else {
                break;
            };
            self.floor = gone.index + 1;
            while self.events.front().is_some_and(|e| e.index == gone.index) {
                self.events.pop_front();
            }
        }
    }

    /// The events from index `from` on, in order; `Compacted` if some of
    /// those were dropped.
    pub fn since(&self, from: Index) -> Result<impl Iterator<Item = &Event> + '_, Compacted> {
        if from < self.floor {
            return Err(Compacted { oldest: self.floor });
        }
        let start = self
            .events
            .binary_search_by(|e| {
                if e.index < from {
                    std::cmp::Ordering::Less
                } else {
                    std::cmp::Ordering::Greater
                }
            })
            .unwrap_or_else(|at| at);
        Ok(self.events.focus().narrow(start..).into_iter())
    }

    /// Every event held, oldest first (for snapshots).
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Event> + '_ {
        self.events.iter()
    }

    /// Puts back an event a snapshot held, with the floor it was written
    /// with (no trimming: the writer's bound held them).
    pub(crate) fn restore(&mut self, floor: Index, e: Event) {
        self.floor = floor;
        self.events.push_back(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(index: Index, key: &str) -> Event {
        Event {
            index,
            change: Change::Put,
            ns: "n".into(),
            key: key.into(),
            value: Some(Bytes::from_static(b"v")),
            create_index: index,
            encoded: Encoded::default(),
        }
    }

    fn keys_since(h: &History, from: Index) -> Vec<(Index, String)> {
        h.since(from)
            .unwrap()
            .map(|e| (e.index, e.key.to_string()))
            .collect()
    }

    #[test]
    fn serves_from_any_index_it_holds_and_refuses_older() {
        let mut h = History::new(4);
        for (i, k) in [(2, "a"), (3, "b"), (3, "c"), (5, "d")] {
            h.record(put(i, k));
        }
        assert_eq!(h.floor(), 1);
        assert_eq!(keys_since(&h, 1).len(), 4);
        assert_eq!(
            keys_since(&h, 3),
            [(3, "b".into()), (3, "c".into()), (5, "d".into())]
        );
        assert_eq!(keys_since(&h, 4), [(5, "d".into())]);
        assert!(keys_since(&h, 6).is_empty());
        // A fifth event drops index 2 whole; index 3's two go together
        // with the sixth, so no watcher sees half an entry.
        h.record(put(6, "e"));
        assert_eq!(h.floor(), 3);
        assert_eq!(h.since(2).err(), Some(Compacted { oldest: 3 }));
        h.record(put(7, "f"));
        assert_eq!(h.floor(), 4);
        assert_eq!(h.len(), 3);
        assert_eq!(keys_since(&h, 4)[0], (5, "d".into()));
    }

    #[test]
    fn an_entry_with_more_changes_than_kept_is_dropped_whole() {
        let mut h = History::new(2);
        h.record(put(1, "a"));
        for k in ["x", "y", "z"] {
            h.record(put(2, k));
        }
        // None of index 2's changes are held, so it is below the floor.
        assert_eq!(h.floor(), 3);
        assert!(h.is_empty());
        assert!(h.since(2).is_err());
        h.record(put(3, "b"));
        assert_eq!(keys_since(&h, 3), vec![(3, "b".to_string())]);
    }

    #[test]
    fn keeping_nothing_serves_only_what_is_to_come() {
        let mut h = History::new(0);
        h.record(put(3, "a"));
        assert_eq!((h.len(), h.floor()), (0, 4));
        assert!(h.since(3).is_err());
        assert!(keys_since(&h, 4).is_empty());
    }

    #[test]
    #[should_panic(expected = "out of index order")]
    fn events_out_of_order_break_the_invariant() {
        let mut h = History::new(4);
        h.record(put(5, "a"));
        h.record(put(4, "b"));
    }
}
