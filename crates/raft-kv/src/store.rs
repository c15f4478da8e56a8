//! The replicated state: namespaces of keys, and client sessions. Every
//! replica applies the same entries in the same order and so holds the
//! same state; nothing here reads a clock or a random source.

use crate::command::{self, Decoded, Op, Output, Request};
use crate::history::{Change, Event, History};
use crate::lease::{KeyMeta, LeaseId, Leases};
use crate::sessions::{Session, Sessions};
use bytes::Bytes;
use compact_str::CompactString;
use imbl::OrdMap;
use raft_core::Index;
use raft_core::node::StateMachine;
use std::sync::{Arc, RwLock, RwLockReadGuard};

/// The namespace used when a request names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// A key's value and its indexes (Consul's `CreateIndex`/`ModifyIndex`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    /// The bytes.
    pub data: Bytes,
    /// Log index of the write that created the key.
    pub create_index: Index,
    /// Log index of the write that last changed it (Consul's ModifyIndex).
    pub modify_index: Index,
    /// Its lease and lock, if it has either (`crate::lease`).
    pub meta: Option<Box<KeyMeta>>,
}

impl Value {
    /// The lease the key dies with.
    pub fn lease(&self) -> Option<LeaseId> {
        self.meta.as_ref().and_then(|m| m.lease)
    }

    /// The lease holding the key's lock.
    pub fn holder(&self) -> Option<LeaseId> {
        self.meta.as_ref().and_then(|m| m.holder)
    }

    /// How many times the key's lock was taken.
    pub fn lock_index(&self) -> u64 {
        self.meta.as_ref().map_or(0, |m| m.lock_index)
    }
}

/// A key as the maps hold it: up to 24 bytes inline, so the comparisons of
/// a lookup read the tree's nodes and not a heap string each (they were 5%
/// of all CPU at 64 clients, nearly all cache misses).
pub type Key = CompactString;

/// Persistent (structurally shared) maps: a clone is O(1), so the point-in-
/// time view a snapshot needs costs nothing on the protocol task, and
/// writes after it copy only the paths they touch.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct KvState {
    pub(crate) namespaces: OrdMap<String, OrdMap<Key, Value>>,
    pub(crate) sessions: Sessions,
    /// Invariant: every applied entry's index is <= applied.
    pub(crate) applied: Index,
    pub(crate) deletes: DeleteMarks,
    /// The latest changes, for watchers.
    pub(crate) history: History,
    /// Invariant: every lease a key's meta names exists.
    pub(crate) leases: Leases,
}

/// When each namespace last lost keys (a delete, a prefix delete, the
/// namespace dropped), for blocking queries: what changed under a key
/// includes what was deleted there (`KvState::changed_at`).
///
/// Not replicated state, and so equal whatever it holds: a replica
/// restored from a snapshot starts with none and a `floor` at the
/// snapshot's index, so a watcher from before that wakes at once rather
/// than miss a delete it did not see.
#[derive(Clone, Default, Debug)]
pub(crate) struct DeleteMarks {
    by_ns: OrdMap<String, Index>,
    pub(crate) floor: Index,
}

impl DeleteMarks {
    /// Namespace `ns` lost keys at `index`.
    pub(crate) fn note(&mut self, ns: String, index: Index) {
        self.by_ns.insert(ns, index);
    }
}

impl PartialEq for DeleteMarks {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for DeleteMarks {}

impl KvState {
    /// The value of `key` in `ns`.
    pub fn get(&self, ns: &str, key: &str) -> Option<&Value> {
        self.namespaces.get(ns)?.get(key)
    }

    /// Keys starting with `prefix`, in order.
    pub fn scan<'a>(
        &'a self,
        ns: &str,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a Key, &'a Value)> + 'a {
        self.namespaces
            .get(ns)
            .into_iter()
            .flat_map(move |m| m.range(Key::from(prefix)..))
            .take_while(move |(k, _)| k.starts_with(prefix))
    }

