//! `GET /v1/watch` and `raftctl watch` on a real cluster: a watch resumed
//! on other nodes across kill -9 and restarts prints every change once, in
//! index order; an old `from` answers 410; a watcher that stops reading is
//! cut off with a last line saying so; a drain ends streams with one.

mod common;

use common::{cluster_with, deadline, stream};
use raft_http::client::Method;
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

fn events(lines: &[Value]) -> Vec<(u64, String, String)> {
    lines
        .iter()
        .filter(|v| v["Op"] == "put" || v["Op"] == "delete")
        .map(|v| {
            (
                v["Index"].as_u64().unwrap(),
                v["Key"].as_str().unwrap().to_string(),
                v["Value"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// A `raftctl watch` running in the background, its JSON lines in a file.
struct Watcher {
    child: Child,
    out: std::path::PathBuf,
}

impl Watcher {
    fn lines(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_watch_prints_every_change_once_in_order_across_kills() {
    let mut c = cluster_with(&["active"; 3], false, &[]);
    let dir = tempfile::tempdir().unwrap();
    deadline(150, async {
        // Through the leader: a follower may not know it yet.
        let first = c.leader(&[]).await;
        let from = c.put(first, "w/start", "0").await.unwrap() + 1;
        let apis: Vec<String> = c.nodes.iter().map(|n| n.api.clone()).collect();
        // raftctl watches node 0 first: the kills below make it resume.
        let out = dir.path().join("watch.jsonl");
        let child = Command::new(env!("CARGO_BIN_EXE_raftctl"))
            .arg("--certs")
            .arg(common::certs())
            .args(["--nodes", &apis.join(","), "-o", "json", "watch", "w/"])
            .args(["--recurse", "--from", &from.to_string()])
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("raftctl watch");
        let watcher = Watcher { child, out };
        // A writer through any node that answers, while nodes die.
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let writer = {
            let (client, apis) = (c.client.clone(), apis.clone());
            let (stop, acked) = (stop.clone(), acked.clone());
            tokio::spawn(async move {
                let mut done = Vec::new();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let api = &apis[i as usize % apis.len()];
                    let path = format!("/v1/kv/w/k{}", i % 7);
                    let body = bytes::Bytes::from(format!("v{i}"));
                    if let Ok(r) = client.request(api, Method::PUT, &path, &[], body).await
                        && r.status.is_success()
                    {
                        done.push((common::index(&r), format!("v{i}")));
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                }
                done
            })
        };
        let wait_acked = |n: u64| {
            let acked = acked.clone();
            async move {
                while acked.load(Ordering::Relaxed) < n {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        wait_acked(50).await;
        c.kill(0);
        wait_acked(100).await;
        c.start(0).unwrap();
        let l = c.leader(&[]).await;
        wait_acked(150).await;
        c.kill(l);
        wait_acked(200).await;
        c.start(l).unwrap();
        wait_acked(250).await;
        stop.store(true, Ordering::Relaxed);
        let done = writer.await.unwrap();
        // The reference: one unbroken stream from a node that has applied
        // everything, read until it says it is past the last write.
        let top = c.put(c.leader(&[]).await, "x/last", "x").await.unwrap();
        let path = format!("/v1/watch/w/?recurse&from={from}");
        let reference = stream(&c.client, &apis[1], &path, |v| {
            v["Index"].as_u64().unwrap_or(0) >= top
        })
        .await;
        let want = events(&reference);
        for (index, value) in &done {
            let ok = want.iter().any(|(i, _, v)| i == index && *v == b64(value));
            assert!(
                ok,
                "acknowledged write {value} at {index} is not in the watch"
            );
        }
        let mut indexes: Vec<u64> = want.iter().map(|e| e.0).collect();
        indexes.dedup();
        assert_eq!(indexes.len(), want.len(), "one put per index, once");
        // raftctl, resumed across the kills, printed exactly those.
        let mut got = Vec::new();
        for _ in 0..300 {
            got = events(&watcher.lines());
            if got.len() >= want.len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(got, want, "the resumed watch differs from the reference");
    })
    .await;
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_positions_answer_410_slow_watchers_are_cut_and_drains_end_streams() {
    let mut c = cluster_with(&["active"; 3], true, &["--watch-history", "8"]);
    deadline(120, async {
        let l = c.leader(&[]).await;
        let f = (l + 1) % 3;
        let mut last = 0;
        for i in 0..20 {
            last = c.put(l, &format!("k{i}"), "v").await.unwrap();
        }
        // The follower's history moves while it applies: let it settle
        // first, so the oldest index it names stays servable.
        c.wait_applied(f, last, Duration::from_secs(20)).await;
        // Index 1 is long out of an 8-event history.
        let r = c.request(f, Method::GET, "/v1/watch/k0?from=1", "").await;
        let r = r.unwrap();
        assert_eq!(r.status, 410, "{}", String::from_utf8_lossy(&r.body));
        let oldest = r.json().unwrap()["oldest"].as_u64().unwrap();
        assert!(oldest > 1, "{:?}", r.json());
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_raftctl"))
            .arg("--certs")
            .arg(common::certs())
            .args(["--nodes", &c.nodes[f].api, "watch", "k0", "--from", "1"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("410") && err.contains("compacted"), "{err}");
        // From the oldest index, the stream serves at once.
        let path = format!("/v1/watch/?recurse&from={oldest}");
        let got = stream(&c.client, &c.nodes[f].api, &path, |v| v["Op"] == "put").await;
        assert_eq!(
            got[0]["Op"], "progress",
            "the first line says where it starts"
        );
        assert_eq!(got[0]["Index"].as_u64(), Some(oldest - 1), "{got:?}");
        assert_eq!(got[1]["Index"].as_u64(), Some(oldest), "{got:?}");

        // A watcher that stops reading while megabytes of changes pass.
        // It must be watching (its first line arrived) before the changes
        // start, or it starts after them and has nothing to fall behind on.
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let slow = {
            let client = c.client.clone();
            let api = c.nodes[f].api.clone();
            tokio::task::spawn_blocking(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let mut blocked = Some(release_rx);
                rt.block_on(stream(&client, &api, "/v1/watch/big", move |_| {
                    if let Some(rx) = blocked.take() {
                        let _ = started_tx.send(());
                        let _ = rx.recv();
                    }
                    false
                }))
            })
        };
        let started =
            tokio::task::spawn_blocking(move || started_rx.recv_timeout(Duration::from_secs(30)));
        started
            .await
            .unwrap()
            .expect("the slow watcher got its first line");
        let big = "x".repeat(1 << 20);
        for _ in 0..80 {
            c.put_at_leader("big", &big).await;
        }
        release_tx.send(()).unwrap();
        let lines = slow.await.unwrap();
        let last = lines.last().expect("a last line");
        assert_eq!(last["Op"], "compacted", "{}", last["Op"]);
        assert!(last["Oldest"].as_u64().unwrap() > last["Next"].as_u64().unwrap());
        let m = c.request(f, Method::GET, "/metrics", "").await.unwrap();
        let m = String::from_utf8_lossy(&m.body).into_owned();
        assert!(m.contains("kv_watchers_cut_total 1"), "{m}");

        // A drain ends a stream with a line naming where to go on.
        let watching = {
            let client = c.client.clone();
            let api = c.nodes[f].api.clone();
            tokio::spawn(async move {
                stream(&client, &api, "/v1/watch/k0", |v| v["Op"] == "end").await
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(c.stop(f, Duration::from_secs(10)), "node {f} did not stop");
        let lines = watching.await.unwrap();
        let last = lines.last().expect("a last line");
        assert_eq!(last["Op"], "end", "{lines:?}");
        assert!(last["Next"].as_u64().unwrap() > 0);
    })
    .await;
}
