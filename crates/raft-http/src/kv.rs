//! `/v1/kv/<key>` and `/v1/namespaces`, after Consul's KV API.

use super::ApiContext;
use super::http::{self, ApiError, ApiResult, Query};
use base64::Engine;
use bytes::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Response, StatusCode};
use raft_kv::command::{self, Op, Output, Request};
use raft_kv::{DEFAULT_NAMESPACE, Value};
use serde_json::json;

pub const MAX_KEY: usize = 1024;

pub fn namespace(q: &Query) -> Result<String, ApiError> {
    let ns = q.get("ns").unwrap_or(DEFAULT_NAMESPACE);
    check_namespace(ns)?;
    Ok(ns.to_string())
}

pub(super) fn check_namespace(ns: &str) -> Result<(), ApiError> {
    let ok = !ns.is_empty()
        && ns.len() <= 64
        && ns
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "bad namespace {ns:?}: 1 to 64 of A-Z a-z 0-9 - _ ."
        )))
    }
}

pub(super) fn check_key(key: &str, may_be_empty: bool) -> Result<(), ApiError> {
    if key.is_empty() && !may_be_empty {
        return Err(ApiError::bad_request("a key is needed: /v1/kv/<key>"));
    }
    if key.len() > MAX_KEY {
        return Err(ApiError::bad_request(format!(
            "key of {} bytes; at most {MAX_KEY}",
            key.len()
        )));
    }
    if key.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "keys may not hold control characters",
        ));
    }
    Ok(())
}

/// The session of a write: `?client=<id>&seq=<n>`, both or neither.
pub(super) fn session(q: &Query) -> Result<Option<(u64, u64)>, ApiError> {
    match (q.u64("client")?, q.u64("seq")?) {
        (Some(c), Some(s)) if s > 0 => Ok(Some((c, s))),
        (None, None) => Ok(None),
        _ => Err(ApiError::bad_request(
            "sessions need both ?client=<id> and ?seq=<n> (n from 1)",
        )),
    }
}

pub async fn handle(
    ctx: &ApiContext,
    method: &Method,
    key: &str,
    q: &Query,
    body: Bytes,
) -> ApiResult {
    // The route table (`routes.rs`) refused parameters the method does not take.
    let ns = namespace(q)?;
    match *method {
        Method::GET => {
            let listing = q.flag("recurse") || q.get("keys").is_some();
            check_key(key, listing)?;
            get(ctx, &ns, key, q).await
        }
        Method::PUT => {
            check_key(key, false)?;
            write(ctx, put_op(ns, key, body, q)?, q).await
        }
        Method::DELETE => {
            let prefix = q.flag("recurse");
            check_key(key, prefix)?;
            let op = Op::Delete {
                ns,
                key: key.to_string(),
                prefix,
                cas: q.u64("cas")?,
            };
            write(ctx, op, q).await
        }
        _ => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "the KV takes GET, PUT and DELETE",
        )),
    }
}

/// What a PUT asks: a write (`?cas`, `?lease`), or taking or freeing a
/// lock (`?acquire=<lease>` / `?release=<lease>`, alone).
fn put_op(ns: String, key: &str, value: Bytes, q: &Query) -> Result<Op, ApiError> {
    let (cas, lease) = (q.u64("cas")?, q.u64("lease")?);
    let lock = match (q.u64("acquire")?, q.u64("release")?) {
        (None, None) => None,
        (Some(l), None) => Some((l, true)),
        (None, Some(l)) => Some((l, false)),
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("?acquire= or ?release=, not both"));
        }
    };
    match lock {
        None => Ok(Op::Put {
            ns,
            key: key.to_string(),
            value,
            cas,
            lease,
        }),
        Some(_) if cas.is_some() || lease.is_some() => Err(ApiError::bad_request(
            "?acquire= / ?release= take no ?cas= or ?lease=",
        )),
        Some((lease, acquire)) => Ok(Op::Lock {
            ns,
            key: key.to_string(),
            value,
            lease,
            acquire,
        }),
    }
}

/// Replicates `op` (with the client's `session`): its index and what
/// applying it answered.
pub(super) async fn propose(
    ctx: &ApiContext,
    session: Option<(u64, u64)>,
    op: Op,
) -> Result<(u64, Output), ApiError> {
    let req = Request { session, op };
    ctx.node
        .propose(command::encode(&req))
        .await
        .map_err(ApiError::from_node)
}

/// Replicates one KV write; answers Consul-style `true` / `false`.
async fn write(ctx: &ApiContext, op: Op, q: &Query) -> ApiResult {
    let (index, out) = propose(ctx, session(q)?, op).await?;
    let r = match out {
        Output::Done(ok) => http::json(StatusCode::OK, &json!(ok)),
        // Consul answers a delete with true whether or not the key existed.
        Output::Removed(_) => http::json(StatusCode::OK, &json!(true)),
        Output::StaleSession { latest } => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("stale session sequence number; the latest applied is {latest}"),
            ));
        }
        Output::NoLease(id) => return Err(no_lease(id)),
        Output::Opaque
        | Output::Txn(_)
        | Output::Granted { .. }
        | Output::Str(_)
        | Output::Multi(_)
        | Output::Peek(_) => {
            unreachable!("invariant broken: a KV write applied as {out:?}")
        }
    };
    Ok(http::with_index(r, index))
}