    /// Keys starting with `prefix` and after `after` (all of them if
    /// `None`), in order: where a scan goes on.
    pub fn scan_after<'a>(
        &'a self,
        ns: &str,
        prefix: &'a str,
        after: Option<&str>,
    ) -> impl Iterator<Item = (&'a Key, &'a Value)> + 'a {
        use std::ops::Bound;
        let from = match after {
            Some(a) if a >= prefix => Bound::Excluded(Key::from(a)),
            _ => Bound::Included(Key::from(prefix)),
        };
        self.namespaces
            .get(ns)
            .into_iter()
            .flat_map(move |m| m.range((from.clone(), Bound::Unbounded)))
            .take_while(move |(k, _)| k.starts_with(prefix))
    }

    /// Namespaces with their key counts.
    pub fn namespaces(&self) -> impl Iterator<Item = (&String, usize)> {
        self.namespaces.iter().map(|(n, m)| (n, m.len()))
    }

    /// The last log index applied to this state.
    pub fn applied(&self) -> Index {
        self.applied
    }

    /// An index at or after the last write that changed `key` in `ns` (or,
    /// with `prefix`, any key under it), deletes included; 0 if none did.
    /// It may be later than that write (a delete elsewhere in the
    /// namespace, or a restore from a snapshot, moves it): a blocking
    /// query may wake with nothing changed, never sleep through a change.
    pub fn changed_at(&self, ns: &str, key: &str, prefix: bool) -> Index {
        let modified = if prefix {
            self.scan(ns, key).map(|(_, v)| v.modify_index).max()
        } else {
            self.get(ns, key).map(|v| v.modify_index)
        };
        let deleted = self.deletes.by_ns.get(ns).copied().unwrap_or(0);
        modified.unwrap_or(0).max(deleted).max(self.deletes.floor)
    }

    /// Keys in all namespaces.
    pub fn keys(&self) -> usize {
        self.namespaces.values().map(|m| m.len()).sum()
    }

    /// The latest changes (`crate::history`).
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The leases (`crate::lease`).
    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    /// The keys lease `id` holds: attached to it, or locked by it.
    pub fn lease_keys(&self, id: LeaseId) -> Vec<(Key, Key, &Value)> {
        let Some(l) = self.leases.get(id) else {
            return Vec::new();
        };
        l.keys
            .iter()
            .filter_map(|(ns, key)| {
                let v = self.get(ns, key)?;
                let held = v.meta.as_ref().is_some_and(|m| m.involves(id));
                held.then(|| (ns.clone(), key.clone(), v))
            })
            .collect()
    }

    /// This state as the start of a new cluster whose log goes on after
    /// `index` (a backup restored: `raft-mock --restore`). Its history
    /// named the old cluster's indexes, which mean nothing in the new log
    /// (and would come after the new entries'), so it starts empty.
    pub fn rebased_at(mut self, index: Index) -> KvState {
        self.applied = index;
        self.history = History::starting_at(index + 1, self.history.keep());
        self
    }

    /// Notes that `key` in `ns` was written at `index` with `v`.
    pub(crate) fn record_put(&mut self, index: Index, ns: &str, key: &str, v: &Value) {
        for id in [v.lease(), v.holder()].into_iter().flatten() {
            self.note_lease(id, ns, key);
        }
        self.history.record(put_event(index, ns, key, v));
    }

    /// Adds `key` to lease `id`'s set, pruning the set when it is due.
    fn note_lease(&mut self, id: LeaseId, ns: &str, key: &str) {
        if self.leases.note(id, ns, key) {
            let namespaces = &self.namespaces;
            self.leases.prune(id, |ns, key| {
                let v = namespaces.get(ns).and_then(|m| m.get(key));
                v.and_then(|v| v.meta.as_ref())
                    .is_some_and(|m| m.involves(id))
            });
        }
    }

    /// Ends lease `id` at `index`: deletes the keys attached to it (as
    /// `expire` events) and frees the locks it holds; the keys deleted.
    fn end_lease(&mut self, index: Index, id: LeaseId) -> u64 {
        let Some(keys) = self.leases.remove(id) else {
            return 0;
        };
        let mut deleted = 0;
        for (ns, key) in keys {
            let Some(m) = self.namespaces.get_mut(ns.as_str()) else {
                continue;
            };
            let Some(v) = m.get_mut(key.as_str()) else {
                continue;
            };
            if v.lease() == Some(id) {
                m.remove(key.as_str());
                self.deletes.note(ns.to_string(), index);
                self.history.record(expire_event(index, ns, key));
                deleted += 1;
            } else if v.holder() == Some(id) {
                let mut meta = v.meta.as_deref().cloned().unwrap_or_default();
                meta.holder = None;
                v.meta = meta.boxed();
                v.modify_index = index;
                let v = v.clone();
                self.history.record(put_event(index, &ns, &key, &v));
            }
        }
        deleted
    }

    /// Notes that `keys` in `ns` were deleted at `index`.
    pub(crate) fn record_gone(&mut self, index: Index, ns: &str, keys: Vec<Key>) {
        if keys.is_empty() {
            return;
        }
        self.deletes.note(ns.to_string(), index);
        let ns = Key::from(ns);
        for key in keys {
            self.history.record(gone_event(index, ns.clone(), key));
        }
    }

    pub(crate) fn apply(&mut self, index: Index, data: &[u8]) -> Output {
        self.applied = index;
        let Decoded::Kv(Request { session, op }) = command::decode(data) else {
            return Output::Opaque;
        };
        if let Some((client, seq)) = session {
            if let Some(s) = self.sessions.get(client) {
                if seq == s.seq {
                    let output = s.output.clone();
                    self.sessions.touch(client, index);
                    return output;
                }
                if seq < s.seq {
                    return Output::StaleSession { latest: s.seq };
                }
            }
            let output = self.apply_op(index, op);
            self.sessions.insert(
                client,
                Session {
                    seq,
                    output: output.clone(),
                    last_index: index,
                },
            );
            return output;
        }
        self.apply_op(index, op)
    }

    /// One op of a `Multi`: anything but another `Multi`.
    pub(crate) fn apply_inner(&mut self, index: Index, op: Op) -> Output {
        match op {
            Op::Multi { .. } => Output::Done(false),
            op => self.apply_op(index, op),
        }
    }

    fn apply_op(&mut self, index: Index, op: Op) -> Output {
        match op {
            Op::Put {
                ns,
                key,
                value,
                cas,
                lease,
            } => {
                if let Some(id) = lease.filter(|id| !self.leases.attachable(*id)) {
                    return Output::NoLease(id);
                }
                let m = self.namespaces.entry(ns.clone()).or_default();
                match put(m, index, &key, value, cas, lease) {
                    Some(v) => {
                        self.record_put(index, &ns, &key, &v);
                        Output::Done(true)
                    }
                    None => Output::Done(false),
                }
            }
            Op::Delete {
                ns,
                key,
                prefix,
                cas,
            } => {
                let Some(m) = self.namespaces.get_mut(&ns) else {
                    return if cas.is_some_and(|c| c != 0) {
                        Output::Done(false)
                    } else {
                        Output::Removed(0)
                    };
                };
                if let Some(expect) = cas.filter(|_| !prefix)
                    && m.get(key.as_str()).map_or(0, |v| v.modify_index) != expect
                {
                    return Output::Done(false);
                }
                let own = leases_under(m, &key, prefix);
                let gone = remove(m, &key, prefix);
                let removed = gone.len() as u64;
                own.into_iter().for_each(|id| self.leases.end_own(id));
                self.record_gone(index, &ns, gone);
                Output::Removed(removed)
            }
            Op::DropNamespace { ns } => {
                let dropped = self.namespaces.remove(&ns).unwrap_or_default();
                let own = dropped.values().filter_map(Value::lease);
                own.for_each(|id| self.leases.end_own(id));
                let gone: Vec<Key> = dropped.keys().cloned().collect();
                let removed = gone.len() as u64;
                self.record_gone(index, &ns, gone);
                Output::Removed(removed)
            }
            Op::Txn(ops) => Output::Txn(crate::txn::apply(self, index, &ops)),
            Op::Lock {
                ns,
                key,
                value,
                lease,
                acquire,
            } => {
                if !self.leases.attachable(lease) {
                    return Output::NoLease(lease);
                }
                let m = self.namespaces.entry(ns.clone()).or_default();
                match lock(m, index, &key, value, lease, acquire) {
                    Some(v) => {
                        self.record_put(index, &ns, &key, &v);
                        Output::Done(true)
                    }
                    None => Output::Done(false),
                }
            }
            Op::LeaseGrant { ns, ttl_ms } => {
                let id = self.leases.grant(index, &ns, ttl_ms);
                Output::Granted { id, ttl_ms }
            }
            Op::LeaseRevoke { id } => {
                if !self.leases.contains(id) {
                    return Output::NoLease(id);
                }
                Output::Removed(self.end_lease(index, id))
            }
            Op::Str(w) => Output::Str(crate::strings::apply(self, index, w)),
            Op::Multi { watch, ops } => {
                Output::Multi(crate::multi::apply(self, index, &watch, ops))
            }
            Op::Peek { ns, keys } => Output::Peek(crate::multi::peek(self, &ns, &keys)),
            Op::LeaseExpire { ids } => {
                let deleted = ids.into_iter().map(|id| self.end_lease(index, id)).sum();
                Output::Removed(deleted)
            }
        }
    }
}

