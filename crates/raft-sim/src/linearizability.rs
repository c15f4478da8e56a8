//! A linearizability checker for a history of register operations (put,
//! get, compare-and-set; Wing & Gong's search with Lowe's memoization, as
//! in Porcupine), run per key since keys are independent registers; and
//! the same search over any model (`check_model`), for operations that
//! span keys (transactions).

use std::collections::{BTreeMap, HashSet};
use std::hash::Hash;

/// Key of a register.
pub type Key = u8;
/// Values are unique per write (the writing operation's id).
pub type Value = u64;

/// What an operation on one register did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// Wrote the value.
    Put(Value),
    /// A read and what it returned.
    Get(Option<Value>),
    /// Writes `new` if the register holds `expect` (`None`: if it is
    /// empty); `swapped` says whether it did (meaningless when the outcome
    /// is unknown: then it took effect, if its condition held, or never).
    Cas {
        /// The value it required (`None`: empty).
        expect: Option<Value>,
        /// The value it wrote.
        new: Value,
        /// Whether it swapped.
        swapped: bool,
    },
}

/// One client operation of a history.
#[derive(Clone, Debug)]
pub struct Op {
    /// The client that made it.
    pub client: usize,
    /// The register (key) it was on.
    pub key: Key,
    /// What it did.
    pub kind: OpKind,
    /// Position in the simulation's global event order when invoked.
    pub call: u64,
    /// When the response arrived; `None` when the outcome is unknown (the
    /// client gave up or the node crashed): such an op may have taken
    /// effect at any point after its call, or never.
    pub ret: Option<u64>,
}

/// How many search states one key's check may visit before giving up.
const MAX_STATES: usize = 200_000;

/// What the check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Some order of the operations explains every answer.
    Linearizable,
    /// No order does: a violation.
    NotLinearizable,
    /// The search ran out of budget: neither proven nor refuted.
    Unknown,
}

/// Checks every key's history. Returns a key whose history is not
/// linearizable (or, failing that, the first whose search ran out of
/// budget), with the verdict and its operations.
pub fn check(history: &[Op]) -> Result<(), (Key, Verdict, Vec<Op>)> {
    let mut by_key: BTreeMap<Key, Vec<Op>> = BTreeMap::new();
    // Values some completed operation saw: a read, or a swap's compare.
    let observed: HashSet<Value> = history
        .iter()
        .filter(|o| o.ret.is_some())
        .filter_map(|o| match o.kind {
            OpKind::Get(Some(v)) => Some(v),
            OpKind::Cas {
                expect: Some(v),
                swapped: true,
                ..
            } => Some(v),
            _ => None,
        })
        .collect();
    // A failed compare sees only that the value differs, which any write
    // could explain: on such a key nothing may be dropped.
    let failed_compare: HashSet<Key> = history
        .iter()
        .filter(|o| o.ret.is_some() && matches!(o.kind, OpKind::Cas { swapped: false, .. }))
        .map(|o| o.key)
        .collect();
    for op in history {
        // A write of unknown outcome that nothing saw can be taken to have
        // never happened: values are unique, so leaving it out never makes
        // a read harder to place. Dropping these keeps the search small.
        let written = match op.kind {
            OpKind::Put(v) | OpKind::Cas { new: v, .. } => Some(v),
            OpKind::Get(_) => None,
        };
        let unseen = written.is_some_and(|v| !observed.contains(&v));
        if op.ret.is_none() && unseen && !failed_compare.contains(&op.key) {
            continue;
        }
        by_key.entry(op.key).or_default().push(op.clone());
    }
    // Every key is checked: a key whose search ran out of budget does not
    // hide another that is not linearizable.
    let mut unknown = None;
    for (key, ops) in by_key {
        match check_register(&ops) {
            Verdict::Linearizable => {}
            Verdict::NotLinearizable => return Err((key, Verdict::NotLinearizable, ops)),
            Verdict::Unknown => {
                unknown.get_or_insert((key, Verdict::Unknown, ops));
            }
        }
    }
    unknown.map_or(Ok(()), Err)
}

