//! Redis's MULTI / EXEC as one log entry: the queued writes (and reads,
//! `Op::Peek`) applied in order at one index, nothing of anyone else's in
//! between; guarded by the WATCHed keys, whose modify indexes must be as
//! the client saw them or nothing applies. As in Redis, a command that
//! fails inside (INCR of a word) fails alone: the others still apply.

use crate::command::{Op, Output};
use crate::store::KvState;
use bytes::Bytes;
use raft_core::Index;
use serde::{Deserialize, Serialize};

/// The most operations one MULTI may queue.
pub const MAX_OPS: usize = 10_000;

/// A key as a WATCH saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watched {
    /// The key's namespace.
    pub ns: String,
    /// The key.
    pub key: String,
    /// Its modify index then (0: it did not exist).
    pub modify_index: Index,
}

/// What a peek saw of one key: its value and modify index.
pub type Peeked = Option<(Bytes, Index)>;

/// Applies `ops` at `index` if every watched key is as watched: each
/// op's output, or `None` when a watched key changed.
pub(crate) fn apply(
    st: &mut KvState,
    index: Index,
    watch: &[Watched],
    ops: Vec<Op>,
) -> Option<Vec<Output>> {
    let unchanged = watch.iter().all(|w| {
        let now = st.get(&w.ns, &w.key).map_or(0, |v| v.modify_index);
        now == w.modify_index
    });
    if !unchanged {
        return None;
    }
    Some(
        ops.into_iter()
            .map(|op| st.apply_inner(index, op))
            .collect(),
    )
}

/// The keys `keys` of `ns` as they stand.
pub(crate) fn peek(st: &KvState, ns: &str, keys: &[String]) -> Vec<Peeked> {
    keys.iter()
        .map(|k| st.get(ns, k).map(|v| (v.data.clone(), v.modify_index)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Request, encode};
    use crate::strings::{Edit, StrWrite, Ttl, When};

    fn incr(key: &str) -> Op {
        Op::Str(StrWrite {
            ns: "db0".into(),
            key: key.into(),
            edit: Edit::IncrBy(1),
            when: When::Always,
            ttl: Ttl::Keep,
        })
    }

    fn run(st: &mut KvState, index: Index, op: Op) -> Output {
        st.apply(index, &encode(&Request { session: None, op }))
    }

    #[test]
    fn applies_in_order_and_reads_between() {
        let mut st = KvState::default();
        let peek = Op::Peek {
            ns: "db0".into(),
            keys: vec!["n".into()],
        };
        let m = Op::Multi {
            watch: vec![],
            ops: vec![incr("n"), peek.clone(), incr("n"), peek],
        };
        let Output::Multi(Some(outs)) = run(&mut st, 1, m) else {
            panic!("not applied")
        };
        let seen: Vec<_> = outs
            .iter()
            .filter_map(|o| match o {
                Output::Peek(v) => v[0].clone().map(|(b, _)| b),
                _ => None,
            })
            .collect();
        assert_eq!(seen, ["1", "2"]);
    }

    #[test]
    fn a_watched_key_changed_applies_nothing() {
        let mut st = KvState::default();
        run(&mut st, 1, incr("w"));
        let watch = |i| {
            vec![Watched {
                ns: "db0".into(),
                key: "w".into(),
                modify_index: i,
            }]
        };
        let m = |i| Op::Multi {
            watch: watch(i),
            ops: vec![incr("other")],
        };
        assert_eq!(run(&mut st, 2, m(0)), Output::Multi(None));
        assert!(st.get("db0", "other").is_none());
        assert!(matches!(run(&mut st, 3, m(1)), Output::Multi(Some(_))));
        assert_eq!(st.get("db0", "other").unwrap().data, "1");
        let nested = Op::Multi {
            watch: vec![],
            ops: vec![m(1)],
        };
        assert_eq!(
            run(&mut st, 4, nested),
            Output::Multi(Some(vec![Output::Done(false)]))
        );
    }
}
