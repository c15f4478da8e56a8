//! One behavioural test suite for every `LogStore` (openraft's storage
//! suite is the model). A store passes if `run` returns; each check panics
//! with what went wrong. Durable stores pass a `reopen` that closes and
//! opens the same file, so every check also covers what survives a
//! restart; in-memory stores pass the identity.

use bytes::Bytes;
use raft_core::{Entry, HardState, Index, LogStore, Membership, Payload, Term, WriteBatch};
use std::fmt::Debug;

/// `make` returns a fresh, empty store; `reopen` closes and reopens one.
pub fn run<S, M, R>(mut make: M, mut reopen: R)
where
    S: LogStore,
    S::Error: Debug,
    M: FnMut() -> S,
    R: FnMut(S) -> S,
{
    initial_state(make());
    hard_state_and_membership(make(), &mut reopen);
    append_and_read(make(), &mut reopen);
    truncate_conflicting_suffix(make(), &mut reopen);
    purge_prefix(make(), &mut reopen);
    refuse_bad_batches(make(), &mut reopen);
    reset_to_a_snapshot(make(), &mut reopen);
}

/// A snapshot the log does not lead up to replaces the whole log.
fn reset_to_a_snapshot<S: LogStore>(mut s: S, reopen: &mut impl FnMut(S) -> S)
where
    S::Error: Debug,
{
    append(&mut s, &entries(1, 5, 1));
    s.purge_to(2).expect("purge");
    s.reset_to(40, 3).expect("reset");
    let mut s = reopen(s);
    let st = s.state().expect("state");
    assert_eq!((st.purged, st.last_index), ((40, 3), 40));
    assert_eq!(s.term(40).expect("term"), Some(3));
    assert_eq!(s.term(5).expect("term"), None, "old entries are gone");
    append(&mut s, &entries(41, 42, 4));
    let mut s = reopen(s);
    let got = s.entries(41, 43, usize::MAX).expect("read");
    assert_eq!(got, entries(41, 42, 4));
    // Resetting below what is stored also works (a snapshot from another
    // history than the stored entries').
    s.reset_to(10, 2).expect("reset");
    let s = reopen(s);
    let st = s.state().expect("state");
    assert_eq!((st.purged, st.last_index), ((10, 2), 10));
}

/// An entry whose payload is derived from its position, so any mix-up shows.
pub fn entry(index: Index, term: Term) -> Entry {
    Entry {
        index,
        term,
        payload: Payload::Normal(Bytes::from(format!("entry {index} of term {term}"))),
    }
}

fn entries(lo: Index, hi: Index, term: Term) -> Vec<Entry> {
    (lo..=hi).map(|i| entry(i, term)).collect()
}

fn append<S: LogStore>(s: &mut S, e: &[Entry])
where
    S::Error: Debug,
{
    s.write(WriteBatch {
        entries: e,
        ..Default::default()
    })
    .expect("write");
}

fn initial_state<S: LogStore>(s: S)
where
    S::Error: Debug,
{
    let st = s.state().expect("state");
    assert_eq!(st.hard_state, HardState::default());
    assert_eq!(st.membership, None);
    assert_eq!((st.purged, st.last_index), ((0, 0), 0));
    assert_eq!(s.term(0).expect("term"), Some(0), "index 0 has term 0");
    assert_eq!(s.term(1).expect("term"), None);
    assert!(s.entries(1, 1, usize::MAX).expect("empty range").is_empty());
}

fn hard_state_and_membership<S: LogStore>(mut s: S, reopen: &mut impl FnMut(S) -> S)
where
    S::Error: Debug,
{
    let hs = HardState {
        term: 3,
        vote: Some(2),
        commit: 0,
    };
    let mut m = Membership::new([1, 2, 3]);
    m.learners.insert(4);
    m.addresses.insert(4, "host4:7004".into());
    s.write(WriteBatch {
        hard_state: Some(hs),
        membership: Some((7, &m)),
        ..Default::default()
    })
    .expect("write");
    let s = reopen(s);
    let st = s.state().expect("state");
    assert_eq!(st.hard_state, hs);
    assert_eq!(st.membership, Some((7, m)));
    let mut s = s;
    let hs2 = HardState {
        term: 4,
        vote: None,
        commit: 0,
    };
    s.write(WriteBatch {
        hard_state: Some(hs2),
        ..Default::default()
    })
    .expect("write");
    let s = reopen(s);
    assert_eq!(
        s.state().expect("state").hard_state,
        hs2,
        "the latest hard state wins"
    );
    assert!(
        s.state().expect("state").membership.is_some(),
        "membership is kept when not rewritten"
    );
}

