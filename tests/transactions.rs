//! `PUT /v1/txn` on a real cluster: all or nothing through any node, and a
//! bank-transfer workload under kill -9 that must keep its total and be
//! linearizable (checked as one object: transfers and reads span keys).

mod common;

use base64::Engine;
use common::{cluster, deadline};
use raft_core::Rng;
use raft_http::HttpsClient;
use raft_http::client::{Method, Reply};
use raft_sim::linearizability::{self, BankOp, Timed, Verdict};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn unb64(v: &Value) -> String {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(v.as_str().expect("a base64 value"))
        .expect("base64");
    String::from_utf8(raw).expect("utf-8")
}

fn kv(verb: &str, key: &str, value: Option<&str>, index: u64) -> Value {
    let mut op = json!({ "Verb": verb, "Key": key, "Index": index });
    if let Some(v) = value {
        op["Value"] = b64(v).into();
    }
    json!({ "KV": op })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_apply_all_or_nothing_through_any_node() {
    let c = cluster(&["active"; 3], true);
    deadline(60, async {
        let l = c.leader(&[]).await;
        let f = (l + 1) % 3;
        let txn = |ops: Value| {
            let body = ops.to_string();
            let c = &c;
            async move { c.request(f, Method::PUT, "/v1/txn", &body).await.unwrap() }
        };
        // Two sets and a read of the first, in one entry, through a follower.
        let r = txn(json!([
            kv("set", "acct/a", Some("70"), 0),
            kv("set", "acct/b", Some("30"), 0),
            kv("get", "acct/a", None, 0),
        ]))
        .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let v = r.json().unwrap();
        let results = v["Results"].as_array().unwrap();
        assert_eq!(results.len(), 3);
        let at = results[0]["KV"]["ModifyIndex"].as_u64().unwrap();
        assert!(results.iter().all(|x| x["KV"]["ModifyIndex"] == at));
        assert_eq!(unb64(&results[2]["KV"]["Value"]), "70");
        assert_eq!(v["Errors"], Value::Null);
        // A stale compare fails the whole transaction: the set before it
        // does not happen, and both failures are named.
        let r = txn(json!([
            kv("set", "acct/a", Some("0"), 0),
            kv("check-index", "acct/b", None, at + 100),
            kv("get", "acct/none", None, 0),
        ]))
        .await;
        assert_eq!(r.status, 409, "{}", String::from_utf8_lossy(&r.body));
        let v = r.json().unwrap();
        let failed: Vec<u64> = v["Errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["OpIndex"].as_u64().unwrap())
            .collect();
        assert_eq!(failed, [1, 2], "{v}");
        assert_eq!(
            c.get(l, "acct/a", false).await.unwrap().as_deref(),
            Some("70")
        );
        // Malformed transactions are refused before anything is proposed.
        for (bad, why) in [
            (json!([kv("frob", "k", None, 0)]), "unknown Verb"),
            (
                json!([{ "KV": { "Verb": "set", "Key": "k", "Valeu": "eA==" } }]),
                "unknown field",
            ),
            (json!([kv("get", "k", None, 3)]), "takes no Index"),
            (json!([kv("set", "k", None, 0)]), "needs a Value"),
            (json!([{ "Node": { "Verb": "get" } }]), "unknown field"),
            (json!([]), "1 to 128"),
        ] {
            let r = txn(bad).await;
            let body = String::from_utf8_lossy(&r.body).into_owned();
            assert_eq!(r.status, 400, "{why}: {body}");
            assert!(body.contains(why), "{why}: {body}");
        }
        let r = c
            .request(f, Method::PUT, "/v1/txn?cas=1", "[]")
            .await
            .unwrap();
        assert_eq!(r.status, 400, "an unknown parameter");
        assert_eq!(
            c.get(l, "k", false).await.unwrap(),
            None,
            "nothing was written"
        );
        // raftctl speaks the same, one operation an argument.
        let nodes = vec![c.nodes[f].api.clone()];
        let cas = format!("cas acct/b {at} 1");
        let out = common::raftctl(&nodes, &["txn", &cas, "get acct/b"]);
        assert!(out.contains("acct/b = 1"), "{out}");
        let out = common::raftctl(&nodes, &["-o", "json", "txn", "get-tree acct/"]);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["Results"].as_array().map(Vec::len), Some(2), "{v}");
    })
    .await;
}

const ACCOUNTS: u64 = 5;
const START: i64 = 100;

/// A transaction sent to the node at `api`.
async fn send(client: &HttpsClient, api: &str, ops: &Value) -> Option<Reply> {
    let body = bytes::Bytes::from(ops.to_string());
    client
        .request(api, Method::PUT, "/v1/txn", &[], body)
        .await
        .ok()
}

/// Reads two accounts in one transaction: (balance, modify index) each.
async fn balances(client: &HttpsClient, api: &str, a: u64, b: u64) -> Option<[(i64, u64); 2]> {
    let ops = json!([
        kv("get", &format!("acct/{a}"), None, 0),
        kv("get", &format!("acct/{b}"), None, 0)
    ]);
    let r = send(client, api, &ops).await?;
    if r.status != 200 {
        return None;
    }
    let v = r.json()?;
    let one = |k: usize| {
        let kv = &v["Results"][k]["KV"];
        let balance = unb64(&kv["Value"]).parse().expect("a balance");
        (balance, kv["ModifyIndex"].as_u64().expect("an index"))
    };
    Some([one(0), one(1)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_transfers_under_kill_9_keep_the_total() {
    let seed = common::seed("--test transactions");
    let c = Arc::new(tokio::sync::Mutex::new(cluster(&["active"; 3], false)));
    deadline(180, async {
        let l = c.lock().await.leader(&[]).await;
        let open: Vec<Value> = (0..ACCOUNTS)
            .map(|k| kv("set", &format!("acct/{k}"), Some(&START.to_string()), 0))
            .collect();
        let r = c
            .lock()
            .await
            .request(l, Method::PUT, "/v1/txn", &Value::from(open).to_string())
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        let (client, apis) = {
            let g = c.lock().await;
            let apis: Vec<String> = g.nodes.iter().map(|n| n.api.clone()).collect();
            (g.client.clone(), apis)
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (done, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let history = Arc::new(Mutex::new(Vec::<Timed<BankOp>>::new()));
        let start = Instant::now();
        let now = move || start.elapsed().as_nanos() as u64;
        let mut clients = vec![];
        for id in 0..4u64 {
            let (client, apis) = (client.clone(), apis.clone());
            let (stop, done, refused) = (stop.clone(), done.clone(), refused.clone());
            let history = history.clone();
            let mut rng = Rng::new(seed ^ (id + 1).wrapping_mul(0x9E37_79B9));
            clients.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let api = &apis[rng.range(0, 3) as usize];
                    let a = rng.range(0, ACCOUNTS);
                    let b = (a + 1 + rng.range(0, ACCOUNTS - 1)) % ACCOUNTS;
                    let call = now();
                    let Some([(x, ix), (y, iy)]) = balances(&client, api, a, b).await else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    };
                    history.lock().unwrap().push(Timed {
                        op: BankOp::Read(vec![(a as usize, x), (b as usize, y)]),
                        call,
                        ret: Some(now()),
                    });
                    let amount = rng.range(0, 30) as i64;
                    // Never overdraw: the transfer is at most what a has.
                    let amount = amount.min(x);
                    let ops = json!([
                        kv("check-index", &format!("acct/{a}"), None, ix),
                        kv("check-index", &format!("acct/{b}"), None, iy),
                        kv(
                            "set",
                            &format!("acct/{a}"),
                            Some(&(x - amount).to_string()),
                            0
                        ),
                        kv(
                            "set",
                            &format!("acct/{b}"),
                            Some(&(y + amount).to_string()),
                            0
                        ),
                    ]);
                    let op = BankOp::Transfer {
                        from: a as usize,
                        to: b as usize,
                        seen: (x, y),
                        amount,
                    };
                    let call = now();
                    let ret = match send(&client, api, &ops).await.map(|r| r.status.as_u16()) {
                        Some(200) => {
                            done.fetch_add(1, Ordering::Relaxed);
                            Some(now())
                        }
                        // Refused by a compare: it changed nothing.
                        Some(409) => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        // Unknown outcome: applied once or not at all (the
                        // compares make a retry harmless); either way the
                        // total holds.
                        _ => None,
                    };
                    history.lock().unwrap().push(Timed { op, call, ret });
                }
            }));
        }
        let mut rng = Rng::new(seed);
        tokio::time::sleep(Duration::from_millis(500)).await;
        for _ in 0..6 {
            let victim = rng.range(0, 3) as usize;
            c.lock().await.kill(victim);
            tokio::time::sleep(Duration::from_millis(300 + rng.range(0, 500))).await;
            c.lock().await.start(victim).unwrap();
            tokio::time::sleep(Duration::from_millis(500 + rng.range(0, 700))).await;
        }
        stop.store(true, Ordering::Relaxed);
        for t in clients {
            t.await.unwrap();
        }
        let g = c.lock().await;
        let l = g.leader(&[]).await;
        let r = g
            .request(
                l,
                Method::PUT,
                "/v1/txn",
                &json!([kv("get-tree", "acct/", None, 0)]).to_string(),
            )
            .await
            .unwrap();
        let v = r.json().unwrap();
        let got: Vec<i64> = v["Results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| unb64(&x["KV"]["Value"]).parse().unwrap())
            .collect();
        let (done, refused) = (
            done.load(Ordering::Relaxed),
            refused.load(Ordering::Relaxed),
        );
        eprintln!(
            "{done} transfers applied, {refused} refused by their compares; balances {got:?}"
        );
        assert_eq!(got.len() as u64, ACCOUNTS);
        assert!(
            got.iter().all(|&b| b >= 0),
            "an account overdrawn: {got:?} (seed {seed})"
        );
        assert_eq!(
            got.iter().sum::<i64>(),
            START * ACCOUNTS as i64,
            "seed {seed}"
        );
        assert!(done > 20, "too few transfers got through: {done}");
        // The final balances, read after everything, are part of it.
        let mut ops = history.lock().unwrap().clone();
        let end = now();
        ops.push(Timed {
            op: BankOp::Read(got.iter().copied().enumerate().collect()),
            call: end,
            ret: Some(end + 1),
        });
        let verdict = linearizability::check_bank(vec![START; ACCOUNTS as usize], &ops);
        eprintln!("{} operations checked: {verdict:?}", ops.len());
        assert_eq!(
            verdict,
            Verdict::Linearizable,
            "the bank's history is not linearizable (seed {seed}): {ops:?}"
        );
    })
    .await;
}
