//! Whole-stack linearizability: clients read, write and compare-and-set
//! (read a value and its index, then `?cas=`) a few keys through
//! any node of a real `raft-mock` cluster (followers forward writes and
//! serve reads by ReadIndex) while nodes are killed with SIGKILL and
//! restarted, or paused with SIGSTOP; the history is then checked with the simulator's checker
//! (Wing & Gong with Lowe's memoization, per key). Half the clients speak
//! RESP (SET, GET, and WATCH / GET / MULTI / SET / EXEC for the swap) to
//! the same keys, in namespace `db0`.

mod common;

use common::resp::{Reply, RespConn};
use common::{deadline, described};
use raft_core::Rng;
use raft_http::client::Method;
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
        Ok("stale") => "?raw&stale&ns=db0",
        _ => "?raw&ns=db0",
    };
    let mut c = described(&["active"; 3], false);
    let resp_ports = raft_mock::launch::free_ports(3);
    for (n, p) in c.c.nodes.iter_mut().zip(&resp_ports) {
        n.extra = vec!["--resp-port".into(), p.to_string()];
    }
    c.start_all().expect("starting raft-mock");
    let c = Arc::new(tokio::sync::Mutex::new(c));
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
            let (client, apis, resp_ports, history, next_value, stop) = (
                client.clone(),
                apis.clone(),
                resp_ports.clone(),
                history.clone(),
                next_value.clone(),
                stop.clone(),
            );
            let mut rng = Rng::new(seed ^ (id as u64 + 1).wrapping_mul(0x9E37_79B9));
            clients.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let key = rng.range(0, KEYS as u64) as u8;
                    let node = rng.range(0, apis.len() as u64) as usize;
                    let api = &apis[node];
                    let path = format!("/v1/kv/lin{key}");
                    let call = now();
                    let pick = rng.range(0, 3);
                    if id % 2 == 1 {
                        let v = next_value.fetch_add(1, Ordering::Relaxed);
                        let ops = over_resp(resp_ports[node], key, pick, v, &now).await;
                        record(&history, id, key, ops);
                        continue;
                    }
                    if pick == 2 {
                        // Compare-and-set: read the value and its index,
                        // then swap it for a new one (both operations go
                        // into the history).
                        let v = next_value.fetch_add(1, Ordering::Relaxed);
                        let ops = swap(&client, api, &path, v, &now).await;
                        record(&history, id, key, ops);
                        continue;
                    }
                    let op = if pick == 0 {
                        let v = next_value.fetch_add(1, Ordering::Relaxed);
                        let body = bytes::Bytes::from(v.to_string());
                        let put = format!("{path}?ns=db0");
                        let r = client.request(api, Method::PUT, &put, &[], body).await;
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
        let swaps = done(|k| matches!(k, OpKind::Cas { swapped: true, .. }));
        let refused = history
            .iter()
            .filter(|o| matches!(o.kind, OpKind::Cas { swapped: false, .. }))
            .count();
        eprintln!(
            "{} operations: {writes} writes, {reads} reads and {swaps} swaps completed; \
             {refused} swaps refused or of unknown outcome",
            history.len()
        );
        assert!(writes > 50 && reads > 50, "too little got through");
        assert!(swaps > 10 && refused > 0, "too few swaps got through");
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

/// Adds `ops` of client `id` on `key` to the history.
fn record(history: &Mutex<Vec<Op>>, id: usize, key: u8, ops: Vec<(OpKind, u64, Option<u64>)>) {
    let mut h = history.lock().unwrap();
    for (kind, call, ret) in ops {
        h.push(Op {
            client: id,
            key,
            kind,
            call,
            ret,
        });
    }
}

/// A read of `path` (its value and modify index), then `PUT ?cas=<index>`
/// of `new`: the operations as the history records them, (kind, call,
/// return). A failed read leaves both out; a swap of unknown outcome has
/// no return.
async fn swap(
    client: &raft_http::HttpsClient,
    api: &str,
    path: &str,
    new: u64,
    now: &impl Fn() -> u64,
) -> Vec<(OpKind, u64, Option<u64>)> {
    use base64::Engine;
    let call = now();
    let get = format!("{path}?ns=db0");
    let r = client.request(api, Method::GET, &get, &[], "".into()).await;
    let (seen, index) = match r {
        Ok(r) if r.status == 200 => {
            let v = r.json().expect("JSON");
            let raw = base64::engine::general_purpose::STANDARD
                .decode(v[0]["Value"].as_str().expect("a value"))
                .expect("base64");
            let seen: u64 = String::from_utf8(raw)
                .unwrap()
                .parse()
                .expect("a value this test wrote");
            (Some(seen), v[0]["ModifyIndex"].as_u64().expect("an index"))
        }
        Ok(r) if r.status == 404 => (None, 0),
        _ => {
            tokio::time::sleep(Duration::from_millis(20)).await;
            return Vec::new();
        }
    };
    let mut ops = vec![(OpKind::Get(seen), call, Some(now()))];
    let call = now();
    let body = bytes::Bytes::from(new.to_string());
    let r = client
        .request(
            api,
            Method::PUT,
            &format!("{path}?ns=db0&cas={index}"),
            &[],
            body,
        )
        .await;
    let answer = r.ok().filter(|r| r.status == 200).and_then(|r| r.json());
    let refused = answer.as_ref().and_then(|v| v.as_bool()) == Some(false);
    let swapped = answer.as_ref().and_then(|v| v.as_bool()).unwrap_or(false);
    // A refused swap is recorded as of unknown outcome: that claims less
    // (it may not constrain the order), but a failed compare could be
    // explained by any write of unknown outcome, which the checker could
    // then no longer leave out, and the search outgrows its budget.
    // Successful swaps are what is checked: no two from one value.
    let ret = answer.filter(|_| swapped).map(|_| now());
    if ret.is_none() && !refused {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ops.push((
        OpKind::Cas {
            expect: seen,
            new,
            swapped,
        },
        call,
        ret,
    ));
    ops
}

/// One operation over RESP on node `port`: `pick` 0 a SET of `v`, 1 a GET,
/// 2 a swap (WATCH, GET, MULTI, SET `v`, EXEC: applied only if the key is
/// as the GET saw it). As `swap`: (kind, call, return) for the history.
async fn over_resp(
    port: u16,
    key: u8,
    pick: u64,
    v: u64,
    now: &impl Fn() -> u64,
) -> Vec<(OpKind, u64, Option<u64>)> {
    let k = format!("lin{key}");
    let value = v.to_string();
    let call = now();
    let Ok(mut conn) = RespConn::connect(port).await else {
        tokio::time::sleep(Duration::from_millis(20)).await;
        return Vec::new();
    };
    let read = |r: Reply| match r {
        Reply::Bulk(Some(b)) => Some(Some(
            String::from_utf8(b)
                .unwrap()
                .parse::<u64>()
                .expect("a value this test wrote"),
        )),
        Reply::Bulk(None) => Some(None),
        _ => None,
    };
    match pick {
        0 => {
            let r = conn.call(&[b"SET", k.as_bytes(), value.as_bytes()]).await;
            let ok = matches!(r, Ok(Reply::Simple(ref s)) if s == "OK");
            if !ok {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            vec![(OpKind::Put(v), call, ok.then(now))]
        }
        1 => match conn.call(&[b"GET", k.as_bytes()]).await.ok().and_then(read) {
            Some(seen) => vec![(OpKind::Get(seen), call, Some(now()))],
            None => Vec::new(),
        },
        _ => {
            let watched = conn.call(&[b"WATCH", k.as_bytes()]).await;
            if !matches!(watched, Ok(Reply::Simple(_))) {
                return Vec::new();
            }
            let Some(seen) = conn.call(&[b"GET", k.as_bytes()]).await.ok().and_then(read) else {
                return Vec::new();
            };
            let mut ops = vec![(OpKind::Get(seen), call, Some(now()))];
            let call = now();
            let _ = conn.call(&[b"MULTI"]).await;
            let _ = conn.call(&[b"SET", k.as_bytes(), value.as_bytes()]).await;
            let r = conn.call(&[b"EXEC"]).await;
            let swapped = matches!(r, Ok(Reply::Array(Some(_))));
            // As in `swap`: only a swap known to have happened returns.
            ops.push((
                OpKind::Cas {
                    expect: seen,
                    new: v,
                    swapped,
                },
                call,
                swapped.then(now),
            ));
            ops
        }
    }
}
