//! The command port of raftstack: HTTP/1.1 + JSON over TLS, serving the
//! replicated KV of `raft-kv`, the consensus log, watches, leases,
//! transactions, the node's status and its operator endpoints. Any HTTP
//! client is a client. Endpoints are documented in `docs/api.md`; Consul's
//! KV API is the model where it fits.
//!
//! A follower forwards writes to the leader's command port (or answers 307
//! to the leader when asked to with `?redirect`); reads are served by any
//! node, linearizable by default (a ReadIndex barrier), local with `?stale`.

pub mod access;
mod backup;
mod blocking;
pub mod client;
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzz;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod http;
mod kv;
pub mod lease;
pub mod limits;
mod log;
mod metrics;
mod probes;
mod propose;
mod status;
mod txn;
mod watch;

pub use client::{ClientError, HttpsClient};
pub use http::INDEX_HEADER;
pub use metrics::Metrics;
pub use propose::{ProposeError, Proposed, propose_anywhere};

use bytes::Bytes;
use http::{ApiError, ApiResult, Body, Query};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue, LOCATION};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
pub use limits::Limits;
use raft_core::NodeId;
use raft_core::node::Node;
use raft_kv::KvStore;
use raft_kv::Output;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

/// Marks a request one node forwarded to another, so it is never forwarded
/// again (a leader change mid-flight answers 503 instead of looping).
pub(crate) const FORWARDED_HEADER: &str = "x-raft-forwarded";

/// Turns a member's address into its canonical form and default node id.
pub type IdOf = Box<dyn Fn(&str) -> Result<(NodeId, String), String> + Send + Sync>;

/// Everything the command port serves from.
pub struct ApiContext {
    pub node: Node<Output>,
    pub kv: KvStore,
    /// A member's node id from its address (how this deployment names
    /// members), or why the address is not valid.
    pub id_of: IdOf,
    /// Where a peer serves clients, as its handshake said.
    pub peer_client_addr: Box<dyn Fn(NodeId) -> Option<String> + Send + Sync>,
    /// The peer transport's drop counters, for `/metrics`.
    pub transport_counters: Box<dyn Fn() -> TransportCounters + Send + Sync>,
    /// Forwards writes to the leader.
    pub client: HttpsClient,
    pub started: Instant,
    pub metrics: Metrics,
    /// Bounds on connections and on how long a request may take to arrive.
    pub limits: Limits,
    /// Largest request body accepted.
    pub max_body: usize,
    /// Whether log reduction was asked for (reported in status).
    pub log_reduction: bool,
    /// The role of clients without a certificate (`--client-certs
    /// optional`); `None` refuses them.
    pub anonymous: Option<access::Role>,
    /// Turns true when the node starts shutting down: streams (watches,
    /// log follows) end with a last line then, instead of being cut.
    pub draining: tokio::sync::watch::Receiver<bool>,
    /// The leader's lease deadlines (`lease`); start it empty.
    pub lessor: lease::Lessor,
}

/// What the peer transport dropped (Raft retransmits; a growing count
/// means a slow peer or node).
#[derive(Clone, Debug, Default)]
pub struct TransportCounters {
    /// Messages from peers dropped because this node's inbound queue was
    /// full.
    pub inbound_dropped: u64,
    /// Per peer: messages dropped because its outbound queue was full.
    pub dropped: Vec<(NodeId, u64)>,
}

impl ApiContext {
    /// A member's name: its address in the configuration in force.
    fn name(&self, id: NodeId) -> String {
        let view = self.node.watch_membership();
        let addr = view.borrow().membership.addresses.get(&id).cloned();
        addr.unwrap_or_else(|| id.to_string())
    }

    /// Waits (bounded) for a leader to be known; its id.
    async fn leader(&self) -> Option<NodeId> {
        let mut rx = self.node.watch_status();
        let wait = Duration::from_secs(2);
        let r = tokio::time::timeout(wait, rx.wait_for(|s| s.raft.leader.is_some())).await;
        match r {
            Ok(Ok(s)) => s.raft.leader,
            _ => None,
        }
    }
}

/// Once `drain` turns true (or its sender is gone).
async fn drained(drain: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = drain.wait_for(|d| *d).await;
}

