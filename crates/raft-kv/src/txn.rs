//! Transactions: a list of KV operations applied in one log entry, all or
//! none (Consul's `/v1/txn`, with a namespace per operation). Applying one
//! works on an O(1) copy of the namespaces; if any operation fails, the
//! copy is dropped and the state is as before, and every failing
//! operation is named.

use crate::lease::{LeaseId, Leases};
use crate::store::{self, Key, KvState, Value};
use bytes::Bytes;
use imbl::OrdMap;
use raft_core::Index;
use serde::{Deserialize, Serialize};

/// The most operations one transaction may hold (Consul's limit).
pub const MAX_OPS: usize = 128;

/// One operation of a transaction, on `key` in namespace `ns`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnOp {
    /// The namespace.
    pub ns: String,
    /// The key (or prefix, for the tree verbs).
    pub key: String,
    /// What to do with it.
    pub verb: Verb,
}

/// What an operation does; the names are Consul's KV verbs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verb {
    /// `set`: write the value.
    Set(Bytes),
    /// `cas`: write the value if the key's modify index is `index` (0:
    /// if the key does not exist); fails otherwise.
    Cas {
        /// The new value.
        value: Bytes,
        /// The modify index the key must have.
        index: Index,
    },
    /// `get`: the key and its value; fails if it does not exist.
    Get,
    /// `get-tree`: every key under the prefix, with values.
    GetTree,
    /// `check-index`: fails unless the key's modify index is `index`.
    CheckIndex(Index),
    /// `check-not-exists`: fails if the key exists.
    CheckNotExists,
    /// `delete`: delete the key if it exists.
    Delete,
    /// `delete-tree`: delete every key under the prefix.
    DeleteTree,
    /// `delete-cas`: delete the key if its modify index is `index`; fails
    /// otherwise.
    DeleteCas(Index),
    /// `lock`: take the key's lock for `lease`, writing the value; fails
    /// if another lease holds it (`store::lock`).
    Lock {
        /// The value written with the lock.
        value: Bytes,
        /// The lease to hold it.
        lease: LeaseId,
    },
    /// `unlock`: free the key's lock held by `lease`, writing the value;
    /// fails if `lease` does not hold it.
    Unlock {
        /// The value written as it is freed.
        value: Bytes,
        /// The lease that holds it.
        lease: LeaseId,
    },
    /// `check-session`: fails unless `lease` holds the key's lock.
    CheckSession(LeaseId),
}

/// A key an operation wrote, read or checked, as it stood after that
/// operation (`value` only for reads).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnEntry {
    /// Which operation (from 0).
    pub op: u32,
    /// The namespace.
    pub ns: String,
    /// The key.
    pub key: String,
    /// Its value (reads only).
    pub value: Option<Bytes>,
    /// When it was created.
    pub create_index: Index,
    /// When it last changed.
    pub modify_index: Index,
    /// Missing in outputs kept from before locks.
    #[serde(default)]
    pub lock_index: u64,
}

/// Why an operation failed (Consul's `OpIndex` and `What`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnError {
    /// Which operation (from 0).
    pub op: u32,
    /// Why it failed.
    pub what: String,
}

/// The namespaces being changed, and the changes made to them.
struct Scratch {
    namespaces: OrdMap<String, OrdMap<Key, Value>>,
    /// The leases (not changed by a transaction).
    leases: Leases,
    changes: Vec<Changed>,
}

/// A change a transaction made, to record once it succeeds.
enum Changed {
    Put(String, Key, Value),
    Gone(String, Vec<Key>),
}

