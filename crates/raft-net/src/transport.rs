//! The transport: one listener for inbound connections, one outbound
//! connection per peer with a bounded queue, coalesced writes, and
//! reconnection with exponential backoff and jitter.
//!
//! Bad input from a connection (garbage, an oversized or malformed frame,
//! a failed handshake, a stalled peer) closes that connection only, with
//! one log line.

use crate::NetError;
use crate::frame::{self, DEFAULT_MAX_FRAME};
use crate::session::{self, SecureReader, SecureWriter};
use crate::tls::TlsSetup;
use crate::wire::{self, Frame, HELLO_VERSION, HelloExt};
use bytes::BytesMut;
use raft_core::{Message, NodeId};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// How a transport is set up.
#[derive(Clone)]
pub struct NetConfig {
    /// This node's id, sent in the handshake.
    pub id: NodeId,
    /// Connections from another cluster are refused.
    pub cluster: String,
    /// Where to accept peers.
    pub listen: SocketAddr,
    /// The initial peers' addresses as `host:port` (the host is the name
    /// checked against the peer's certificate); `Transport::set_peers`
    /// changes them later.
    pub peers: BTreeMap<NodeId, String>,
    /// The node's TLS identity and CA.
    pub tls: TlsSetup,
    /// The largest frame accepted from a peer, in bytes.
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
    /// Inbound connections open at once (a member has one to each peer,
    /// so this is room for reconnects); more are closed on accept, so
    /// strangers cannot take the descriptors the node needs.
    pub max_inbound: usize,
    /// This node's storage id (`raft_core::InitialState::storage`), told
    /// to peers in the handshake's extension (`wire::HelloExt`).
    pub storage: u64,
}

impl NetConfig {
    /// A configuration with no peers yet and the default limits.
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
            max_inbound: 256,
            storage: 0,
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

/// A configuration as a node knows it: the index of its entry, and whether
/// the node has seen that index committed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConfigStamp {
    /// The configuration's log index.
    pub index: u64,
    /// Whether this node has seen it committed.
    pub committed: bool,
}

/// A peer refused this node: it is not in the peer's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The peer that refused.
    pub peer: NodeId,
    /// The configuration it refused by.
    pub config: ConfigStamp,
}

/// Tells the accept loop which configuration its peers come from, for the
/// `NotMember` frame a refused node gets.
type StampSource = Arc<OnceLock<Box<dyn Fn() -> ConfigStamp + Send + Sync>>>;

/// The peer transport: one dialled connection per peer for what this node
/// sends, accepted connections for what peers send, all mutual TLS.
pub struct Transport {
    cfg: Arc<NetConfig>,
    peers: Peers,
    local_addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
    /// Inbound messages dropped because the receiver was full.
    inbound_dropped: Arc<AtomicU64>,
    client_addrs: ClientAddrs,
    stamp: StampSource,
    refusals: Arc<watch::Sender<Option<Refusal>>>,
    /// Bumped by every `set_peers`, so inbound connections from a node
    /// just removed are refused at once, not at its next message.
    peers_changed: watch::Sender<u64>,
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
        let stamp = StampSource::default();
        let peers_changed = watch::channel(0).0;
        let tasks = vec![tokio::spawn(accept_loop(
            listener,
            Inbound {
                cfg: cfg.clone(),
                peers: peers.clone(),
                tx: in_tx,
                dropped: inbound_dropped.clone(),
                client_addrs: client_addrs.clone(),
                stamp: stamp.clone(),
                peers_changed: peers_changed.subscribe(),
            },
        ))];
        let t = Transport {
            cfg,
            peers,
            local_addr,
            tasks,
            inbound_dropped,
            client_addrs,
            stamp,
            refusals: Arc::new(watch::channel(None).0),
            peers_changed,
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
            let refusals = self.refusals.clone();
            let dialer = tokio::spawn(dial_loop(self.cfg.clone(), id, addr.clone(), rx, refusals));
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
        drop(cur);
        self.peers_changed.send_modify(|g| *g += 1);
    }

    /// The peers this node currently talks to.
    pub fn peers(&self) -> BTreeMap<NodeId, String> {
        let cur = self.peers.read().unwrap_or_else(|p| p.into_inner());
        cur.iter().map(|(&id, p)| (id, p.addr.clone())).collect()
    }

