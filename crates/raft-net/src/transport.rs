//! The transport: one listener for inbound connections, one outbound
//! connection per peer with a bounded queue, coalesced writes, and
//! reconnection with exponential backoff and jitter.
//!
//! Bad input from a connection (garbage, an oversized or malformed frame,
//! a failed handshake, a stalled peer) closes that connection only, with
//! one log line.

use crate::NetError;
use crate::frame::DEFAULT_MAX_FRAME;
use crate::session::{self, SecureReader, SecureWriter};
use crate::tls::TlsSetup;
use crate::wire::{self, Frame, PROTOCOL_VERSION};
use bytes::BytesMut;
use raft_core::{Message, NodeId};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::{TlsAcceptor, TlsConnector};

#[derive(Clone)]
pub struct NetConfig {
    pub id: NodeId,
    /// Connections from another cluster are refused.
    pub cluster: String,
    pub listen: SocketAddr,
    /// The initial peers' addresses as `host:port` (the host is the name
    /// checked against the peer's certificate); `Transport::set_peers`
    /// changes them later.
    pub peers: BTreeMap<NodeId, String>,
    pub tls: TlsSetup,
    pub max_frame: usize,
    /// Messages queued per peer before new ones are dropped.
    pub queue: usize,
    /// Time allowed for a TLS handshake plus hello, and for any frame once
    /// it has begun to arrive.
    pub handshake_timeout: Duration,
    /// An inbound connection silent this long is closed.
    pub idle_timeout: Duration,
    /// This node's client (command-port) address, told to peers in the
    /// handshake.
    pub client_addr: String,
}

impl NetConfig {
    pub fn new(id: NodeId, cluster: &str, listen: SocketAddr, tls: TlsSetup) -> Self {
        NetConfig {
            id,
            cluster: cluster.to_string(),
            listen,
            peers: BTreeMap::new(),
            tls,
            max_frame: DEFAULT_MAX_FRAME,
            queue: 4096,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            client_addr: String::new(),
        }
    }
}

struct Peer {
    addr: String,
    tx: mpsc::Sender<Message>,
    dropped: Arc<AtomicU64>,
    dialer: JoinHandle<()>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.dialer.abort();
    }
}

/// The current peers, shared with the accept loop (which refuses nodes
/// that are not among them).
type Peers = Arc<std::sync::RwLock<BTreeMap<NodeId, Peer>>>;

pub struct Transport {
    cfg: Arc<NetConfig>,
    peers: Peers,
    local_addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
    /// Inbound messages dropped because the receiver was full.
    inbound_dropped: Arc<AtomicU64>,
    client_addrs: ClientAddrs,
}

/// Peers' client addresses, as their handshakes told them.
type ClientAddrs = Arc<std::sync::Mutex<BTreeMap<NodeId, String>>>;

impl Transport {
    /// Binds the listener and starts the peer connections. Messages from
    /// peers arrive on the returned receiver.
    pub async fn start(
        mut cfg: NetConfig,
    ) -> Result<(Transport, mpsc::Receiver<Message>), NetError> {
        let listener = TcpListener::bind(cfg.listen).await?;
        let local_addr = listener.local_addr()?;
        let (in_tx, in_rx) = mpsc::channel(cfg.queue);
        let initial = std::mem::take(&mut cfg.peers);
        let cfg = Arc::new(cfg);
        let inbound_dropped = Arc::new(AtomicU64::new(0));
        let client_addrs = ClientAddrs::default();
        let peers = Peers::default();
        let tasks = vec![tokio::spawn(accept_loop(
            listener,
            cfg.clone(),
            peers.clone(),
            in_tx,
            inbound_dropped.clone(),
            client_addrs.clone(),
        ))];
        let t = Transport {
            cfg,
            peers,
            local_addr,
            tasks,
            inbound_dropped,
            client_addrs,
        };
        t.set_peers(&initial);
        Ok((t, in_rx))
    }