fn append_and_read<S: LogStore>(mut s: S, reopen: &mut impl FnMut(S) -> S)
where
    S::Error: Debug,
{
    append(&mut s, &entries(1, 5, 1));
    append(&mut s, &entries(6, 10, 2));
    let s = reopen(s);
    assert_eq!(s.state().expect("state").last_index, 10);
    assert_eq!(
        s.entries(1, 11, usize::MAX).expect("read"),
        [entries(1, 5, 1), entries(6, 10, 2)].concat()
    );
    assert_eq!(s.entries(4, 7, usize::MAX).expect("read").len(), 3);
    assert_eq!(s.term(5).expect("term"), Some(1));
    assert_eq!(s.term(6).expect("term"), Some(2));
    assert_eq!(s.term(11).expect("term"), None);
    // A byte budget stops early but always returns at least one entry.
    let one = entry(1, 1).size();
    assert_eq!(s.entries(1, 11, 0).expect("read").len(), 1);
    assert_eq!(s.entries(1, 11, 3 * one).expect("read").len(), 3);
    assert!(
        s.entries(9, 12, usize::MAX).is_err(),
        "reading past the last index is an error"
    );
}

fn truncate_conflicting_suffix<S: LogStore>(mut s: S, reopen: &mut impl FnMut(S) -> S)
where
    S::Error: Debug,
{
    append(&mut s, &entries(1, 10, 1));
    // A new leader's entries replace everything from index 6 on.
    append(&mut s, &entries(6, 7, 3));
    let s = reopen(s);
    assert_eq!(s.state().expect("state").last_index, 7);
    assert_eq!(
        s.entries(1, 8, usize::MAX).expect("read"),
        [entries(1, 5, 1), entries(6, 7, 3)].concat()
    );
    assert_eq!(s.term(8).expect("term"), None, "the old suffix is gone");
    // Rewriting the tail in the same term is allowed too.
    let mut s = s;
    append(&mut s, &entries(7, 9, 3));
    let s = reopen(s);
    assert_eq!(s.state().expect("state").last_index, 9);
}

fn purge_prefix<S: LogStore>(mut s: S, reopen: &mut impl FnMut(S) -> S)
where
    S::Error: Debug,
{
    append(&mut s, &entries(1, 5, 1));
    append(&mut s, &entries(6, 10, 2));
    s.purge_to(6).expect("purge");
    let mut s = reopen(s);
    let st = s.state().expect("state");
    assert_eq!((st.purged, st.last_index), ((6, 2), 10));
    assert_eq!(
        s.term(6).expect("term"),
        Some(2),
        "the purged index keeps its term"
    );
    assert_eq!(s.term(5).expect("term"), None);
    assert!(
        s.entries(5, 8, usize::MAX).is_err(),
        "reads below the purge point are errors"
    );
    assert_eq!(
        s.entries(7, 11, usize::MAX).expect("read"),
        entries(7, 10, 2)
    );
    s.purge_to(3).expect("purging below is a no-op");
    assert_eq!(s.state().expect("state").purged, (6, 2));
    // Appending goes on after a purge, and a purge of everything leaves an
    // empty log that still knows where it ends.
    append(&mut s, &entries(11, 12, 2));
    s.purge_to(12).expect("purge all");
    let mut s = reopen(s);
    let st = s.state().expect("state");
    assert_eq!((st.purged, st.last_index), ((12, 2), 12));
    append(&mut s, &entries(13, 13, 4));
    let s = reopen(s);
    assert_eq!(
        s.entries(13, 14, usize::MAX).expect("read"),
        entries(13, 13, 4)
    );
}

fn refuse_bad_batches<S: LogStore>(mut s: S, reopen: &mut impl FnMut(S) -> S)
where
    S::Error: Debug,
{
    append(&mut s, &entries(1, 4, 1));
    let gap = entries(6, 6, 1);
    assert!(
        s.write(WriteBatch {
            entries: &gap,
            ..Default::default()
        })
        .is_err(),
        "a gap is refused"
    );
    let holes = vec![entry(5, 1), entry(7, 1)];
    assert!(
        s.write(WriteBatch {
            entries: &holes,
            ..Default::default()
        })
        .is_err(),
        "holes are refused"
    );
    s.purge_to(2).expect("purge");
    let below = entries(2, 3, 1);
    assert!(
        s.write(WriteBatch {
            entries: &below,
            ..Default::default()
        })
        .is_err(),
        "writing purged indexes is refused"
    );
    // A refused batch changes nothing and the store goes on working.
    append(&mut s, &entries(5, 5, 1));
    let s = reopen(s);
    assert_eq!(s.state().expect("state").last_index, 5);
    assert_eq!(s.entries(3, 6, usize::MAX).expect("read"), entries(3, 5, 1));
}
