//! The consensus log itself (pyraftlog's direct log access): read a range,
//! read one entry, append an opaque entry, follow new entries as NDJSON.

use super::ApiContext;
use super::http::{self, ApiError, ApiResult, ChannelBody, Query};
use base64::Engine;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use raft_core::{Entry, Payload};
use raft_kv::command::{self, Decoded, Op};
use serde_json::json;
use std::time::Duration;

/// Entries answered per range request at most.
const MAX_RANGE: u64 = 1000;

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// An entry as JSON: KV writes decoded, opaque data as base64 (and as
/// text when it is UTF-8).
/// A string write as the log shows it.
fn str_json(w: &raft_kv::strings::StrWrite) -> serde_json::Value {
    use raft_kv::strings::{Edit, Ttl, When};
    let edit = match &w.edit {
        Edit::Set(v) => json!({ "set": b64(v) }),
        Edit::IncrBy(n) => json!({ "incr_by": n }),
        Edit::IncrByFloat(f) => json!({ "incr_by_float": f }),
        Edit::Append(v) => json!({ "append": b64(v) }),
        Edit::SetRange { offset, data } => {
            json!({ "set_range": { "offset": offset, "data": b64(data) } })
        }
        Edit::Keep => json!("keep"),
    };
    let when = match w.when {
        When::Always => "always",
        When::Missing => "missing",
        When::Present => "present",
    };
    let ttl = match w.ttl {
        Ttl::Clear => json!("clear"),
        Ttl::Keep => json!("keep"),
        Ttl::For(ms) => json!({ "ms": ms }),
    };
    json!({ "string": { "ns": w.ns, "key": w.key, "edit": edit, "when": when, "ttl": ttl } })
}

pub fn entry_json(e: &Entry) -> serde_json::Value {
    let mut v = json!({ "index": e.index, "term": e.term });
    match &e.payload {
        Payload::Noop => v["kind"] = "noop".into(),
        Payload::Config(m) => {
            v["kind"] = "config".into();
            v["config"] = super::status::membership_json(m);
        }
        Payload::Normal(data) => match command::decode(data) {
            Decoded::Kv(r) => {
                v["kind"] = "kv".into();
                v["op"] = match r.op {
                    Op::Put {
                        ns,
                        key,
                        value,
                        cas,
                        lease,
                    } => {
                        json!({ "put": { "ns": ns, "key": key, "value": b64(&value), "cas": cas, "lease": lease } })
                    }
                    Op::Delete {
                        ns,
                        key,
                        prefix,
                        cas,
                    } => {
                        json!({ "delete": { "ns": ns, "key": key, "recurse": prefix, "cas": cas } })
                    }
                    Op::DropNamespace { ns } => json!({ "drop_namespace": { "ns": ns } }),
                    Op::Txn(ops) => {
                        let ops: Vec<_> = ops.iter().map(super::txn::op_json).collect();
                        json!({ "txn": ops })
                    }
                    Op::Lock {
                        ns,
                        key,
                        value,
                        lease,
                        acquire,
                    } => {
                        let what = if acquire { "acquire" } else { "release" };
                        json!({ what: { "ns": ns, "key": key, "value": b64(&value), "lease": lease } })
                    }
                    Op::LeaseGrant { ns, ttl_ms } => {
                        json!({ "lease_grant": { "ns": ns, "ttl_ms": ttl_ms } })
                    }
                    Op::LeaseRevoke { id } => json!({ "lease_revoke": { "id": id } }),
                    Op::LeaseExpire { ids } => json!({ "lease_expire": { "ids": ids } }),
                    Op::Str(w) => str_json(&w),
                    Op::Multi { watch, ops } => {
                        let watch: Vec<_> = watch
                            .iter()
                            .map(|w| json!({ "ns": w.ns, "key": w.key, "index": w.modify_index }))
                            .collect();
                        json!({ "multi": { "watch": watch, "ops": ops.len() } })
                    }
                    Op::Peek { ns, keys } => json!({ "peek": { "ns": ns, "keys": keys } }),
                };
                if let Some((client, seq)) = r.session {
                    v["session"] = json!({ "client": client, "seq": seq });
                }
            }
            Decoded::Opaque => {
                v["kind"] = "opaque".into();
                v["data"] = b64(data).into();
                if let Ok(t) = std::str::from_utf8(data) {
                    v["text"] = t.into();
                }
            }
        },
    }
    v
}