/// Writes `value` to `key` in `m` at `index` (with `cas`, only if the
/// key's modify index is that, 0 meaning absent), attached to `lease` (or
/// to none: a plain put detaches a key from its lease, as in etcd; its
/// lock stays); the value written.
pub(crate) fn put(
    m: &mut OrdMap<Key, Value>,
    index: Index,
    key: &str,
    value: Bytes,
    cas: Option<Index>,
    lease: Option<LeaseId>,
) -> Option<Value> {
    write(m, index, key, value, |old| {
        if cas.is_some_and(|expect| expect != old.map_or(0, |v| v.modify_index)) {
            return None;
        }
        let mut meta = old
            .and_then(|v| v.meta.as_deref().cloned())
            .unwrap_or_default();
        meta.lease = lease;
        Some(meta.boxed())
    })
}

/// Takes (`acquire`) or frees the lock on `key` in `m` for `lease`,
/// writing `value` (Consul's lock semantics: taking a lock another lease
/// holds fails, taking it again changes only the value, each new holder
/// counts in the lock index; only the holder frees it); the value written.
pub(crate) fn lock(
    m: &mut OrdMap<Key, Value>,
    index: Index,
    key: &str,
    value: Bytes,
    lease: LeaseId,
    acquire: bool,
) -> Option<Value> {
    write(m, index, key, value, |old| {
        let mut meta = old
            .and_then(|v| v.meta.as_deref().cloned())
            .unwrap_or_default();
        match (acquire, meta.holder) {
            (true, Some(h)) if h != lease => return None,
            (true, Some(_)) => {}
            (true, None) => {
                meta.holder = Some(lease);
                meta.lock_index += 1;
            }
            (false, Some(h)) if h == lease => meta.holder = None,
            (false, _) => return None,
        }
        Some(meta.boxed())
    })
}

/// Writes `value` to `key` at `index` with the meta `f` makes from the
/// value there (or refuses, with `None`); the value written.
fn write(
    m: &mut OrdMap<Key, Value>,
    index: Index,
    key: &str,
    value: Bytes,
    f: impl FnOnce(Option<&Value>) -> Option<Option<Box<KeyMeta>>>,
) -> Option<Value> {
    // One walk down the tree for an existing key, two for a new one: with
    // a large store every level is a cache miss.
    if let Some(v) = m.get_mut(key) {
        v.meta = f(Some(v))?;
        v.data = value;
        v.modify_index = index;
        return Some(v.clone());
    }
    let meta = f(None)?;
    let v = Value {
        data: value,
        create_index: index,
        modify_index: index,
        meta,
    };
    m.insert(Key::from(key), v.clone());
    Some(v)
}

