//! `cargo xtask cluster`: the README's main command. Builds the binaries,
//! makes certificates if missing, starts a local mutual-TLS cluster of
//! `raft-mock` processes, shows a write through a follower read back from
//! another node, prints what to try, and runs until Ctrl-C (or `--for`).

use anyhow::{Context, bail};
use raft_http::client::Method;
use raft_mock::launch::ProcessCluster;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Members to start.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Keep logs in memory instead of redb files.
    #[arg(long)]
    memory: bool,
    /// Stop after this many seconds instead of waiting for Ctrl-C.
    #[arg(long = "for", value_name = "SECONDS")]
    run_for: Option<u64>,
    /// First peer port; node i uses base+i-1 (base+500+i-1 for commands,
    /// base+1000+i-1 for RESP).
    #[arg(long, default_value_t = 7001)]
    base_port: u16,
    /// Where the redb files and node logs go (emptied first).
    #[arg(long, default_value = "target/cluster")]
    data: PathBuf,
    #[arg(long, default_value = "certs")]
    certs: PathBuf,
}

/// Builds the release binaries; the path of the directory holding them.
/// They get a target directory of their own, and the build runs without
/// the variables `cargo run` set for xtask (`CARGO_PKG_*`,
/// `LD_LIBRARY_PATH`, ...): otherwise dependency features and build-script
/// inputs differ from a plain build and each build undoes the other's.
pub fn build_binaries() -> anyhow::Result<PathBuf> {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let dir = Path::new(&target).join("bins");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        let from_cargo_run =
            k.starts_with("CARGO_") && k != "CARGO_HOME" && k != "CARGO_TARGET_DIR";
        if from_cargo_run || k == "LD_LIBRARY_PATH" {
            cmd.env_remove(k);
        }
    }
    let status = cmd
        .args([
            "build",
            "--release",
            "--quiet",
            "--bin",
            "raft-mock",
            "--bin",
            "raftctl",
        ])
        .arg("--target-dir")
        .arg(&dir)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build failed");
    }
    Ok(dir.join("release"))
}

/// Makes the certificate set unless every file is already there and the
/// node certificate is one peers take (certificates made before node
/// certificates carried their addresses are issued again, same CA).
pub fn ensure_certs(dir: &Path) -> anyhow::Result<()> {
    use xtask::certs::*;
    let all = [
        CA_KEY,
        CA_CERT,
        NODE_KEY,
        NODE_CERT,
        CLIENT_KEY,
        CLIENT_CERT,
    ];
    let usable = || {
        let files = raft_net::TlsFiles::node_in(dir);
        raft_net::tls::check_member_cert(&files, "127.0.0.1:7001").is_ok() && client_has_role(dir)
    };
    if all.iter().all(|f| dir.join(f).exists()) && usable() {
        return Ok(());
    }
    for line in make_certs(dir, false)? {
        eprintln!("certs: {line}");
    }
    Ok(())
}

/// Whether the client certificate names a role (those made before roles
/// did not, and the command port now refuses them).
fn client_has_role(dir: &Path) -> bool {
    let Ok(pem) = std::fs::read(dir.join(xtask::certs::CLIENT_CERT)) else {
        return false;
    };
    let mut rd = pem.as_slice();
    let Some(Ok(cert)) = rustls_pemfile::certs(&mut rd).next() else {
        return false;
    };
    raft_net::identity::client_identity(&cert).is_ok_and(|id| !id.roles.is_empty())
}

