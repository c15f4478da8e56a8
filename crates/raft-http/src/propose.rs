//! Proposing KV requests from any node: `propose_anywhere` proposes a
//! batch here when this node leads and sends it to the leader's
//! `POST /v1/raft/propose` (MessagePack, nodes and admins only) when it
//! does not. Front ends other than the HTTP one (the RESP port) write
//! through it, so a client may write through any node.

use super::ApiContext;
use super::http::{self, ApiError, ApiResult};
use bytes::Bytes;
use hyper::{Method, StatusCode};
use raft_core::Index;
use raft_core::node::NodeError;
use raft_kv::command::{self, Decoded, Output, Request};
use serde::{Deserialize, Serialize};

/// Why a proposal did not apply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum ProposeError {
    /// Nothing was written: no leader, or it could not be reached. Safe
    /// to retry.
    #[error("no leader: {0}")]
    NoLeader(String),
    /// The leader cannot reach a quorum; the write may still commit.
    #[error("no quorum: {0}")]
    NoQuorum(String),
    /// No answer in time; the write may still commit.
    #[error("unknown outcome: {0}")]
    Unknown(String),
    /// Refused before reaching the log.
    #[error("refused: {0}")]
    Refused(String),
}

impl ProposeError {
    fn of(e: NodeError) -> Self {
        match e {
            NodeError::NotLeader { .. } | NodeError::NoLeader | NodeError::Dropped => {
                ProposeError::NoLeader(e.to_string())
            }
            NodeError::NoQuorum => ProposeError::NoQuorum(e.to_string()),
            NodeError::TooLarge { .. } | NodeError::Refused(_) => {
                ProposeError::Refused(e.to_string())
            }
            other => ProposeError::Unknown(other.to_string()),
        }
    }
}

/// One request's outcome: its index and output, or why it did not apply.
pub type Proposed = Result<(Index, Output), ProposeError>;

/// Whether `e` left the log untouched, so the request may go to the
/// leader instead.
fn refused_here(e: &NodeError) -> bool {
    matches!(e, NodeError::NotLeader { .. } | NodeError::NoLeader)
}

/// Proposes `batch` in order and answers each, in order: here if this
/// node leads, else at the leader. A request this node refused as a
/// follower is sent on; one whose outcome is unknown never is.
pub async fn propose_anywhere(ctx: &ApiContext, batch: Vec<Request>) -> Vec<Proposed> {
    let encoded: Vec<Bytes> = batch.iter().map(command::encode).collect();
    let here = ctx.node.propose_all(encoded.clone()).await;
    let away: Vec<usize> = (0..here.len())
        .filter(|&i| matches!(&here[i], Err(e) if refused_here(e)))
        .collect();
    let mut out: Vec<Proposed> = here
        .into_iter()
        .map(|r| r.map_err(ProposeError::of))
        .collect();
    if away.is_empty() {
        return out;
    }
    for chunk in chunks(&away, &encoded, ctx.max_body / 2) {
        let sent: Vec<Bytes> = chunk.iter().map(|&i| encoded[i].clone()).collect();
        let answers = match forward(ctx, sent).await {
            Ok(a) if a.len() == chunk.len() => a,
            Ok(a) => {
                let why = format!("the leader answered {} of {}", a.len(), chunk.len());
                vec![Err(ProposeError::Unknown(why)); chunk.len()]
            }
            Err(e) => vec![Err(e); chunk.len()],
        };
        for (&i, a) in chunk.iter().zip(answers) {
            out[i] = a;
        }
    }
    out
}

/// `which` of `encoded` in runs of at most `max` bytes (at least one
/// request each), so every forward fits the leader's body limit.
fn chunks<'a>(which: &'a [usize], encoded: &[Bytes], max: usize) -> Vec<&'a [usize]> {
    let mut out = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (k, &i) in which.iter().enumerate() {
        let len = encoded[i].len() + 8;
        if k > start && size + len > max {
            out.push(&which[start..k]);
            (start, size) = (k, 0);
        }
        size += len;
    }
    if start < which.len() {
        out.push(&which[start..]);
    }
    out
}

/// Sends `batch` to the leader's `/v1/raft/propose`.
async fn forward(ctx: &ApiContext, batch: Vec<Bytes>) -> Result<Vec<Proposed>, ProposeError> {
    let no_leader = |why: String| ProposeError::NoLeader(why);
    let leader = ctx
        .leader()
        .await
        .ok_or_else(|| no_leader("none known".into()))?;
    if leader == ctx.node.status().raft.id {
        return Err(no_leader("leadership is changing".into()));
    }
    let addr = (ctx.peer_client_addr)(leader).ok_or_else(|| {
        no_leader(format!(
            "{} has not said its command port",
            ctx.name(leader)
        ))
    })?;
    let body = rmp_serde::to_vec(&batch).expect("byte strings always serialize");
    ctx.metrics.forwarded();
    let headers = [
        (super::FORWARDED_HEADER, "1"),
        ("content-type", "application/msgpack"),
    ];
    let reply = ctx
        .client
        .request(
            &addr,
            Method::POST,
            "/v1/raft/propose",
            &headers,
            body.into(),
        )
        .await
        // Sent, maybe received: the outcome is not known.
        .map_err(|e| ProposeError::Unknown(format!("forwarding to the leader: {e}")))?;
    if reply.status != StatusCode::OK {
        let why = String::from_utf8_lossy(&reply.body).into_owned();
        return Err(ProposeError::Unknown(format!(
            "the leader answered {}: {why}",
            reply.status
        )));
    }
    rmp_serde::from_slice(&reply.body)
        .map_err(|e| ProposeError::Unknown(format!("the leader's answer: {e}")))
}

/// `POST /v1/raft/propose`: a forwarded batch (MessagePack list of
/// encoded KV requests), proposed here, answered in order.
pub async fn serve(ctx: &ApiContext, body: Bytes) -> ApiResult {
    let batch: Vec<Bytes> = rmp_serde::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("a MessagePack list of requests: {e}")))?;
    if let Some(i) = batch
        .iter()
        .position(|b| !matches!(command::decode(b), Decoded::Kv(_)))
    {
        return Err(ApiError::bad_request(format!(
            "request {i} is not a KV request"
        )));
    }
    let out: Vec<Proposed> = ctx
        .node
        .propose_all(batch)
        .await
        .into_iter()
        .map(|r| r.map_err(ProposeError::of))
        .collect();
    let bytes = rmp_serde::to_vec(&out).expect("outputs always serialize");
    let mut r = hyper::Response::new(http::full(Bytes::from(bytes)));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/msgpack"),
    );
    Ok(r)
}
