//! Entry points for fuzzing the KV's decoders (`cargo xtask fuzz`; the
//! targets are in `fuzz/`). Each takes arbitrary bytes and must neither
//! panic nor hang; each also checks what it can of what it read. Built with
//! the `fuzzing` feature only: not part of the API. `tests/fuzz_corpus.rs`
//! runs the kept corpus and every regression through them.

use crate::snapshot;
use crate::store::KvState;

/// `data` as a log entry, applied to the state machine twice (the second
/// time a session's retry, if it names one); then the state goes through
/// a snapshot and must come back the same.
pub fn command(data: &[u8]) {
    let mut st = KvState::default();
    st.apply(1, data);
    st.apply(2, data);
    let mut out = Vec::new();
    snapshot::write(&st, &mut out).expect("invariant: a state writes to memory");
    let back = snapshot::read(&mut &out[..]).expect("invariant: a state's snapshot reads back");
    assert_eq!(
        back, st,
        "invariant: a snapshot restores the state it was taken of"
    );
}

/// `data` as a KV snapshot: read whole and verified record by record
/// (which must agree); what reads back, written again, reads the same.
pub fn snapshot(data: &[u8]) {
    let read = snapshot::read(&mut &data[..]);
    let verified = snapshot::verify(&mut &data[..]);
    assert_eq!(
        read.is_ok(),
        verified.is_ok(),
        "invariant: verify accepts what read accepts: {:?} / {:?}",
        read.as_ref().err(),
        verified.as_ref().err()
    );
    if let Ok(st) = read {
        let mut out = Vec::new();
        snapshot::write(&st, &mut out).expect("invariant: a state writes to memory");
        let back = snapshot::read(&mut &out[..]).expect("invariant: a written snapshot reads");
        assert_eq!(
            back, st,
            "invariant: a snapshot restores the state it was taken of"
        );
    }
}

/// Inputs the real encoders made: a command of every kind (with and
/// without a session) and the snapshot of a state they built. Each is
/// (target, name, bytes).
pub fn seeds() -> Vec<(String, String, Vec<u8>)> {
    use crate::command::{Op, Request, encode};
    use crate::txn::{TxnOp, Verb};
    // Applied at 2k + 1 (plain) and 2k + 2 (with a session): the grant
    // makes leases 1 and 2.
    let ops = [
        Op::LeaseGrant {
            ns: "default".into(),
            ttl_ms: 5_000,
        },
        Op::Put {
            ns: "default".into(),
            key: "a/b".into(),
            value: bytes::Bytes::from_static(b"value"),
            cas: None,
            lease: Some(1),
        },
        Op::Put {
            ns: "other".into(),
            key: "k".into(),
            value: bytes::Bytes::new(),
            cas: Some(0),
            lease: None,
        },
        Op::Lock {
            ns: "default".into(),
            key: "lock".into(),
            value: bytes::Bytes::from_static(b"me"),
            lease: 2,
            acquire: true,
        },
        Op::Delete {
            ns: "default".into(),
            key: "a/".into(),
            prefix: true,
            cas: None,
        },
        Op::Delete {
            ns: "other".into(),
            key: "k".into(),
            prefix: false,
            cas: Some(3),
        },
        Op::DropNamespace { ns: "other".into() },
        Op::Txn(vec![
            TxnOp {
                ns: "default".into(),
                key: "t/a".into(),
                verb: Verb::Cas {
                    value: bytes::Bytes::from_static(b"1"),
                    index: 0,
                },
            },
            TxnOp {
                ns: "default".into(),
                key: "t/".into(),
                verb: Verb::GetTree,
            },
            TxnOp {
                ns: "other".into(),
                key: "k".into(),
                verb: Verb::CheckIndex(3),
            },
            TxnOp {
                ns: "default".into(),
                key: "t/".into(),
                verb: Verb::DeleteTree,
            },
            TxnOp {
                ns: "default".into(),
                key: "t/l".into(),
                verb: Verb::Lock {
                    value: bytes::Bytes::new(),
                    lease: 2,
                },
            },
        ]),
        Op::LeaseRevoke { id: 1 },
        Op::LeaseExpire { ids: vec![1, 99] },
        Op::Str(crate::strings::StrWrite {
            ns: "db0".into(),
            key: "n".into(),
            edit: crate::strings::Edit::IncrBy(-3),
            when: crate::strings::When::Always,
            ttl: crate::strings::Ttl::For(1_500),
        }),
    ];
    let mut out = Vec::new();
    let mut st = KvState::default();
    for (k, op) in ops.into_iter().enumerate() {
        for session in [None, Some((7, k as u64 + 1))] {
            let data = encode(&Request {
                session,
                op: op.clone(),
            });
            st.apply(2 * k as u64 + 1 + session.is_some() as u64, &data);
            let name = format!(
                "op-{k}-{}",
                if session.is_some() {
                    "session"
                } else {
                    "plain"
                }
            );
            out.push(("kv_command".into(), name, data.to_vec()));
        }
    }
    st.apply(
        30,
        &encode(&Request {
            session: Some((9, 1)),
            op: Op::Put {
                ns: "kept".into(),
                key: "x".into(),
                value: bytes::Bytes::from_static(b"y"),
                cas: None,
                lease: Some(2),
            },
        }),
    );
    let mut snap = Vec::new();
    snapshot::write(&st, &mut snap).expect("in memory");
    out.push(("kv_snapshot".into(), "state".into(), snap));
    out
}
