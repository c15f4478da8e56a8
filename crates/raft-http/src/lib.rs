//! The command port of raftstack: HTTP/1.1 + JSON over TLS, serving the
//! replicated KV of `raft-kv`, the consensus log, watches, leases,
//! transactions, the node's status and its operator endpoints. Any HTTP
//! client is a client. Endpoints are documented in `docs/api.md`; Consul's
//! KV API is the model where it fits.
//!
//! A follower forwards writes to the leader's command port (or answers 307
//! to the leader when asked to with `?redirect`); reads are served by any
//! node, linearizable by default (a ReadIndex barrier), local with `?stale`.

#![deny(missing_docs)]

pub mod access;
pub mod answers;
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
mod openapi;
mod probes;
mod propose;
mod router;
pub mod routes;
mod status;
mod txn;
mod watch;

pub use client::{ClientError, HttpsClient};
pub use http::INDEX_HEADER;
pub use metrics::Metrics;
pub use propose::{ProposeError, Proposed, propose_anywhere};

use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
pub use limits::Limits;
use raft_core::NodeId;
use raft_core::node::Node;
use raft_kv::KvStore;
use raft_kv::Output;
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
    /// The Raft node the KV runs on.
    pub node: Node<Output>,
    /// The replicated KV, as this node has applied it.
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
    /// When the node started (status, process metrics).
    pub started: Instant,
    /// This port's request series, exposed at `/metrics`.
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
    let router = router::router(ctx.clone());
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
        let router = router.clone();
        conns.spawn(async move {
            let _slot = slot;
            serve_connection(acceptor, tcp, peer, ctx, router, drain).await;
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
    router: axum::Router,
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
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let mut req = req.map(axum::body::Body::new);
        req.extensions_mut().insert(who.clone());
        tower::ServiceExt::oneshot(router.clone(), req)
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
