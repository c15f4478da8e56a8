//! `PUT /v1/txn`: Consul's transaction endpoint. The body is a JSON list
//! of `{"KV": {...}}` operations; they apply in one log entry, all or
//! none: 200 with `Results`, or 409 with `Errors` naming each failing
//! operation (`raft_kv::txn`).

use super::ApiContext;
use super::access::{self, Need, Principal, Scope};
use super::http::{self, ApiError, ApiResult, Query};
use super::kv;
use base64::Engine;
use bytes::Bytes;
use hyper::StatusCode;
use raft_kv::command::{Op, Output};
use raft_kv::txn::{MAX_OPS, TxnEntry, TxnError, TxnOp, Verb};
use serde::{Deserialize, Serialize};

/// One item of the request list: only KV operations are served (Consul's
/// node, service and check operations have no meaning here).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Item {
    #[serde(rename = "KV")]
    kv: KvOp,
}

/// A KV operation as Consul's clients send it (Go's `api.KVTxnOp`): every
/// field may come with its zero value; a field the verb does not use must
/// have it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct KvOp {
    verb: String,
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    flags: u64,
    #[serde(default)]
    index: u64,
    #[serde(default)]
    session: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    partition: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Reply {
    results: Option<Vec<ResultItem>>,
    errors: Option<Vec<ErrorItem>>,
    /// The log index the transaction applied at.
    index: u64,
}

#[derive(Serialize)]
struct ResultItem {
    #[serde(rename = "KV")]
    kv: Entry,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    key: String,
    namespace: String,
    value: Option<String>,
    flags: u64,
    lock_index: u64,
    create_index: u64,
    modify_index: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorItem {
    op_index: u32,
    what: String,
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

pub async fn handle(ctx: &ApiContext, who: &Principal, q: &Query, body: Bytes) -> ApiResult {
    let items: Vec<Item> = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "a transaction is a JSON list of {{\"KV\": {{...}}}} operations: {e}"
        ))
    })?;
    if items.is_empty() || items.len() > MAX_OPS {
        return Err(ApiError::bad_request(format!(
            "a transaction holds 1 to {MAX_OPS} operations, not {}",
            items.len()
        )));
    }
    let ops = items
        .into_iter()
        .enumerate()
        .map(|(k, item)| parse(item.kv).map_err(|e| at(k, e)))
        .collect::<Result<Vec<_>, _>>()?;
    authorize(who, &ops)?;
    let (index, out) = kv::propose(ctx, kv::session(q)?, Op::Txn(ops)).await?;
    let (status, reply) = match out {
        Output::Txn(Ok(entries)) => (StatusCode::OK, results(index, entries)),
        Output::Txn(Err(errors)) => (StatusCode::CONFLICT, failures(index, errors)),
        Output::StaleSession { latest } => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("stale session sequence number; the latest applied is {latest}"),
            ));
        }
        other => unreachable!("invariant broken: a transaction applied as {other:?}"),
    };
    let v = serde_json::to_value(reply).expect("replies serialize");
    Ok(http::with_index(http::json(status, &v), index))
}

fn at(k: usize, e: ApiError) -> ApiError {
    ApiError::bad_request(format!("operation {k}: {}", e.message))
}

/// A ns-limited client may only touch its namespaces, in every operation.
/// (A node reaches here only with a request it forwards for a client it
/// authorized.)
fn authorize(who: &Principal, ops: &[TxnOp]) -> Result<(), ApiError> {
    if matches!(who, Principal::Node(_)) {
        return Ok(());
    }
    for (k, op) in ops.iter().enumerate() {
        let need = match op.verb {
            Verb::Get
            | Verb::GetTree
            | Verb::CheckIndex(_)
            | Verb::CheckNotExists
            | Verb::CheckSession(_) => Need::Read(Scope::Namespace),
            _ => Need::Write(Scope::Namespace),
        };
        let ask = access::Ask {
            need,
            namespace: &op.ns,
            address: None,
            forwarded: false,
        };
        access::authorize(who, &ask).map_err(|e| ApiError {
            message: format!("operation {k}: {}", e.message),
            ..e
        })?;
    }
    Ok(())
}