    /// Makes `peers` (id → `host:port`) the set this node talks to, as the
    /// cluster's membership changes: new peers are dialed, removed ones
    /// disconnected (and refused when they connect), a peer whose address
    /// changed is redialed. This node's own id is skipped.
    pub fn set_peers(&self, peers: &BTreeMap<NodeId, String>) {
        let mut cur = self.peers.write().unwrap_or_else(|p| p.into_inner());
        cur.retain(|id, p| peers.get(id) == Some(&p.addr));
        for (&id, addr) in peers {
            if id == self.cfg.id || cur.contains_key(&id) {
                continue;
            }
            let (tx, rx) = mpsc::channel(self.cfg.queue);
            let dialer = tokio::spawn(dial_loop(self.cfg.clone(), id, addr.clone(), rx));
            cur.insert(
                id,
                Peer {
                    addr: addr.clone(),
                    tx,
                    dropped: Arc::new(AtomicU64::new(0)),
                    dialer,
                },
            );
        }
    }

    /// The peers this node currently talks to.
    pub fn peers(&self) -> BTreeMap<NodeId, String> {
        let cur = self.peers.read().unwrap_or_else(|p| p.into_inner());
        cur.iter().map(|(&id, p)| (id, p.addr.clone())).collect()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Queues `m` for its peer. Never blocks: when the queue is full (the
    /// peer is slow or away) the message is dropped and counted; Raft
    /// retransmits what matters.
    pub fn send(&self, m: Message) {
        let peers = self.peers.read().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = peers.get(&m.to) {
            if p.tx.try_send(m).is_err() {
                p.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Messages dropped so far for `peer` because its queue was full.
    pub fn dropped(&self, peer: NodeId) -> u64 {
        let peers = self.peers.read().unwrap_or_else(|p| p.into_inner());
        peers
            .get(&peer)
            .map_or(0, |p| p.dropped.load(Ordering::Relaxed))
    }

    pub fn inbound_dropped(&self) -> u64 {
        self.inbound_dropped.load(Ordering::Relaxed)
    }

    /// The client address `peer` announced when it last connected to us.
    pub fn client_addr(&self, peer: NodeId) -> Option<String> {
        let g = self.client_addrs.lock().unwrap_or_else(|p| p.into_inner());
        g.get(&peer).cloned()
    }
}

impl raft_core::node::Transport for Transport {
    fn send(&self, m: Message) {
        Transport::send(self, m)
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.peers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// Owns every inbound connection's task: when the transport stops, this
/// task is aborted, the set is dropped, and every connection closes.
async fn accept_loop(
    listener: TcpListener,
    cfg: Arc<NetConfig>,
    peers: Peers,
    tx: mpsc::Sender<Message>,
    dropped: Arc<AtomicU64>,
    client_addrs: ClientAddrs,
) {
    let acceptor = TlsAcceptor::from(cfg.tls.server.clone());
    let mut conns = tokio::task::JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let (tcp, addr) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, cfg, tx, dropped) =
            (acceptor.clone(), cfg.clone(), tx.clone(), dropped.clone());
        let addrs = client_addrs.clone();
        let peers = peers.clone();
        conns.spawn(async move {
            let r = serve_inbound(tcp, acceptor, &cfg, &peers, tx, &dropped, &addrs).await;
            if let Err(e @ NetError::Idle(_)) = &r {
                tracing::debug!(peer = %addr, "closed inbound connection: {e}");
            } else if let Err(e) = r {
                tracing::warn!(peer = %addr, "closed inbound connection: {e}");
            }
        });
    }
}

async fn serve_inbound(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    cfg: &NetConfig,
    peers: &Peers,
    tx: mpsc::Sender<Message>,
    dropped: &AtomicU64,
    client_addrs: &ClientAddrs,
) -> Result<(), NetError> {
    let limit = cfg.handshake_timeout;
    // The write half stays alive (unused) while the connection is read.
    let (mut rd, _wr) = tokio::time::timeout(limit, session::accept(&acceptor, tcp))
        .await
        .map_err(|_| NetError::Handshake("TLS handshake timed out".into()))??;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let hello = rd.read_frame(&mut buf, cfg.max_frame, limit, limit).await?;
    let (node, client_addr) = wire::check_hello(&hello, &cfg.cluster)?;
    let known = |node| {
        peers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&node)
    };
    if !known(node) {
        return Err(NetError::Handshake(format!("node {node} is not a member")));
    }
    if !client_addr.is_empty() {
        client_addrs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(node, client_addr.to_string());
    }
    loop {
        match rd
            .read_frame(&mut buf, cfg.max_frame, cfg.idle_timeout, limit)
            .await?
        {
            Frame::Messages(ms) => {
                if !known(node) {
                    return Err(NetError::Handshake(format!(
                        "node {node} is no longer a member"
                    )));
                }
                for m in ms {
                    if m.from != node || m.to != cfg.id {
                        return Err(NetError::Malformed(format!(
                            "node {node} sent a message {}->{}",
                            m.from, m.to
                        )));
                    }
                    if tx.try_send(m).is_err() {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Frame::Hello { .. } | Frame::Ready => {
                return Err(NetError::Malformed(
                    "a handshake frame after the hello".into(),
                ));
            }
        }
    }
}

/// Keeps one outbound connection to `peer` up, and drains its queue into it.
async fn dial_loop(
    cfg: Arc<NetConfig>,
    peer: NodeId,
    addr: String,
    mut rx: mpsc::Receiver<Message>,
) {
    let connector = TlsConnector::from(cfg.tls.client.clone());
    let host = addr
        .rsplit_once(':')
        .map_or(addr.as_str(), |(h, _)| h)
        .trim_matches(['[', ']'])
        .to_string();
    let mut backoff = Backoff::new(cfg.id ^ peer.rotate_left(17));
    let mut logged = false;
    loop {
        match connect(&connector, &addr, &host, &cfg).await {
            Ok(stream) => {
                backoff.reset();
                logged = false;
                tracing::debug!(peer, %addr, "connected");
                match pump(stream, &mut rx).await {
                    Ok(()) => return, // the transport is shutting down
                    Err(e) => tracing::debug!(peer, "connection lost: {e}"),
                }
            }
            Err(e) => {
                if !logged {
                    tracing::warn!(peer, %addr, "cannot connect: {e}");
                    logged = true;
                }
            }
        }
        tokio::time::sleep(backoff.next()).await;
    }
}

async fn connect(
    connector: &TlsConnector,
    addr: &str,
    host: &str,
    cfg: &NetConfig,
) -> Result<(SecureReader, SecureWriter), NetError> {
    let limit = cfg.handshake_timeout;
    let tcp = tokio::time::timeout(limit, TcpStream::connect(addr))
        .await
        .map_err(|_| NetError::Handshake("connect timed out".into()))??;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| NetError::Handshake(format!("bad host {host:?}: {e}")))?;
    let (rd, mut wr) = tokio::time::timeout(limit, session::connect(connector, name, tcp, limit))
        .await
        .map_err(|_| NetError::Handshake("TLS handshake timed out".into()))??;
    wr.write_frame(&Frame::Hello {
        version: PROTOCOL_VERSION,
        cluster: cfg.cluster.clone(),
        node: cfg.id,
        client_addr: cfg.client_addr.clone(),
    })
    .await?;
    Ok((rd, wr))
}

/// Writes queued messages, many per frame, until the connection fails
/// (`Err`) or the queue closes (`Ok`). After its `Ready` the peer never
/// writes to this connection, so a read returning is how a closed peer
/// shows up at once.
async fn pump(
    (mut rd, mut wr): (SecureReader, SecureWriter),
    rx: &mut mpsc::Receiver<Message>,
) -> Result<(), NetError> {
    let mut probe = BytesMut::new();
    loop {
        tokio::select! {
            m = rx.recv() => {
                let Some(m) = m else { return Ok(()) };
                let mut batch = vec![m];
                while batch.len() < 4096 {
                    match rx.try_recv() {
                        Ok(m) => batch.push(m),
                        Err(_) => break,
                    }
                }
                wr.write_frame(&Frame::Messages(batch)).await?;
            }
            r = rd.read_plain(&mut probe) => {
                r?;
                return Err(NetError::Io(std::io::ErrorKind::ConnectionReset.into()));
            }
        }
    }
}

/// Exponential backoff from 20 ms to 2 s; each delay is half fixed, half
/// random, so peers that lost each other do not retry in lockstep.
struct Backoff {
    attempt: u32,
    state: u64,
}

impl Backoff {
    fn new(seed: u64) -> Self {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Backoff {
            attempt: 0,
            state: seed ^ t | 1,
        }
    }

    fn reset(&mut self) {
        self.attempt = 0;
    }

    fn next(&mut self) -> Duration {
        let cap_ms = (20u64 << self.attempt.min(7)).min(2000);
        self.attempt += 1;
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        Duration::from_millis(cap_ms / 2 + self.state % (cap_ms / 2 + 1))
    }
}
