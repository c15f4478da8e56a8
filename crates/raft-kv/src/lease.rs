//! Leases as replicated state: which leases exist, their TTLs, and the keys
//! that die with each (attached with `?lease=`) or whose lock each holds
//! (`?acquire=`). When a lease goes (revoked, or expired by the leader's
//! decision: an entry in the log), its attached keys are deleted and its
//! locks freed, in that one entry.
//!
//! Nothing here reads a clock: when a lease is due is the leader's
//! business (`crate::api::lease`), decided on its monotonic clock and
//! replicated as `Op::LeaseExpire`, so every replica deletes the same keys
//! at the same index.
//!
//! A lease's key set is an index over the keys' own `KeyMeta`, which is
//! the truth: it may name keys that have since left the lease (a plain
//! put detaches a key, a delete removes it), and whoever reads it checks
//! each key's meta. It is pruned when it has doubled since the last
//! prune, so it stays within twice the keys really held plus a constant;
//! it is not compared and not in snapshots (rebuilt from the keys' meta).

use crate::store::Key;
use imbl::{OrdMap, OrdSet};
use serde::{Deserialize, Serialize};

/// A lease's id: the log index of the entry that granted it, or one past
/// the last id given if that is larger (a backup restored into a new
/// cluster keeps its leases' ids from the old log), so ids rise, are never
/// reused, and are the same on every replica.
pub type LeaseId = u64;

/// The shortest TTL a lease may have: shorter would expire on an
/// ordinary leader change.
pub const MIN_TTL_MS: u64 = 1_000;
/// The longest TTL (a day).
pub const MAX_TTL_MS: u64 = 86_400_000;

/// What a key carries beyond its value: the lease it dies with, the lease
/// holding its lock, and how many times its lock was taken (Consul's
/// `LockIndex`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyMeta {
    /// The lease the key is deleted with.
    pub lease: Option<LeaseId>,
    /// The lease holding the key's lock.
    pub holder: Option<LeaseId>,
    /// Times the lock was taken.
    pub lock_index: u64,
}

impl KeyMeta {
    /// Whether lease `id` has anything to do with the key.
    pub fn involves(&self, id: LeaseId) -> bool {
        self.lease == Some(id) || self.holder == Some(id)
    }

    /// `None` when it says nothing (keys without leases or locks carry no
    /// meta at all).
    pub fn boxed(self) -> Option<Box<KeyMeta>> {
        (self != KeyMeta::default()).then(|| Box::new(self))
    }
}

/// One lease.
#[derive(Clone, Debug, Default)]
pub struct Lease {
    /// The namespace it belongs to: only clients of that namespace may
    /// keep it alive, read or revoke it (it may hold keys of any).
    pub ns: String,
    /// Its time to live, in milliseconds (the leader's clock runs it).
    pub ttl_ms: u64,
    /// A key's own lease (a Redis TTL, `crate::strings`): it holds that
    /// one key, and ends when the key is rewritten without it or deleted.
    pub own: bool,
    /// Keys that may involve it (see the module docs), and the set's size
    /// at its last prune.
    pub(crate) keys: OrdSet<(Key, Key)>,
    pub(crate) pruned_at: usize,
}

/// Every lease.
#[derive(Clone, Debug, Default)]
pub struct Leases {
    pub(crate) by_id: OrdMap<LeaseId, Lease>,
    /// The last id given (invariant: >= every id in `by_id`).
    pub(crate) last_id: LeaseId,
}

/// Leases are equal when they have the same ids and TTLs (key sets are
/// an index, see the module docs).
impl PartialEq for Leases {
    fn eq(&self, other: &Self) -> bool {
        self.last_id == other.last_id
            && self.by_id.len() == other.by_id.len()
            && self
                .by_id
                .iter()
                .zip(other.by_id.iter())
                .all(|((a, x), (b, y))| {
                    a == b && (x.ttl_ms, &x.ns, x.own) == (y.ttl_ms, &y.ns, y.own)
                })
    }
}
impl Eq for Leases {}