fn parse(op: KvOp) -> Result<TxnOp, ApiError> {
    let bad = |m: String| Err(ApiError::bad_request(m));
    if op.flags != 0 {
        return bad("Flags are not kept here: give 0 or leave them out".into());
    }
    let locking = matches!(op.verb.as_str(), "lock" | "unlock" | "check-session");
    let lease = match (locking, op.session.as_str()) {
        (false, "") => 0,
        (false, _) => return bad(format!("{} takes no Session", op.verb)),
        (true, "") => return bad(format!("{} needs a Session (a lease id)", op.verb)),
        (true, s) => s.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("Session {s:?}: a lease id (a number) is needed"))
        })?,
    };
    if !matches!(op.partition.as_str(), "" | "default") {
        return bad(format!(
            "Partition {:?}: there are none here; use Namespace",
            op.partition
        ));
    }
    let ns = op.namespace.filter(|n| !n.is_empty());
    let ns = ns.unwrap_or_else(|| raft_kv::DEFAULT_NAMESPACE.to_string());
    kv::check_namespace(&ns)?;
    let tree = matches!(op.verb.as_str(), "get-tree" | "delete-tree");
    kv::check_key(&op.key, tree)?;
    let value = op
        .value
        .map(|v| {
            base64::engine::general_purpose::STANDARD
                .decode(v.as_bytes())
                .map(Bytes::from)
                .map_err(|e| ApiError::bad_request(format!("Value is not base64: {e}")))
        })
        .transpose()?;
    let writes = matches!(op.verb.as_str(), "set" | "cas" | "lock" | "unlock");
    let indexed = matches!(op.verb.as_str(), "cas" | "check-index" | "delete-cas");
    if value.is_some() && !writes {
        return bad(format!("{} takes no Value", op.verb));
    }
    if op.index != 0 && !indexed {
        return bad(format!("{} takes no Index", op.verb));
    }
    let value = || {
        value
            .clone()
            .ok_or_else(|| ApiError::bad_request(format!("{} needs a Value", op.verb)))
    };
    let verb = match op.verb.as_str() {
        "set" => Verb::Set(value()?),
        "cas" => Verb::Cas {
            value: value()?,
            index: op.index,
        },
        "get" => Verb::Get,
        "get-tree" => Verb::GetTree,
        "check-index" => Verb::CheckIndex(op.index),
        "check-not-exists" => Verb::CheckNotExists,
        "delete" => Verb::Delete,
        "delete-tree" => Verb::DeleteTree,
        "delete-cas" => Verb::DeleteCas(op.index),
        // Consul lets a lock or unlock leave the value out: it is empty.
        "lock" => Verb::Lock {
            value: value().unwrap_or_default(),
            lease,
        },
        "unlock" => Verb::Unlock {
            value: value().unwrap_or_default(),
            lease,
        },
        "check-session" => Verb::CheckSession(lease),
        other => {
            return bad(format!(
                "unknown Verb {other:?}: set, cas, get, get-tree, check-index, \
                 check-not-exists, delete, delete-tree, delete-cas, lock, unlock, \
                 check-session"
            ));
        }
    };
    Ok(TxnOp {
        ns,
        key: op.key,
        verb,
    })
}

fn results(index: u64, entries: Vec<TxnEntry>) -> Reply {
    let results = entries
        .into_iter()
        .map(|e| ResultItem {
            kv: Entry {
                key: e.key,
                namespace: e.ns,
                value: e.value.map(|v| b64(&v)),
                flags: 0,
                lock_index: e.lock_index,
                create_index: e.create_index,
                modify_index: e.modify_index,
            },
        })
        .collect();
    Reply {
        results: Some(results),
        errors: None,
        index,
    }
}

fn failures(index: u64, errors: Vec<TxnError>) -> Reply {
    let errors = errors
        .into_iter()
        .map(|e| ErrorItem {
            op_index: e.op,
            what: e.what,
        })
        .collect();
    Reply {
        results: None,
        errors: Some(errors),
        index,
    }
}

/// An operation as the log reader shows it: in the request's shape.
pub fn op_json(op: &TxnOp) -> serde_json::Value {
    let mut session = None;
    let (verb, value, index) = match &op.verb {
        Verb::Set(v) => ("set", Some(v), 0),
        Verb::Cas { value, index } => ("cas", Some(value), *index),
        Verb::Get => ("get", None, 0),
        Verb::GetTree => ("get-tree", None, 0),
        Verb::CheckIndex(i) => ("check-index", None, *i),
        Verb::CheckNotExists => ("check-not-exists", None, 0),
        Verb::Delete => ("delete", None, 0),
        Verb::DeleteTree => ("delete-tree", None, 0),
        Verb::DeleteCas(i) => ("delete-cas", None, *i),
        Verb::Lock { value, lease } => {
            session = Some(lease.to_string());
            ("lock", Some(value), 0)
        }
        Verb::Unlock { value, lease } => {
            session = Some(lease.to_string());
            ("unlock", Some(value), 0)
        }
        Verb::CheckSession(lease) => {
            session = Some(lease.to_string());
            ("check-session", None, 0)
        }
    };
    serde_json::json!({ "KV": {
        "Verb": verb,
        "Namespace": op.ns,
        "Key": op.key,
        "Value": value.map(|v| b64(v)),
        "Index": index,
        "Session": session,
    }})
}
