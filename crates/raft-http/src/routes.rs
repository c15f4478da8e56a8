//! The route table: every route the command port serves, with what it
//! needs (`access`), the query parameters it takes, what it does and the
//! handler that serves it. The router (`router.rs`), the role check, the
//! refusal of unknown parameters and the OpenAPI description
//! (`openapi.rs`) are all made from this one table, so they cannot
//! disagree.

use super::access::{Need, Principal, Scope};
use super::http::{self, ApiResult, Query};
use super::{ApiContext, backup, kv, lease, log, metrics, openapi, probes, propose, status};
use super::{txn, watch};
use bytes::Bytes;
use hyper::Method;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// What a handler is given: the request as the pipeline checked it.
pub(crate) struct Call {
    /// The method routed by (HEAD is GET).
    pub method: Method,
    pub who: Arc<Principal>,
    pub q: Query,
    pub body: Bytes,
    /// The request's path, still percent-encoded.
    pub path: String,
}

impl Call {
    /// The rest of the path after `prefix`, percent-decoded (a key).
    fn key(&self, prefix: &str) -> Result<String, http::ApiError> {
        http::decode(self.path.strip_prefix(prefix).unwrap_or(""))
    }

    /// The path segment after `prefix`, as sent (an id or a number).
    fn segment(&self, prefix: &str) -> &str {
        let rest = self.path.strip_prefix(prefix).unwrap_or("");
        rest.split('/').next().unwrap_or("")
    }
}

type Reply = Pin<Box<dyn Future<Output = ApiResult> + Send>>;
type Serve = fn(Arc<ApiContext>, Call) -> Reply;

/// One route.
pub struct Route {
    /// GET, PUT, POST, DELETE or PATCH (GET serves HEAD too).
    pub method: &'static str,
    /// `{x}` is one path segment, `{*x}` the rest of the path.
    pub pattern: &'static str,
    /// The role a client needs for it.
    pub need: Need,
    /// The query parameters it takes (besides `redirect`, which every
    /// route takes); any other is refused with 400.
    pub params: &'static [&'static str],
    /// What it does, in a line (the OpenAPI summary).
    pub summary: &'static str,
    pub(crate) serve: Serve,
}

/// Makes a `Serve` from a block using `ctx: &ApiContext` and `call`.
macro_rules! serve {
    (|$ctx:ident, $call:ident| $body:expr) => {
        |ctx: Arc<ApiContext>, $call: Call| -> Reply {
            Box::pin(async move {
                let $ctx: &ApiContext = &ctx;
                $body
            })
        }
    };
}

const KV_READ: &[&str] = &[
    "ns",
    "recurse",
    "keys",
    "separator",
    "raw",
    "stale",
    "consistent",
    "index",
    "wait",
];
const KV_WRITE: &[&str] = &["ns", "cas", "client", "seq", "lease", "acquire", "release"];
const KV_DELETE: &[&str] = &["ns", "recurse", "cas", "client", "seq"];
const WATCH: &[&str] = &["ns", "recurse", "from", "stale", "consistent"];
const READ: &[&str] = &["stale", "consistent"];
const SESSION: &[&str] = &["client", "seq"];

const fn route(
    method: &'static str,
    pattern: &'static str,
    need: Need,
    params: &'static [&'static str],
    summary: &'static str,
    serve: Serve,
) -> Route {
    Route {
        method,
        pattern,
        need,
        params,
        summary,
        serve,
    }
}

use Need::{AddMember, Admin, Status};
const READ_ALL: Need = Need::Read(Scope::Everything);
const WRITE_ALL: Need = Need::Write(Scope::Everything);
const READ_NS: Need = Need::Read(Scope::Namespace);
const WRITE_NS: Need = Need::Write(Scope::Namespace);

