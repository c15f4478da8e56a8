//! raftctl: the command-line client for people. Talks to command ports
//! over HTTPS with the client certificate from `cargo xtask certs`.

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use raft_http::HttpsClient;
use raft_http::client::{ClientError, Method, Reply};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

mod kv;
mod lease;
mod members;
mod status;
mod txn;
mod watch;

use members::{add, members};
use status::status;

/// Command-line client for raftstack clusters.
#[derive(Parser)]
#[command(name = "raftctl", version)]
struct Args {
    /// Command ports of the cluster's nodes, comma separated.
    #[arg(
        long,
        env = "RAFTCTL_NODES",
        default_value = "127.0.0.1:7501,127.0.0.1:7502,127.0.0.1:7503",
        value_delimiter = ','
    )]
    nodes: Vec<String>,
    /// Directory with transport-ca.pem and transport-client.crt/.key.
    #[arg(long, env = "RAFTCTL_CERTS", default_value = "certs")]
    certs: PathBuf,
    /// Namespace for KV commands.
    #[arg(long, default_value = "default")]
    ns: String,
    /// What to print: text (tables and lines) or JSON, one document per
    /// command (`log` prints JSON lines either way).
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    output: Output,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Every node's status, as a table.
    Status,
    /// Prints a key's value.
    Get {
        key: String,
        /// Read this node's copy without a linearizable barrier.
        #[arg(long)]
        stale: bool,
    },
    /// Sets a key.
    Put {
        key: String,
        value: String,
        /// Only if the key's modify index is this (0: only if absent).
        #[arg(long)]
        cas: Option<u64>,
        /// Attach the key to this lease: it is deleted when the lease ends.
        #[arg(long)]
        lease: Option<u64>,
    },
    /// Deletes a key (with --recurse, every key under the prefix).
    Delete {
        key: String,
        #[arg(long)]
        recurse: bool,
    },
    /// Lists keys under a prefix.
    List {
        #[arg(default_value = "")]
        prefix: String,
    },
    /// Lists namespaces.
    Namespaces,
    /// Applies operations all or none, one per argument: `set KEY VALUE`,
    /// `cas KEY INDEX VALUE`, `get KEY`, `get-tree PREFIX`, `check-index
    /// KEY INDEX`, `check-not-exists KEY`, `delete KEY`, `delete-tree
    /// PREFIX`, `delete-cas KEY INDEX`. Exits 1, naming each failing
    /// operation, if any fails (then none applied).
    Txn {
        #[arg(required = true)]
        ops: Vec<String>,
    },
    /// Prints the last committed log entries; with --follow, keeps
    /// printing new ones.
    Log {
        #[arg(long, default_value_t = 20)]
        last: u64,
        #[arg(long)]
        follow: bool,
    },
    /// Prints a key's changes as they happen (with --recurse, of every key
    /// under the prefix): from now, or from --from INDEX; on another node
    /// when one goes away, missing and repeating nothing.
    Watch {
        #[arg(default_value = "")]
        key: String,
        #[arg(long)]
        recurse: bool,
        /// Start at this log index (e.g. the last printed + 1).
        #[arg(long)]
        from: Option<u64>,
        /// Exit after printing this many events.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Leases: grant, keepalive, revoke, show, list.
    Lease {
        #[command(subcommand)]
        cmd: lease::LeaseCmd,
    },
    /// Runs COMMAND holding the lock on key NAME (on a lease kept alive
    /// meanwhile; COMMAND is killed if the lease is lost), with the lock's
    /// fencing value in RAFT_LOCK_FENCE. Waits for the lock if it is held.
    /// Exits with COMMAND's status.
    Lock {
        name: String,
        /// The lease's TTL: how long the lock outlives a raftctl that dies.
        #[arg(long, default_value = "10s")]
        ttl: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Sets a node's mode (active, reluctant, passive).
    Mode { node: String, mode: String },
    /// Hands leadership to a member (by peer address), or to the best one.
    Transfer { to: Option<String> },
    /// The cluster's members: voters and learners, and any change in
    /// progress.
    Members,
    /// Saves a consistent snapshot of the whole KV (every namespace) to
    /// FILE; `raft-mock --restore FILE` starts a new cluster from it.
    Backup { file: PathBuf },
    /// Adds a member by its peer address: as a learner, promoted to voter
    /// once caught up (waits for that unless --learner).
    Add {
        address: String,
        /// Add as a learner only (receives the log, does not vote).
        #[arg(long)]
        learner: bool,
        /// The member's node id (default: the one its address hashes to,
        /// as for founding members).
        #[arg(long)]
        id: Option<u64>,
    },
    /// Removes a member (by peer address); the leader too, which then
    /// steps down.
    Remove { address: String },
    /// Takes a member out of its cluster (a membership change), so it can
    /// be reset (`raft-mock --detach --confirm`) and join another.
    Detach { address: String },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("raftctl: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Clone)]
struct Ctl {
    client: HttpsClient,
    nodes: Vec<String>,
    ns: String,
    /// `-o json`.
    json: bool,
}

impl Ctl {
    /// Prints a command's result: `v` with `-o json`, else `text()`.
    fn say(&self, v: serde_json::Value, text: impl FnOnce() -> String) {
        if self.json {
            println!("{v}");
        } else {
            let t = text();
            if !t.is_empty() {
                println!("{t}");
            }
        }
    }
}

/// An answer's `X-Raft-Index` (0 if it has none).
fn index_of(r: &Reply) -> u64 {
    r.headers
        .get(raft_http::INDEX_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Ctl {
    /// The first node that answers; `prefer_leader` asks them who leads
    /// and goes there.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        prefer_leader: bool,
    ) -> anyhow::Result<Reply> {
        let mut targets = self.nodes.clone();
        if prefer_leader && let Some(l) = self.leader().await {
            targets.insert(0, l);
        }
        let mut last = None;
        for n in &targets {
            match self
                .client
                .request(n, method.clone(), path, &[], body.clone())
                .await
            {
                Ok(r) => return Ok(r),
                Err(e) => last = Some(e),
            }
        }
        Err(last.map_or_else(|| anyhow::anyhow!("no nodes given"), Into::into))
    }

    /// A GET from any node, refused answers turned into errors.
    async fn read(&self, path: &str) -> anyhow::Result<Reply> {
        let r = self.call(Method::GET, path, Bytes::new(), false).await?;
        check(&r)?;
        Ok(r)
    }

    /// A GET from the first node that answers, its body streamed to `out`.
    /// Only a node that could not be reached is passed over: after any
    /// other failure part of a body may be in `out`.
    async fn download(
        &self,
        path: &str,
        out: &mut (dyn std::io::Write + Send),
    ) -> anyhow::Result<Reply> {
        let mut last = None;
        for n in &self.nodes {
            match self.client.download(n, path, out).await {
                Ok(r) => {
                    check(&r)?;
                    return Ok(r);
                }
                Err(e @ ClientError::Connect { .. }) => last = Some(e),
                Err(e) => return Err(e.into()),
            }
        }
        Err(last.map_or_else(|| anyhow::anyhow!("no nodes given"), Into::into))
    }

    /// A write, sent to the leader when one is known.
    async fn write(&self, method: Method, path: &str, body: Bytes) -> anyhow::Result<Reply> {
        let r = self.call(method, path, body, true).await?;
        check(&r)?;
        Ok(r)
    }

    /// Node `n`'s status (`GET /`), if it answers.
    async fn node_status(&self, n: &str) -> Option<serde_json::Value> {
        let r = self
            .client
            .request(n, Method::GET, "/", &[], Bytes::new())
            .await;
        r.ok()?.json()
    }

    /// The leader's command port, as the nodes say.
    async fn leader(&self) -> Option<String> {
        for n in &self.nodes {
            let Some(s) = self.node_status(n).await else {
                continue;
            };
            if s["role"] == "leader" {
                return Some(n.clone());
            }
            if let Some(l) = s["leader_command_port"].as_str() {
                return Some(l.to_string());
            }
        }
        None
    }
}

/// The elements of a JSON array answer (none for anything else).
fn array(r: &Reply) -> Vec<serde_json::Value> {
    r.json().as_ref().map(array_of).unwrap_or_default()
}

/// The items of a JSON array (none if it is not one).
fn array_of(v: &serde_json::Value) -> Vec<serde_json::Value> {
    v.as_array().cloned().unwrap_or_default()
}

fn check(r: &Reply) -> anyhow::Result<()> {
    if r.status.is_success() {
        return Ok(());
    }
    let msg = r
        .json()
        .and_then(|v| v["error"].as_str().map(String::from))
        .unwrap_or_else(|| String::from_utf8_lossy(&r.body).into_owned());
    bail!("{}: {msg}", r.status)
}

async fn run(a: Args) -> anyhow::Result<()> {
    let ca = a.certs.join("transport-ca.pem");
    let tls = raft_net::tls::client_config(
        &ca,
        Some((
            &a.certs.join("transport-client.crt"),
            &a.certs.join("transport-client.key"),
        )),
    )
    .with_context(|| format!("loading certificates from {}", a.certs.display()))?;
    let mut client = HttpsClient::new(tls);
    // Adding a voter waits for it to catch up (the leader gives up after
    // two minutes); a backup of a big store takes a while.
    let wait = matches!(a.cmd, Cmd::Add { learner: false, .. } | Cmd::Backup { .. });
    client.timeout = Duration::from_secs(if wait { 600 } else { 10 });
    let ctl = Ctl {
        client,
        nodes: a.nodes,
        ns: enc(&a.ns),
        json: a.output == Output::Json,
    };

    match a.cmd {
        Cmd::Status => status(&ctl).await,
        Cmd::Get { key, stale } => kv::get(&ctl, &key, stale).await,
        Cmd::Put {
            key,
            value,
            cas,
            lease,
        } => kv::put(&ctl, &key, value, cas, lease).await,
        Cmd::Lease { cmd } => lease::lease(&ctl, cmd).await,
        Cmd::Lock { name, ttl, command } => {
            let code = lease::lock(&ctl, &name, &ttl, &command).await?;
            if code != 0 {
                std::process::exit(code);
            }
            Ok(())
        }
        Cmd::Delete { key, recurse } => kv::delete(&ctl, &key, recurse).await,
        Cmd::List { prefix } => kv::list(&ctl, &prefix).await,
        Cmd::Namespaces => kv::namespaces(&ctl).await,
        Cmd::Txn { ops } => txn::run(&ctl, &ops).await,
        Cmd::Log { last, follow } => log(&ctl, last, follow).await,
        Cmd::Watch {
            key,
            recurse,
            from,
            count,
        } => watch::watch(&ctl, &key, recurse, from, count).await,
        Cmd::Mode { node, mode } => {
            let body = serde_json::json!({ "mode": mode }).to_string();
            let r = ctl
                .client
                .request(&node, Method::PUT, "/v1/mode", &[], Bytes::from(body))
                .await?;
            check(&r)?;
            let v = serde_json::json!({ "node": node, "mode": mode });
            ctl.say(v, || format!("{node} is now {mode}"));
            Ok(())
        }
        Cmd::Members => members(&ctl).await,
        Cmd::Backup { file } => backup(&ctl, &file).await,
        Cmd::Add {
            address,
            learner,
            id,
        } => add(&ctl, &address, learner, id).await,
        Cmd::Detach { address } => {
            let path = format!("/v1/operator/raft/peer?address={}", enc(&address));
            ctl.write(Method::DELETE, &path, Bytes::new()).await?;
            ctl.say(serde_json::json!({ "detached": address }), || {
                format!(
                    "{address} left its cluster; stop it, then start it with --detach --confirm \
                     (and --join <command port> to join another cluster)"
                )
            });
            Ok(())
        }
        Cmd::Remove { address } => {
            let path = format!("/v1/operator/raft/peer?address={}", enc(&address));
            let r = ctl.write(Method::DELETE, &path, Bytes::new()).await?;
            let v = r.json().unwrap_or_default();
            let text = || {
                format!(
                    "removed {} (configuration index {})",
                    v["removed"].as_str().unwrap_or(&address),
                    v["index"]
                )
            };
            ctl.say(v.clone(), text);
            Ok(())
        }
        Cmd::Transfer { to } => {
            let q = to.map(|t| format!("?id={}", enc(&t))).unwrap_or_default();
            let path = format!("/v1/operator/raft/transfer-leader{q}");
            let r = ctl.write(Method::POST, &path, Bytes::new()).await?;
            let v = r.json().unwrap_or_default();
            let leader = v["leader"].as_str().unwrap_or("?");
            if v["Success"] != serde_json::Value::Bool(true) {
                bail!(
                    "leadership did not move (the leader is {leader}); a passive node never takes it"
                );
            }
            ctl.say(serde_json::json!({ "leader": leader }), || {
                format!("leader: {leader}")
            });
            Ok(())
        }
    }
}

/// Streams a snapshot to `FILE.partial`, checks it, makes it durable and
/// renames it into place: the file is whole or absent, never half of one.
async fn backup(ctl: &Ctl, file: &std::path::Path) -> anyhow::Result<()> {
    let mut tmp = file.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = std::path::PathBuf::from(tmp);
    let saving = || format!("writing {}", tmp.display());
    let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp).with_context(saving)?);
    let r = ctl.download("/v1/snapshot", &mut out).await;
    let r = r.and_then(|r| {
        let f = out.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        Ok(r)
    });
    let r = match r {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let index = index_of(&r);
    let checked = std::fs::File::open(&tmp)
        .map_err(anyhow::Error::from)
        .and_then(|mut f| Ok(raft_kv::snapshot::verify(&mut f)?));
    let sum = match checked {
        Ok(sum) => sum,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.context("the cluster sent a damaged snapshot"));
        }
    };
    let bytes = std::fs::metadata(&tmp).with_context(saving)?.len();
    std::fs::rename(&tmp, file).with_context(|| format!("writing {}", file.display()))?;
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))?;
    let v = serde_json::json!({
        "file": file.display().to_string(),
        "keys": sum.keys,
        "index": index,
        "bytes": bytes,
    });
    ctl.say(v, || {
        format!(
            "saved {} keys as of index {index} to {} ({bytes} bytes)",
            sum.keys,
            file.display(),
        )
    });
    Ok(())
}