/// `GET /v1/log?from=A&to=B`: committed entries A..=B (at most 1000);
/// by default the last 100. Entries compacted into a snapshot are gone:
/// the answer starts at `first_index` then.
pub async fn range(ctx: &ApiContext, q: &Query) -> ApiResult {
    let s = ctx.node.status().raft;
    let (commit, first) = (s.commit, s.first_index);
    let to = q.u64("to")?.unwrap_or(commit).min(commit);
    let from = q.u64("from")?.unwrap_or(to.saturating_sub(99)).max(1);
    if from > to.saturating_add(1) {
        return Err(ApiError::bad_request(format!(
            "from={from} is past to={to}"
        )));
    }
    let hi = to.min(from + MAX_RANGE - 1) + 1;
    let mut out = Vec::new();
    let mut lo = from;
    while lo < hi {
        let batch = ctx
            .node
            .entries(lo, hi, 4 << 20)
            .await
            .map_err(ApiError::from_node)?;
        let Some(last) = batch.last() else { break };
        lo = last.index + 1;
        out.extend(batch.iter().map(entry_json));
    }
    let v = json!({ "commit_index": commit, "first_index": first, "entries": out });
    Ok(http::with_index(http::json(StatusCode::OK, &v), commit))
}

/// `GET /v1/log/<n>`: one committed entry.
pub async fn one(ctx: &ApiContext, n: &str) -> ApiResult {
    let index: u64 = n
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{n:?} is not a log index")))?;
    let got = ctx
        .node
        .entries(index, index + 1, usize::MAX)
        .await
        .map_err(ApiError::from_node)?;
    match got.first() {
        Some(e) if e.index == index => Ok(http::with_index(
            http::json(StatusCode::OK, &entry_json(e)),
            index,
        )),
        _ => {
            let s = ctx.node.status().raft;
            if index > 0 && index < s.first_index {
                return Err(ApiError::new(
                    StatusCode::GONE,
                    format!(
                        "entry {index} was compacted into a snapshot (the log starts at {})",
                        s.first_index
                    ),
                ));
            }
            Err(ApiError::not_found(format!(
                "no committed entry {index} here (commit index {})",
                s.commit
            )))
        }
    }
}

/// `POST /v1/log`: appends the body as an opaque entry; answers 201 with
/// its index once applied.
pub async fn append(ctx: &ApiContext, _q: &Query, body: Bytes) -> ApiResult {
    refuse_kv(&body)?;
    let (index, _) = ctx.node.propose(body).await.map_err(ApiError::from_node)?;
    Ok(http::with_index(
        http::json(StatusCode::CREATED, &json!({ "index": index })),
        index,
    ))
}

/// How long pyraftlog's `POST /` waits for its entry to be applied.
const PYRAFTLOG_WAIT: Duration = Duration::from_secs(3);

/// pyraftlog's `POST /`, with its meanings: `201 {"index"}` once applied,
/// `202 {"index"}` once committed but not applied within 3 s.
pub async fn append_pyraftlog(ctx: &ApiContext, body: Bytes) -> ApiResult {
    refuse_kv(&body)?;
    let until = tokio::time::Instant::now() + PYRAFTLOG_WAIT;
    let (index, term) = ctx.node.append(body).await.map_err(ApiError::from_node)?;
    let node = &ctx.node;
    node.wait_committed(index, term, PYRAFTLOG_WAIT)
        .await
        .map_err(ApiError::from_node)?;
    let left = until.saturating_duration_since(tokio::time::Instant::now());
    let code = match node.wait_applied(index, left).await {
        Ok(()) => StatusCode::CREATED,
        Err(_) => StatusCode::ACCEPTED,
    };
    Ok(http::with_index(
        http::json(code, &json!({ "index": index })),
        index,
    ))
}

/// Entries starting with `kv1` are the KV's.
fn refuse_kv(body: &Bytes) -> Result<(), ApiError> {
    if body.starts_with(b"kv1") {
        return Err(ApiError::bad_request(
            "entries starting with \"kv1\" are reserved for the KV; use /v1/kv",
        ));
    }
    Ok(())
}

/// `GET /v1/log/follow?from=N`: committed entries from N on, one JSON
/// object per line, as they commit, until the client hangs up or the node
/// shuts down.
pub fn follow(ctx: &ApiContext, q: &Query) -> ApiResult {
    let from = match q.u64("from")? {
        Some(f) => f,
        None => ctx.node.status().raft.commit + 1,
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let mut follower = ctx.node.follow(from);
    let mut draining = ctx.draining.clone();
    tokio::spawn(async move {
        loop {
            // A drain ends the stream (the client follows on from its
            // last index + 1 elsewhere).
            let batch = tokio::select! {
                b = follower.next_batch() => b,
                _ = tx.closed() => return,
                () = super::drained(&mut draining) => return,
            };
            let Ok(batch) = batch else { return };
            let mut chunk = Vec::new();
            for e in &batch {
                serde_json::to_writer(&mut chunk, &entry_json(e)).expect("JSON values serialize");
                chunk.push(b'\n');
            }
            if tx.send(Bytes::from(chunk)).await.is_err() {
                return;
            }
        }
    });
    let mut r = Response::new(ChannelBody(rx).boxed());
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(r)
}