/// Depth-first search for an order of the operations consistent with real
/// time and with a register's semantics. Lost writes (no `ret`) may be left
/// out; every completed operation must be placed.
pub fn check_register(ops: &[Op]) -> Verdict {
    let timed: Vec<Timed<OpKind>> = ops
        .iter()
        .map(|o| Timed {
            op: o.kind.clone(),
            call: o.call,
            ret: o.ret,
        })
        .collect();
    check_model(None::<Value>, &timed, |&value, kind, known| match *kind {
        OpKind::Put(v) => Some(Some(v)),
        OpKind::Get(r) if r == value => Some(value),
        OpKind::Get(_) => None,
        // A swap of unknown outcome is placed only as one that swapped:
        // one that did not changed nothing, as if never.
        OpKind::Cas {
            expect,
            new,
            swapped,
        } if expect == value && (swapped || !known) => Some(Some(new)),
        OpKind::Cas {
            expect,
            swapped: false,
            ..
        } if known && expect != value => Some(value),
        OpKind::Cas { .. } => None,
    })
}

/// An operation of a history for `check_model`: invoked at `call`, answered
/// at `ret` (`None`: the outcome is unknown, so it took effect at some
/// point after `call`, or never).
#[derive(Clone, Debug)]
pub struct Timed<O> {
    /// The operation.
    pub op: O,
    /// When it was invoked (global event order).
    pub call: u64,
    /// When it was answered.
    pub ret: Option<u64>,
}

/// Searches for an order of `ops` consistent with real time in which each
/// one, applied to the state the ones before it left (from `init`), is
/// allowed: `step(state, op, known)` is the state after `op` if `op` can
/// take effect in `state` (`known`: its answer arrived, so what it
/// answered must hold). Operations of unknown outcome may be left out;
/// every answered one must be placed.
pub fn check_model<S: Clone + Eq + Hash, O>(
    init: S,
    ops: &[Timed<O>],
    step: impl Fn(&S, &O, bool) -> Option<S>,
) -> Verdict {
    let n = ops.len();
    let words = n.div_ceil(64).max(1);
    let must: usize = ops.iter().filter(|o| o.ret.is_some()).count();
    let mut seen: HashSet<(Vec<u64>, S)> = HashSet::new();
    // Explicit stack: (linearized set, model state, placed completed ops).
    let mut stack = vec![(vec![0u64; words], init, 0usize)];
    while let Some((done, value, placed)) = stack.pop() {
        if placed == must {
            return Verdict::Linearizable;
        }
        if seen.len() > MAX_STATES {
            return Verdict::Unknown;
        }
        // An op can go next only if it was called before every pending
        // completed op returned.
        let min_ret = (0..n)
            .filter(|&i| done[i / 64] & (1 << (i % 64)) == 0)
            .filter_map(|i| ops[i].ret)
            .min()
            .unwrap_or(u64::MAX);
        for i in 0..n {
            if done[i / 64] & (1 << (i % 64)) != 0 || ops[i].call > min_ret {
                continue;
            }
            let known = ops[i].ret.is_some();
            let Some(next_value) = step(&value, &ops[i].op, known) else {
                continue;
            };
            let mut next = done.clone();
            next[i / 64] |= 1 << (i % 64);
            if seen.insert((next.clone(), next_value.clone())) {
                let placed = placed + usize::from(ops[i].ret.is_some());
                stack.push((next, next_value, placed));
            }
        }
    }
    Verdict::NotLinearizable
}

/// An operation on a bank of accounts (transactions over several keys).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BankOp {
    /// Balances read together, atomically: (account, balance).
    Read(Vec<(usize, i64)>),
    /// Moves `amount` from `from` to `to` if their balances are still
    /// `seen` (what the client read before: a compare on each).
    Transfer {
        /// The account debited.
        from: usize,
        /// The account credited.
        to: usize,
        /// Their balances as the client read them.
        seen: (i64, i64),
        /// How much.
        amount: i64,
    },
}

