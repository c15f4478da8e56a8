//! Leases and locks across real processes over mutual TLS: a key on a
//! lease lives exactly as long as its keepalives (across a leader kill),
//! and contending lock holders never overlap.

mod common;

use bytes::Bytes;
use common::{cluster, deadline};
use raft_http::HttpsClient;
use raft_http::client::Method;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The first node of `apis` that answers `method path` with a success.
async fn any(
    client: &HttpsClient,
    apis: &[String],
    method: Method,
    path: &str,
    body: &str,
) -> Option<(Value, u64)> {
    for api in apis {
        let body = Bytes::from(body.to_string());
        if let Ok(r) = client.request(api, method.clone(), path, &[], body).await
            && r.status.is_success()
        {
            return Some((r.json().unwrap_or_default(), common::index(&r)));
        }
    }
    None
}

/// Whether `key` exists, as a linearizable read through any live node.
async fn exists(client: &HttpsClient, apis: &[String], key: &str) -> Option<bool> {
    for api in apis {
        if let Ok(r) = client
            .request(
                api,
                Method::GET,
                &format!("/v1/kv/{key}"),
                &[],
                Bytes::new(),
            )
            .await
        {
            match r.status.as_u16() {
                200 => return Some(true),
                404 => return Some(false),
                _ => {}
            }
        }
    }
    None
}

