//! raftctl's lease commands, and `lock NAME -- COMMAND`: a lock held on a
//! lease that raftctl keeps alive while COMMAND runs.

use super::{Ctl, check, enc, index_of};
use anyhow::{Context, bail};
use bytes::Bytes;
use raft_http::client::{Method, StatusCode};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(clap::Subcommand)]
pub(crate) enum LeaseCmd {
    /// Grants a lease; prints its id.
    Grant {
        /// Its TTL: seconds, or with a unit (1500ms, 10s, 5m).
        ttl: String,
    },
    /// Keeps a lease alive (every third of its TTL) until interrupted;
    /// with --once, renews it once.
    Keepalive {
        id: u64,
        #[arg(long)]
        once: bool,
    },
    /// Revokes a lease: its keys are deleted, its locks freed.
    Revoke { id: u64 },
    /// A lease's TTL, time left and keys.
    Show { id: u64 },
    /// The namespace's leases.
    List,
}

pub(crate) async fn lease(ctl: &Ctl, cmd: LeaseCmd) -> anyhow::Result<()> {
    match cmd {
        LeaseCmd::Grant { ttl } => {
            let (id, ttl) = grant(ctl, &ttl).await?;
            ctl.say(json!({ "ID": id, "TTL": ttl }), || id.to_string());
        }
        LeaseCmd::Keepalive { id, once } => {
            let ttl = renew(ctl, id).await?;
            if once {
                ctl.say(json!({ "ID": id, "TTL": ttl }), || format!("{id}: {ttl} s"));
                return Ok(());
            }
            keep_alive(ctl.clone(), id, ttl, Arc::new(AtomicBool::new(false))).await;
            return Err(Lost(id).into());
        }
        LeaseCmd::Revoke { id } => {
            let path = format!("/v1/lease/{id}?ns={}", ctl.ns);
            let r = ctl.write(Method::DELETE, &path, Bytes::new()).await?;
            let v = r.json().unwrap_or_default();
            ctl.say(v.clone(), || {
                format!("revoked {id}: {} keys deleted", v["Deleted"])
            });
        }
        LeaseCmd::Show { id } => {
            let path = format!("/v1/lease/{id}?ns={}", ctl.ns);
            let r = ctl.write(Method::GET, &path, Bytes::new()).await?;
            let v = r.json().unwrap_or_default();
            let text = || {
                let mut t = format!("lease {id}: TTL {} s, {} s left", v["TTL"], v["Remaining"]);
                for k in v["Keys"].as_array().into_iter().flatten() {
                    let how = if k["Locked"] == true { "lock" } else { "key" };
                    let (ns, key) = (&k["Namespace"], &k["Key"]);
                    t.push_str(&format!(
                        "\n{how}\t{}\t{}",
                        ns.as_str().unwrap_or(""),
                        key.as_str().unwrap_or("")
                    ));
                }
                t
            };
            ctl.say(v.clone(), text);
        }
        LeaseCmd::List => {
            let r = ctl.read(&format!("/v1/leases?ns={}", ctl.ns)).await?;
            let all = super::array(&r);
            let text = || {
                let lines: Vec<String> = all
                    .iter()
                    .map(|l| format!("{}\t{} s", l["ID"], l["TTL"]))
                    .collect();
                lines.join("\n")
            };
            ctl.say(json!(all), text);
        }
    }
    Ok(())
}

/// The lease is gone: expired or revoked.
#[derive(Debug, thiserror::Error)]
#[error("lease {0} is gone (expired or revoked)")]
struct Lost(u64);

async fn grant(ctl: &Ctl, ttl: &str) -> anyhow::Result<(u64, f64)> {
    let path = format!("/v1/lease?ttl={}&ns={}", enc(ttl), ctl.ns);
    let r = ctl.write(Method::PUT, &path, Bytes::new()).await?;
    let v = r.json().unwrap_or_default();
    let id = v["ID"].as_u64().context("the grant answered no ID")?;
    Ok((id, v["TTL"].as_f64().unwrap_or(0.0)))
}

/// One keepalive; its TTL in seconds.
async fn renew(ctl: &Ctl, id: u64) -> anyhow::Result<f64> {
    let path = format!("/v1/lease/{id}/keepalive?ns={}", ctl.ns);
    let r = ctl.call(Method::PUT, &path, Bytes::new(), true).await?;
    if r.status == StatusCode::NOT_FOUND {
        return Err(Lost(id).into());
    }
    check(&r)?;
    Ok(r.json().and_then(|v| v["TTL"].as_f64()).unwrap_or(0.0))
}

