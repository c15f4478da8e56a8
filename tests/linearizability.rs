//! Whole-stack linearizability: clients read and write a few keys through
//! any node of a real `raft-mock` cluster (followers forward writes and
//! serve reads by ReadIndex) while nodes are killed with SIGKILL and
//! restarted, or paused with SIGSTOP; the history is then checked with the simulator's checker
//! (Wing & Gong with Lowe's memoization, per key).

mod common;

use common::{cluster, deadline};
use raft_core::Rng;
use raft_kv::api::client::Method;
use raft_sim::linearizability::{self, Op, OpKind, Verdict};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEYS: u8 = 8;
const CLIENTS: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_writes_through_any_node_are_linearizable_under_kills_and_pauses() {
    let seed = common::seed("--test linearizability");
    // Stale reads (`?stale`) are not linearizable; `LIN_READ=stale` shows
    // the check catches them.
    let query = match std::env::var("LIN_READ").as_deref() {
        Ok("stale") => "?raw&stale",
        _ => "?raw",
    };
    let c = Arc::new(tokio::sync::Mutex::new(cluster(&["active"; 3], false)));
    deadline(180, async {
        c.lock().await.leader(&[]).await;
        let (client, apis) = {
            let g = c.lock().await;
            let apis: Vec<String> = g.nodes.iter().map(|n| n.api.clone()).collect();
            (g.client.clone(), apis)
        };
        let start = Instant::now();
        let now = move || start.elapsed().as_nanos() as u64;
        let history = Arc::new(Mutex::new(Vec::<Op>::new()));
        let next_value = Arc::new(AtomicU64::new(1));
        let stop = Arc::new(AtomicBool::new(false));
        let mut clients = vec![];
        for id in 0..CLIENTS {
            let (client, apis, history, next_value, stop) = (
                client.clone(),
                apis.clone(),
                history.clone(),
                next_value.clone(),
                stop.clone(),
            );
            let mut rng = Rng::new(seed ^ (id as u64 + 1).wrapping_mul(0x9E37_79B9));
            clients.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let key = rng.range(0, KEYS as u64) as u8;
                    let api = &apis[rng.range(0, apis.len() as u64) as usize];
                    let path = format!("/v1/kv/lin{key}");
                    let call = now();
                    let op = if rng.range(0, 2) == 0 {
                        let v = next_value.fetch_add(1, Ordering::Relaxed);
                        let body = bytes::Bytes::from(v.to_string());
                        let r = client.request(api, Method::PUT, &path, &[], body).await;
                        // Anything but a success may or may not have
                        // happened (a forward timed out, a node died).
                        let ok = r.is_ok_and(|r| r.status == 200);
                        Some((OpKind::Put(v), ok.then(now)))
                    } else {
                        let r = client
                            .request(api, Method::GET, &format!("{path}{query}"), &[], "".into())
                            .await;
                        match r {
                            Ok(r) if r.status == 200 => {
                                let v = std::str::from_utf8(&r.body)
                                    .ok()
                                    .and_then(|s| s.parse().ok());
                                Some((
                                    OpKind::Get(Some(v.expect("a value this test wrote"))),
                                    Some(now()),
                                ))
                            }
                            Ok(r) if r.status == 404 => Some((OpKind::Get(None), Some(now()))),
                            // A failed read changed nothing: left out.
                            _ => None,
                        }
                    };
                    match op {
                        Some((kind, ret)) => {
                            history.lock().unwrap().push(Op {
                                client: id,
                                key,
                                kind,
                                call,
                                ret,
                            });
                            if ret.is_none() {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                        None => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            }));
        }
        // The nemesis: kill -9 a random node and restart it, or pause one
        // (SIGSTOP: a leader paused and resumed still believes it leads, the
        // case ReadIndex and check-quorum are there for).
        let mut rng = Rng::new(seed);
        tokio::time::sleep(Duration::from_millis(500)).await;
        for _ in 0..8 {
            let victim = rng.range(0, 3) as usize;
            let pause = rng.range(0, 3) == 0;
            if pause {
                c.lock().await.pause(victim);
            } else {
                c.lock().await.kill(victim);
            }
            tokio::time::sleep(Duration::from_millis(200 + rng.range(0, 500))).await;
            if pause {
                c.lock().await.resume(victim);
            } else {
                c.lock().await.start(victim).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(300 + rng.range(0, 600))).await;
        }
        stop.store(true, Ordering::Relaxed);
        for t in clients {
            t.await.unwrap();
        }
        let history = history.lock().unwrap().clone();
        let done = |f: fn(&OpKind) -> bool| {
            history
                .iter()
                .filter(|o| o.ret.is_some() && f(&o.kind))
                .count()
        };
        let (writes, reads) = (
            done(|k| matches!(k, OpKind::Put(_))),
            done(|k| matches!(k, OpKind::Get(_))),
        );
        eprintln!(
            "{} operations: {writes} writes and {reads} reads completed",
            history.len()
        );
        assert!(writes > 50 && reads > 50, "too little got through");
        match linearizability::check(&history) {
            Ok(()) => {}
            Err((key, Verdict::Unknown, _)) => {
                eprintln!("key {key}: the search ran out of budget (neither proven nor refuted)")
            }
            Err((key, verdict, ops)) => {
                let shown: Vec<_> = ops.iter().take(60).collect();
                panic!("key {key}: {verdict:?} (seed {seed}); first operations: {shown:#?}");
            }
        }
    })
    .await;
}
