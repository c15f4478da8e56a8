//! A Redis-protocol (RESP2 and RESP3) front end for raftstack's replicated
//! KV: redis-cli, redis-benchmark and the Redis client of any language
//! read and write the same keys as the HTTPS command port, replicated and
//! durable on a quorum before each reply, linearizable reads by default.
//!
//! The port speaks TLS with the node's certificates and, like the command
//! port, takes the role a client certificate names; a plaintext listener
//! is for loopback only. Any node serves any client: a follower sends
//! writes to the leader (`raft_http::propose_anywhere`) and reads
//! behind a ReadIndex barrier of its own. The commands, their mapping onto
//! the KV and what differs from Redis are in `docs/resp.md`.
//!
//! ```no_run
//! # async fn run(api: std::sync::Arc<raft_http::ApiContext>,
//! #              tls: std::sync::Arc<tokio_rustls::rustls::ServerConfig>) {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:6379").await.unwrap();
//! let (_stop, drain) = tokio::sync::watch::channel(false);
//! raft_resp::serve(listener, Some(tls), api, raft_resp::RespConfig::default(), drain).await;
//! # }
//! ```
#![deny(missing_docs)]

mod batcher;
mod cmd;
pub mod codec;
mod conn;
pub mod frame;
mod glob;
mod pubsub;
mod session;

use frame::Frame;
use raft_core::NodeId;
use raft_http::ApiContext;
use raft_http::access::{Principal, Role};
use raft_http::limits::Open;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

/// The Redis version HELLO and INFO report: the command set served is
/// Redis 7's, for the commands `docs/resp.md` lists.
pub const REDIS_VERSION: &str = "7.0.0";

/// The port's limits.
#[derive(Clone, Debug)]
pub struct RespConfig {
    /// The longest bulk string a request may carry.
    pub max_bulk: usize,
    /// The largest request, all its arguments together.
    pub max_request: usize,
    /// The most pipelined commands taken as one batch.
    pub max_pipeline: usize,
    /// The role of clients of a plaintext listener (no certificate).
    pub plaintext_role: Role,
}

impl Default for RespConfig {
    fn default() -> Self {
        RespConfig {
            max_bulk: 16 << 20,
            max_request: 32 << 20,
            max_pipeline: 1024,
            plaintext_role: Role::ReadWrite,
        }
    }
}

/// What every connection of the port shares.
pub struct Server {
    /// The node, its KV and its command port's settings.
    pub api: Arc<ApiContext>,
    /// When the port started.
    pub started: Instant,
    /// The port it listens on.
    pub port: u16,
    /// Its limits.
    pub config: RespConfig,
    /// Where writes go (group commit across connections).
    batcher: batcher::Batcher,
    next_id: AtomicU64,
    clients: AtomicUsize,
}

impl Server {
    /// A member's name: its address in the configuration in force.
    pub fn name(&self, id: NodeId) -> String {
        let view = self.api.node.watch_membership();
        let addr = view.borrow().membership.addresses.get(&id).cloned();
        addr.unwrap_or_else(|| id.to_string())
    }

    /// Connections open now.
    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }

    /// Replicates `ops`: plain ops (batched with other connections'
    /// writes), or one `Multi` alone.
    pub async fn propose(&self, ops: Vec<raft_kv::Op>) -> Vec<raft_http::Proposed> {
        self.batcher.propose(ops).await
    }

    /// Waits for a linearizable read point (a ReadIndex barrier), unless
    /// the connection said READONLY; the error reply if there is none.
    pub async fn read_point(&self, readonly: bool) -> Result<(), Frame> {
        if readonly {
            return Ok(());
        }
        self.api
            .node
            .read_barrier()
            .await
            .map(|_| ())
            .map_err(|e| conn::node_error(&e))
    }
}

/// Serves RESP on `listener` until `drain` turns true: over TLS with
/// `tls` (client certificates as it requires), or in plaintext when
/// `None` (the caller keeps that to loopback). Then stops accepting, lets
/// each connection finish the commands it is running (up to
/// `raft_http::DRAIN`) and returns.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    api: Arc<ApiContext>,
    config: RespConfig,
    mut drain: tokio::sync::watch::Receiver<bool>,
) {
    let port = listener.local_addr().map_or(0, |a| a.port());
    let batcher = batcher::Batcher::start(api.clone());
    let srv = Arc::new(Server {
        batcher,
        api,
        started: Instant::now(),
        port,
        config,
        next_id: AtomicU64::new(1),
        clients: AtomicUsize::new(0),
    });
    let acceptor = tls.map(TlsAcceptor::from);
    let open = Arc::new(Open::default());
    let mut conns = tokio::task::JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = conn::drained(&mut drain) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("RESP port accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = open.admit(peer.ip(), &srv.api.limits) else {
            tracing::debug!(%peer, "RESP connection refused: too many open");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (srv, acceptor, drain) = (srv.clone(), acceptor.clone(), drain.clone());
        conns.spawn(async move {
            let _slot = slot;
            srv.clients.fetch_add(1, Ordering::Relaxed);
            accept(tcp, peer, acceptor, &srv, drain).await;
            srv.clients.fetch_sub(1, Ordering::Relaxed);
        });
    }
    drop(listener);
    let finished = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(raft_http::DRAIN, finished)
        .await
        .is_err()
    {
        conns.abort_all();
    }
}

/// One connection: the TLS handshake (if any), then its commands.
async fn accept(
    tcp: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    acceptor: Option<TlsAcceptor>,
    srv: &Arc<Server>,
    drain: tokio::sync::watch::Receiver<bool>,
) {
    let id = srv.next_id.fetch_add(1, Ordering::Relaxed);
    let Some(acceptor) = acceptor else {
        let who = Principal::Client {
            role: srv.config.plaintext_role,
            namespaces: Vec::new(),
            subject: "a plaintext RESP client".into(),
        };
        let s = session::Session::new(id, peer, who);
        return conn::serve(tcp, s, srv, drain).await;
    };
    let handshake = srv.api.limits.handshake;
    let tls = match tokio::time::timeout(handshake, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!(%peer, "RESP TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "RESP TLS handshake timed out");
            return;
        }
    };
    let who = Principal::of(tls.get_ref().1.peer_certificates(), srv.api.anonymous);
    conn::serve(tls, session::Session::new(id, peer, who), srv, drain).await;
}