async fn log(ctl: &Ctl, last: u64, follow: bool) -> anyhow::Result<()> {
    let v = ctl.read("/v1/log").await?.json().unwrap_or_default();
    let commit = v["commit_index"].as_u64().unwrap_or(0);
    let mut next = commit.saturating_sub(last.max(1) - 1).max(1);
    // Whatever is committed already, a page at a time; then, following,
    // the node's stream of new entries. When a stream ends (the node went
    // away), a page read from any node catches up (or says why it cannot,
    // e.g. the entries were compacted) before following again.
    loop {
        loop {
            let path = format!("/v1/log?from={next}&to={}", next + 999);
            let v = ctl.read(&path).await?.json().unwrap_or_default();
            let entries = v["entries"].as_array().cloned().unwrap_or_default();
            for e in &entries {
                println!("{e}");
                next = e["index"].as_u64().unwrap_or(next) + 1;
            }
            if entries.len() < 1000 {
                break;
            }
        }
        if !follow {
            return Ok(());
        }
        let mut stream = ctl.client.clone();
        stream.timeout = Duration::MAX;
        let mut lines = EntryLines {
            pending: Vec::new(),
            next: &mut next,
        };
        for n in &ctl.nodes {
            let path = format!("/v1/log/follow?from={}", *lines.next);
            if stream.download(n, &path, &mut lines).await.is_ok() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Prints a followed stream's entries, a line each, and keeps the index
/// of the next one.
struct EntryLines<'a> {
    pending: Vec<u8>,
    next: &'a mut u64,
}

impl std::io::Write for EntryLines<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            if let Ok(e) = serde_json::from_slice::<serde_json::Value>(&line) {
                println!("{e}");
                *self.next = e["index"].as_u64().unwrap_or(*self.next) + 1;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