    /// The address the transport accepts peers on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Queues `m` for its peer. Never blocks: when the queue is full (the
    /// peer is slow or away) the message is dropped and counted; Raft
    /// retransmits what matters.
    pub fn send(&self, m: Message) {
        let peers = self.peers.read().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = peers.get(&m.to)
            && p.tx.try_send(m).is_err()
        {
            p.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Messages dropped so far for `peer` because its queue was full.
    pub fn dropped(&self, peer: NodeId) -> u64 {
        let peers = self.peers.read().unwrap_or_else(|p| p.into_inner());
        peers
            .get(&peer)
            .map_or(0, |p| p.dropped.load(Ordering::Relaxed))
    }

    /// Messages from peers dropped because the node's inbound queue was
    /// full.
    pub fn inbound_dropped(&self) -> u64 {
        self.inbound_dropped.load(Ordering::Relaxed)
    }

    /// Where the configuration the peers come from is read when a node is
    /// refused (`set_peers` is called with its members). Without one, a
    /// refused node is told index 0, uncommitted: nothing it can act on.
    pub fn set_config_source(&self, f: impl Fn() -> ConfigStamp + Send + Sync + 'static) {
        let _ = self.stamp.set(Box::new(f));
    }

    /// The most telling refusal of this node by a peer so far (a committed
    /// configuration first, then the newest; `None` before any): how a node
    /// removed from the cluster, which is no longer sent anything, learns
    /// of it.
    pub fn watch_refusals(&self) -> watch::Receiver<Option<Refusal>> {
        self.refusals.subscribe()
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

/// What every inbound connection shares.
#[derive(Clone)]
struct Inbound {
    cfg: Arc<NetConfig>,
    peers: Peers,
    tx: mpsc::Sender<Message>,
    /// Inbound messages dropped because the receiver was full.
    dropped: Arc<AtomicU64>,
    client_addrs: ClientAddrs,
    stamp: StampSource,
    peers_changed: watch::Receiver<u64>,
}

/// Owns every inbound connection's task: when the transport stops, this
/// task is aborted, the set is dropped, and every connection closes.
async fn accept_loop(listener: TcpListener, inbound: Inbound) {
    let acceptor = TlsAcceptor::from(inbound.cfg.tls.server.clone());
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
        if conns.len() >= inbound.cfg.max_inbound {
            tracing::debug!(peer = %addr, "inbound connection refused: {} open", conns.len());
            continue;
        }
        let _ = tcp.set_nodelay(true);
        let (acceptor, inbound) = (acceptor.clone(), inbound.clone());
        conns.spawn(async move {
            let r = serve_inbound(tcp, acceptor, &inbound).await;
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
    inbound: &Inbound,
) -> Result<(), NetError> {
    let cfg = &inbound.cfg;
    let limit = cfg.handshake_timeout;
    // The write half stays alive while the connection is read; it carries
    // nothing after `Ready` but a refusal.
    let (mut rd, mut wr, who) = tokio::time::timeout(limit, session::accept(&acceptor, tcp))
        .await
        .map_err(|_| NetError::Handshake("TLS handshake timed out".into()))??;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let body = rd
        .read_body(&mut buf, wire::MAX_HELLO, limit, limit)
        .await?;
    let (hello, ext) = wire::split_hello(&body)?;
    let (node, client_addr) = wire::check_hello(&hello, &cfg.cluster)?;
    // The member's address now, if it is one; its certificate must allow
    // that address (`identity.rs`), so no peer speaks for another.
    let member_at = |node| {
        let peers = inbound.peers.read().unwrap_or_else(|p| p.into_inner());
        peers.get(&node).map(|p| p.addr.clone())
    };
    let vouched = |addr: &str| {
        if who.allows(addr) {
            Ok(())
        } else {
            Err(NetError::Handshake(format!(
                "node {node} is a member at {addr}, but the certificate it presented \
                 speaks for {:?}",
                who.addrs()
            )))
        }
    };
    let known = |node| member_at(node).is_some();
    match member_at(node) {
        None => {
            refuse(&mut wr, inbound).await;
            return Err(NetError::Handshake(format!("node {node} is not a member")));
        }
        Some(addr) => vouched(&addr)?,
    }
    if !client_addr.is_empty() {
        inbound
            .client_addrs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(node, client_addr.to_string());
    }
    let mut changed = inbound.peers_changed.clone();
    changed.mark_unchanged();
    let gone = || NetError::Handshake(format!("node {node} is no longer a member"));
    loop {
        // `read_frame` keeps what it read in `buf` and `rd`, so dropping it
        // for a membership change loses nothing.
        let frame = tokio::select! {
            f = rd.read_frame(&mut buf, cfg.max_frame, cfg.idle_timeout, limit) => f?,
            Ok(()) = changed.changed() => {
                match member_at(node) {
                    None => {
                        refuse(&mut wr, inbound).await;
                        return Err(gone());
                    }
                    Some(addr) => vouched(&addr)?,
                }
                continue;
            }
        };
        match frame {
            Frame::Messages(ms) => {
                if !known(node) {
                    refuse(&mut wr, inbound).await;
                    return Err(gone());
                }
                for m in ms {
                    if m.from != node || m.to != cfg.id {
                        return Err(NetError::Malformed(format!(
                            "node {node} sent a message {}->{}",
                            m.from, m.to
                        )));
                    }
                    let m = Message {
                        storage: ext.storage,
                        ..m
                    };
                    if inbound.tx.try_send(m).is_err() {
                        inbound.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Frame::Hello { .. } | Frame::Ready | Frame::NotMember { .. } => {
                return Err(NetError::Malformed(
                    "a handshake frame after the hello".into(),
                ));
            }
        }
    }
}

/// Tells a refused node which configuration it is not in (best effort:
/// the connection closes right after either way).
async fn refuse(wr: &mut SecureWriter, inbound: &Inbound) {
    let stamp = inbound.stamp.get().map(|f| f()).unwrap_or_default();
    let f = Frame::NotMember {
        config_index: stamp.index,
        committed: stamp.committed,
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), wr.write_frame(&f)).await;
}

/// Keeps one outbound connection to `peer` up, and drains its queue into it.
async fn dial_loop(
    cfg: Arc<NetConfig>,
    peer: NodeId,
    addr: String,
    mut rx: mpsc::Receiver<Message>,
    refusals: Arc<watch::Sender<Option<Refusal>>>,
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
                tracing::debug!(peer, %addr, "connected");
                let since = Instant::now();
                match pump(stream, &mut rx).await {
                    Ok(()) => return, // the transport is shutting down
                    Err(NetError::NotMember(config)) => {
                        if !logged {
                            tracing::info!(
                                peer,
                                index = config.index,
                                committed = config.committed,
                                "the peer refused this node: not in its configuration"
                            );
                            logged = true;
                        }
                        // Keep the most telling refusal: a committed
                        // configuration over another, a newer over an older.
                        let r = Refusal { peer, config };
                        let key = |r: &Refusal| (r.config.committed, r.config.index);
                        refusals.send_if_modified(|cur| {
                            let better = cur.as_ref().is_none_or(|c| key(&r) > key(c));
                            if better {
                                *cur = Some(r);
                            }
                            better
                        });
                    }
                    Err(e) => tracing::debug!(peer, "connection lost: {e}"),
                }
                // Only a connection that lasted resets the backoff: one
                // refused at once must not be redialled in a tight loop.
                if since.elapsed() > Duration::from_secs(1) {
                    backoff.reset();
                    logged = false;
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
    let (rd, mut wr, who) =
        tokio::time::timeout(limit, session::connect(connector, name, tcp, limit))
            .await
            .map_err(|_| NetError::Handshake("TLS handshake timed out".into()))??;
    if !who.allows(addr) {
        return Err(NetError::Handshake(format!(
            "the node at {addr} presented a certificate for {:?}",
            who.addrs()
        )));
    }
    let hello = Frame::Hello {
        version: HELLO_VERSION,
        cluster: cfg.cluster.clone(),
        node: cfg.id,
        client_addr: cfg.client_addr.clone(),
    };
    let ext = HelloExt {
        storage: cfg.storage,
    };
    wr.write_body(&wire::hello_body(&hello, &ext)).await?;
    Ok((rd, wr))
}

/// Writes queued messages, many per frame, until the connection fails
/// (`Err`) or the queue closes (`Ok`). After its `Ready` the peer writes
/// nothing to this connection but a refusal, so a read returning is how a
/// closed or refusing peer shows up at once.
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
                if r? == 0 {
                    return Err(NetError::Io(std::io::ErrorKind::ConnectionReset.into()));
                }
                if let Some(body) = frame::decode(&mut probe, 1024)? {
                    return Err(match wire::from_body(&body)? {
                        Frame::NotMember { config_index, committed } => {
                            NetError::NotMember(ConfigStamp { index: config_index, committed })
                        }
                        _ => NetError::Malformed("the accepting side sent a frame".into()),
                    });
                }
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
