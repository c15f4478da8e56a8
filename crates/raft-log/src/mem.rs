//! The in-memory log: `RedbLogStore`'s semantics without a file.

use crate::{Error, check_batch, check_in_range};
use raft_core::{Entry, HardState, Index, LogStore, Membership, StoredState, Term, WriteBatch};
use std::collections::VecDeque;

/// A log store in memory: for tests and for nodes that keep nothing
/// across restarts. Writes cost nothing (no fsync), so the node driver
/// runs them inline.
#[derive(Debug, Default, Clone)]
pub struct MemLogStore {
    hard_state: HardState,
    membership: Option<(Index, Membership)>,
    purged: (Index, Term),
    /// `entries[i].index == purged.0 + 1 + i`.
    entries: VecDeque<Entry>,
    /// `StoredState::storage` (0 from `Default`: no storage id).
    storage: u64,
}

impl MemLogStore {
    /// An empty log with a new storage id of its own.
    pub fn new() -> Self {
        MemLogStore {
            storage: crate::meta::draw_storage_id(),
            ..Self::default()
        }
    }

    fn last_index(&self) -> Index {
        self.purged.0 + self.entries.len() as Index
    }
}

impl LogStore for MemLogStore {
    type Error = Error;

    fn writes_are_cheap(&self) -> bool {
        true
    }

    fn state(&self) -> Result<StoredState, Error> {
        Ok(StoredState {
            hard_state: self.hard_state,
            membership: self.membership.clone(),
            purged: self.purged,
            last_index: self.last_index(),
            storage: self.storage,
        })
    }

    fn entries(&self, lo: Index, hi: Index, max_bytes: usize) -> Result<Vec<Entry>, Error> {
        if lo >= hi {
            return Ok(Vec::new());
        }
        check_in_range(lo, self.purged.0, self.last_index())?;
        check_in_range(hi - 1, self.purged.0, self.last_index())?;
        let mut out = Vec::new();
        let mut bytes = 0;
        for e in self
            .entries
            .range((lo - self.purged.0 - 1) as usize..(hi - self.purged.0 - 1) as usize)
        {
            bytes += e.size();
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(e.clone());
        }
        Ok(out)
    }

    fn term(&self, index: Index) -> Result<Option<Term>, Error> {
        if index == self.purged.0 {
            return Ok(Some(self.purged.1));
        }
        if index < self.purged.0 || index > self.last_index() {
            return Ok(None);
        }
        Ok(Some(
            self.entries[(index - self.purged.0 - 1) as usize].term,
        ))
    }

    fn write(&mut self, batch: WriteBatch<'_>) -> Result<(), Error> {
        check_batch(&batch, self.purged.0, self.last_index())?;
        if let Some(first) = batch.entries.first() {
            self.entries
                .truncate((first.index - self.purged.0 - 1) as usize);
            self.entries.extend(batch.entries.iter().cloned());
        }
        if let Some(hs) = batch.hard_state {
            self.hard_state = hs;
        }
        if let Some((index, m)) = batch.membership {
            self.membership = Some((index, m.clone()));
        }
        Ok(())
    }

    fn reset_to(&mut self, index: Index, term: Term) -> Result<(), Error> {
        self.entries.clear();
        self.purged = (index, term);
        Ok(())
    }

    fn purge_to(&mut self, index: Index) -> Result<(), Error> {
        if index <= self.purged.0 {
            return Ok(());
        }
        check_in_range(index, self.purged.0, self.last_index())?;
        let term = self.term(index)?.expect("in range");
        self.entries.drain(..(index - self.purged.0) as usize);
        self.purged = (index, term);
        Ok(())
    }
}