/// Keeps lease `id` alive every third of `ttl` (a request given no
/// longer than that; failures said on stderr and retried sooner) until it
/// is gone; then sets `lost`.
async fn keep_alive(mut ctl: Ctl, id: u64, ttl: f64, lost: Arc<AtomicBool>) {
    let every = Duration::from_secs_f64(ttl / 3.0);
    ctl.client.timeout = every;
    let mut wait = every;
    loop {
        tokio::time::sleep(wait).await;
        wait = match renew(&ctl, id).await {
            Ok(_) => every,
            Err(e) if e.downcast_ref::<Lost>().is_some() => {
                lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => {
                eprintln!("raftctl: keepalive of lease {id}: {e:#}; retrying");
                Duration::from_millis(200).min(every)
            }
        };
    }
}

/// `lock NAME [--ttl T] -- COMMAND...`: takes the lock on key NAME with a
/// new lease, runs COMMAND with `RAFT_LOCK_FENCE` (the lock's fencing
/// value: strictly greater for every later holder) while keeping the
/// lease alive, then frees the lock and revokes the lease. If the lease is
/// lost, COMMAND is killed. Exits with COMMAND's status.
pub(crate) async fn lock(
    ctl: &Ctl,
    name: &str,
    ttl: &str,
    command: &[String],
) -> anyhow::Result<i32> {
    let (id, ttl_s) = grant(ctl, ttl).await?;
    let lost = Arc::new(AtomicBool::new(false));
    let keeper = tokio::spawn(keep_alive(ctl.clone(), id, ttl_s, lost.clone()));
    let fence = acquire(ctl, name, id, &lost).await;
    let code = match fence {
        Ok(fence) => run_holding(ctl, name, id, fence, command, &lost).await,
        Err(e) => Err(e),
    };
    keeper.abort();
    let _ = ctl
        .write(
            Method::DELETE,
            &format!("/v1/lease/{id}?ns={}", ctl.ns),
            Bytes::new(),
        )
        .await;
    code
}

/// Waits for the lock; its fencing value (the index that took it).
async fn acquire(ctl: &Ctl, name: &str, id: u64, lost: &AtomicBool) -> anyhow::Result<u64> {
    let key = enc(name);
    let me = format!("raftctl pid {}", std::process::id());
    loop {
        if lost.load(Ordering::SeqCst) {
            bail!("{}", Lost(id));
        }
        let path = format!("/v1/kv/{key}?acquire={id}&ns={}", ctl.ns);
        let r = ctl
            .write(Method::PUT, &path, Bytes::from(me.clone()))
            .await?;
        if r.json() == Some(serde_json::Value::Bool(true)) {
            return Ok(index_of(&r));
        }
        // Held: wait for the key to change (a blocking query), then retry.
        let r = ctl
            .call(
                Method::GET,
                &format!("/v1/kv/{key}?ns={}", ctl.ns),
                Bytes::new(),
                false,
            )
            .await?;
        let at = index_of(&r);
        let path = format!("/v1/kv/{key}?ns={}&index={at}&wait=5s", ctl.ns);
        let _ = ctl.call(Method::GET, &path, Bytes::new(), false).await;
    }
}

async fn run_holding(
    ctl: &Ctl,
    name: &str,
    id: u64,
    fence: u64,
    command: &[String],
    lost: &AtomicBool,
) -> anyhow::Result<i32> {
    let (prog, args) = command.split_first().context("no command given")?;
    let mut child = tokio::process::Command::new(prog)
        .args(args)
        .env("RAFT_LOCK_FENCE", fence.to_string())
        .env("RAFT_LOCK_LEASE", id.to_string())
        .env("RAFT_LOCK_KEY", name)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {prog}"))?;
    let status = loop {
        tokio::select! {
            s = child.wait() => break s?,
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                if lost.load(Ordering::SeqCst) {
                    let _ = child.kill().await;
                    bail!("{}: {prog} was killed", Lost(id));
                }
            }
        }
    };
    let path = format!("/v1/kv/{}?release={id}&ns={}", enc(name), ctl.ns);
    ctl.write(Method::PUT, &path, Bytes::new()).await?;
    Ok(status.code().unwrap_or(1))
}