/// An output a request's entry cannot have applied as (a broken
/// invariant; said, not panicked on, as only this request is wrong).
pub(super) fn unexpected(out: Output) -> ApiError {
    tracing::error!("invariant broken: an entry applied as {out:?}");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("the entry applied as {out:?}"),
    )
}

/// A write named a lease that does not exist.
pub(super) fn no_lease(id: u64) -> ApiError {
    ApiError::not_found(format!(
        "no lease {id}: it expired, was revoked or never was"
    ))
}

/// Waits for a linearizable read unless `?stale`; the index to report.
pub async fn read_barrier(ctx: &ApiContext, q: &Query) -> Result<u64, ApiError> {
    if q.flag("stale") {
        return Ok(ctx.kv.read().applied());
    }
    ctx.node.read_barrier().await.map_err(ApiError::from_node)
}

fn entry_json(ns: &str, key: &str, v: &Value) -> serde_json::Value {
    json!({
        "Key": key,
        "Namespace": ns,
        "Value": base64::engine::general_purpose::STANDARD.encode(&v.data),
        "CreateIndex": v.create_index,
        "ModifyIndex": v.modify_index,
        "Flags": 0,
        "LockIndex": v.lock_index(),
        "Session": v.holder().map(|l| l.to_string()),
        "Lease": v.lease(),
    })
}

async fn get(ctx: &ApiContext, ns: &str, key: &str, q: &Query) -> ApiResult {
    let index = read_barrier(ctx, q).await?;
    if let Some(since) = q.u64("index")? {
        let prefix = q.flag("recurse") || q.get("keys").is_some();
        let wait = super::blocking::wait(q)?;
        super::blocking::until_changed(ctx, (ns, key, prefix), since, wait).await;
    } else if q.get("wait").is_some() {
        return Err(ApiError::bad_request(
            "?wait= goes with ?index=<X-Consul-Index>",
        ));
    }
    let kv = ctx.kv.read();
    let index = index.max(kv.applied());
    if q.get("keys").is_some() {
        let sep = q.get("separator").unwrap_or("");
        // Consul: keys under the prefix, folded at the separator if given.
        let mut keys: Vec<String> = Vec::new();
        for (k, _) in kv.scan(ns, key) {
            let rest = &k[key.len()..];
            let k = match rest.find(sep).filter(|_| !sep.is_empty()) {
                Some(i) => format!("{key}{}", &rest[..i + sep.len()]),
                None => k.to_string(),
            };
            if keys.last() != Some(&k) {
                keys.push(k);
            }
        }
        if keys.is_empty() {
            return Err(ApiError::not_found(format!(
                "no keys under {key:?} in {ns:?}"
            )));
        }
        return Ok(http::with_index(
            http::json(StatusCode::OK, &json!(keys)),
            index,
        ));
    }
    if q.flag("recurse") {
        let all: Vec<_> = kv
            .scan(ns, key)
            .map(|(k, v)| entry_json(ns, k, v))
            .collect();
        if all.is_empty() {
            return Err(ApiError::not_found(format!(
                "no keys under {key:?} in {ns:?}"
            )));
        }
        return Ok(http::with_index(
            http::json(StatusCode::OK, &json!(all)),
            index,
        ));
    }
    let Some(v) = kv.get(ns, key) else {
        return Err(ApiError::not_found(format!("no key {key:?} in {ns:?}")));
    };
    let r = if q.flag("raw") {
        let mut r = Response::new(http::full(v.data.clone()));
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        r
    } else {
        http::json(StatusCode::OK, &json!([entry_json(ns, key, v)]))
    };
    Ok(http::with_index(r, index))
}

pub async fn namespaces(ctx: &ApiContext, q: &Query) -> ApiResult {
    let index = read_barrier(ctx, q).await?;
    let kv = ctx.kv.read();
    let list: Vec<_> = kv
        .namespaces()
        .map(|(n, keys)| json!({ "Namespace": n, "Keys": keys }))
        .collect();
    Ok(http::with_index(
        http::json(StatusCode::OK, &json!(list)),
        index.max(kv.applied()),
    ))
}

pub async fn drop_namespace(ctx: &ApiContext, ns: &str, q: &Query) -> ApiResult {
    let ns = http::decode(ns)?;
    check_namespace(&ns)?;
    let (index, out) = propose(ctx, session(q)?, Op::DropNamespace { ns }).await?;
    let removed = match out {
        Output::Removed(n) => n,
        _ => 0,
    };
    Ok(http::with_index(
        http::json(StatusCode::OK, &json!({ "removed_keys": removed })),
        index,
    ))
}
