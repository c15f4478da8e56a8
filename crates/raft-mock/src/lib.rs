//! One raftstack node as `raft-mock` runs it: members named by address,
//! the redb log (or memory), the mutual-TLS transport, the KV state
//! machine and the HTTPS command port.

#![deny(missing_docs)]

pub mod launch;
mod rebuild;
mod recovery;
mod removal;
pub use removal::Stop;

use raft_core::node::{Node, NodeConfig};
use raft_core::{Config, Index, Mode, NodeId, SnapshotStore};
use raft_http::{ApiContext, HttpsClient, Metrics, TransportCounters};
use raft_kv::{KvStore, Output};
use raft_net::{NetConfig, TlsFiles, TlsSetup, Transport};
use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Why a node did not start (each says what to fix).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MockError {
    /// An address that is not `(host:)?port`.
    #[error("bad address {0:?}: expected (host:)?port, e.g. 7001 or localhost:7001")]
    BadAddress(String),
    /// A host name that does not resolve.
    #[error("cannot resolve {addr}: {why}")]
    Resolve {
        /// The address.
        addr: String,
        /// The resolver's answer.
        why: String,
    },
    /// The same member given twice (as itself and a neighbour, say).
    #[error("{0} is listed twice among the members")]
    DuplicateMember(String),
    /// The certificates cannot serve.
    #[error("TLS: {0} (make certificates with `cargo xtask certs`)")]
    Tls(#[from] raft_net::NetError),
    /// The log file cannot be opened or is not this node's.
    #[error("storage file {path}: {why}")]
    Storage {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A port cannot be bound.
    #[error("cannot listen on {addr}: {why}")]
    Listen {
        /// The address.
        addr: String,
        /// The system's answer.
        why: String,
    },
    /// The node refused to start (its stored state, a bad configuration).
    #[error("{0}")]
    Node(#[from] raft_core::node::NodeError),
    /// Settings that contradict each other or are out of range.
    #[error("bad settings: {0}")]
    Settings(String),
    /// A backup that cannot be restored.
    #[error("restoring {path}: {why}")]
    Restore {
        /// The backup file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The cluster to join did not take this node.
    #[error("joining through {addr}: {why}")]
    Join {
        /// The member asked.
        addr: String,
        /// Its answer, or what failed.
        why: String,
    },
}

/// Appends in flight per follower. On loopback or a LAN a round trip is
/// shorter than a follower's fsync, so waiting for each acknowledgement
/// lets the next append carry everything that queued meanwhile: at 64
/// clients `cargo xtask bench cluster` measured 20,800-21,400 writes/s and
/// 59-60 µs of node CPU per write with 1, against 13,300-15,500 and 90-105
/// µs with raft-core's default of 256 (and lower latency at one client).
pub const DEFAULT_MAX_INFLIGHT: usize = 1;

/// pyraftlog-mock's settings, plus TLS and timing.
#[derive(Clone, Debug)]
pub struct MockConfig {
    /// Active, reluctant or passive (pyraftlog's modes).
    pub mode: Mode,
    /// This node's peer address, `(host:)?port`.
    pub node: String,
    /// The other members' peer addresses.
    pub neighbours: Vec<String>,
    /// The command port.
    pub port: u16,
    /// The RESP (Redis protocol) port, if any (`raft_resp`).
    pub resp_port: Option<u16>,
    /// Serve RESP in plaintext (loopback addresses only).
    pub resp_plaintext: bool,
    /// Compact the log only past what every member applied (pyraftlog's
    /// log reduction) instead of by snapshot policy.
    pub log_reduction: bool,
    /// Changes the KV keeps for watchers (`raft_kv::history`).
    pub watch_history: usize,
    /// Bounds on the command port's connections (each watch holds one).
    pub limits: raft_http::Limits,
    /// The redb log file; `None` keeps everything in memory.
    pub file: Option<PathBuf>,
    /// The directory of the CA, node and client certificates.
    pub certs: PathBuf,
    /// A name every member shares; peers of another cluster are refused.
    pub cluster: String,
    /// One protocol tick.
    pub tick: Duration,
    /// Ticks without a leader before an election (randomized up to twice).
    pub election_ticks: u64,
    /// Ticks between a leader's heartbeats.
    pub heartbeat_ticks: u64,
    /// Appends in flight per follower (`raft_core::Config::max_inflight`).
    pub max_inflight: usize,
    /// Refuse command-port clients without a certificate.
    pub require_client_cert: bool,
    /// The role of command-port clients without a certificate (with
    /// `require_client_cert` off); `None` refuses them.
    pub anonymous_role: Option<raft_http::access::Role>,
    /// The command port (`host:port`) of any member of an existing
    /// cluster to join; the node asks to be added and is promoted to voter
    /// once caught up.
    pub join: Option<String>,
    /// Snapshot after this many entries (0: never, unless log reduction).
    pub snapshot_entries: u64,
    /// ... or after this many bytes of entries (0: no byte limit).
    pub snapshot_bytes: u64,
    /// Entries kept in the log behind a snapshot.
    pub keep_entries: u64,
    /// Between scrub passes over the latest snapshot (zero: none).
    pub scrub_interval: Duration,
    /// A backup (`raftctl backup`) to start a new cluster from.
    pub restore: Option<PathBuf>,
    /// Become the only member of a new one-node cluster, keeping the log.
    pub solo: bool,
    /// Delete this node's history before starting.
    pub detach: bool,
    /// Rebuild this node from its peers (`rebuild.rs`).
    pub rebuild: bool,
    /// The explicit confirmation `solo`, `detach` and `rebuild` need.
    pub confirm: bool,
}

impl MockConfig {
    /// The defaults for a node at `node` with these neighbours and
    /// command port.
    pub fn new(node: &str, neighbours: &[&str], port: u16) -> Self {
        MockConfig {
            mode: Mode::Active,
            node: node.to_string(),
            neighbours: neighbours.iter().map(|s| s.to_string()).collect(),
            port,
            resp_port: None,
            resp_plaintext: false,
            log_reduction: false,
            watch_history: raft_kv::history::DEFAULT_KEEP,
            limits: raft_http::Limits::default(),
            file: None,
            certs: PathBuf::from("certs"),
            cluster: "raftstack".into(),
            tick: Duration::from_millis(50),
            election_ticks: 10,
            heartbeat_ticks: 1,
            max_inflight: DEFAULT_MAX_INFLIGHT,
            require_client_cert: true,
            anonymous_role: Some(raft_http::access::Role::ReadOnly),
            join: None,
            snapshot_entries: 100_000,
            snapshot_bytes: 64 << 20,
            keep_entries: 10_000,
            scrub_interval: Duration::from_secs(600),
            restore: None,
            solo: false,
            detach: false,
            rebuild: false,
            confirm: false,
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
    /// The Raft node.
    pub node: Node<Output>,
    /// Its KV.
    pub kv: KvStore,
    /// Its canonical peer address, its name among the members.
    pub name: String,
    /// Where it accepts peers.
    pub peer_addr: SocketAddr,
    /// Where its command port listens.
    pub api_addr: SocketAddr,
    /// Where the RESP port listens, if it does.
    pub resp_addr: Option<SocketAddr>,
    api: JoinHandle<()>,
    resp: Option<JoinHandle<()>>,
    /// Set to drain the command port (`shutdown`).
    drain: tokio::sync::watch::Sender<bool>,
    background: Vec<JoinHandle<()>>,
    /// Set (once) with the reason when this node learns that the cluster
    /// removed it, or that its storage is not the one the cluster knows
    /// for its id (`removal.rs`); the binary then stops.
    pub stopped: tokio::sync::watch::Receiver<Option<Stop>>,
    _transport: Arc<Transport>,
}

impl RunningNode {
    /// Drains the command port (no new connections; requests in flight
    /// finish, for up to `raft_http::DRAIN`), then stops the node (its
    /// log closes cleanly).
    pub async fn shutdown(self) {
        self.drain.send_replace(true);
        let mut api = self.api;
        let limit = raft_http::DRAIN + Duration::from_secs(1);
        if tokio::time::timeout(limit, &mut api).await.is_err() {
            api.abort();
        }
        if let Some(mut resp) = self.resp
            && tokio::time::timeout(limit, &mut resp).await.is_err()
        {
            resp.abort();
        }
        for t in &self.background {
            t.abort();
        }
        self.node.shutdown().await;
    }
}

/// Where a node with storage file `file` keeps its snapshots: the
/// directory `<file>.snapshots` beside it.
pub fn snapshot_dir(file: &std::path::Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".snapshots");
    PathBuf::from(name)
}

/// The stores a node can run on.
enum Store {
    Redb(raft_log::RedbLogStore),
    Memory(raft_log::MemLogStore),
}

impl Store {
    fn storage_id(&self) -> u64 {
        use raft_core::LogStore;
        match self {
            Store::Redb(s) => s.storage_id(),
            Store::Memory(s) => s.state().map_or(0, |st| st.storage),
        }
    }
}

/// Raises the soft limit on open files to the hard one: the command
/// port's connection bound (512 by default) and the peer port's (256) stay
/// below it, so clients cannot starve the log and the peers of
/// descriptors (the usual soft limit, 1,024, left little room).
pub fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        tracing::warn!("cannot raise the open-file limit from {soft} to {hard}: {e}");
    }
}

/// A seed this node has not had before (`Config::seed`): the clock and
/// the process id (a container's node may be process 1 every time).
fn incarnation_seed(id: NodeId) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    id ^ nanos.rotate_left(17) ^ u64::from(std::process::id())
}

/// A fresh id for a node joining a cluster: never one a member had before
/// (a node whose disk was wiped must not come back under its old id).
fn fresh_id(name: &str) -> NodeId {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    node_id(&format!("{name}#{nanos}#{}", std::process::id()))
}

/// Starts a node: opens (or restores, joins, rebuilds) its log, binds its
/// ports and serves until shut down.
pub async fn start(cfg: MockConfig) -> Result<RunningNode, MockError> {
    let name = canonical(&cfg.node)?;
    if (cfg.solo || cfg.detach) && !cfg.confirm {
        return Err(MockError::Settings(if cfg.solo {
            "--solo makes this node a one-node cluster without its peers' consent (forking \
             the cluster's history); add --confirm to do it"
                .into()
        } else {
            "--detach deletes this node's history; add --confirm to do it".into()
        }));
    }
    if cfg.solo && (cfg.detach || cfg.join.is_some() || cfg.restore.is_some()) {
        return Err(MockError::Settings(
            "--solo keeps this node's history; it does not go with --detach, --join or --restore"
                .into(),
        ));
    }
    check_rebuild(&cfg)?;
    if cfg.detach {
        match &cfg.file {
            Some(f) => recovery::detach(f, &snapshot_dir(f))?,
            None => tracing::warn!("--detach: a node without a storage file has no history"),
        }
    }
    let files = TlsFiles::for_member(&cfg.certs, &name);
    let tls = TlsSetup::load(&files)?;
    raft_net::tls::check_member_cert(&files, &name)?;
    let api_tls = raft_net::tls::command_port_config(&files, cfg.require_client_cert)?;
    let client_tls = tls.client.clone();
    let client = HttpsClient::new(client_tls);
    let rebuilding = match &cfg.file {
        Some(f) if cfg.rebuild => {
            rebuild::prepare(f, resolve(&name)?)?;
            true
        }
        Some(f) => rebuild::marker(f).exists(),
        None => false,
    };
    let storage_err = |path: &PathBuf, e: raft_log::Error| MockError::Storage {
        path: path.clone(),
        why: e.to_string(),
    };
    let mut store = match &cfg.file {
        Some(path) => {
            Store::Redb(raft_log::RedbLogStore::open(path).map_err(|e| storage_err(path, e))?)
        }
        None => Store::Memory(raft_log::MemLogStore::new()),
    };
    // A node's id: the one its log recorded; for a node joining a cluster
    // a fresh one; for a founding member, a hash of its address (so the
    // members agree on each other's ids without talking).
    let recorded = match &store {
        Store::Redb(s) => s
            .node_id()
            .map_err(|e| storage_err(cfg.file.as_ref().expect("redb"), e))?,
        Store::Memory(_) => None,
    };
    // A node being rebuilt keeps the id the cluster knows it by; so does a
    // new one an operator added by its address before starting it
    // (`raftctl add`). Were that member's storage lost instead, the
    // cluster has recorded another storage id for it, and the node is
    // told so and stops (raft-core's storage ids): never a second vote.
    let id =
        match (recorded, &cfg.join) {
            (Some(id), _) => id,
            (None, Some(addr)) if rebuilding => member_id_at(&client, addr, &name)
                .await?
                .ok_or_else(|| MockError::Join {
                    addr: addr.to_string(),
                    why: format!(
                        "no member has the address {name}: nothing to rebuild (a new node joins \
                     with --join alone)"
                    ),
                })?,
            (None, Some(addr)) => match member_id_at(&client, addr, &name).await? {
                Some(id) => {
                    tracing::info!(
                        id,
                        "the cluster already has a member at this address: joining as it"
                    );
                    id
                }
                None => fresh_id(&name),
            },
            (None, None) if rebuilding => {
                return Err(MockError::Settings(
                    "this node is being rebuilt (its .rebuilding marker is there) but its log has \
                 no id yet: start it with --join <a member's command port>"
                        .into(),
                ));
            }
            (None, None) => node_id(&name),
        };
    if let (Store::Redb(s), None) = (&mut store, recorded) {
        s.set_node_id(id)
            .map_err(|e| storage_err(cfg.file.as_ref().expect("redb"), e))?;
    }
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
    let resp_listener = match cfg.resp_port {
        Some(port) => Some(resp_listen(host, port, cfg.resp_plaintext).await?),
        None => None,
    };
    let api_addr = api_listener.local_addr().map_err(|e| MockError::Listen {
        addr: api_name.clone(),
        why: e.to_string(),
    })?;

    let (initial, initial_index) = match &cfg.join {
        Some(addr) if !cfg.neighbours.is_empty() => {
            return Err(MockError::Settings(format!(
                "--join {addr} takes the members from the cluster; give no neighbours"
            )));
        }
        Some(addr) => cluster_members(&client, addr).await?,
        None => (members.clone(), 0),
    };
    let mut net = NetConfig::new(id, &cfg.cluster, peer_listen, tls);
    net.peers = initial.clone();
    net.client_addr = format!("{host}:{}", api_addr.port());
    net.storage = store.storage_id();
    let (transport, inbound) = Transport::start(net).await.map_err(|e| MockError::Listen {
        addr: name.clone(),
        why: e.to_string(),
    })?;
    let transport = Arc::new(transport);

    let mut raft = Config::new(id);
    raft.mode = cfg.mode;
    raft.election_tick = cfg.election_ticks;
    raft.heartbeat_tick = cfg.heartbeat_ticks;
    raft.max_inflight = cfg.max_inflight;
    raft.seed = incarnation_seed(id);
    raft.rebuilding = rebuilding;
    let mut ncfg = NodeConfig::new(raft, initial.keys().copied().collect());
    ncfg.addresses = initial.clone();
    ncfg.membership_index = initial_index;
    ncfg.tick = cfg.tick;
    ncfg.snapshot_entries = cfg.snapshot_entries;
    ncfg.snapshot_bytes = cfg.snapshot_bytes;
    ncfg.keep_entries = cfg.keep_entries;
    ncfg.scrub_interval = cfg.scrub_interval;
    ncfg.log_reduction = cfg.log_reduction;
    let kv = KvStore::with_history(cfg.watch_history);
    let shared = transport.clone();
    let snaps: Arc<dyn SnapshotStore> = match &cfg.file {
        Some(path) => {
            let dir = snapshot_dir(path);
            let s = raft_log::FileSnapshots::open(&dir).map_err(|e| MockError::Storage {
                path: dir.clone(),
                why: e.to_string(),
            })?;
            Arc::new(s)
        }
        None => Arc::new(raft_log::MemSnapshots::new()),
    };
    if let Some(backup) = &cfg.restore {
        let mut m = raft_core::Membership::new(initial.keys().copied());
        m.addresses = initial.clone();
        match &mut store {
            Store::Redb(s) => recovery::restore_backup(s, &*snaps, backup, m)?,
            Store::Memory(s) => recovery::restore_backup(s, &*snaps, backup, m)?,
        }
    }
    if cfg.solo {
        match &mut store {
            Store::Redb(s) => recovery::solo(s, &*snaps, id, &name)?,
            Store::Memory(_) => {
                return Err(MockError::Settings(
                    "--solo keeps a node's history; a node without a storage file has none".into(),
                ));
            }
        }
    }
    let node = match store {
        Store::Redb(s) => Node::start(ncfg, s, snaps, shared, inbound, kv.clone())
            .map_err(|e| refused_start(cfg.file.as_deref(), e))?,
        Store::Memory(s) => Node::start(ncfg, s, snaps, shared, inbound, kv.clone())?,
    };

    let peers = tokio::spawn(follow_membership(node.clone(), transport.clone()));
    removal::serve_stamps(&node, &transport);
    let (removed_tx, stopped) = tokio::sync::watch::channel(None);
    let removal = tokio::spawn(removal::watch(
        node.clone(),
        transport.clone(),
        cfg.join.is_some(),
        removed_tx,
    ));
    // A node being rebuilt first waits (asking, with --join) to be
    // demoted; a joining one then asks to be a voter.
    let mark = cfg
        .file
        .as_deref()
        .map(rebuild::marker)
        .filter(|_| rebuilding);
    let joiner = (mark.is_some() || cfg.join.is_some()).then(|| {
        let (node, client, name, join_via) =
            (node.clone(), client.clone(), name.clone(), cfg.join.clone());
        tokio::spawn(async move {
            if let Some(mark) = mark {
                let ask = join_via.clone().map(|via| rebuild::Ask {
                    client: client.clone(),
                    via,
                    me: name.clone(),
                });
                rebuild::run(node.clone(), ask, mark).await;
            }
            if let Some(via) = join_via {
                join(node, client, via, name).await
            }
        })
    });
    let (t, counted) = (transport.clone(), transport.clone());
    let (drain, draining) = tokio::sync::watch::channel(false);
    let ctx = Arc::new(ApiContext {
        node: node.clone(),
        kv: kv.clone(),
        id_of: Box::new(|addr| {
            let name = canonical(addr).map_err(|e| e.to_string())?;
            Ok((node_id(&name), name))
        }),
        peer_client_addr: Box::new(move |peer| t.client_addr(peer)),
        transport_counters: Box::new(move || TransportCounters {
            inbound_dropped: counted.inbound_dropped(),
            dropped: counted
                .peers()
                .into_keys()
                .map(|id| (id, counted.dropped(id)))
                .collect(),
        }),
        client: client.clone(),
        started: Instant::now(),
        metrics: Metrics::default(),
        limits: cfg.limits.clone(),
        max_body: 4 << 20,
        log_reduction: cfg.log_reduction,
        anonymous: cfg.anonymous_role,
        draining: draining.clone(),
        lessor: Default::default(),
    });
    let resp_tls = (!cfg.resp_plaintext).then(|| api_tls.clone());
    let resp_addr = resp_listener.as_ref().and_then(|l| l.local_addr().ok());
    let resp = resp_listener.map(|l| {
        let (ctx, drain) = (ctx.clone(), draining.clone());
        let config = raft_resp::RespConfig::default();
        tokio::spawn(raft_resp::serve(l, resp_tls, ctx, config, drain))
    });
    let api = tokio::spawn(raft_http::serve(api_listener, api_tls, ctx, draining));
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
        resp_addr,
        api,
        resp,
        drain,
        background: [Some(peers), Some(removal), joiner]
            .into_iter()
            .flatten()
            .collect(),
        stopped,
        _transport: transport,
    })
}