/// The leases of `key` in `m` (with `prefix`, of every key under it).
fn leases_under(m: &OrdMap<Key, Value>, key: &str, prefix: bool) -> Vec<LeaseId> {
    if !prefix {
        return m.get(key).and_then(Value::lease).into_iter().collect();
    }
    m.range(Key::from(key)..)
        .take_while(|(k, _)| k.starts_with(key))
        .filter_map(|(_, v)| v.lease())
        .collect()
}

/// Removes `key` from `m` (with `prefix`, every key under it); the keys
/// removed, in order.
pub(crate) fn remove(m: &mut OrdMap<Key, Value>, key: &str, prefix: bool) -> Vec<Key> {
    let doomed: Vec<Key> = if prefix {
        m.range(Key::from(key)..)
            .take_while(|(k, _)| k.starts_with(key))
            .map(|(k, _)| k.clone())
            .collect()
    } else {
        m.get(key).map(|_| Key::from(key)).into_iter().collect()
    };
    for k in &doomed {
        m.remove(k);
    }
    doomed
}

fn put_event(index: Index, ns: &str, key: &str, v: &Value) -> Event {
    Event {
        index,
        change: Change::Put,
        ns: Key::from(ns),
        key: Key::from(key),
        value: Some(v.data.clone()),
        create_index: v.create_index,
        encoded: Default::default(),
    }
}

fn gone_event(index: Index, ns: Key, key: Key) -> Event {
    Event {
        change: Change::Delete,
        ..expire_event(index, ns, key)
    }
}

fn expire_event(index: Index, ns: Key, key: Key) -> Event {
    Event {
        index,
        change: Change::Expire,
        ns,
        key,
        value: None,
        create_index: 0,
        encoded: Default::default(),
    }
}

/// The KV as the driver's state machine; clones share one state, so the
/// command port reads what the driver applies.
#[derive(Clone)]
pub struct KvStore {
    state: Arc<RwLock<KvState>>,
    /// The applied index, for whoever waits for a change.
    applied: Arc<tokio::sync::watch::Sender<Index>>,
    /// How many watch events this node keeps (a node's own setting: a
    /// restored snapshot's history is cut to it).
    keep_events: usize,
}

impl Default for KvStore {
    fn default() -> Self {
        KvStore::with_history(crate::history::DEFAULT_KEEP)
    }
}

impl KvStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that keeps the latest `events` changes for watchers.
    pub fn with_history(events: usize) -> Self {
        let state = KvState {
            history: History::new(events),
            ..KvState::default()
        };
        KvStore {
            state: Arc::new(RwLock::new(state)),
            applied: Arc::new(tokio::sync::watch::channel(0).0),
            keep_events: events,
        }
    }

    /// A receiver that sees every apply (its index) from now on.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Index> {
        self.applied.subscribe()
    }

    fn tell_waiters(&self, index: Index) {
        if self.applied.receiver_count() > 0 {
            self.applied.send_replace(index);
        }
    }

    /// Reads the current state. Hold the guard briefly: applying waits
    /// for it.
    pub fn read(&self) -> RwLockReadGuard<'_, KvState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }
}

impl StateMachine for KvStore {
    type Output = Output;
    /// A clone of the state: O(1) with persistent maps; writing it out
    /// happens off the protocol task.
    type Snapshot = KvState;

    fn apply(&mut self, index: Index, data: &Bytes) -> Output {
        let out = {
            let mut g = self.state.write().unwrap_or_else(|p| p.into_inner());
            g.apply(index, data)
        };
        self.tell_waiters(index);
        out
    }

    fn snapshot(&mut self) -> KvState {
        self.read().clone()
    }

    fn write_snapshot(view: KvState, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        crate::snapshot::write(&view, w)
    }

    fn read_snapshot(r: &mut dyn std::io::Read) -> std::io::Result<KvState> {
        crate::snapshot::read(r)
    }

    fn restore(&mut self, mut view: KvState) {
        view.deletes.floor = view.applied;
        view.history.set_keep(self.keep_events);
        let applied = view.applied;
        let old = {
            let mut g = self.state.write().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut *g, view)
        };
        self.tell_waiters(applied);
        // Freeing a large state takes a while: not on the protocol task.
        let _ = std::thread::Builder::new()
            .name("kv-free".into())
            .spawn(move || drop(old));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::encode;

    fn put(ns: &str, key: &str, v: &str, cas: Option<u64>) -> Op {
        Op::Put {
            ns: ns.into(),
            key: key.into(),
            value: Bytes::from(v.to_string()),
            cas,
            lease: None,
        }
    }

    fn apply(s: &mut KvState, index: Index, session: Option<(u64, u64)>, op: Op) -> Output {
        s.apply(index, &encode(&Request { session, op }))
    }

