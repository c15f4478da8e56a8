//! Small HTTP helpers: JSON replies, typed errors, query strings, bodies.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use raft_core::node::NodeError;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

pub type Body = BoxBody<Bytes, Infallible>;

/// The header every reply carries: the log index the answer reflects
/// (Consul's X-Consul-Index).
pub const INDEX_HEADER: &str = "x-raft-index";
/// The same index under Consul's name, for Consul's clients and tools
/// (they pass it back as `?index=` of a blocking query).
pub const CONSUL_INDEX_HEADER: &str = "x-consul-index";

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

pub fn json(status: StatusCode, v: &serde_json::Value) -> Response<Body> {
    answer(status, v)
}

/// A typed answer body (`crate::answers`) as pretty JSON.
pub fn answer<T: serde::Serialize>(status: StatusCode, v: &T) -> Response<Body> {
    let mut body = serde_json::to_vec_pretty(v)
        .expect("invariant: answer bodies have string keys and finite numbers");
    body.push(b'\n');
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

pub fn with_index(mut r: Response<Body>, index: u64) -> Response<Body> {
    r.headers_mut()
        .insert(INDEX_HEADER, HeaderValue::from(index));
    r.headers_mut()
        .insert(CONSUL_INDEX_HEADER, HeaderValue::from(index));
    r
}

/// Why a request failed, as the client sees it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// The leader's client address, when known and useful.
    pub leader: Option<String>,
    /// Only the leader can do this: forward or redirect it there.
    pub not_leader: bool,
    /// Seconds after which asking again may succeed (`Retry-After`).
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            leader: None,
            not_leader: false,
            retry_after: None,
        }
    }
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, m)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, m)
    }

    pub fn from_node(e: NodeError) -> Self {
        let (status, retry_after) = match &e {
            NodeError::Refused(why) => refusal(why),
            NodeError::NotCaughtUp { .. } => (StatusCode::CONFLICT, Some(1)),
            _ => (node_status(&e), None),
        };
        let mut err = Self::new(status, e.to_string());
        err.not_leader = matches!(e, NodeError::NotLeader { .. } | NodeError::NoLeader);
        err.retry_after = retry_after;
        err
    }

    pub fn into_response(self) -> Response<Body> {
        let body = crate::openapi::ErrorBody {
            error: self.message,
            leader: self.leader,
        };
        let v = serde_json::to_value(body).expect("invariant: an error body serializes");
        let mut r = json(self.status, &v);
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(hyper::header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

/// The status of a node error other than a refusal.
fn node_status(e: &NodeError) -> StatusCode {
    match e {
        NodeError::NotLeader { .. }
        | NodeError::NoLeader
        | NodeError::NoQuorum
        | NodeError::Timeout(_)
        | NodeError::Dropped
        | NodeError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        NodeError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A protocol refusal's status, and whether to retry: `400` for a request
/// that can never succeed as asked, `409` for one the node's state stands
/// against, with `Retry-After` when that state passes by itself (a change
/// or transfer in progress).
fn refusal(why: &raft_core::Error) -> (StatusCode, Option<u32>) {
    use raft_core::Error as E;
    match why {
        E::ConfChangeInProgress | E::TransferInProgress(_) => (StatusCode::CONFLICT, Some(1)),
        E::IneligibleTarget(_) | E::Passive => (StatusCode::CONFLICT, None),
        E::InvalidConfChange(_) | E::InvalidConfig(_) | E::UnknownMode(_) | E::NotAVoter(_) => {
            (StatusCode::BAD_REQUEST, None)
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, None),
    }
}

pub type ApiResult = Result<Response<Body>, ApiError>;

/// A parsed query string. Flags without a value (`?raw`) map to "".
#[derive(Debug)]
pub struct Query(BTreeMap<String, String>);

/// The query parameters that are flags everywhere: present (or `true`,
/// `1`) or not (or `false`, `0`); any other value is refused. (`wait` is
/// a flag on `PUT /v1/operator/raft/peer` and a duration on KV reads:
/// each checks its own, `Query::strict_flag`.)
const FLAGS: &[&str] = &["learner", "raw", "rebuild", "recurse", "redirect", "stale"];

impl Query {
    /// Parses a query string; a parameter given twice, or a flag with a
    /// value that is not a boolean, is refused (400) rather than guessed.
    pub fn parse(q: Option<&str>) -> Result<Self, ApiError> {
        let mut m = BTreeMap::new();
        for part in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let (k, v) = (decode(k)?, decode(v)?);
            let boolean = ["", "true", "1", "false", "0"].contains(&v.as_str());
            if FLAGS.contains(&k.as_str()) && !boolean {
                return Err(ApiError::bad_request(format!(
                    "?{k} is a flag: give it no value, true, false, 1 or 0, not {v:?}"
                )));
            }
            if m.contains_key(&k) {
                return Err(ApiError::bad_request(format!("?{k} is given twice")));
            }
            m.insert(k, v);
        }
        Ok(Query(m))
    }
    /// Refuses (400, naming it) a parameter that is neither in `known` nor
    /// one every endpoint takes (`redirect`): a typo such as `?cass=1` for
    /// `?cas=1` must not turn a conditional write into an unconditional one.
    pub fn allow(&self, known: &[&str]) -> Result<(), ApiError> {
        let unknown = self
            .0
            .keys()
            .find(|k| k.as_str() != "redirect" && !known.contains(&k.as_str()));
        match unknown {
            None => Ok(()),
            Some(k) if known.is_empty() => Err(ApiError::bad_request(format!(
                "unknown parameter ?{k}: this endpoint takes none"
            ))),
            Some(k) => Err(ApiError::bad_request(format!(
                "unknown parameter ?{k}: this endpoint takes {}",
                known
                    .iter()
                    .map(|k| format!("?{k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// A flag that is not one everywhere (not in `FLAGS`), checked here.
    pub fn strict_flag(&self, k: &str) -> Result<bool, ApiError> {
        match self.get(k) {
            None | Some("false" | "0") => Ok(false),
            Some("" | "true" | "1") => Ok(true),
            Some(v) => Err(ApiError::bad_request(format!(
                "?{k} is a flag here: give it no value, true, false, 1 or 0, not {v:?}"
            ))),
        }
    }

    pub fn flag(&self, k: &str) -> bool {
        self.0.get(k).is_some_and(|v| v != "false" && v != "0")
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
    pub fn u64(&self, k: &str) -> Result<Option<u64>, ApiError> {
        self.get(k)
            .map(|v| {
                v.parse()
                    .map_err(|_| ApiError::bad_request(format!("?{k}= wants a number, not {v:?}")))
            })
            .transpose()
    }
}

/// A duration as queries give it: a number of seconds, or a number with
/// a unit (ms, s, m, h).
pub fn duration(v: &str) -> Option<std::time::Duration> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (n, unit) = v.split_at(split);
    let n: u64 = n.parse().ok()?;
    match unit {
        "ms" => Some(std::time::Duration::from_millis(n)),
        "" | "s" => Some(std::time::Duration::from_secs(n)),
        "m" => Some(std::time::Duration::from_secs(n.saturating_mul(60))),
        "h" => Some(std::time::Duration::from_secs(n.saturating_mul(3600))),
        _ => None,
    }
}

/// Percent-decodes a URL component into UTF-8 (`+` is a space).
pub fn decode(s: &str) -> Result<String, ApiError> {
    let bad = || ApiError::bad_request(format!("bad percent-encoding in {s:?}"));
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| ApiError::bad_request(format!("{s:?} is not UTF-8")))
}

/// Reads a request body of at most `max` bytes.
pub async fn read_body(body: axum::body::Body, max: usize) -> Result<Bytes, ApiError> {
    match http_body_util::Limited::new(body, max).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body over the {max}-byte limit"),
        )),
        Err(e) => Err(ApiError::bad_request(format!("reading the body: {e}"))),
    }
}

/// A streamed body fed from a channel (for following the log).
pub struct ChannelBody(pub mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|o| o.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_and_percent_decoding() {
        let q = Query::parse(Some("raw&ns=a%2Fb&cas=3&stale=false&x=a+b")).unwrap();
        assert!(q.flag("raw") && !q.flag("stale") && !q.flag("keys"));
        assert_eq!(q.get("ns"), Some("a/b"));
        assert_eq!(q.u64("cas").unwrap(), Some(3));
        assert_eq!(q.get("x"), Some("a b"));
        assert!(Query::parse(Some("cas=%zz")).is_err());
        assert!(Query::parse(Some("k=%ff")).is_err(), "not UTF-8");
        assert!(Query::parse(Some("cas=x")).unwrap().u64("cas").is_err());
    }

    #[test]
    fn unknown_parameters_are_refused_by_name() {
        let q = Query::parse(Some("cass=1&redirect")).unwrap();
        let e = q.allow(&["ns", "cas"]).unwrap_err();
        assert!(
            e.message.contains("?cass:") && e.message.ends_with("?ns, ?cas"),
            "{}",
            e.message
        );
        assert!(
            Query::parse(Some("cas=1&redirect"))
                .unwrap()
                .allow(&["cas"])
                .is_ok()
        );
        assert!(Query::parse(Some("x")).unwrap().allow(&[]).is_err());
    }

    #[test]
    fn duplicates_and_non_boolean_flags_are_refused() {
        let e = Query::parse(Some("ns=a&ns=b")).unwrap_err();
        assert!(e.message.contains("twice"), "{}", e.message);
        let e = Query::parse(Some("stale=maybe")).unwrap_err();
        assert!(e.message.contains("flag"), "{}", e.message);
        for ok in [
            "stale",
            "stale=",
            "stale=true",
            "stale=1",
            "stale=false",
            "stale=0",
        ] {
            assert!(Query::parse(Some(ok)).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refusals_keep_their_kind_to_the_status_code() {
        use raft_core::Error as E;
        let answer = |e: NodeError| {
            let r = ApiError::from_node(e).into_response();
            let retry = r.headers().get(hyper::header::RETRY_AFTER).cloned();
            (
                r.status().as_u16(),
                retry.map(|v| v.to_str().unwrap().to_string()),
            )
        };
        let busy = answer(NodeError::Refused(E::ConfChangeInProgress));
        assert_eq!(busy, (409, Some("1".into())));
        let moving = answer(NodeError::Refused(E::TransferInProgress(2)));
        assert_eq!(moving, (409, Some("1".into())));
        let slow = NodeError::NotCaughtUp {
            id: 4,
            waited: std::time::Duration::from_secs(120),
        };
        assert_eq!(answer(slow), (409, Some("1".into())));
        let bad = answer(NodeError::Refused(E::InvalidConfChange("no change".into())));
        assert_eq!(bad, (400, None));
        assert_eq!(answer(NodeError::Refused(E::NotAVoter(9))), (400, None));
        assert_eq!(
            answer(NodeError::Refused(E::IneligibleTarget(3))),
            (409, None)
        );
        assert_eq!(answer(NodeError::NoQuorum), (503, None));
    }
}
