//! A linearizability checker for a history of register operations
//! (Wing & Gong's search with Lowe's memoization, as in Porcupine), run per
//! key since keys are independent registers.

use std::collections::{BTreeMap, HashSet};

/// Key of a register.
pub type Key = u8;
/// Values are unique per write (the writing operation's id).
pub type Value = u64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpKind {
    Put(Value),
    /// A read and what it returned.
    Get(Option<Value>),
}

#[derive(Clone, Debug)]
pub struct Op {
    pub client: usize,
    pub key: Key,
    pub kind: OpKind,
    /// Position in the simulation's global event order when invoked.
    pub call: u64,
    /// When the response arrived; `None` when the outcome is unknown (the
    /// client gave up or the node crashed): such an op may have taken
    /// effect at any point after its call, or never.
    pub ret: Option<u64>,
}

/// Checks every key's history. Returns the first key whose history has no
/// linearization, with its operations.
pub fn check(history: &[Op]) -> Result<(), (Key, Vec<Op>)> {
    let mut by_key: BTreeMap<Key, Vec<Op>> = BTreeMap::new();
    for op in history {
        by_key.entry(op.key).or_default().push(op.clone());
    }
    for (key, ops) in by_key {
        if !check_register(&ops) {
            return Err((key, ops));
        }
    }
    Ok(())
}

/// Depth-first search for an order of the operations consistent with real
/// time and with a register's semantics. Lost writes (no `ret`) may be left
/// out; every completed operation must be placed.
pub fn check_register(ops: &[Op]) -> bool {
    let n = ops.len();
    let words = n.div_ceil(64).max(1);
    let must: usize = ops.iter().filter(|o| o.ret.is_some()).count();
    let mut seen: HashSet<(Vec<u64>, Option<Value>)> = HashSet::new();
    // Explicit stack: (linearized set, register value, placed completed ops).
    let mut stack = vec![(vec![0u64; words], None::<Value>, 0usize)];
    while let Some((done, value, placed)) = stack.pop() {
        if placed == must {
            return true;
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
            let next_value = match ops[i].kind {
                OpKind::Put(v) => Some(v),
                OpKind::Get(r) if r == value => value,
                OpKind::Get(_) => continue,
            };
            let mut next = done.clone();
            next[i / 64] |= 1 << (i % 64);
            if seen.insert((next.clone(), next_value)) {
                let placed = placed + usize::from(ops[i].ret.is_some());
                stack.push((next, next_value, placed));
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(check_register(&h));
    }

    #[test]
    fn stale_read_is_caught() {
        let h = [
            op(OpKind::Put(1), 0, Some(1)),
            op(OpKind::Put(2), 2, Some(3)),
            op(OpKind::Get(Some(1)), 4, Some(5)),
        ];
        assert!(!check_register(&h));
    }

    #[test]
    fn concurrent_ops_may_reorder() {
        let h = [
            op(OpKind::Put(1), 0, Some(10)),
            op(OpKind::Put(2), 1, Some(9)),
            op(OpKind::Get(Some(1)), 11, Some(12)),
        ];
        assert!(check_register(&h));
    }

    #[test]
    fn lost_write_may_or_may_not_apply() {
        let lost = op(OpKind::Put(7), 0, None);
        assert!(check_register(&[
            lost.clone(),
            op(OpKind::Get(Some(7)), 5, Some(6))
        ]));
        assert!(check_register(&[
            lost.clone(),
            op(OpKind::Get(None), 5, Some(6))
        ]));
        // but not un-apply once seen
        let h = [
            lost,
            op(OpKind::Get(Some(7)), 5, Some(6)),
            op(OpKind::Get(None), 7, Some(8)),
        ];
        assert!(!check_register(&h));
    }

    #[test]
    fn read_of_never_written_value_is_caught() {
        assert!(!check_register(&[op(OpKind::Get(Some(3)), 0, Some(1))]));
    }
}