    #[test]
    fn changes_under_a_key_count_its_deletes() {
        let mut s = KvState::default();
        apply(&mut s, 1, None, put("a", "x/1", "1", None));
        apply(&mut s, 2, None, put("a", "x/2", "2", None));
        apply(&mut s, 3, None, put("b", "y", "3", None));
        assert_eq!(s.changed_at("a", "x/1", false), 1);
        assert_eq!(s.changed_at("a", "x/", true), 2);
        assert_eq!(s.changed_at("a", "nothing", false), 0);
        let del = |key: &str, prefix| Op::Delete {
            ns: "a".into(),
            key: key.into(),
            prefix,
            cas: None,
        };
        apply(&mut s, 4, None, del("x/1", false));
        // The deleted key changed at 4, and so (over-reporting) does the
        // rest of its namespace; other namespaces did not.
        assert_eq!(s.changed_at("a", "x/1", false), 4);
        assert_eq!(s.changed_at("a", "x/", true), 4);
        assert_eq!(s.changed_at("b", "y", false), 3);
        // Deleting nothing changes nothing.
        apply(&mut s, 5, None, del("gone", false));
        assert_eq!(s.changed_at("a", "x/", true), 4);
        apply(&mut s, 6, None, Op::DropNamespace { ns: "b".into() });
        assert_eq!(s.changed_at("b", "y", false), 6);
        // A replica restored from a snapshot cannot tell what was deleted
        // before it: everything changed at the snapshot, as far as it knows.
        let mut kv = KvStore::new();
        kv.restore(s.clone());
        assert_eq!(kv.read().changed_at("b", "y", false), 6);
        assert_eq!(kv.read().changed_at("a", "x/2", false), 6);
        assert_eq!(*kv.read(), s, "the marks are not replicated state");
    }

    fn changes(s: &KvState, from: Index) -> Vec<String> {
        let h = s.history().since(from).unwrap();
        h.map(|e| format!("{} {} {}/{}", e.index, e.change.name(), e.ns, e.key))
            .collect()
    }

    #[test]
    fn every_change_is_in_the_history_once() {
        let mut s = KvState::default();
        apply(&mut s, 1, None, put("a", "x/1", "1", None));
        apply(&mut s, 2, Some((5, 1)), put("a", "x/2", "2", None));
        // A retried write and a failed compare change nothing.
        apply(&mut s, 3, Some((5, 1)), put("a", "x/2", "2", None));
        apply(&mut s, 4, None, put("a", "x/1", "no", Some(99)));
        let del = |key: &str, prefix| Op::Delete {
            ns: "a".into(),
            key: key.into(),
            prefix,
            cas: None,
        };
        apply(&mut s, 5, None, del("x/", true));
        apply(&mut s, 6, None, del("x/1", false));
        apply(&mut s, 7, None, put("b", "k", "3", None));
        apply(&mut s, 8, None, Op::DropNamespace { ns: "b".into() });
        let ops = vec![
            crate::txn::TxnOp {
                ns: "c".into(),
                key: "t".into(),
                verb: crate::txn::Verb::Set(Bytes::from_static(b"4")),
            },
            crate::txn::TxnOp {
                ns: "c".into(),
                key: "t".into(),
                verb: crate::txn::Verb::Get,
            },
        ];
        apply(&mut s, 9, None, Op::Txn(ops.clone()));
        // A failed transaction records nothing.
        let mut failing = ops;
        failing[1].verb = crate::txn::Verb::CheckNotExists;
        apply(&mut s, 10, None, Op::Txn(failing));
        assert_eq!(
            changes(&s, 1),
            [
                "1 put a/x/1",
                "2 put a/x/2",
                "5 delete a/x/1",
                "5 delete a/x/2",
                "7 put b/k",
                "8 delete b/k",
                "9 put c/t"
            ]
        );
        let e = s.history().since(9).unwrap().next().unwrap();
        assert_eq!((e.value.as_deref(), e.create_index), (Some(&b"4"[..]), 9));
    }

    #[test]
    fn the_history_survives_a_snapshot_cut_to_the_node_s_own_bound() {
        let mut s = KvState::default();
        for i in 1..=5 {
            apply(&mut s, i, None, put("a", &format!("k{i}"), "v", None));
        }
        let mut buf = Vec::new();
        crate::snapshot::write(&s, &mut buf).unwrap();
        let back = crate::snapshot::read(&mut buf.as_slice()).unwrap();
        assert_eq!(back.history(), s.history());
        assert_eq!(changes(&back, 4), ["4 put a/k4", "5 put a/k5"]);
        let mut kv = KvStore::with_history(2);
        kv.restore(back);
        assert_eq!(kv.read().history().floor(), 4);
        assert_eq!(changes(&kv.read(), 4), ["4 put a/k4", "5 put a/k5"]);
        // Cut short, the history is refused whole.
        let at = buf.len() - 3;
        assert!(crate::snapshot::read(&mut &buf[..at]).is_err());
    }

    #[test]
    fn snapshots_round_trip_and_refuse_damage() {
        let mut s = KvState::default();
        apply(&mut s, 1, Some((7, 1)), put("a", "k", "1", None));
        apply(&mut s, 2, None, put("b", "x/y", "2", None));
        apply(&mut s, 3, None, put("a", "k2", "", None));
        let mut buf = Vec::new();
        crate::snapshot::write(&s, &mut buf).unwrap();
        let back = crate::snapshot::read(&mut buf.as_slice()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.applied(), 3);
        let sum = crate::snapshot::verify(&mut buf.as_slice()).unwrap();
        assert_eq!((sum.applied, sum.keys, sum.sessions), (3, 3, 1));
        // The session survives: a retry still answers from the cache.
        let mut back = back;
        assert_eq!(
            apply(&mut back, 4, Some((7, 1)), put("a", "k", "other", None)),
            Output::Done(true)
        );
        assert_eq!(back.get("a", "k").unwrap().data, "1");
        for cut in [0, 5, buf.len() / 2, buf.len() - 1] {
            assert!(
                crate::snapshot::read(&mut &buf[..cut]).is_err(),
                "truncated at {cut}"
            );
            assert!(crate::snapshot::verify(&mut &buf[..cut]).is_err());
        }
        assert!(crate::snapshot::read(&mut &b"garbage"[..]).is_err());
        assert!(crate::snapshot::verify(&mut &b"garbage"[..]).is_err());
    }