/// Applies `ops` at `index`: the entries they touched, or every error.
pub(crate) fn apply(
    st: &mut KvState,
    index: Index,
    ops: &[TxnOp],
) -> Result<Vec<TxnEntry>, Vec<TxnError>> {
    let mut s = Scratch {
        namespaces: st.namespaces.clone(),
        leases: st.leases.clone(),
        changes: Vec::new(),
    };
    let (mut entries, mut errors) = (Vec::new(), Vec::new());
    for (k, op) in ops.iter().enumerate() {
        let k = k as u32;
        if let Err(what) = s.step(index, k, op, &mut entries) {
            errors.push(TxnError { op: k, what });
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    st.namespaces = s.namespaces;
    for c in s.changes {
        match c {
            Changed::Put(ns, key, v) => st.record_put(index, &ns, &key, &v),
            Changed::Gone(ns, keys) => st.record_gone(index, &ns, keys),
        }
    }
    Ok(entries)
}

fn entry(op: u32, ns: &str, key: &str, v: &Value, with_value: bool) -> TxnEntry {
    TxnEntry {
        op,
        ns: ns.to_string(),
        key: key.to_string(),
        value: with_value.then(|| v.data.clone()),
        create_index: v.create_index,
        modify_index: v.modify_index,
        lock_index: v.lock_index(),
    }
}

impl Scratch {
    fn step(
        &mut self,
        index: Index,
        k: u32,
        op: &TxnOp,
        out: &mut Vec<TxnEntry>,
    ) -> Result<(), String> {
        let (ns, key) = (op.ns.as_str(), op.key.as_str());
        let current = self
            .namespaces
            .get(ns)
            .and_then(|m| m.get(key))
            .map(|v| v.modify_index);
        match &op.verb {
            Verb::Set(value) => out.push(self.put(index, k, op, value.clone())),
            Verb::Cas { value, index: want } => {
                if current.unwrap_or(0) != *want {
                    return Err(mismatch(ns, key, *want, current));
                }
                out.push(self.put(index, k, op, value.clone()));
            }
            Verb::Get => {
                let v = self.get(ns, key).ok_or_else(|| missing(ns, key))?;
                out.push(entry(k, ns, key, v, true));
            }
            Verb::GetTree => {
                if let Some(m) = self.namespaces.get(ns) {
                    let under = m
                        .range(Key::from(key)..)
                        .take_while(|(x, _)| x.starts_with(key));
                    out.extend(under.map(|(x, v)| entry(k, ns, x, v, true)));
                }
            }
            Verb::CheckIndex(want) => {
                if current != Some(*want) {
                    return Err(mismatch(ns, key, *want, current));
                }
                let v = self.get(ns, key).expect("checked: it exists");
                out.push(entry(k, ns, key, v, false));
            }
            Verb::CheckNotExists => {
                if let Some(at) = current {
                    return Err(format!("key {key:?} in {ns:?} exists (modify index {at})"));
                }
            }
            Verb::Delete => self.delete(ns, key, false),
            Verb::DeleteTree => self.delete(ns, key, true),
            Verb::DeleteCas(want) => {
                if current.unwrap_or(0) != *want {
                    return Err(mismatch(ns, key, *want, current));
                }
                self.delete(ns, key, false);
            }
            Verb::Lock { value, lease } => out.push(self.lock(index, k, op, value, *lease, true)?),
            Verb::Unlock { value, lease } => {
                out.push(self.lock(index, k, op, value, *lease, false)?);
            }
            Verb::CheckSession(lease) => {
                let v = self.get(ns, key).ok_or_else(|| missing(ns, key))?;
                if v.holder() != Some(*lease) {
                    return Err(format!(
                        "the lock on {key:?} in {ns:?} is not held by lease {lease}"
                    ));
                }
                out.push(entry(k, ns, key, v, false));
            }
        }
        Ok(())
    }

    fn lock(
        &mut self,
        index: Index,
        k: u32,
        op: &TxnOp,
        value: &Bytes,
        lease: LeaseId,
        acquire: bool,
    ) -> Result<TxnEntry, String> {
        if !self.leases.attachable(lease) {
            return Err(format!("no lease {lease}"));
        }
        let m = self.namespaces.entry(op.ns.clone()).or_default();
        let Some(v) = store::lock(m, index, &op.key, value.clone(), lease, acquire) else {
            let (ns, key) = (&op.ns, &op.key);
            return Err(if acquire {
                format!("the lock on {key:?} in {ns:?} is held by another lease")
            } else {
                format!("the lock on {key:?} in {ns:?} is not held by lease {lease}")
            });
        };
        let e = entry(k, &op.ns, &op.key, &v, false);
        self.changes
            .push(Changed::Put(op.ns.clone(), Key::from(op.key.as_str()), v));
        Ok(e)
    }

    fn get(&self, ns: &str, key: &str) -> Option<&Value> {
        self.namespaces.get(ns).and_then(|m| m.get(key))
    }

    fn put(&mut self, index: Index, k: u32, op: &TxnOp, data: Bytes) -> TxnEntry {
        let m = self.namespaces.entry(op.ns.clone()).or_default();
        let v = store::put(m, index, &op.key, data, None, None).expect("a put without cas applies");
        let e = entry(k, &op.ns, &op.key, &v, false);
        self.changes
            .push(Changed::Put(op.ns.clone(), Key::from(op.key.as_str()), v));
        e
    }

    fn delete(&mut self, ns: &str, key: &str, prefix: bool) {
        let Some(m) = self.namespaces.get_mut(ns) else {
            return;
        };
        let gone = store::remove(m, key, prefix);
        if !gone.is_empty() {
            self.changes.push(Changed::Gone(ns.to_string(), gone));
        }
    }
}

fn missing(ns: &str, key: &str) -> String {
    format!("key {key:?} in {ns:?} does not exist")
}

fn mismatch(ns: &str, key: &str, want: Index, current: Option<Index>) -> String {
    match current {
        Some(at) => format!("key {key:?} in {ns:?} has modify index {at}, not {want}"),
        None => format!("key {key:?} in {ns:?} does not exist (wanted modify index {want})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Op, Output, Request, encode};

    fn op(ns: &str, key: &str, verb: Verb) -> TxnOp {
        TxnOp {
            ns: ns.into(),
            key: key.into(),
            verb,
        }
    }

    fn set(key: &str, v: &str) -> TxnOp {
        op("a", key, Verb::Set(Bytes::from(v.to_string())))
    }

    fn txn(st: &mut KvState, index: Index, ops: Vec<TxnOp>) -> Output {
        st.apply(
            index,
            &encode(&Request {
                session: None,
                op: Op::Txn(ops),
            }),
        )
    }

    fn value(st: &KvState, key: &str) -> Option<(Bytes, Index)> {
        st.get("a", key).map(|v| (v.data.clone(), v.modify_index))
    }

    #[test]
    fn every_operation_applies_at_the_entry_s_index() {
        let mut st = KvState::default();
        let out = txn(
            &mut st,
            5,
            vec![set("x", "1"), set("y", "2"), op("a", "x", Verb::Get)],
        );
        let Output::Txn(Ok(entries)) = out else {
            panic!("{out:?}")
        };
        assert_eq!(entries.len(), 3);
        assert!(
            entries
                .iter()
                .all(|e| e.modify_index == 5 && e.create_index == 5)
        );
        assert_eq!(entries[2].value.as_deref(), Some(&b"1"[..]));
        assert_eq!(entries[0].value, None, "writes answer without the value");
        assert_eq!(value(&st, "y"), Some((Bytes::from("2"), 5)));
        assert_eq!(st.applied(), 5);
    }

    #[test]
    fn one_failing_operation_changes_nothing_and_every_failure_is_named() {
        let mut st = KvState::default();
        txn(&mut st, 1, vec![set("x", "1"), set("gone", "g")]);
        let before = st.clone();
        let out = txn(
            &mut st,
            2,
            vec![
                set("x", "2"),
                op("a", "gone", Verb::Delete),
                op("a", "x", Verb::CheckIndex(7)),
                op(
                    "a",
                    "new",
                    Verb::Cas {
                        value: Bytes::from("n"),
                        index: 0,
                    },
                ),
                op("a", "missing", Verb::Get),
            ],
        );
        let Output::Txn(Err(errors)) = out else {
            panic!("{out:?}")
        };
        let failed: Vec<u32> = errors.iter().map(|e| e.op).collect();
        assert_eq!(failed, [2, 4], "{errors:?}");
        assert!(errors[0].what.contains("modify index 2"), "{errors:?}");
        assert_eq!(st.namespaces, before.namespaces, "nothing changed");
        assert_eq!(
            st.changed_at("a", "gone", false),
            1,
            "no delete was recorded"
        );
    }

    #[test]
    fn checks_trees_and_compare_and_delete() {
        let mut st = KvState::default();
        txn(
            &mut st,
            1,
            vec![set("t/1", "1"), set("t/2", "2"), set("u", "3")],
        );
        let out = txn(
            &mut st,
            2,
            vec![
                op("a", "t/", Verb::GetTree),
                op("a", "u", Verb::CheckIndex(1)),
                op("a", "v", Verb::CheckNotExists),
                op("a", "u", Verb::DeleteCas(1)),
                op("a", "t/", Verb::DeleteTree),
            ],
        );
        let Output::Txn(Ok(entries)) = out else {
            panic!("{out:?}")
        };
        let keys: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["t/1", "t/2", "u"]);
        assert_eq!(st.keys(), 0);
        assert_eq!(
            st.changed_at("a", "t/", true),
            2,
            "blocking queries see the deletes"
        );
    }

    #[test]
    fn a_retried_transaction_gets_its_first_answer_and_applies_once() {
        let mut st = KvState::default();
        let req = Request {
            session: Some((4, 1)),
            op: Op::Txn(vec![op(
                "a",
                "n",
                Verb::Cas {
                    value: Bytes::from("1"),
                    index: 0,
                },
            )]),
        };
        let first = st.apply(1, &encode(&req));
        assert!(matches!(first, Output::Txn(Ok(_))), "{first:?}");
        assert_eq!(
            st.apply(2, &encode(&req)),
            first,
            "the retry answers as the first"
        );
        assert_eq!(value(&st, "n"), Some((Bytes::from("1"), 1)));
        // And the answer survives a snapshot, for a retry after a restore.
        let mut snap = Vec::new();
        crate::snapshot::write(&st, &mut snap).unwrap();
        let mut back = crate::snapshot::read(&mut &snap[..]).unwrap();
        assert_eq!(back.apply(3, &encode(&req)), first);
    }
}