/// Every route the command port serves.
pub const ROUTES: &[Route] = &[
    route(
        "GET",
        "/",
        Status,
        &[],
        "this node's status (pyraftlog's `GET /`)",
        serve!(|c, call| status::node_status(c, &call.who)),
    ),
    route(
        "GET",
        "/v1/status",
        Status,
        &[],
        "this node's status, the cluster's health and its members",
        serve!(|c, call| status::node_status(c, &call.who)),
    ),
    route(
        "GET",
        "/v1/status/leader",
        Status,
        &[],
        "the leader's address",
        serve!(|c, _call| status::leader(c)),
    ),
    route(
        "GET",
        "/v1/status/peers",
        Status,
        &[],
        "the voters' addresses",
        serve!(|c, _call| status::peers(c)),
    ),
    route(
        "GET",
        "/v1/mode",
        Status,
        &[],
        "this node's mode (active or passive)",
        serve!(|c, _call| status::get_mode(c)),
    ),
    route(
        "GET",
        "/v1/operator/raft/configuration",
        Status,
        &[],
        "the configuration in force, member by member",
        serve!(|c, _call| status::configuration(c)),
    ),
    route(
        "GET",
        "/metrics",
        Status,
        &[],
        "metrics in the OpenMetrics text format (Prometheus scrapes it)",
        serve!(|c, _call| Ok(metrics::render(c))),
    ),
    route(
        "GET",
        "/v1/health",
        Status,
        &[],
        "the cluster's health: 200 green or yellow, 503 red",
        serve!(|c, _call| probes::health(c)),
    ),
    route(
        "GET",
        "/livez",
        Status,
        &[],
        "200 while the node runs and its disk works",
        serve!(|c, _call| probes::livez(c)),
    ),
    route(
        "GET",
        "/readyz",
        Status,
        &[],
        "200 when the node can serve reads (it knows a leader)",
        serve!(|c, _call| probes::readyz(c)),
    ),
    route(
        "GET",
        "/v1/openapi.json",
        Status,
        &[],
        "this description of the command port (OpenAPI 3.1)",
        serve!(|_c, _call| Ok(openapi::serve())),
    ),
    route(
        "PATCH",
        "/",
        Admin,
        &[],
        "sets the mode (pyraftlog's `PATCH /`)",
        serve!(|c, call| status::set_mode(c, &call.body).await),
    ),
    route(
        "PUT",
        "/v1/mode",
        Admin,
        &[],
        "sets this node's mode",
        serve!(|c, call| status::set_mode(c, &call.body).await),
    ),
    route(
        "POST",
        "/v1/operator/raft/transfer-leader",
        Admin,
        &["id"],
        "hands leadership to a member, or to the best one",
        serve!(|c, call| status::transfer(c, &call.q).await),
    ),
    route(
        "PUT",
        "/v1/operator/raft/peer",
        AddMember,
        &["address", "id", "learner", "rebuild", "wait"],
        "adds a member (a voter, or a learner), or rebuilds one",
        serve!(|c, call| status::add_peer(c, &call.q).await),
    ),
    route(
        "DELETE",
        "/v1/operator/raft/peer",
        Admin,
        &["address", "id"],
        "removes a member",
        serve!(|c, call| status::remove_peer(c, &call.q).await),
    ),
    route(
        "POST",
        "/",
        WRITE_ALL,
        &[],
        "appends the body to the log (pyraftlog's `POST /`: 201 applied, 202 committed)",
        serve!(|c, call| log::append_pyraftlog(c, call.body).await),
    ),
    route(
        "POST",
        "/v1/log",
        WRITE_ALL,
        &[],
        "appends the body to the log; answers once it commits",
        serve!(|c, call| log::append(c, &call.q, call.body).await),
    ),
    route(
        "GET",
        "/v1/log",
        READ_ALL,
        &["from", "to"],
        "committed log entries from..to (inclusive)",
        serve!(|c, call| log::range(c, &call.q).await),
    ),
    route(
        "GET",
        "/log",
        READ_ALL,
        &["from", "to"],
        "committed log entries (pyraftlog's `GET /log`)",
        serve!(|c, call| log::range(c, &call.q).await),
    ),
    route(
        "GET",
        "/log/{n}",
        READ_ALL,
        &[],
        "one committed log entry (pyraftlog's `GET /log/<n>`)",
        serve!(|c, call| log::one(c, call.segment("/log/")).await),
    ),
    route(
        "GET",
        "/v1/log/follow",
        READ_ALL,
        &["from"],
        "committed entries as they commit, one JSON line each",
        serve!(|c, call| log::follow(c, &call.q)),
    ),
    route(
        "GET",
        "/v1/log/{n}",
        READ_ALL,
        &[],
        "one committed log entry",
        serve!(|c, call| log::one(c, call.segment("/v1/log/")).await),
    ),
    route(
        "GET",
        "/v1/snapshot",
        READ_ALL,
        READ,
        "a backup: the KV's state as a snapshot file",
        serve!(|c, call| backup::snapshot(c, &call.q).await),
    ),
    route(
        "GET",
        "/v1/namespaces",
        READ_ALL,
        READ,
        "the KV's namespaces and their key counts",
        serve!(|c, call| kv::namespaces(c, &call.q).await),
    ),
    route(
        "DELETE",
        "/v1/namespaces/{ns}",
        Admin,
        SESSION,
        "drops a namespace and every key in it",
        serve!(|c, call| kv::drop_namespace(c, call.segment("/v1/namespaces/"), &call.q).await),
    ),
    // Batches another node's front end forwards (`propose`).
    route(
        "POST",
        "/v1/raft/propose",
        Admin,
        &[],
        "proposes a batch of KV requests (between nodes)",
        serve!(|c, call| propose::serve(c, call.body).await),
    ),
    route(
        "GET",
        "/v1/kv",
        READ_NS,
        KV_READ,
        "lists the namespace's keys (with ?recurse or ?keys)",
        serve!(|c, call| kv::handle(c, &call.method, "", &call.q, call.body).await),
    ),
    route(
        "GET",
        "/v1/kv/{*key}",
        READ_NS,
        KV_READ,
        "reads a key, or the keys under a prefix",
        serve!(
            |c, call| kv::handle(c, &call.method, &call.key("/v1/kv/")?, &call.q, call.body).await
        ),
    ),
    route(
        "PUT",
        "/v1/kv",
        WRITE_NS,
        KV_WRITE,
        "refused: a write needs a key",
        serve!(|c, call| kv::handle(c, &call.method, "", &call.q, call.body).await),
    ),
    route(
        "PUT",
        "/v1/kv/{*key}",
        WRITE_NS,
        KV_WRITE,
        "writes a key (compare-and-set with ?cas, locks with ?acquire)",
        serve!(
            |c, call| kv::handle(c, &call.method, &call.key("/v1/kv/")?, &call.q, call.body).await
        ),
    ),
    route(
        "DELETE",
        "/v1/kv",
        WRITE_NS,
        KV_DELETE,
        "deletes every key of the namespace (with ?recurse)",
        serve!(|c, call| kv::handle(c, &call.method, "", &call.q, call.body).await),
    ),
    route(
        "DELETE",
        "/v1/kv/{*key}",
        WRITE_NS,
        KV_DELETE,
        "deletes a key, or the keys under a prefix",
        serve!(
            |c, call| kv::handle(c, &call.method, &call.key("/v1/kv/")?, &call.q, call.body).await
        ),
    ),
    route(
        "GET",
        "/v1/watch",
        READ_NS,
        WATCH,
        "the namespace's changes as they apply, one JSON line each",
        serve!(|c, call| watch::watch(c, "", &call.q).await),
    ),
    route(
        "GET",
        "/v1/watch/{*key}",
        READ_NS,
        WATCH,
        "a key's changes (or a prefix's) as they apply",
        serve!(|c, call| watch::watch(c, &call.key("/v1/watch/")?, &call.q).await),
    ),
    // Each operation's namespace is checked too, once the body is read.
    route(
        "PUT",
        "/v1/txn",
        WRITE_NS,
        SESSION,
        "runs operations as one entry: all apply or none",
        serve!(|c, call| txn::handle(c, &call.who, &call.q, call.body).await),
    ),
    // A lease belongs to a namespace (its `?ns=`).
    route(
        "PUT",
        "/v1/lease",
        WRITE_NS,
        &["ttl", "ns", "client", "seq"],
        "grants a lease",
        serve!(|c, call| lease::grant(c, &call.q).await),
    ),
    route(
        "GET",
        "/v1/leases",
        READ_NS,
        &["ns", "stale", "consistent"],
        "the namespace's leases",
        serve!(|c, call| lease::list(c, &call.q).await),
    ),
    route(
        "GET",
        "/v1/lease/{id}",
        READ_NS,
        &["ns"],
        "a lease's TTL, time left and keys",
        serve!(|c, call| lease::info(c, call.segment("/v1/lease/"), &call.q).await),
    ),
    route(
        "DELETE",
        "/v1/lease/{id}",
        WRITE_NS,
        &["ns", "client", "seq"],
        "revokes a lease: its keys go, its locks are freed",
        serve!(|c, call| lease::revoke(c, call.segment("/v1/lease/"), &call.q).await),
    ),
    route(
        "PUT",
        "/v1/lease/{id}/keepalive",
        WRITE_NS,
        &["ns"],
        "renews a lease for a full TTL (leader only)",
        serve!(|c, call| lease::keepalive(c, call.segment("/v1/lease/"), &call.q).await),
    ),
];