/// How long a drain waits for requests in flight before it cuts them.
pub const DRAIN: Duration = Duration::from_secs(10);

/// Serves the command port until `drain` turns true, then drains: stops
/// accepting, lets the requests in flight finish (up to `DRAIN`; idle
/// keep-alive connections close at once) and returns.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    ctx: Arc<ApiContext>,
    mut drain: tokio::sync::watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let expiry = tokio::spawn(lease::run(ctx.clone(), drain.clone()));
    let open = Arc::new(limits::Open::default());
    let mut conns = tokio::task::JoinSet::new();
    let mut refused_logged = Instant::now() - Duration::from_secs(60);
    loop {
        while conns.try_join_next().is_some() {}
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = drained(&mut drain) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and the like: wait for connections to close.
                tracing::warn!("command port accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = match open.admit(peer.ip(), &ctx.limits) {
            Ok(s) => s,
            Err(full) => {
                // Closed at once; said at most once a second.
                if refused_logged.elapsed() >= Duration::from_secs(1) {
                    tracing::warn!(%peer, "command port connection refused: {full:?} open");
                    refused_logged = Instant::now();
                }
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, ctx, drain) = (acceptor.clone(), ctx.clone(), drain.clone());
        conns.spawn(async move {
            let _slot = slot;
            serve_connection(acceptor, tcp, peer, ctx, drain).await;
        });
    }
    drop(listener);
    let open = conns.len();
    if open > 0 {
        tracing::info!("draining {open} command-port connections");
    }
    let finished = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN, finished).await.is_err() {
        tracing::warn!("requests still in flight after {DRAIN:?}: cut off");
        conns.abort_all();
    }
    expiry.abort();
}