fn check_free(port: u16) -> anyhow::Result<()> {
    std::net::TcpListener::bind(("127.0.0.1", port))
        .map(drop)
        .with_context(|| format!("port {port} is taken; pick others with --base-port"))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.nodes == 0 || args.nodes > 99 {
        bail!("--nodes must be between 1 and 99");
    }
    let bins = build_binaries()?;
    ensure_certs(&args.certs)?;
    let ports: Vec<(u16, u16)> = (0..args.nodes as u16)
        .map(|i| (args.base_port + i, args.base_port + 500 + i))
        .collect();
    for (p, a) in &ports {
        check_free(*p)?;
        check_free(*a)?;
        check_free(*p + 1000)?;
    }
    if args.data.exists() {
        std::fs::remove_dir_all(&args.data)
            .with_context(|| format!("emptying {}", args.data.display()))?;
    }
    let modes = vec!["active"; args.nodes];
    let mut c = ProcessCluster::new(
        &bins.join("raft-mock"),
        &args.certs,
        &args.data,
        &modes,
        &ports,
        args.memory,
    )?;
    for (node, (p, _)) in c.nodes.iter_mut().zip(&ports) {
        node.extra = vec!["--resp-port".into(), (p + 1000).to_string()];
    }
    c.start_all()?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(demo(&c, &args, &bins))?;
    rt.block_on(async {
        match args.run_for {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            // Ctrl-C or SIGTERM (a supervisor, `timeout`, `kill`): either
            // way the nodes are stopped below, never left running.
            None => {
                use tokio::signal::unix::{SignalKind, signal};
                match signal(SignalKind::terminate()) {
                    Ok(mut term) => {
                        tokio::select! {
                            _ = tokio::signal::ctrl_c() => {}
                            _ = term.recv() => {}
                        }
                    }
                    Err(_) => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            }
        }
    });
    println!("\nstopping {} nodes", c.nodes.len());
    for i in 0..c.nodes.len() {
        if !c.stop(i, Duration::from_secs(5)) {
            eprintln!(
                "node {} did not stop cleanly; see {}",
                i + 1,
                c.nodes[i].log.display()
            );
        }
    }
    println!("stopped; node logs and data are in {}", args.data.display());
    Ok(())
}

async fn demo(c: &ProcessCluster, args: &Args, bins: &Path) -> anyhow::Result<()> {
    let storage = if args.memory { "in memory" } else { "redb" };
    println!(
        "started {} nodes ({storage}, mutual TLS) with data and logs in {}",
        c.nodes.len(),
        args.data.display()
    );
    let Some(leader) = c.wait_leader(Duration::from_secs(20), &[]).await else {
        bail!(
            "no leader within 20 s; see the node logs in {}",
            args.data.display()
        );
    };
    println!(
        "leader: {} (command port {})",
        c.nodes[leader].name, c.nodes[leader].api
    );
    // Through a follower (forwarded to the leader), then read back from
    // another node with a linearizable read.
    let n = c.nodes.len();
    let writer = if n > 1 { (leader + 1) % n } else { leader };
    let reader = if n > 2 { (leader + 2) % n } else { leader };
    let r = c
        .request(writer, Method::PUT, "/v1/kv/hello", "world")
        .await?;
    if !r.status.is_success() {
        bail!(
            "write through {} failed: {} {}",
            c.nodes[writer].api,
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
    let r = c
        .request(reader, Method::GET, "/v1/kv/hello?raw", "")
        .await?;
    if r.body != "world" {
        bail!(
            "read back {:?} from {}",
            String::from_utf8_lossy(&r.body),
            c.nodes[reader].api
        );
    }
    println!(
        "wrote hello=world through {} (a follower), read it back from {}: {}",
        c.nodes[writer].api,
        c.nodes[reader].api,
        String::from_utf8_lossy(&r.body)
    );
    let api = &c.nodes[writer].api;
    let certs = args.certs.display();
    let curl = format!(
        "curl --cacert {certs}/transport-ca.pem --cert {certs}/transport-client.crt --key {certs}/transport-client.key"
    );
    let nodes: Vec<_> = c.nodes.iter().map(|n| n.api.as_str()).collect();
    // raftctl's defaults are this command's: spell out only what differs.
    let mut ctl = bins.join("raftctl").display().to_string();
    if args.certs != Path::new("certs") {
        ctl += &format!(" --certs {certs}");
    }
    if nodes != ["127.0.0.1:7501", "127.0.0.1:7502", "127.0.0.1:7503"] {
        ctl += &format!(" --nodes {}", nodes.join(","));
    }
    println!("\ntry:");
    println!("  {curl} https://{api}/");
    println!("  {curl} -X PUT --data-binary 'v1' 'https://{api}/v1/kv/app/config?ns=team1'");
    println!("  {curl} 'https://{api}/v1/kv/app/config?ns=team1&raw'");
    println!("  {curl} 'https://{api}/v1/log?from=1'");
    println!("  {ctl} status");
    println!("  {ctl} put colour blue && {ctl} get colour");
    let resp = args.base_port + 1000 + writer as u16;
    println!(
        "  redis-cli --tls --cacert {certs}/transport-ca.pem --cert {certs}/transport-client.crt \
         --key {certs}/transport-client.key -p {resp} set greeting hi"
    );
    println!("  {curl} 'https://{api}/v1/kv/greeting?ns=db0&raw'");
    match args.run_for {
        Some(s) => println!("\nrunning for {s} s"),
        None => println!("\nrunning; Ctrl-C stops every node"),
    }
    Ok(())
}