/// Whether a bank history is linearizable, from balances `start`. Give
/// only transfers that applied (answered) or whose outcome is unknown: a
/// refused one changed nothing, and its refusal (another write came
/// between) is not checked, since balances alone cannot tell that.
pub fn check_bank(start: Vec<i64>, ops: &[Timed<BankOp>]) -> Verdict {
    check_model(start, ops, |bal, op, _known| match op {
        BankOp::Read(seen) => seen.iter().all(|&(a, b)| bal[a] == b).then(|| bal.clone()),
        &BankOp::Transfer {
            from,
            to,
            seen,
            amount,
        } => {
            if (bal[from], bal[to]) != seen {
                return None;
            }
            let mut next = bal.clone();
            next[from] -= amount;
            next[to] += amount;
            Some(next)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed(op: BankOp, call: u64, ret: Option<u64>) -> Timed<BankOp> {
        Timed { op, call, ret }
    }

    fn transfer(seen: (i64, i64), amount: i64) -> BankOp {
        BankOp::Transfer {
            from: 0,
            to: 1,
            seen,
            amount,
        }
    }

    #[test]
    fn a_bank_history_is_checked_across_accounts() {
        let read = |a, b| BankOp::Read(vec![(0, a), (1, b)]);
        // A transfer, then a read of its result; a lost one never seen.
        let ok = [
            timed(transfer((10, 0), 4), 0, Some(2)),
            timed(read(6, 4), 3, Some(4)),
            timed(transfer((6, 4), 1), 5, None),
            timed(read(6, 4), 6, Some(7)),
        ];
        assert_eq!(check_bank(vec![10, 0], &ok), Verdict::Linearizable);
        // A read that saw the debit without the credit: not atomic.
        let torn = [
            timed(transfer((10, 0), 4), 0, Some(5)),
            timed(read(6, 0), 1, Some(3)),
        ];
        assert_eq!(check_bank(vec![10, 0], &torn), Verdict::NotLinearizable);
        // A lost update: two transfers from the same balances both applied.
        let lost = [
            timed(transfer((10, 0), 4), 0, Some(2)),
            timed(transfer((10, 0), 3), 0, Some(2)),
        ];
        assert_eq!(check_bank(vec![10, 0], &lost), Verdict::NotLinearizable);
        // A stale read, after a transfer returned.
        let stale = [
            timed(transfer((10, 0), 4), 0, Some(1)),
            timed(read(10, 0), 2, Some(3)),
        ];
        assert_eq!(check_bank(vec![10, 0], &stale), Verdict::NotLinearizable);
    }

    fn op(kind: OpKind, call: u64, ret: Option<u64>) -> Op {
        Op {
            client: 0,
            key: 1,
            kind,
            call,
            ret,
        }
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let h = [
            op(OpKind::Put(1), 0, Some(1)),
            op(OpKind::Get(Some(1)), 2, Some(3)),
            op(OpKind::Put(2), 4, Some(5)),
            op(OpKind::Get(Some(2)), 6, Some(7)),
        ];
        assert_eq!(check_register(&h), Verdict::Linearizable);
    }

    #[test]
    fn stale_read_is_caught() {
        let h = [
            op(OpKind::Put(1), 0, Some(1)),
            op(OpKind::Put(2), 2, Some(3)),
            op(OpKind::Get(Some(1)), 4, Some(5)),
        ];
        assert_eq!(check_register(&h), Verdict::NotLinearizable);
    }

    #[test]
    fn concurrent_ops_may_reorder() {
        let h = [
            op(OpKind::Put(1), 0, Some(10)),
            op(OpKind::Put(2), 1, Some(9)),
            op(OpKind::Get(Some(1)), 11, Some(12)),
        ];
        assert_eq!(check_register(&h), Verdict::Linearizable);
    }

    #[test]
    fn lost_write_may_or_may_not_apply() {
        let lost = op(OpKind::Put(7), 0, None);
        let seen = [lost.clone(), op(OpKind::Get(Some(7)), 5, Some(6))];
        assert_eq!(check_register(&seen), Verdict::Linearizable);
        let unseen = [lost.clone(), op(OpKind::Get(None), 5, Some(6))];
        assert_eq!(check_register(&unseen), Verdict::Linearizable);
        // but not un-apply once seen
        let h = [
            lost,
            op(OpKind::Get(Some(7)), 5, Some(6)),
            op(OpKind::Get(None), 7, Some(8)),
        ];
        assert_eq!(check_register(&h), Verdict::NotLinearizable);
    }

    fn cas(expect: Option<Value>, new: Value, swapped: bool) -> OpKind {
        OpKind::Cas {
            expect,
            new,
            swapped,
        }
    }

    #[test]
    fn swaps_see_the_value_they_compare() {
        let h = [
            op(cas(None, 1, true), 0, Some(1)),
            op(cas(Some(1), 2, true), 2, Some(3)),
            op(cas(Some(1), 3, false), 4, Some(5)),
            op(OpKind::Get(Some(2)), 6, Some(7)),
        ];
        assert_eq!(check_register(&h), Verdict::Linearizable);
        // Two swaps from the same value cannot both succeed.
        let h = [
            op(OpKind::Put(1), 0, Some(1)),
            op(cas(Some(1), 2, true), 2, Some(3)),
            op(cas(Some(1), 3, true), 4, Some(5)),
        ];
        assert_eq!(check_register(&h), Verdict::NotLinearizable);
        // A failed swap while the value was what it compared is caught.
        let h = [
            op(OpKind::Put(1), 0, Some(1)),
            op(cas(Some(1), 2, false), 2, Some(3)),
        ];
        assert_eq!(check_register(&h), Verdict::NotLinearizable);
    }

    #[test]
    fn an_unseen_write_of_unknown_outcome_may_explain_a_failed_swap() {
        let h = vec![
            Op {
                client: 0,
                key: 1,
                kind: OpKind::Put(1),
                call: 0,
                ret: Some(1),
            },
            Op {
                client: 1,
                key: 1,
                kind: OpKind::Put(9),
                call: 2,
                ret: None,
            },
            Op {
                client: 0,
                key: 1,
                kind: cas(Some(1), 2, false),
                call: 4,
                ret: Some(5),
            },
        ];
        assert!(check(&h).is_ok(), "the lost write of 9 explains it");
    }

    #[test]
    fn read_of_never_written_value_is_caught() {
        assert_eq!(
            check_register(&[op(OpKind::Get(Some(3)), 0, Some(1))]),
            Verdict::NotLinearizable
        );
    }
}

#[cfg(test)]
mod pruning_tests {
    use super::*;

    #[test]
    fn unseen_lost_writes_are_dropped_but_seen_ones_kept() {
        let op = |kind, call, ret| Op {
            client: 0,
            key: 1,
            kind,
            call,
            ret,
        };
        // Many concurrent lost writes nobody read: trivially fine.
        let mut h: Vec<Op> = (0..200)
            .map(|i| op(OpKind::Put(1000 + i), i, None))
            .collect();
        h.push(op(OpKind::Put(1), 300, Some(301)));
        h.push(op(OpKind::Get(Some(1)), 302, Some(303)));
        assert!(check(&h).is_ok());
        // A lost write that a read saw still constrains the order.
        h.push(op(OpKind::Get(Some(1005)), 304, Some(305)));
        h.push(op(OpKind::Get(Some(1)), 306, Some(307)));
        assert!(matches!(check(&h), Err((1, Verdict::NotLinearizable, _))));
    }
}