impl Leases {
    /// Every lease, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (LeaseId, &Lease)> + '_ {
        self.by_id.iter().map(|(&id, l)| (id, l))
    }

    /// Lease `id`, if it exists.
    pub fn get(&self, id: LeaseId) -> Option<&Lease> {
        self.by_id.get(&id)
    }

    /// Whether lease `id` exists.
    pub fn contains(&self, id: LeaseId) -> bool {
        self.by_id.contains_key(&id)
    }

    /// How many leases exist.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no lease exists.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Whether a write may attach a key to lease `id` or lock with it: it
    /// exists and is not a key's own (`Lease::own`).
    pub fn attachable(&self, id: LeaseId) -> bool {
        self.by_id.get(&id).is_some_and(|l| !l.own)
    }

    /// The last id given.
    pub fn last_id(&self) -> LeaseId {
        self.last_id
    }

    /// A new lease granted by the entry at `index`; its id.
    pub(crate) fn grant(&mut self, index: u64, ns: &str, ttl_ms: u64) -> LeaseId {
        let id = index.max(self.last_id + 1);
        self.insert(id, ns, ttl_ms);
        id
    }

    /// A key's own lease (`Lease::own`), granted by the entry at `index`.
    pub(crate) fn grant_own(&mut self, index: u64, ns: &str, ttl_ms: u64) -> LeaseId {
        let id = self.grant(index, ns, ttl_ms);
        if let Some(l) = self.by_id.get_mut(&id) {
            l.own = true;
        }
        id
    }

    /// Ends lease `id` if it is a key's own (its key left it); other
    /// leases live on without their keys.
    pub(crate) fn end_own(&mut self, id: LeaseId) {
        if self.by_id.get(&id).is_some_and(|l| l.own) {
            self.by_id.remove(&id);
        }
    }

    /// Lease `id` as a snapshot holds it.
    pub(crate) fn insert(&mut self, id: LeaseId, ns: &str, ttl_ms: u64) {
        self.insert_lease(id, ns, ttl_ms, false);
    }

    /// Lease `id` as a snapshot holds it, `own` or not.
    pub(crate) fn insert_lease(&mut self, id: LeaseId, ns: &str, ttl_ms: u64, own: bool) {
        let lease = Lease {
            ns: ns.to_string(),
            ttl_ms,
            own,
            ..Lease::default()
        };
        self.by_id.insert(id, lease);
        self.last_id = self.last_id.max(id);
    }

    /// Notes that `key` in `ns` now involves lease `id` (if it exists);
    /// returns whether the lease's set is due a prune.
    pub(crate) fn note(&mut self, id: LeaseId, ns: &str, key: &str) -> bool {
        let Some(l) = self.by_id.get_mut(&id) else {
            return false;
        };
        l.keys.insert((Key::from(ns), Key::from(key)));
        l.keys.len() >= 2 * l.pruned_at.max(32)
    }

    /// Keeps only the keys `still` says involve lease `id`.
    pub(crate) fn prune(&mut self, id: LeaseId, still: impl Fn(&str, &str) -> bool) {
        if let Some(l) = self.by_id.get_mut(&id) {
            l.keys = l
                .keys
                .iter()
                .filter(|(ns, key)| still(ns, key))
                .cloned()
                .collect();
            l.pruned_at = l.keys.len();
        }
    }

    /// Removes lease `id`; the keys that may involve it.
    pub(crate) fn remove(&mut self, id: LeaseId) -> Option<OrdSet<(Key, Key)>> {
        self.by_id.remove(&id).map(|l| l.keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_is_ids_and_ttls_not_the_key_index() {
        let mut a = Leases::default();
        a.insert(3, "n", 2_000);
        let mut b = a.clone();
        b.note(3, "ns", "k");
        assert_eq!(a, b);
        b.insert(4, "n", 2_000);
        assert_ne!(a, b);
        a.insert(4, "n", 3_000);
        assert_ne!(a, b);
        a.insert(4, "m", 2_000);
        assert_ne!(a, b);
    }

    #[test]
    fn ids_rise_past_any_given_before() {
        let mut l = Leases::default();
        assert_eq!(l.grant(5, "n", 1_000), 5);
        // Restored from an older cluster's backup: its ids run ahead.
        l.insert(4_000, "n", 1_000);
        assert_eq!(l.grant(6, "n", 1_000), 4_001);
        l.remove(4_001);
        assert_eq!(l.grant(7, "n", 1_000), 4_002, "never reused");
    }

    #[test]
    fn a_key_set_asks_for_a_prune_when_it_doubles() {
        let mut l = Leases::default();
        l.insert(1, "n", 2_000);
        let due: Vec<bool> = (0..64).map(|i| l.note(1, "n", &i.to_string())).collect();
        assert!(!due[..63].iter().any(|d| *d) && due[63]);
        l.prune(1, |_, k| k.len() == 1);
        assert_eq!(l.get(1).unwrap().keys.len(), 10);
        assert!(!l.note(2, "n", "k"), "no such lease: nothing noted");
    }
}
