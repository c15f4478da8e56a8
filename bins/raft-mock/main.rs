//! raft-mock: one raftstack node, with pyraftlog-mock's flags.

mod config;

use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};
use raft_core::Mode;
use raft_mock::{MockConfig, Stop};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// mimalloc: glibc's allocator consolidated its free lists on nearly every
/// request's buffers (`malloc_consolidate` under hyper's read buffer);
/// with mimalloc linearizable reads at 64 clients went from 58,606-60,333
/// to 76,045-77,151/s in alternating runs (`docs/benchmarks.md`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, Copy, ValueEnum)]
enum NodeType {
    Active,
    Reluctant,
    Passive,
}

/// pyraftlog's level names, upper case as there (lower case works too).
#[derive(Clone, Copy, ValueEnum)]
enum Level {
    #[value(name = "DEBUG", alias = "debug")]
    Debug,
    #[value(name = "INFO", alias = "info")]
    Info,
    #[value(name = "WARNING", alias = "warning")]
    Warning,
    #[value(name = "ERROR", alias = "error")]
    Error,
    #[value(name = "CRITICAL", alias = "critical")]
    Critical,
}

#[derive(Clone, Copy, ValueEnum)]
enum ClientCerts {
    Required,
    Optional,
}

/// The role of command-port clients without a certificate.
#[derive(Clone, Copy, ValueEnum)]
enum AnonymousRole {
    None,
    Readonly,
    Readwrite,
    Admin,
}

