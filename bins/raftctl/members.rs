//! `raftctl add` and `raftctl members`: adding a member (shown catching
//! up) and listing the configuration.

use super::{Ctl, enc};
use anyhow::bail;
use bytes::Bytes;
use raft_http::client::Method;
use std::time::Duration;

/// How long `raftctl add` waits for a learner that makes no progress
/// (has not connected, or stopped catching up).
const STALLED: Duration = Duration::from_secs(120);

/// Adds a member as a learner, shows it catching up (its match index
/// against the commit index), then has it promoted.
pub(crate) async fn add(
    ctl: &Ctl,
    address: &str,
    learner: bool,
    id: Option<u64>,
) -> anyhow::Result<()> {
    let mut q = format!("address={}", enc(address));
    if let Some(id) = id {
        q.push_str(&format!("&id={id}"));
    }
    let path = format!("/v1/operator/raft/peer?{q}&learner");
    let v = ctl.write(Method::PUT, &path, Bytes::new()).await?.json();
    let v = v.unwrap_or_default();
    let state = v["state"].as_str().unwrap_or("?");
    let done = learner || state == "voter";
    if done || !ctl.json {
        ctl.say(v.clone(), || is_a(address, &v));
    }
    if done {
        return Ok(());
    }
    eprintln!(
        "waiting for {address} to catch up; if it is not running, start it with \
         raft-mock -n {address} -p <its command port> -f <its file> --join <a member's command port>"
    );
    catch_up(ctl, address).await?;
    let path = format!("/v1/operator/raft/peer?{q}&wait");
    let v = ctl.write(Method::PUT, &path, Bytes::new()).await?.json();
    let v = v.unwrap_or_default();
    ctl.say(v.clone(), || is_a(address, &v));
    Ok(())
}

/// "ADDR is a STATE (configuration index N)", from a peer answer.
fn is_a(address: &str, v: &serde_json::Value) -> String {
    format!(
        "{address} is a {} (configuration index {})",
        v["state"].as_str().unwrap_or("?"),
        v["index"]
    )
}

/// Prints a learner's progress (as the leader reports it) until its log
/// has reached the commit index first seen (as the leader's promotion
/// waits for); fails once it stalls for `STALLED`.
async fn catch_up(ctl: &Ctl, address: &str) -> anyhow::Result<()> {
    let mut shown = None;
    let mut target = None;
    let mut last_move = tokio::time::Instant::now();
    loop {
        let progress = match ctl.leader().await {
            Some(l) => ctl
                .node_status(&l)
                .await
                .and_then(|s| learner_progress(&s, address)),
            None => None,
        };
        if let Some((matched, commit, connected)) = progress {
            let commit = *target.get_or_insert(commit);
            if matched >= commit {
                eprintln!("{address}: caught up ({matched} of {commit} entries)");
                return Ok(());
            }
            if shown != Some((matched, connected)) {
                let how = if connected { "" } else { ", not connected" };
                eprintln!("{address}: {matched} of {commit} entries{how}");
                shown = Some((matched, connected));
                last_move = tokio::time::Instant::now();
            }
        }
        if last_move.elapsed() > STALLED {
            bail!(
                "{address} made no progress for {} s; it stays a learner (start it, then run \
                 raftctl add again, or raftctl remove it)",
                STALLED.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A member's (match index, commit index, connected) in a leader's
/// status (`GET /`).
fn learner_progress(s: &serde_json::Value, address: &str) -> Option<(u64, u64, bool)> {
    let commit = s["commit_index"].as_u64()?;
    let m = s["members"]
        .as_array()?
        .iter()
        .find(|m| m["id"].as_str() == Some(address))?;
    let matched = m["match_index"].as_u64().unwrap_or(0);
    Some((matched, commit, m["connected"].as_bool().unwrap_or(false)))
}

pub(crate) async fn members(ctl: &Ctl) -> anyhow::Result<()> {
    let v = ctl
        .read("/v1/operator/raft/configuration")
        .await?
        .json()
        .unwrap_or_default();
    if ctl.json {
        ctl.say(v, String::new);
        return Ok(());
    }
    println!(
        "{:<22} {:<22} {:<8} {:<6}",
        "MEMBER", "ID", "VOTER", "LEADER"
    );
    for s in v["Servers"].as_array().cloned().unwrap_or_default() {
        let flag = |v: &serde_json::Value| v.as_bool().unwrap_or(false).to_string();
        println!(
            "{:<22} {:<22} {:<8} {:<6}",
            s["Address"].as_str().unwrap_or("?"),
            s["ID"].as_str().unwrap_or("?"),
            flag(&s["Voter"]),
            flag(&s["Leader"])
        );
    }
    if v["Joint"] == serde_json::Value::Bool(true) {
        println!("a membership change is in progress: {}", v["Configuration"]);
    }
    Ok(())
}
