//! One raftstack node as `raft-mock` runs it: members named by address,
//! the redb log (or memory), the mutual-TLS transport, the KV state
//! machine and the HTTPS command port.

pub mod launch;

use raft_core::node::{Node, NodeConfig};
use raft_core::{Config, Mode, NodeId};
use raft_kv::api::{ApiContext, HttpsClient, Metrics};
use raft_kv::{KvStore, Output};
use raft_net::{NetConfig, TlsFiles, TlsSetup, Transport};
use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MockError {
    #[error("bad address {0:?}: expected (host:)?port, e.g. 7001 or localhost:7001")]
    BadAddress(String),
    #[error("cannot resolve {addr}: {why}")]
    Resolve { addr: String, why: String },
    #[error("{0} is listed twice among the members")]
    DuplicateMember(String),
    #[error("TLS: {0} (make certificates with `cargo xtask certs`)")]
    Tls(#[from] raft_net::NetError),
    #[error("storage file {path}: {why}")]
    Storage { path: PathBuf, why: String },
    #[error("cannot listen on {addr}: {why}")]
    Listen { addr: String, why: String },
    #[error("{0}")]
    Node(#[from] raft_core::node::NodeError),
    #[error("bad settings: {0}")]
    Settings(String),
}

/// pyraftlog-mock's settings, plus TLS and timing.
#[derive(Clone, Debug)]
pub struct MockConfig {
    pub mode: Mode,
    /// This node's peer address, `(host:)?port`.
    pub node: String,
    /// The other members' peer addresses.
    pub neighbours: Vec<String>,
    /// The command port.
    pub port: u16,
    pub log_reduction: bool,
    /// The redb log file; `None` keeps everything in memory.
    pub file: Option<PathBuf>,
    pub certs: PathBuf,
    /// A name every member shares; peers of another cluster are refused.
    pub cluster: String,
    pub tick: Duration,
    pub election_ticks: u64,
    pub heartbeat_ticks: u64,
    pub require_client_cert: bool,
}

impl MockConfig {
    pub fn new(node: &str, neighbours: &[&str], port: u16) -> Self {
        MockConfig {
            mode: Mode::Active,
            node: node.to_string(),
            neighbours: neighbours.iter().map(|s| s.to_string()).collect(),
            port,
            log_reduction: false,
            file: None,
            certs: PathBuf::from("certs"),
            cluster: "raftstack".into(),
            tick: Duration::from_millis(50),
            election_ticks: 10,
            heartbeat_ticks: 1,
            require_client_cert: true,
        }
    }
}

/// `7001` → `127.0.0.1:7001`; `host:7001` stays. The result names the
/// member everywhere (status, ids), so spell each member the same on every
/// node.
pub fn canonical(addr: &str) -> Result<String, MockError> {
    let bad = || MockError::BadAddress(addr.to_string());
    let (host, port) = match addr.rsplit_once(':') {
        Some((h, p)) => (h, p),
        None => ("127.0.0.1", addr),
    };
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok(format!("{host}:{port}"))
}

/// A member's node id: a hash of its canonical address (FNV-1a), never 0.
pub fn node_id(name: &str) -> NodeId {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h.max(1)
}

fn resolve(addr: &str) -> Result<SocketAddr, MockError> {
    addr.to_socket_addrs()
        .map_err(|e| MockError::Resolve {
            addr: addr.into(),
            why: e.to_string(),
        })?
        .next()
        .ok_or_else(|| MockError::Resolve {
            addr: addr.into(),
            why: "no address".into(),
        })
}

/// A running node.
pub struct RunningNode {
    pub node: Node<Output>,
    pub kv: KvStore,
    pub name: String,
    pub peer_addr: SocketAddr,
    pub api_addr: SocketAddr,
    api: JoinHandle<()>,
    _transport: Arc<Transport>,
}

impl RunningNode {
    /// Stops serving clients, then stops the node (its log closes cleanly).
    pub async fn shutdown(self) {
        self.api.abort();
        let _ = self.api.await;
        self.node.shutdown().await;
    }
}

pub async fn start(cfg: MockConfig) -> Result<RunningNode, MockError> {
    let name = canonical(&cfg.node)?;
    let id = node_id(&name);
    let mut members = BTreeMap::new();
    members.insert(id, name.clone());
    for n in &cfg.neighbours {
        let n = canonical(n)?;
        if members.insert(node_id(&n), n.clone()).is_some() {
            return Err(MockError::DuplicateMember(n));
        }
    }
    if cfg.election_ticks <= cfg.heartbeat_ticks || cfg.heartbeat_ticks == 0 {
        return Err(MockError::Settings(
            "the election timeout must be longer than the heartbeat interval".into(),
        ));
    }
    let files = TlsFiles::node_in(&cfg.certs);
    let tls = TlsSetup::load(&files)?;
    let api_tls = raft_net::tls::command_port_config(&files, cfg.require_client_cert)?;
    let client_tls = tls.client.clone();

    let peer_listen = resolve(&name)?;
    let host = name.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h);
    let api_name = format!("{host}:{}", cfg.port);
    let api_listen = resolve(&api_name)?;
    let api_listener = TcpListener::bind(api_listen)
        .await
        .map_err(|e| MockError::Listen {
            addr: api_name.clone(),
            why: e.to_string(),
        })?;
    let api_addr = api_listener.local_addr().map_err(|e| MockError::Listen {
        addr: api_name.clone(),
        why: e.to_string(),
    })?;

    let mut net = NetConfig::new(id, &cfg.cluster, peer_listen, tls);
    net.peers = members.clone();
    net.client_addr = format!("{host}:{}", api_addr.port());
    let (transport, inbound) = Transport::start(net).await.map_err(|e| MockError::Listen {
        addr: name.clone(),
        why: e.to_string(),
    })?;
    let transport = Arc::new(transport);

    let mut raft = Config::new(id);
    raft.mode = cfg.mode;
    raft.election_tick = cfg.election_ticks;
    raft.heartbeat_tick = cfg.heartbeat_ticks;
    raft.seed = id ^ u64::from(std::process::id());
    let mut ncfg = NodeConfig::new(raft, members.keys().copied().collect());
    ncfg.tick = cfg.tick;
    let kv = KvStore::new();
    let shared = transport.clone();
    let node = match &cfg.file {
        Some(path) => {
            let store = raft_log::RedbLogStore::open(path).map_err(|e| MockError::Storage {
                path: path.clone(),
                why: e.to_string(),
            })?;
            Node::start(ncfg, store, shared, inbound, kv.clone())?
        }
        None => Node::start(
            ncfg,
            raft_log::MemLogStore::new(),
            shared,
            inbound,
            kv.clone(),
        )?,
    };

    let t = transport.clone();
    let ctx = Arc::new(ApiContext {
        node: node.clone(),
        kv: kv.clone(),
        members,
        peer_client_addr: Box::new(move |peer| t.client_addr(peer)),
        client: HttpsClient::new(client_tls),
        started: Instant::now(),
        metrics: Metrics::default(),
        max_body: 4 << 20,
        log_reduction: cfg.log_reduction,
    });
    let api = tokio::spawn(raft_kv::api::serve(api_listener, api_tls, ctx));
    tracing::info!(
        node = %name, id, mode = %cfg.mode, command_port = %api_addr,
        storage = %cfg.file.as_ref().map_or("memory".into(), |p| p.display().to_string()),
        "node started"
    );
    Ok(RunningNode {
        node,
        kv,
        name,
        peer_addr: transport.local_addr(),
        api_addr,
        api,
        _transport: transport,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_ids() {
        assert_eq!(canonical("7001").unwrap(), "127.0.0.1:7001");
        assert_eq!(canonical("localhost:7001").unwrap(), "localhost:7001");
        for bad in ["", "x", "host:", ":7001", "70000", "0"] {
            assert!(canonical(bad).is_err(), "{bad:?}");
        }
        assert_ne!(node_id("127.0.0.1:7001"), node_id("127.0.0.1:7002"));
        assert_ne!(node_id(""), 0);
    }
}