    #[test]
    fn namespaces_are_isolated() {
        let mut s = KvState::default();
        apply(&mut s, 1, None, put("a", "k", "1", None));
        apply(&mut s, 2, None, put("b", "k", "2", None));
        assert_eq!(s.get("a", "k").unwrap().data, "1");
        assert_eq!(s.get("b", "k").unwrap().data, "2");
        let out = apply(&mut s, 3, None, Op::DropNamespace { ns: "a".into() });
        assert_eq!(out, Output::Removed(1));
        assert!(s.get("a", "k").is_none());
        assert_eq!(s.get("b", "k").unwrap().data, "2");
    }

    #[test]
    fn compare_and_set_follows_modify_indexes() {
        let mut s = KvState::default();
        assert_eq!(
            apply(&mut s, 1, None, put("n", "k", "1", Some(0))),
            Output::Done(true)
        );
        assert_eq!(
            apply(&mut s, 2, None, put("n", "k", "2", Some(0))),
            Output::Done(false)
        );
        assert_eq!(
            apply(&mut s, 3, None, put("n", "k", "3", Some(1))),
            Output::Done(true)
        );
        let v = s.get("n", "k").unwrap();
        assert_eq!(
            (v.create_index, v.modify_index, v.data.as_ref()),
            (1, 3, &b"3"[..])
        );
        let del = |cas| Op::Delete {
            ns: "n".into(),
            key: "k".into(),
            prefix: false,
            cas: Some(cas),
        };
        assert_eq!(apply(&mut s, 4, None, del(1)), Output::Done(false));
        assert_eq!(apply(&mut s, 5, None, del(3)), Output::Removed(1));
    }

    #[test]
    fn a_retried_write_applies_once() {
        let mut s = KvState::default();
        apply(&mut s, 1, Some((9, 1)), put("n", "k", "first", None));
        apply(&mut s, 2, None, put("n", "k", "other", None));
        // The retry of (9, 1) answers as before and changes nothing.
        assert_eq!(
            apply(&mut s, 3, Some((9, 1)), put("n", "k", "first", None)),
            Output::Done(true)
        );
        assert_eq!(s.get("n", "k").unwrap().data, "other");
        apply(&mut s, 4, Some((9, 2)), put("n", "k", "second", None));
        assert_eq!(
            apply(&mut s, 5, Some((9, 1)), put("n", "k", "first", None)),
            Output::StaleSession { latest: 2 }
        );
        assert_eq!(s.get("n", "k").unwrap().data, "second");
    }

    #[test]
    fn prefix_scan_and_delete() {
        let mut s = KvState::default();
        for (i, k) in ["a/1", "a/2", "ab", "b"].iter().enumerate() {
            apply(&mut s, i as Index + 1, None, put("n", k, "v", None));
        }
        let keys: Vec<_> = s.scan("n", "a/").map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a/1", "a/2"]);
        let out = apply(
            &mut s,
            9,
            None,
            Op::Delete {
                ns: "n".into(),
                key: "a".into(),
                prefix: true,
                cas: None,
            },
        );
        assert_eq!(out, Output::Removed(3));
        assert_eq!(s.keys(), 1);
        assert_eq!(
            apply(&mut s, 10, None, Op::DropNamespace { ns: "zz".into() }),
            Output::Removed(0)
        );
        assert!(matches!(s.apply(11, b"opaque bytes"), Output::Opaque));
        assert_eq!(s.applied(), 11);
    }

    #[test]
    fn a_rebased_state_goes_on_in_its_new_log() {
        let mut s = KvState::default();
        for i in 1..=20 {
            apply(&mut s, i, None, put("a", "k", &i.to_string(), None));
        }
        let mut s = s.rebased_at(1);
        assert_eq!((s.applied(), s.history().floor()), (1, 2));
        assert!(s.history().is_empty());
        apply(&mut s, 2, None, put("a", "k", "new", None));
        let got: Vec<_> = s.history().since(2).unwrap().map(|e| e.index).collect();
        assert_eq!(got, [2]);
        assert_eq!(s.get("a", "k").unwrap().data, "new");
    }

    fn lock(key: &str, lease: LeaseId, acquire: bool) -> Op {
        Op::Lock {
            ns: "a".into(),
            key: key.into(),
            value: Bytes::from_static(b"me"),
            lease,
            acquire,
        }
    }