/// The route that serves `method` (HEAD as GET) on `path`, if any.
pub fn find(method: &Method, path: &str) -> Option<&'static Route> {
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    ROUTES
        .iter()
        .find(|r| r.method == method && matches(r.pattern, path))
}

/// What `path` (with `method`, HEAD as GET) needs, if any route serves it.
pub fn need(method: &Method, path: &str) -> Option<Need> {
    find(method, path).map(|r| r.need)
}

/// The methods some route serves `path` with (for a 405's `Allow`).
pub fn methods_for(path: &str) -> Vec<&'static str> {
    let mut m: Vec<&'static str> = ROUTES
        .iter()
        .filter(|r| matches(r.pattern, path))
        .map(|r| r.method)
        .collect();
    m.dedup();
    m
}

/// Whether `path` is one `pattern` describes: `{x}` is one non-empty
/// segment, `{*x}` the rest of the path (possibly empty: `/v1/kv/` is
/// the namespace's root, as `/v1/kv` is).
fn matches(pattern: &str, path: &str) -> bool {
    let mut want = pattern.trim_start_matches('/').split('/');
    let mut got = path.trim_start_matches('/').split('/');
    loop {
        match (want.next(), got.next()) {
            (None, None) => return true,
            (Some(w), Some(_)) if w.starts_with("{*") => return true,
            (Some(w), Some(g)) if w.starts_with('{') && !g.is_empty() => {}
            (Some(w), Some(g)) if w == g => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_their_patterns_only() {
        let get = Method::GET;
        let read_ns = Some(Need::Read(Scope::Namespace));
        assert_eq!(need(&get, "/"), Some(Need::Status));
        assert_eq!(need(&get, "/v1/kv/a/b/c"), read_ns);
        assert_eq!(need(&get, "/v1/kv"), read_ns);
        assert_eq!(need(&Method::HEAD, "/v1/kv/a"), read_ns);
        assert_eq!(
            need(&Method::PUT, "/v1/kv/a"),
            Some(Need::Write(Scope::Namespace))
        );
        assert_eq!(need(&get, "/v1/log/7"), Some(Need::Read(Scope::Everything)));
        assert_eq!(
            need(&get, "/v1/log/follow"),
            Some(Need::Read(Scope::Everything))
        );
        assert_eq!(need(&Method::DELETE, "/v1/namespaces/x"), Some(Need::Admin));
        assert_eq!(need(&get, "/v1/namespaces/x"), None);
        assert_eq!(need(&get, "/v1/nothing"), None);
        assert_eq!(need(&Method::POST, "/v1/kv/a"), None);
        assert_eq!(need(&get, "/v1/kv/"), read_ns);
        assert_eq!(need(&get, "/log/"), None, "an empty {{n}}");
        assert_eq!(need(&get, "/log/1/2"), None);
    }

    #[test]
    fn a_route_is_listed_once_and_takes_each_parameter_once() {
        for (i, r) in ROUTES.iter().enumerate() {
            let again = ROUTES[i + 1..]
                .iter()
                .any(|o| o.method == r.method && o.pattern == r.pattern);
            assert!(!again, "{} {} listed twice", r.method, r.pattern);
            for (j, p) in r.params.iter().enumerate() {
                assert!(
                    !r.params[j + 1..].contains(p),
                    "{} {}: ?{p}",
                    r.method,
                    r.pattern
                );
                assert_ne!(*p, "redirect", "every route takes ?redirect");
            }
        }
    }
}