/// One client connection: the TLS handshake within its time limit, then
/// HTTP/1.1 requests until the client closes.
async fn serve_connection(
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    ctx: Arc<ApiContext>,
    mut drain: tokio::sync::watch::Receiver<bool>,
) {
    let limits = ctx.limits.clone();
    let tls = match tokio::time::timeout(limits.handshake, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!(%peer, "command port TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "command port TLS handshake timed out");
            return;
        }
    };
    let who = Arc::new(access::Principal::of(
        tls.get_ref().1.peer_certificates(),
        ctx.anonymous,
    ));
    let svc = hyper::service::service_fn(move |req| {
        let (ctx, who) = (ctx.clone(), who.clone());
        async move { Ok::<_, Infallible>(handle(&ctx, &who, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .serve_connection(TokioIo::new(tls), svc);
    let mut conn = std::pin::pin!(conn);
    let r = tokio::select! {
        r = conn.as_mut() => r,
        () = drained(&mut drain) => {
            // The request in flight finishes; then the connection closes.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = r {
        tracing::debug!(%peer, "command port connection: {e}");
    }
}

/// The method to route by: HEAD answers as GET would, without the body.
fn get_for_head(method: &Method) -> &Method {
    if method == Method::HEAD {
        &Method::GET
    } else {
        method
    }
}

/// Whether `who` may make this request: 404 for no route, 405 for a route
/// with other methods, 403 outside its role.
fn admit(
    who: &access::Principal,
    method: &Method,
    path: &str,
    q: &Query,
    forwarded: bool,
) -> Result<(), ApiError> {
    let Some(need) = access::need(method, path) else {
        let allowed = access::methods_for(path);
        if allowed.is_empty() {
            return Err(ApiError::not_found(format!("no endpoint {method} {path}")));
        }
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{path} takes {}", allowed.join(", ")),
        ));
    };
    let ask = access::Ask {
        need,
        namespace: q.get("ns").unwrap_or(raft_kv::DEFAULT_NAMESPACE),
        address: q.get("address"),
        forwarded,
    };
    access::authorize(who, &ask)
}

async fn handle(
    ctx: &ApiContext,
    who: &access::Principal,
    req: Request<Incoming>,
) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or(path.clone(), |p| p.to_string());
    let forwarded = req.headers().contains_key(FORWARDED_HEADER);
    let content_type = req.headers().get(CONTENT_TYPE).cloned();
    let parsed = Query::parse(req.uri().query())
        .and_then(|q| admit(who, &method, &path, &q, forwarded).map(|()| q));
    let resp = match parsed {
        Err(e) => e.into_response(),
        Ok(q) => {
            let body = if method == Method::GET || method == Method::HEAD {
                Ok(Bytes::new())
            } else {
                let limit = ctx.limits.body_read;
                match tokio::time::timeout(limit, http::read_body(req.into_body(), ctx.max_body))
                    .await
                {
                    Ok(body) => body,
                    Err(_) => Err(ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        format!("the body did not arrive within {limit:?}"),
                    )),
                }
            };
            match body {
                Err(e) => e.into_response(),
                // HEAD is GET without the body (hyper leaves it out).
                Ok(body) => {
                    let req = (get_for_head(&method), path.as_str(), &q);
                    match route(ctx, who, req, body.clone()).await {
                        Ok(r) => r,
                        Err(e) if e.not_leader && !forwarded => {
                            let fwd = Forward {
                                method: &method,
                                path_and_query: &path_and_query,
                                content_type,
                                body,
                                redirect: q.flag("redirect"),
                            };
                            to_leader(ctx, fwd)
                                .await
                                .unwrap_or_else(|e| e.into_response())
                        }
                        Err(e) => e.into_response(),
                    }
                }
            }
        }
    };
    let mut resp = resp;
    if resp.status() == StatusCode::PAYLOAD_TOO_LARGE {
        // The rest of the body was not read: this connection is done.
        resp.headers_mut()
            .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    }
    ctx.metrics
        .record(&method, resp.status(), started.elapsed());
    resp
}

async fn route(
    ctx: &ApiContext,
    who: &access::Principal,
    (method, path, q): (&Method, &str, &Query),
    body: Bytes,
) -> ApiResult {
    let segs: Vec<&str> = path.trim_start_matches('/').splitn(3, '/').collect();
    match (method, segs.as_slice()) {
        (&Method::GET, [""]) | (&Method::GET, ["v1", "status"]) => {
            q.allow(&[])?;
            status::node_status(ctx, who)
        }
        (&Method::PATCH, [""]) | (&Method::PUT, ["v1", "mode"]) => {
            q.allow(&[])?;
            status::set_mode(ctx, &body).await
        }
        (&Method::GET, ["v1", "mode"]) => q.allow(&[]).and_then(|()| status::get_mode(ctx)),
        (&Method::POST, [""]) => {
            q.allow(&[])?;
            log::append_pyraftlog(ctx, body).await
        }
        (&Method::POST, ["v1", "log"]) => {
            q.allow(&[])?;
            log::append(ctx, q, body).await
        }
        (&Method::GET, ["v1", "status", "leader"]) => {
            q.allow(&[]).and_then(|()| status::leader(ctx))
        }
        (&Method::GET, ["v1", "status", "peers"]) => q.allow(&[]).and_then(|()| status::peers(ctx)),
        (&Method::GET, ["v1", "operator", rest]) if *rest == "raft/configuration" => {
            q.allow(&[]).and_then(|()| status::configuration(ctx))
        }
        (&Method::POST, ["v1", "operator", rest]) if *rest == "raft/transfer-leader" => {
            q.allow(&["id"])?;
            status::transfer(ctx, q).await
        }
        (&Method::PUT, ["v1", "operator", rest]) if *rest == "raft/peer" => {
            q.allow(&["address", "id", "learner", "rebuild", "wait"])?;
            status::add_peer(ctx, q).await
        }
        (&Method::DELETE, ["v1", "operator", rest]) if *rest == "raft/peer" => {
            q.allow(&["address", "id"])?;
            status::remove_peer(ctx, q).await
        }
        (_, ["v1", "kv"]) => kv::handle(ctx, method, "", q, body).await,
        (_, ["v1", "kv", key]) => kv::handle(ctx, method, &http::decode(key)?, q, body).await,
        (&Method::GET, ["v1", "watch"]) => watch::watch(ctx, "", q).await,
        (&Method::GET, ["v1", "watch", key]) => watch::watch(ctx, &http::decode(key)?, q).await,
        (&Method::PUT, ["v1", "txn"]) => txn::handle(ctx, who, q, body).await,
        (&Method::PUT, ["v1", "lease"]) => lease::grant(ctx, q).await,
        (&Method::GET, ["v1", "leases"]) => lease::list(ctx, q).await,
        (&Method::PUT, ["v1", "lease", rest]) if rest.ends_with("/keepalive") => {
            lease::keepalive(ctx, rest.trim_end_matches("/keepalive"), q).await
        }
        (&Method::GET, ["v1", "lease", id]) => lease::info(ctx, id, q).await,
        (&Method::DELETE, ["v1", "lease", id]) => lease::revoke(ctx, id, q).await,
        (&Method::GET, ["v1", "namespaces"]) => {
            q.allow(&["stale", "consistent"])?;
            kv::namespaces(ctx, q).await
        }
        (&Method::DELETE, ["v1", "namespaces", ns]) => {
            q.allow(&["client", "seq"])?;
            kv::drop_namespace(ctx, ns, q).await
        }
        // pyraftlog's `GET /log` and `GET /log/<n>` mean the same as ours.
        (&Method::GET, ["v1", "log"]) | (&Method::GET, ["log"]) => {
            q.allow(&["from", "to"])?;
            log::range(ctx, q).await
        }
        (&Method::GET, ["log", n]) => {
            q.allow(&[])?;
            log::one(ctx, n).await
        }
        (&Method::GET, ["v1", "log", "follow"]) => {
            q.allow(&["from"]).and_then(|()| log::follow(ctx, q))
        }
        (&Method::GET, ["v1", "log", n]) => {
            q.allow(&[])?;
            log::one(ctx, n).await
        }
        (&Method::POST, ["v1", "raft", "propose"]) => {
            q.allow(&[])?;
            propose::serve(ctx, body).await
        }
        (&Method::GET, ["metrics"]) => q.allow(&[]).map(|()| metrics::render(ctx)),
        (&Method::GET, ["v1", "health"]) => q.allow(&[]).and_then(|()| probes::health(ctx)),
        (&Method::GET, ["livez"]) => q.allow(&[]).and_then(|()| probes::livez(ctx)),
        (&Method::GET, ["readyz"]) => q.allow(&[]).and_then(|()| probes::readyz(ctx)),
        (&Method::GET, ["v1", "snapshot"]) => {
            q.allow(&["stale", "consistent"])?;
            backup::snapshot(ctx, q).await
        }
        _ => Err(ApiError::not_found(format!("no endpoint {method} {path}"))),
    }
}

struct Forward<'a> {
    method: &'a Method,
    path_and_query: &'a str,
    content_type: Option<HeaderValue>,
    body: Bytes,
    redirect: bool,
}

/// Sends a write this follower cannot do to the leader: forwarded over
/// HTTPS, or a 307 naming the leader when the client asked for that.
async fn to_leader(ctx: &ApiContext, f: Forward<'_>) -> ApiResult {
    let Some(leader) = ctx.leader().await else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no leader: the cluster cannot take writes now",
        ));
    };
    if leader == ctx.node.status().raft.id {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "leadership is changing; retry",
        ));
    }
    let Some(addr) = (ctx.peer_client_addr)(leader) else {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the leader ({}) has not told us its command port yet",
                ctx.name(leader)
            ),
        );
        e.leader = Some(ctx.name(leader));
        return Err(e);
    };
    if f.redirect {
        let mut r = http::json(
            StatusCode::TEMPORARY_REDIRECT,
            &serde_json::json!({ "leader": addr }),
        );
        let loc = format!("https://{addr}{}", f.path_and_query);
        if let Ok(v) = HeaderValue::from_str(&loc) {
            r.headers_mut().insert(LOCATION, v);
        }
        return Ok(r);
    }
    ctx.metrics.forwarded();
    let ct = f
        .content_type
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream");
    let reply = ctx
        .client
        .request(
            &addr,
            f.method.clone(),
            f.path_and_query,
            &[(FORWARDED_HEADER, "1"), ("content-type", ct)],
            f.body,
        )
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("forwarding to the leader: {e}"),
            )
        })?;
    let mut r = Response::new(http::full(reply.body));
    *r.status_mut() = reply.status;
    for h in [CONTENT_TYPE.as_str(), INDEX_HEADER] {
        if let Some(v) = reply.headers.get(h) {
            r.headers_mut().insert(h, v.clone());
        }
    }
    Ok(r)
}
