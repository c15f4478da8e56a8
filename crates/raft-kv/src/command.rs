//! What a KV log entry carries, and what applying it answers. Entries are
//! MessagePack; anything else in the log (an opaque entry appended through
//! the log API) is left alone by the KV.

use crate::lease::LeaseId;
use crate::multi::{Peeked, Watched};
use crate::strings::{StrDone, StrError, StrWrite};
use crate::txn::{TxnEntry, TxnError, TxnOp};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// One replicated write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// (client id, sequence number): a retried write with the same pair
    /// applies once, and the retry gets the first answer.
    pub session: Option<(u64, u64)>,
    /// What to do.
    pub op: Op,
}

/// One operation on the KV (a whole entry, or a part of a `Txn` or
/// `Multi`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Sets `key`. With `cas`, only if the key's modify index equals it
    /// (0: only if the key does not exist).
    Put {
        /// The namespace.
        ns: String,
        /// The key.
        key: String,
        /// The new value.
        value: Bytes,
        /// The modify index the key must have (0: must not exist).
        cas: Option<u64>,
        /// The lease the key dies with; `None` detaches it from any.
        /// Entries from before leases lack it.
        #[serde(default)]
        lease: Option<LeaseId>,
    },
    /// Deletes `key` (with `prefix`, every key starting with it).
    Delete {
        /// The namespace.
        ns: String,
        /// The key, or the prefix.
        key: String,
        /// Every key starting with `key`.
        prefix: bool,
        /// The modify index the key must have.
        cas: Option<u64>,
    },
    /// Deletes a namespace and every key in it.
    DropNamespace {
        /// The namespace.
        ns: String,
    },
    /// Operations applied all or none, in one entry (`crate::txn`).
    Txn(Vec<TxnOp>),
    /// Takes (`acquire`) or frees the lock on `key` for `lease`, writing
    /// `value` (Consul's `?acquire=` / `?release=`): `Done(false)` when
    /// another lease holds it (or, freeing, when this one does not).
    Lock {
        /// The namespace.
        ns: String,
        /// The lock's key.
        key: String,
        /// The value written with it.
        value: Bytes,
        /// The lease that holds (or held) the lock.
        lease: LeaseId,
        /// Take (`true`) or free (`false`).
        acquire: bool,
    },
    /// A new lease of namespace `ns`, its id this entry's index.
    LeaseGrant {
        /// The namespace its keys live in.
        ns: String,
        /// Its time to live, in milliseconds.
        ttl_ms: u64,
    },
    /// Ends a lease: its keys deleted, its locks freed.
    LeaseRevoke {
        /// The lease.
        id: LeaseId,
    },
    /// A Redis-style string write (`crate::strings`).
    Str(StrWrite),
    /// Redis's MULTI / EXEC: `ops` in order in this one entry, if every
    /// watched key is unchanged (`crate::multi`). No `Multi` nests.
    Multi {
        /// Keys that must not have changed since the client watched them.
        watch: Vec<Watched>,
        /// The queued operations.
        ops: Vec<Op>,
    },
    /// Reads keys of `ns` where the entry applies (inside a `Multi`).
    Peek {
        /// The namespace.
        ns: String,
        /// The keys to read.
        keys: Vec<String>,
    },
    /// The leader found these leases due (`raft_http::lease`): each that
    /// still exists ends as if revoked.
    LeaseExpire {
        /// The leases.
        ids: Vec<LeaseId>,
    },
}

/// The result of applying one entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Output {
    /// A write that did (`true`) or did not (a failed compare) happen.
    Done(bool),
    /// Keys deleted / a namespace dropped with this many keys.
    Removed(u64),
    /// A session sequence number older than the client's latest.
    StaleSession {
        /// The client's latest sequence number.
        latest: u64,
    },
    /// Not a KV entry (an opaque log entry).
    Opaque,
    /// A transaction: what its operations touched, or every failing one
    /// (then nothing changed).
    Txn(Result<Vec<TxnEntry>, Vec<TxnError>>),
    /// A lease granted.
    Granted {
        /// The lease's id (its entry's index).
        id: LeaseId,
        /// Its time to live, in milliseconds.
        ttl_ms: u64,
    },
    /// The write named a lease that does not exist (never did, or ended).
    NoLease(LeaseId),
    /// A string write: what it did, or why it was refused.
    Str(Result<StrDone, StrError>),
    /// A MULTI: each op's output, or `None` if a watched key changed.
    Multi(Option<Vec<Output>>),
    /// What a peek saw, key by key.
    Peek(Vec<Peeked>),
}

/// A log entry as the KV reads it.
#[derive(Debug)]
pub enum Decoded {
    /// A KV request.
    Kv(Request),
    /// Anything else (an opaque entry appended through the log API).
    Opaque,
}

/// Marks a KV entry, so opaque entries never decode as one by accident.
const MAGIC: &[u8; 3] = b"kv1";

/// A request as a log entry: a marker, then MessagePack.
pub fn encode(r: &Request) -> Bytes {
    let mut out = MAGIC.to_vec();
    rmp_serde::encode::write(&mut out, r).expect("requests always serialize");
    Bytes::from(out)
}

/// A log entry as the KV reads it; anything without the marker, or that
/// does not decode, is opaque.
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
                lease: Some(3),
            },
        };
        assert!(matches!(decode(&encode(&r)), Decoded::Kv(d) if d == r));
        assert!(matches!(decode(b"hello"), Decoded::Opaque));
        assert!(matches!(decode(b"kv1\xc1"), Decoded::Opaque));
    }

    /// The `Op::Put` of logs written before leases (no `lease` field).
    #[derive(Serialize)]
    enum OldOp {
        Put {
            ns: String,
            key: String,
            value: Bytes,
            cas: Option<u64>,
        },
    }

    #[test]
    fn entries_from_before_leases_still_decode() {
        #[derive(Serialize)]
        struct OldRequest {
            session: Option<(u64, u64)>,
            op: OldOp,
        }
        let old = OldRequest {
            session: None,
            op: OldOp::Put {
                ns: "a".into(),
                key: "k".into(),
                value: Bytes::from_static(b"v"),
                cas: None,
            },
        };
        let mut bytes = MAGIC.to_vec();
        rmp_serde::encode::write(&mut bytes, &old).unwrap();
        let Decoded::Kv(r) = decode(&bytes) else {
            panic!("an old put no longer decodes")
        };
        assert!(matches!(r.op, Op::Put { lease: None, ref key, .. } if key == "k"));
    }
}