/// The RESP port's listener on `host`: TLS, or plaintext on loopback only
/// (anything else could be read and written by the whole network).
async fn resp_listen(host: &str, port: u16, plaintext: bool) -> Result<TcpListener, MockError> {
    let name = format!("{host}:{port}");
    let addr = resolve(&name)?;
    if plaintext && !addr.ip().is_loopback() {
        return Err(MockError::Settings(format!(
            "--resp-plaintext serves only on loopback; {name} is not (drop it for TLS)"
        )));
    }
    TcpListener::bind(addr)
        .await
        .map_err(|e| MockError::Listen {
            addr: name,
            why: e.to_string(),
        })
}

/// Keeps the transport's peers equal to the members of the configuration
/// in force, plus the leader this node follows: a leader that removed
/// itself still needs the acknowledgements that commit its removal.
async fn follow_membership(node: Node<Output>, transport: Arc<Transport>) {
    let mut rx = node.watch_membership();
    let mut known = BTreeMap::new();
    let mut last = None;
    loop {
        let want = {
            let s = rx.borrow_and_update();
            let conf = &s.membership;
            known.extend(conf.addresses.iter().map(|(&id, a)| (id, a.clone())));
            let mut want = conf.addresses.clone();
            if let Some(l) = s.leader
                && let Some(a) = known.get(&l)
            {
                want.insert(l, a.clone());
            }
            want
        };
        if last.as_ref() != Some(&want) {
            transport.set_peers(&want);
            last = Some(want);
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// The voters (id → address) of the cluster whose command port is
/// `addr`, and the index of that configuration.
/// What a node that cannot start from its storage says: which file, and
/// why (a damaged snapshot names itself and the byte).
fn refused_start(file: Option<&std::path::Path>, e: raft_core::node::NodeError) -> MockError {
    match (file, e) {
        (Some(f), raft_core::node::NodeError::Storage(why)) => MockError::Storage {
            path: f.to_path_buf(),
            why: format!("cannot start from it: {why}"),
        },
        (_, e) => MockError::Node(e),
    }
}

/// `--rebuild` goes with `--confirm` and `--join`, and with no other
/// recovery action.
fn check_rebuild(cfg: &MockConfig) -> Result<(), MockError> {
    let why = if !cfg.rebuild {
        return Ok(());
    } else if !cfg.confirm {
        "--rebuild moves this node's storage aside and rebuilds it from its peers; add \
         --confirm to do it"
    } else if cfg.file.is_none() {
        "--rebuild rebuilds a node's storage file; this one runs in memory"
    } else if cfg.join.is_none() {
        "--rebuild needs --join <a member's command port> to ask the cluster"
    } else if cfg.solo || cfg.detach || cfg.restore.is_some() {
        "--rebuild does not go with --solo, --detach or --restore"
    } else {
        return Ok(());
    };
    Err(MockError::Settings(why.into()))
}

/// The id of the member whose address is `name`, as the cluster reached
/// through the command port `addr` knows it.
async fn member_id_at(
    client: &HttpsClient,
    addr: &str,
    name: &str,
) -> Result<Option<NodeId>, MockError> {
    let v = configuration(client, addr).await?;
    let servers = v["Servers"].as_array().into_iter().flatten();
    Ok(servers
        .filter(|s| s["Address"].as_str() == Some(name))
        .find_map(|s| s["ID"].as_str().and_then(|i| i.parse().ok())))
}

/// The cluster's configuration, as `GET /v1/operator/raft/configuration`
/// on the command port `addr` gives it.
async fn configuration(client: &HttpsClient, addr: &str) -> Result<serde_json::Value, MockError> {
    let fail = |why: String| MockError::Join {
        addr: addr.to_string(),
        why,
    };
    let path = "/v1/operator/raft/configuration";
    let reply = client
        .request(
            addr,
            raft_http::client::Method::GET,
            path,
            &[],
            Default::default(),
        )
        .await
        .map_err(|e| fail(e.to_string()))?;
    reply
        .json()
        .filter(|_| reply.status.is_success())
        .ok_or_else(|| fail(format!("{path} answered {}", reply.status)))
}

async fn cluster_members(
    client: &HttpsClient,
    addr: &str,
) -> Result<(BTreeMap<NodeId, String>, Index), MockError> {
    let fail = |why: String| MockError::Join {
        addr: addr.to_string(),
        why,
    };
    let v = configuration(client, addr).await?;
    let mut members = BTreeMap::new();
    for s in v["Servers"].as_array().into_iter().flatten() {
        if s["Voter"] != serde_json::Value::Bool(true) {
            continue;
        }
        let id = s["ID"].as_str().and_then(|i| i.parse::<NodeId>().ok());
        let addr = s["Address"].as_str();
        let (Some(id), Some(addr)) = (id, addr) else {
            return Err(fail(format!("a server without an id or address: {s}")));
        };
        members.insert(id, addr.to_string());
    }
    if members.is_empty() {
        return Err(fail("the cluster reported no voters".into()));
    }
    Ok((members, v["Index"].as_u64().unwrap_or(0)))
}

/// Asks the cluster to add this node until it is a voter (the request is
/// idempotent, so retrying across leader changes is safe).
async fn join(node: Node<Output>, client: HttpsClient, addr: String, me: String) {
    let id = node.status().raft.id;
    let path = format!("/v1/operator/raft/peer?address={me}&id={id}");
    let mut rx = node.watch_status();
    loop {
        let is_voter = |s: &raft_core::node::NodeStatus| {
            s.raft.membership.voters.contains(&id) && !s.raft.membership.is_joint()
        };
        if is_voter(&rx.borrow_and_update()) {
            tracing::info!(via = %addr, "joined the cluster as a voter");
            return;
        }
        let r = client
            .request(
                &addr,
                raft_http::client::Method::PUT,
                &path,
                &[],
                Default::default(),
            )
            .await;
        match r {
            Ok(reply) if reply.status.is_success() => {
                tracing::info!(via = %addr, status = %reply.status, "asked to join")
            }
            Ok(reply) => {
                tracing::warn!(via = %addr, status = %reply.status, "join refused: {}", String::from_utf8_lossy(&reply.body))
            }
            Err(e) => tracing::warn!(via = %addr, "cannot ask to join: {e}"),
        }
        let wait = rx.wait_for(is_voter);
        if let Ok(r) = tokio::time::timeout(Duration::from_secs(2), wait).await
            && r.is_err()
        {
            return;
        }
    }
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
