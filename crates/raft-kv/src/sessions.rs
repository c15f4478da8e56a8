//! Client sessions: the last sequence number and answer of each client, so
//! a retried write applies once, bounded by evicting the client whose last
//! write is oldest (by log index, so every replica evicts the same one).

use crate::command::Output;
use imbl::{OrdMap, OrdSet};
use raft_core::Index;

/// Sessions kept at most.
pub(crate) const MAX_SESSIONS: usize = 100_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Session {
    pub(crate) seq: u64,
    pub(crate) output: Output,
    pub(crate) last_index: Index,
}

/// Persistent maps like the rest of the state (O(1) snapshot views).
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub(crate) struct Sessions {
    by_client: OrdMap<u64, Session>,
    /// Invariant: holds exactly `(s.last_index, client)` for every session,
    /// so the oldest is found in O(log n) instead of by a scan of all.
    by_age: OrdSet<(Index, u64)>,
}

impl Sessions {
    pub(crate) fn get(&self, client: u64) -> Option<&Session> {
        self.by_client.get(&client)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&u64, &Session)> {
        self.by_client.iter()
    }

    /// Records that `client` was last seen at `index` (a retry answered
    /// from its session).
    pub(crate) fn touch(&mut self, client: u64, index: Index) {
        if let Some(s) = self.by_client.get_mut(&client) {
            self.by_age.remove(&(s.last_index, client));
            s.last_index = index;
            self.by_age.insert((index, client));
        }
    }

    /// Sets `client`'s session, evicting the oldest one when over the bound.
    pub(crate) fn insert(&mut self, client: u64, s: Session) {
        let age = (s.last_index, client);
        if let Some(old) = self.by_client.insert(client, s) {
            self.by_age.remove(&(old.last_index, client));
        }
        self.by_age.insert(age);
        if self.by_client.len() > MAX_SESSIONS
            && let Some((_, oldest)) = self.by_age.remove_min()
        {
            self.by_client.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(last_index: Index) -> Session {
        Session {
            seq: 1,
            output: Output::Done(true),
            last_index,
        }
    }

    #[test]
    fn the_least_recently_seen_client_is_evicted() {
        let mut s = Sessions::default();
        for c in 0..MAX_SESSIONS as u64 {
            s.insert(c, session(c + 1));
        }
        // Client 0 was seen again: client 1 is now the oldest.
        s.touch(0, MAX_SESSIONS as Index + 1);
        s.insert(u64::MAX, session(MAX_SESSIONS as Index + 2));
        assert_eq!(s.by_client.len(), MAX_SESSIONS);
        assert!(s.get(0).is_some());
        assert!(s.get(1).is_none());
        // Replacing a client's session moves it, without growing the set.
        s.insert(2, session(MAX_SESSIONS as Index + 3));
        assert_eq!(s.by_client.len(), MAX_SESSIONS);
        assert_eq!(s.by_age.len(), MAX_SESSIONS);
        s.insert(u64::MAX - 1, session(MAX_SESSIONS as Index + 4));
        assert!(s.get(2).is_some() && s.get(3).is_none());
        // Replaced at the same index (a snapshot read twice): still indexed.
        s.insert(2, session(MAX_SESSIONS as Index + 3));
        assert_eq!(s.by_age.len(), s.by_client.len());
    }
}