    #[test]
    fn a_lease_ending_deletes_its_keys_and_frees_its_locks_in_one_entry() {
        let mut s = KvState::default();
        let grant = Op::LeaseGrant {
            ns: "a".into(),
            ttl_ms: 2_000,
        };
        assert_eq!(
            apply(&mut s, 1, None, grant.clone()),
            Output::Granted {
                id: 1,
                ttl_ms: 2_000
            }
        );
        apply(&mut s, 2, None, grant);
        let leased = |key: &str, lease| Op::Put {
            ns: "a".into(),
            key: key.into(),
            value: Bytes::from_static(b"v"),
            cas: None,
            lease: Some(lease),
        };
        assert_eq!(apply(&mut s, 3, None, leased("x", 9)), Output::NoLease(9));
        assert!(
            s.get("a", "x").is_none(),
            "a put on no lease writes nothing"
        );
        apply(&mut s, 3, None, leased("x", 1));
        apply(&mut s, 4, None, leased("y", 1));
        // A plain put detaches a key from its lease (etcd's rule).
        apply(&mut s, 5, None, put("a", "y", "mine", None));
        assert_eq!(s.get("a", "y").unwrap().lease(), None);
        // Locks: the first taker wins; a second take by the holder is no
        // new acquisition; only the holder frees it.
        assert_eq!(
            apply(&mut s, 6, None, lock("l", 1, true)),
            Output::Done(true)
        );
        assert_eq!(
            apply(&mut s, 7, None, lock("l", 2, true)),
            Output::Done(false)
        );
        assert_eq!(
            apply(&mut s, 8, None, lock("l", 1, true)),
            Output::Done(true)
        );
        assert_eq!(
            apply(&mut s, 9, None, lock("l", 2, false)),
            Output::Done(false)
        );
        let l = s.get("a", "l").unwrap();
        assert_eq!(
            (l.holder(), l.lock_index(), l.modify_index),
            (Some(1), 1, 8)
        );
        let held: Vec<_> = s.lease_keys(1).into_iter().map(|(_, k, _)| k).collect();
        assert_eq!(held, ["l", "x"], "y left the lease with its plain put");
        // Lease 1 expires: x goes (an expire event), l's lock is freed (a
        // put event), y stays; in the one entry, in key order.
        let expire = Op::LeaseExpire { ids: vec![1, 77] };
        assert_eq!(apply(&mut s, 10, None, expire), Output::Removed(1));
        assert!(s.get("a", "x").is_none());
        assert_eq!(s.get("a", "y").unwrap().data, "mine");
        let l = s.get("a", "l").unwrap();
        assert_eq!((l.holder(), l.lock_index(), l.modify_index), (None, 1, 10));
        assert_eq!(
            changes(&s, 10),
            ["10 put a/l", "10 expire a/x"].map(String::from)
        );
        assert!(!s.leases().contains(1) && s.leases().contains(2));
        // The next holder counts as a new acquisition.
        assert_eq!(
            apply(&mut s, 11, None, lock("l", 2, true)),
            Output::Done(true)
        );
        assert_eq!(s.get("a", "l").unwrap().lock_index(), 2);
        let revoke = |id| Op::LeaseRevoke { id };
        assert_eq!(apply(&mut s, 12, None, revoke(2)), Output::Removed(0));
        assert_eq!(apply(&mut s, 13, None, revoke(2)), Output::NoLease(2));
        assert_eq!(s.get("a", "l").unwrap().holder(), None);
        // Leases and key meta survive a snapshot.
        let ns = "b".to_string();
        apply(&mut s, 14, None, Op::LeaseGrant { ns, ttl_ms: 5_000 });
        apply(&mut s, 15, None, leased("z", 14));
        apply(&mut s, 16, None, lock("l", 14, true));
        let mut bytes = Vec::new();
        crate::snapshot::write(&s, &mut bytes).unwrap();
        let back = crate::snapshot::read(&mut bytes.as_slice()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.lease_keys(14).len(), 2);
    }

    #[test]
    fn a_rebased_backups_leases_keep_their_ids_and_new_ones_come_after() {
        let mut s = KvState::default();
        let grant = || Op::LeaseGrant {
            ns: "a".into(),
            ttl_ms: 2_000,
        };
        apply(&mut s, 10, None, grant());
        apply(&mut s, 11, None, lock("x", 10, true));
        // A backup restored into a new cluster whose log starts again.
        let mut s = s.rebased_at(1);
        let out = apply(&mut s, 2, None, grant());
        assert_eq!(
            out,
            Output::Granted {
                id: 11,
                ttl_ms: 2_000
            }
        );
        assert_eq!(s.get("a", "x").unwrap().holder(), Some(10));
        assert!(s.lease_keys(11).is_empty(), "lease 10's lock is not 11's");
        let mut bytes = Vec::new();
        crate::snapshot::write(&s, &mut bytes).unwrap();
        let back = crate::snapshot::read(&mut bytes.as_slice()).unwrap();
        assert_eq!(back.leases().last_id(), 11);
        assert_eq!(back, s);
    }

    mod replicas {
        use super::*;
        use crate::history::Change;
        use proptest::prelude::*;

