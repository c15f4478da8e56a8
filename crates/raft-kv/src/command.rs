//! What a KV log entry carries, and what applying it answers. Entries are
//! MessagePack; anything else in the log (an opaque entry appended through
//! the log API) is left alone by the KV.

use crate::txn::{TxnEntry, TxnError, TxnOp};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// One replicated write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// (client id, sequence number): a retried write with the same pair
    /// applies once, and the retry gets the first answer.
    pub session: Option<(u64, u64)>,
    pub op: Op,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Sets `key`. With `cas`, only if the key's modify index equals it
    /// (0: only if the key does not exist).
    Put {
        ns: String,
        key: String,
        value: Bytes,
        cas: Option<u64>,
    },
    /// Deletes `key` (with `prefix`, every key starting with it).
    Delete {
        ns: String,
        key: String,
        prefix: bool,
        cas: Option<u64>,
    },
    DropNamespace {
        ns: String,
    },
    /// Operations applied all or none, in one entry (`crate::txn`).
    Txn(Vec<TxnOp>),
}

/// The result of applying one entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Output {
    /// A write that did (`true`) or did not (a failed compare) happen.
    Done(bool),
    /// Keys deleted / a namespace dropped with this many keys.
    Removed(u64),
    /// A session sequence number older than the client's latest.
    StaleSession { latest: u64 },
    /// Not a KV entry (an opaque log entry).
    Opaque,
    /// A transaction: what its operations touched, or every failing one
    /// (then nothing changed).
    Txn(Result<Vec<TxnEntry>, Vec<TxnError>>),
}

/// A log entry as the KV reads it.
#[derive(Debug)]
pub enum Decoded {
    Kv(Request),
    Opaque,
}

/// Marks a KV entry, so opaque entries never decode as one by accident.
const MAGIC: &[u8; 3] = b"kv1";

pub fn encode(r: &Request) -> Bytes {
    let mut out = MAGIC.to_vec();
    rmp_serde::encode::write(&mut out, r).expect("requests always serialize");
    Bytes::from(out)
}

pub fn decode(data: &[u8]) -> Decoded {
    match data.strip_prefix(MAGIC) {
        Some(body) => match rmp_serde::from_slice(body) {
            Ok(r) => Decoded::Kv(r),
            Err(_) => Decoded::Opaque,
        },
        None => Decoded::Opaque,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_opaque() {
        let r = Request {
            session: Some((7, 1)),
            op: Op::Put {
                ns: "a".into(),
                key: "k".into(),
                value: Bytes::from_static(b"v"),
                cas: Some(0),
            },
        };
        assert!(matches!(decode(&encode(&r)), Decoded::Kv(d) if d == r));
        assert!(matches!(decode(b"hello"), Decoded::Opaque));
        assert!(matches!(decode(b"kv1\xc1"), Decoded::Opaque));
    }
}