/// Keeps lease `id` alive through any live node every `every` until
/// `stop`; the time of the last keepalive that succeeded.
fn keep_alive(
    client: HttpsClient,
    apis: Arc<std::sync::Mutex<Vec<String>>>,
    id: u64,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Instant> {
    tokio::spawn(async move {
        let mut last = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            let live = apis.lock().unwrap().clone();
            let path = format!("/v1/lease/{id}/keepalive");
            let sent = Instant::now();
            if any(&client, &live, Method::PUT, &path, "").await.is_some() {
                last = sent;
                tokio::time::sleep(every).await;
            } else {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        last
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leased_key_lives_while_kept_alive_across_a_leader_kill_and_goes_after() {
    let mut c = cluster(&["active"; 3], true);
    deadline(120, async {
        let l = c.leader(&[]).await;
        let apis: Vec<String> = c.nodes.iter().map(|n| n.api.clone()).collect();
        let ttl = Duration::from_secs(2);
        let (v, _) = any(&c.client, &apis, Method::PUT, "/v1/lease?ttl=2s", "")
            .await
            .expect("grant");
        let id = v["ID"].as_u64().unwrap();
        assert_eq!(v["TTL"].as_f64(), Some(2.0), "{v}");
        let (ok, at) = any(
            &c.client,
            &apis,
            Method::PUT,
            &format!("/v1/kv/svc/a?lease={id}"),
            "up",
        )
        .await
        .expect("put");
        assert_eq!(ok, Value::Bool(true));
        // A watcher sees what happens to the key, from its put on.
        let watch = {
            let (client, api) = (c.client.clone(), apis[(l + 1) % 3].clone());
            let path = format!("/v1/watch/svc/a?from={at}");
            tokio::spawn(async move {
                common::stream(&client, &api, &path, |v| v["Op"] == "expire").await
            })
        };
        let live = Arc::new(std::sync::Mutex::new(apis.clone()));
        let stop = Arc::new(AtomicBool::new(false));
        let keeper = keep_alive(c.client.clone(), live.clone(), id, ttl / 5, stop.clone());
        // Kept alive past two TTLs, with the leader killed in between.
        tokio::time::sleep(ttl).await;
        assert_eq!(exists(&c.client, &apis, "svc/a").await, Some(true));
        live.lock().unwrap().remove(l);
        c.kill(l);
        let survivors: Vec<String> = apis
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != l)
            .map(|(_, a)| a.clone())
            .collect();
        let new = c.leader(&[l]).await;
        tokio::time::sleep(ttl * 2).await;
        assert_eq!(
            exists(&c.client, &survivors, "svc/a").await,
            Some(true),
            "the key went while its lease was kept alive (new leader {new})"
        );
        // The lease says what it holds, and the new leader counts its time.
        let (info, _) = any(
            &c.client,
            &survivors,
            Method::GET,
            &format!("/v1/lease/{id}"),
            "",
        )
        .await
        .expect("lease info");
        assert_eq!(info["Keys"][0]["Key"], "svc/a", "{info}");
        let left = info["Remaining"].as_f64().unwrap();
        assert!(left > 0.0 && left <= 2.0, "{info}");
        // Keepalives stop: the key goes within the TTL and an election
        // timeout (400 ms here), plus a margin for a loaded machine.
        stop.store(true, Ordering::SeqCst);
        let last = keeper.await.unwrap();
        let gone_at = loop {
            match exists(&c.client, &survivors, "svc/a").await {
                Some(false) => break Instant::now(),
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
            assert!(
                last.elapsed() < Duration::from_secs(10),
                "the key outlived its lease"
            );
        };
        let took = gone_at - last;
        eprintln!("the key went {took:?} after the last keepalive (TTL {ttl:?})");
        assert!(
            took >= ttl,
            "gone {took:?} after the last keepalive: before its TTL"
        );
        assert!(
            took <= ttl + Duration::from_millis(400 + 1_500),
            "gone only after {took:?}"
        );
        let r = c
            .request(new, Method::GET, &format!("/v1/lease/{id}"), "")
            .await
            .unwrap();
        assert_eq!(r.status, 404, "an expired lease is gone");
        // Every replica saw it go as an expire event, once, and nothing
        // before it.
        let (ok, _) = any(&c.client, &survivors, Method::PUT, "/v1/kv/svc/after", "x")
            .await
            .unwrap();
        assert_eq!(ok, Value::Bool(true));
        let lines = tokio::time::timeout(Duration::from_secs(10), watch)
            .await
            .expect("the watcher saw the expiry")
            .unwrap();
        let ops: Vec<&str> = lines
            .iter()
            .filter_map(|v| v["Op"].as_str())
            .filter(|o| *o != "progress")
            .collect();
        assert_eq!(ops, ["put", "expire"], "{lines:?}");
    })
    .await;
}

/// One hold of the lock: the index that took it (its fencing value), the
/// index of the holder's write to the guarded resource, and the index that
/// freed it.
#[derive(Debug, Clone, Copy)]
struct Hold {
    /// When the holder got it.
    at: Instant,
    fence: u64,
    wrote: u64,
    freed: u64,
}

/// Takes the lock on `locks/job` for lease `id`, retrying while it is
/// held; the fence.
async fn take(client: &HttpsClient, apis: &[String], id: u64, me: &str) -> u64 {
    loop {
        let path = format!("/v1/kv/locks/job?acquire={id}");
        match any(client, apis, Method::PUT, &path, me).await {
            Some((Value::Bool(true), fence)) => return fence,
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn grant(client: &HttpsClient, apis: &[String], ttl: &str) -> u64 {
    let (v, _) = any(
        client,
        apis,
        Method::PUT,
        &format!("/v1/lease?ttl={ttl}"),
        "",
    )
    .await
    .expect("grant");
    v["ID"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contending_holders_never_overlap_and_a_dead_holders_lock_is_freed() {
    let c = cluster(&["active"; 3], true);
    deadline(150, async {
        c.leader(&[]).await;
        let apis: Vec<String> = c.nodes.iter().map(|n| n.api.clone()).collect();
        // A holder that dies: it takes the lock and never frees it nor
        // keeps its lease alive. The others wait out its TTL.
        let dead = grant(&c.client, &apis, "2s").await;
        let dead_fence = take(&c.client, &apis, dead, "dead").await;
        let taken = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let mut clients = tokio::task::JoinSet::new();
        for n in 0..4 {
            let (client, apis, stop) = (c.client.clone(), apis.clone(), stop.clone());
            clients.spawn(async move {
                let id = grant(&client, &apis, "5s").await;
                let live = Arc::new(std::sync::Mutex::new(apis.clone()));
                let keeper = keep_alive(client.clone(), live, id, Duration::from_secs(1), stop);
                let mut holds = Vec::new();
                for round in 0..4 {
                    let me = format!("client {n} round {round}");
                    let fence = take(&client, &apis, id, &me).await;
                    let at = Instant::now();
                    // The guarded write carries the fence.
                    let (_, wrote) = any(
                        &client,
                        &apis,
                        Method::PUT,
                        "/v1/kv/resource",
                        &fence.to_string(),
                    )
                    .await
                    .expect("write");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let (ok, freed) = any(
                        &client,
                        &apis,
                        Method::PUT,
                        &format!("/v1/kv/locks/job?release={id}"),
                        "",
                    )
                    .await
                    .expect("release");
                    assert_eq!(ok, Value::Bool(true), "{me}: the holder frees its lock");
                    holds.push(Hold {
                        at,
                        fence,
                        wrote,
                        freed,
                    });
                }
                keeper.abort();
                holds
            });
        }
        let mut holds = Vec::new();
        while let Some(h) = clients.join_next().await {
            holds.extend(h.unwrap());
        }
        stop.store(true, Ordering::SeqCst);
        holds.sort_by_key(|h| h.fence);
        assert_eq!(holds.len(), 16);
        assert!(holds[0].fence > dead_fence);
        let waited = holds[0].at - taken;
        assert!(
            waited >= Duration::from_secs(2),
            "taken {waited:?} after the dead holder took it: its lease (2 s) still lived"
        );
        for h in &holds {
            assert!(h.fence < h.wrote && h.wrote < h.freed, "{h:?}");
        }
        for w in holds.windows(2) {
            assert!(w[0].freed < w[1].fence, "two holders at once: {w:?}");
        }
        // The lock counts every taking; the resource saw fences only rise.
        let r = c
            .request(0, Method::GET, "/v1/kv/locks/job", "")
            .await
            .unwrap();
        let v = r.json().unwrap();
        assert_eq!(v[0]["LockIndex"], 17, "{v}");
        assert_eq!(v[0]["Session"], Value::Null, "{v}");
        let r = c
            .request(0, Method::GET, "/v1/kv/resource?raw", "")
            .await
            .unwrap();
        let last: u64 = String::from_utf8_lossy(&r.body).parse().unwrap();
        assert_eq!(last, holds.last().unwrap().fence);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raftctl_lock_runs_commands_one_at_a_time_with_rising_fences() {
    let c = cluster(&["active"; 3], true);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("held.log");
    deadline(120, async {
        c.leader(&[]).await;
        let apis: Vec<String> = c.nodes.iter().map(|n| n.api.clone()).collect();
        let script = format!(
            "echo start $RAFT_LOCK_FENCE >> {0}; sleep 0.3; echo end $RAFT_LOCK_FENCE >> {0}",
            log.display()
        );
        let runs: Vec<_> = (0..3)
            .map(|_| {
                std::process::Command::new(env!("CARGO_BIN_EXE_raftctl"))
                    .arg("--certs")
                    .arg(common::certs())
                    .args([
                        "--nodes",
                        &apis.join(","),
                        "lock",
                        "jobs/nightly",
                        "--ttl",
                        "5s",
                        "--",
                    ])
                    .args(["sh", "-c", &script])
                    .spawn()
                    .expect("raftctl lock")
            })
            .collect();
        for mut r in runs {
            let status = tokio::task::spawn_blocking(move || r.wait())
                .await
                .unwrap()
                .unwrap();
            assert!(status.success());
        }
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<(&str, u64)> = text
            .lines()
            .map(|l| {
                let (what, fence) = l.split_once(' ').unwrap();
                (what, fence.parse().unwrap())
            })
            .collect();
        assert_eq!(lines.len(), 6, "{text}");
        for (k, pair) in lines.chunks(2).enumerate() {
            assert_eq!((pair[0].0, pair[1].0), ("start", "end"), "overlap: {text}");
            assert_eq!(pair[0].1, pair[1].1, "{text}");
            if k > 0 {
                assert!(pair[0].1 > lines[2 * k - 1].1, "fences must rise: {text}");
            }
        }
        // raftctl freed the lock and revoked its leases.
        let r = c.request(0, Method::GET, "/v1/leases", "").await.unwrap();
        assert_eq!(r.json().unwrap(), serde_json::json!([]));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_and_locks_survive_snapshots_and_a_restart_of_every_node() {
    // Snapshots every 20 entries, the log compacted behind them: a restart
    // restores leases and locks from a snapshot, not from the log.
    let flags = ["--snapshot-entries", "20", "--keep-entries", "0"];
    let mut c = common::cluster_with(&["active"; 3], false, &flags);
    deadline(120, async {
        c.leader(&[]).await;
        let apis: Vec<String> = c.nodes.iter().map(|n| n.api.clone()).collect();
        let id = grant(&c.client, &apis, "3s").await;
        let path = format!("/v1/kv/svc/b?lease={id}");
        any(&c.client, &apis, Method::PUT, &path, "up")
            .await
            .expect("put");
        let fence = take(&c.client, &apis, id, "holder").await;
        for i in 0..50 {
            let path = format!("/v1/kv/filler/{i}");
            any(&c.client, &apis, Method::PUT, &path, "x")
                .await
                .expect("filler");
        }
        for i in 0..3 {
            assert!(c.stop(i, Duration::from_secs(10)), "node {i} did not stop");
        }
        c.start_all().unwrap();
        let l = c.leader(&[]).await;
        let snap = c.status(l).await.unwrap()["snapshot_index"]
            .as_u64()
            .unwrap_or(0);
        assert!(
            snap > fence,
            "restarted from a snapshot after the lock ({snap})"
        );
        // The lease, its key and its lock came back; the new leader gives
        // the lease a full TTL, and it then expires as usual.
        let (info, _) = any(
            &c.client,
            &apis,
            Method::GET,
            &format!("/v1/lease/{id}"),
            "",
        )
        .await
        .expect("the lease survived");
        let keys: Vec<&str> = info["Keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|k| k["Key"].as_str())
            .collect();
        assert_eq!(keys, ["locks/job", "svc/b"], "{info}");
        let r = c
            .request(l, Method::GET, "/v1/kv/locks/job", "")
            .await
            .unwrap();
        let v = r.json().unwrap();
        assert_eq!(v[0]["Session"], id.to_string(), "{v}");
        assert_eq!(v[0]["ModifyIndex"], fence, "{v}");
        let gone = Instant::now();
        while exists(&c.client, &apis, "svc/b").await != Some(false) {
            assert!(
                gone.elapsed() < Duration::from_secs(15),
                "the lease never expired"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let r = c
            .request(l, Method::GET, "/v1/kv/locks/job", "")
            .await
            .unwrap();
        let v = r.json().unwrap();
        assert_eq!(v[0]["Session"], Value::Null, "freed with its lease: {v}");
        assert_eq!(v[0]["LockIndex"], 1, "{v}");
    })
    .await;
}