/// Run a raftstack node on mutual TLS (pyraftlog-mock's flags).
#[derive(Parser)]
#[command(name = "raft-mock", version)]
struct Args {
    /// Type of the node.
    #[arg(short = 't', long = "type", value_enum, default_value = "active")]
    node_type: NodeType,
    /// (host:)?port of this node, e.g. 7001 or localhost:7001 (the host
    /// defaults to 127.0.0.1). It names the member in the cluster.
    #[arg(short = 'n', long)]
    node: String,
    /// (host:)?port of each neighbour, spelled as they spell themselves.
    #[arg(short = 'b', long, num_args = 1..)]
    neighbours: Vec<String>,
    /// Port for receiving commands (HTTPS + JSON).
    #[arg(short = 'p', long, default_value_t = 7500)]
    port: u16,
    /// Also serve the Redis protocol (RESP2/RESP3) on this port: over TLS
    /// with the node's certificates and the command port's client-cert
    /// rule (docs/resp.md).
    #[arg(long, value_name = "PORT")]
    resp_port: Option<u16>,
    /// Serve --resp-port in plaintext: only when the node's host is a
    /// loopback address (refused otherwise).
    #[arg(long, requires = "resp_port")]
    resp_plaintext: bool,
    /// Set log reduction to True: the log is compacted (behind a
    /// snapshot) up to the highest index every member has applied.
    #[arg(short = 'r', long)]
    log_reduction: bool,
    /// Changes kept for watchers (`GET /v1/watch/...?from=`): a watch may
    /// resume from any index these cover; older ones answer 410.
    #[arg(long, default_value_t = raft_kv::history::DEFAULT_KEEP as u64, value_parser = clap::value_parser!(u64).range(1..))]
    watch_history: u64,
    /// Command-port connections held at once (each watch stream holds
    /// one); more are closed on accept.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: u64,
    /// ... of them from one client address.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..))]
    max_connections_per_client: u64,
    /// Take a snapshot and compact the log every this many entries (0:
    /// only with log reduction).
    #[arg(long, default_value_t = 100_000)]
    snapshot_entries: u64,
    /// ... or every this many bytes of entries, whichever comes first (0:
    /// no byte limit).
    #[arg(long, default_value_t = 64 << 20)]
    snapshot_bytes: u64,
    /// Entries kept in the log behind a snapshot, so a follower a little
    /// behind catches up from the log instead of by snapshot.
    #[arg(long, default_value_t = 10_000)]
    keep_entries: u64,
    /// Seconds between scrub passes, which re-read and verify the latest
    /// snapshot at a bounded rate (0: no scrub).
    #[arg(long, default_value_t = 600)]
    scrub_secs: u64,
    /// Logging level.
    #[arg(short = 'l', long, value_enum, default_value = "INFO")]
    log_level: Level,
    /// Storage file (redb). Without it, everything is kept in memory.
    #[arg(short = 'f', long)]
    file: Option<PathBuf>,
    /// Directory with transport-ca.pem, transport-consensus.crt/.key.
    #[arg(long, default_value = "certs")]
    certs: PathBuf,
    /// Cluster name; peers with another are refused.
    #[arg(long, default_value = "raftstack")]
    cluster: String,
    /// Milliseconds per protocol tick.
    #[arg(long, default_value_t = 50)]
    tick_ms: u64,
    /// Ticks without a leader before an election (randomized up to 2x).
    #[arg(long, default_value_t = 10)]
    election_ticks: u64,
    /// Ticks between leader heartbeats.
    #[arg(long, default_value_t = 1)]
    heartbeat_ticks: u64,
    /// Appends in flight to a follower before the leader waits for an
    /// acknowledgement. One suits a LAN: what queues meanwhile goes out
    /// as one larger append (one fsync on the follower); raise it for
    /// links whose round trip is long against a follower's fsync.
    #[arg(long, default_value_t = raft_mock::DEFAULT_MAX_INFLIGHT)]
    max_inflight: usize,
    /// Async worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Join an existing cluster through the command port (host:port) of
    /// any member: this node asks to be added, is added as a learner,
    /// catches up and is promoted to voter. Give no neighbours with it.
    #[arg(long, value_name = "HOST:PORT")]
    join: Option<String>,
    /// Start a new cluster from a backup made with `raftctl backup` (the
    /// node's storage must be empty). Give every founding member the same
    /// file, or start one and add the others with --join.
    #[arg(long, value_name = "FILE")]
    restore: Option<PathBuf>,
    /// Recovery when a quorum is lost for good: make this node, without
    /// consensus, the only member of a new one-node cluster that keeps its
    /// log. Needs --confirm. Never restart the old cluster alongside it.
    #[arg(long)]
    solo: bool,
    /// Delete this node's history (log and snapshots) before starting, so
    /// it can join another cluster (with --join). Remove it from its old
    /// cluster first (`raftctl detach`). Needs --confirm.
    #[arg(long)]
    detach: bool,
    /// Rebuild this node from its peers after its storage was damaged or
    /// lost: its files are moved aside (to FILE.damaged-<time>), it starts
    /// empty under its old identity, the cluster (reached through --join)
    /// demotes it to a learner, sends it everything, and promotes it back.
    /// It votes again only once demoted. Needs --confirm and --join.
    #[arg(long)]
    rebuild: bool,
    /// Confirms --solo, --detach or --rebuild.
    #[arg(long)]
    confirm: bool,
    /// Whether command-port clients must present a certificate of the CA.
    #[arg(long, value_enum, default_value = "required")]
    client_certs: ClientCerts,
    /// With --client-certs optional: what clients without a certificate
    /// may do (clients with one get the role it names).
    #[arg(long, value_enum, default_value = "readonly")]
    anonymous_role: AnonymousRole,
    /// Log lines as text, or as one JSON object each (for log shippers).
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// A TOML file of settings, keyed by the long flag names
    /// (`resp-port = 8001`, `neighbours = ["7002", "7003"]`). The command
    /// line wins over RAFTSTACK_<FLAG> environment variables, which win
    /// over the file, which wins over the defaults.
    #[arg(long, value_name = "FILE", env = "RAFTSTACK_CONFIG")]
    config: Option<PathBuf>,
    /// Print the settings as resolved (a config file, each line saying
    /// where its value came from) and exit.
    #[arg(long)]
    print_config: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cmd = config::with_env(Args::command());
    let resolved = match config::resolve(&cmd, std::env::args_os().collect()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("raft-mock: {e:#}");
            return ExitCode::from(2);
        }
    };
    if resolved.matches.get_flag("print_config") {
        print!("{}", config::print(&cmd, &resolved));
        return ExitCode::SUCCESS;
    }
    let args = Args::from_arg_matches(&resolved.matches).unwrap_or_else(|e| e.exit());
    let level = match args.log_level {
        Level::Debug => tracing::Level::DEBUG,
        Level::Info => tracing::Level::INFO,
        Level::Warning => tracing::Level::WARN,
        Level::Error | Level::Critical => tracing::Level::ERROR,
    };
    // Colour only on a terminal: node logs usually go to files.
    let logs = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    raft_mock::raise_fd_limit();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("raft-mock: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(Stopped::Signal) => ExitCode::SUCCESS,
        Ok(Stopped::By(Stop::LostState(why))) => {
            eprintln!("raft-mock: {why}");
            ExitCode::from(LOST_STATE)
        }
        Ok(Stopped::By(Stop::Removed(why))) => {
            eprintln!(
                "raft-mock: not a member of the cluster: {why}. It was removed, or never \
                 added (a new node starts with --join). Stopped; data kept. To reuse it: \
                 --detach --confirm [--join ADDR]"
            );
            ExitCode::from(REMOVED)
        }
        Err(e) => {
            eprintln!("raft-mock: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The exit status of a node that stopped because it learnt the cluster's
/// committed configuration does not include it (a supervisor should not
/// restart it: `RestartPreventExitStatus=3`).
const REMOVED: u8 = 3;

/// The exit status of a node that stopped because its storage is not the
/// one the cluster knows for its id (it lost its state): a supervisor
/// should not restart it either (`RestartPreventExitStatus=3 4`).
const LOST_STATE: u8 = 4;

enum Stopped {
    Signal,
    By(Stop),
}

async fn run(a: Args) -> anyhow::Result<Stopped> {
    let mut cfg = MockConfig::new(&a.node, &[], a.port);
    cfg.neighbours = a.neighbours;
    cfg.mode = match a.node_type {
        NodeType::Active => Mode::Active,
        NodeType::Reluctant => Mode::Reluctant,
        NodeType::Passive => Mode::Passive,
    };
    cfg.log_reduction = a.log_reduction;
    cfg.resp_port = a.resp_port;
    cfg.resp_plaintext = a.resp_plaintext;
    cfg.watch_history = a.watch_history as usize;
    cfg.limits.max_connections = a.max_connections as usize;
    cfg.limits.max_per_client = a.max_connections_per_client as usize;
    cfg.file = a.file;
    cfg.certs = a.certs;
    cfg.cluster = a.cluster;
    cfg.tick = Duration::from_millis(a.tick_ms.max(1));
    cfg.election_ticks = a.election_ticks;
    cfg.heartbeat_ticks = a.heartbeat_ticks;
    cfg.max_inflight = a.max_inflight;
    cfg.require_client_cert = matches!(a.client_certs, ClientCerts::Required);
    cfg.anonymous_role = {
        use raft_http::access::Role;
        match a.anonymous_role {
            AnonymousRole::None => None,
            AnonymousRole::Readonly => Some(Role::ReadOnly),
            AnonymousRole::Readwrite => Some(Role::ReadWrite),
            AnonymousRole::Admin => Some(Role::Admin),
        }
    };
    cfg.join = a.join;
    cfg.restore = a.restore;
    cfg.solo = a.solo;
    cfg.detach = a.detach;
    cfg.rebuild = a.rebuild;
    cfg.confirm = a.confirm;
    cfg.snapshot_entries = a.snapshot_entries;
    cfg.snapshot_bytes = a.snapshot_bytes;
    cfg.keep_entries = a.keep_entries;
    cfg.scrub_interval = Duration::from_secs(a.scrub_secs);
    let plaintext = cfg.resp_plaintext;
    let node = raft_mock::start(cfg).await?;
    // Scripts read this line to learn the ports (useful with port 0).
    println!(
        "raft-mock: node {} serving peers on {} and commands on https://{}",
        node.name, node.peer_addr, node.api_addr
    );
    if let Some(resp) = node.resp_addr {
        let scheme = if plaintext { "redis" } else { "rediss" };
        println!(
            "raft-mock: node {} serving RESP on {scheme}://{resp}",
            node.name
        );
    }
    let mut stop = node.stopped.clone();
    let stopped = tokio::select! {
        r = wait_for_signal() => {
            r?;
            Stopped::Signal
        }
        Ok(why) = stop.wait_for(Option::is_some) => {
            Stopped::By(why.clone().expect("waited for Some"))
        }
    };
    if let Stopped::By(Stop::Removed(_)) = stopped {
        // The request that removed this node may be its own (a leader
        // removing itself), answered in the same moment the removal
        // commits: the answers in flight get a second to leave.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    tracing::info!("shutting down");
    node.shutdown().await;
    Ok(stopped)
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