        fn op() -> impl Strategy<Value = Op> {
            let ns = prop_oneof![Just("a"), Just("b")];
            let key = prop_oneof![Just("x"), Just("x/1"), Just("x/2"), Just("y")];
            prop_oneof![
                4 => (ns.clone(), key.clone(), any::<u8>(), proptest::option::of(0u64..4))
                    .prop_map(|(ns, key, v, cas)| put(ns, key, &v.to_string(), cas)),
                2 => (ns.clone(), key.clone(), any::<bool>()).prop_map(|(ns, key, prefix)| Op::Delete {
                    ns: ns.into(),
                    key: key.into(),
                    prefix,
                    cas: None,
                }),
                1 => ns.clone().prop_map(|ns| Op::DropNamespace { ns: ns.into() }),
                // Lease ids are grant indexes: 1..8 names some that exist.
                2 => (ns.clone(), 2_000u64..3_000)
                    .prop_map(|(ns, ttl_ms)| Op::LeaseGrant { ns: ns.into(), ttl_ms }),
                3 => (ns.clone(), key.clone(), 1u64..8).prop_map(|(ns, key, l)| Op::Put {
                    ns: ns.into(),
                    key: key.into(),
                    value: Bytes::from_static(b"leased"),
                    cas: None,
                    lease: Some(l),
                }),
                3 => (ns.clone(), key.clone(), 1u64..8, any::<bool>()).prop_map(|(ns, key, lease, acquire)| {
                    Op::Lock { ns: ns.into(), key: key.into(), value: Bytes::new(), lease, acquire }
                }),
                1 => (1u64..8).prop_map(|id| Op::LeaseRevoke { id }),
                3 => (ns, key, 0u8..4, 0u8..3, 0u8..3).prop_map(|(ns, key, e, w, t)| {
                    use crate::strings::{Edit, StrWrite, Ttl, When};
                    let edit = match e {
                        0 => Edit::Set(Bytes::from_static(b"7")),
                        1 => Edit::IncrBy(2),
                        2 => Edit::Append(Bytes::from_static(b"1")),
                        _ => Edit::Keep,
                    };
                    let when = [When::Always, When::Missing, When::Present][w as usize];
                    let ttl = [Ttl::Clear, Ttl::Keep, Ttl::For(1_500)][t as usize];
                    Op::Str(StrWrite { ns: ns.into(), key: key.into(), edit, when, ttl })
                }),
                1 => proptest::collection::vec(1u64..8, 0..3)
                    .prop_map(|ids| Op::LeaseExpire { ids }),
            ]
        }

        /// What a replica says about its leases: each one's TTL and the
        /// keys it holds.
        type LeaseView = Vec<(LeaseId, u64, Vec<(Key, Key)>)>;

        fn lease_view(s: &KvState) -> LeaseView {
            s.leases()
                .iter()
                .map(|(id, l)| {
                    let keys = s
                        .lease_keys(id)
                        .into_iter()
                        .map(|(n, k, _)| (n, k))
                        .collect();
                    (id, l.ttl_ms, keys)
                })
                .collect()
        }

        /// Every key's lease and lock holder exists, and the lease names
        /// it; a key's own lease holds no other key.
        fn leases_hold_their_keys(s: &KvState) -> bool {
            let own_alone = s
                .leases()
                .iter()
                .all(|(id, l)| !l.own || s.lease_keys(id).len() <= 1);
            own_alone
                && s.namespaces.iter().all(|(ns, m)| {
                    m.iter().all(|(k, v)| {
                        [v.lease(), v.holder()].into_iter().flatten().all(|id| {
                            let held = s.lease_keys(id);
                            held.iter().any(|(n, key, _)| n == ns.as_str() && key == k)
                        })
                    })
                })
        }

        fn run(kv: &mut KvStore, index: Index, op: &Op) {
            let req = Request {
                session: None,
                op: op.clone(),
            };
            kv.apply(index, &encode(&req));
        }

        proptest! {
            /// Two replicas that apply the same entries hold the same state,
            /// history included, when one of them restarts from a snapshot
            /// taken anywhere; and the history holds exactly the changes of
            /// its indexes from its floor on, within its bound.
            #[test]
            fn a_snapshot_anywhere_leaves_replicas_with_one_history(
                ops in proptest::collection::vec(op(), 1..60),
                cut in 0usize..60,
                keep in 1usize..12,
            ) {
                let (mut a, mut b) = (KvStore::with_history(keep), KvStore::with_history(keep));
                for (i, op) in ops.iter().enumerate() {
                    let index = i as Index + 1;
                    run(&mut a, index, op);
                    run(&mut b, index, op);
                    if i == cut {
                        let mut bytes = Vec::new();
                        crate::snapshot::write(&b.read(), &mut bytes).unwrap();
                        let restored = crate::snapshot::read(&mut bytes.as_slice()).unwrap();
                        b = KvStore::with_history(keep);
                        b.restore(restored);
                    }
                }
                let (sa, sb) = (a.read(), b.read());
                prop_assert_eq!(&*sa, &*sb);
                prop_assert_eq!(lease_view(&sa), lease_view(&sb));
                prop_assert!(leases_hold_their_keys(&sa) && leases_hold_their_keys(&sb));
                prop_assert_eq!(sa.history().floor(), sb.history().floor());
                let ea: Vec<_> = sa.history().iter().cloned().collect();
                let eb: Vec<_> = sb.history().iter().cloned().collect();
                prop_assert_eq!(&ea, &eb);
                prop_assert!(ea.len() <= keep);
                prop_assert!(ea.windows(2).all(|w| w[0].index <= w[1].index));
                prop_assert!(ea.iter().all(|e| e.index >= sa.history().floor()));
                // Every index from the floor on that changed a key has its
                // puts there (a failed compare changes nothing).
                for (i, op) in ops.iter().enumerate() {
                    let index = i as Index + 1;
                    if index < sa.history().floor() {
                        continue;
                    }
                    let here: Vec<_> = ea.iter().filter(|e| e.index == index).collect();
                    if let Op::Put { key, cas: None, lease: None, .. } = op {
                        prop_assert_eq!(here.len(), 1);
                        prop_assert_eq!(here[0].change, Change::Put);
                        prop_assert_eq!(here[0].key.as_str(), key.as_str());
                    }
                }
            }
        }
    }
}
