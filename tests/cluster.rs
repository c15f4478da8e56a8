//! Multi-process tests: real `raft-mock` processes over real mutual TLS on
//! loopback. Each test has a deadline and kills its processes at the end.

mod common;

use common::{cluster, deadline};
use raft_core::Rng;
use raft_http::client::Method;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_any_node_are_read_from_all() {
    let c = cluster(&["active"; 3], false);
    deadline(60, async {
        let l = c.leader(&[]).await;
        for i in 0..3 {
            c.put(i, &format!("k{i}"), &format!("v{i}")).await.unwrap();
        }
        for reader in 0..3 {
            for i in 0..3 {
                let got = c.get(reader, &format!("k{i}"), false).await.unwrap();
                assert_eq!(
                    got.as_deref(),
                    Some(format!("v{i}").as_str()),
                    "node {reader}"
                );
            }
        }
        // A follower asked to redirect names the leader's command port.
        let f = (l + 1) % 3;
        let r = c
            .request(f, Method::PUT, "/v1/kv/x?redirect", "y")
            .await
            .unwrap();
        assert_eq!(r.status, 307);
        let loc = r.headers["location"].to_str().unwrap();
        assert!(
            loc.starts_with(&format!("https://{}/", c.nodes[l].api)),
            "{loc}"
        );
        // Status and metrics agree on who leads.
        for i in 0..3 {
            let s = c.status(i).await.unwrap();
            assert_eq!(s["leader"], c.nodes[l].name.as_str());
            let m = c.request(i, Method::GET, "/metrics", "").await.unwrap();
            let text = String::from_utf8_lossy(&m.body).into_owned();
            let want = if i == l {
                "raft_is_leader 1"
            } else {
                "raft_is_leader 0"
            };
            assert!(text.contains(want), "{text}");
            assert!(
                text.contains("raft_transport_inbound_dropped_total "),
                "{text}"
            );
            // The leader reports each follower's replication.
            for j in (0..3).filter(|&j| i == l && j != l) {
                let series = format!("raft_peer_match_index{{peer=\"{}\"}} ", c.nodes[j].name);
                assert!(text.contains(&series), "{text}");
                let dropped = format!(
                    "raft_transport_dropped_total{{peer=\"{}\"}} ",
                    c.nodes[j].name
                );
                assert!(text.contains(&dropped), "{text}");
            }
            assert!(text.ends_with("# EOF\n"), "not OpenMetrics: {text}");
            assert!(
                value(&text, "raft_leader_changes_seen_total") >= 1.0,
                "{text}"
            );
            assert!(
                value(&text, "process_resident_memory_bytes") > 0.0,
                "{text}"
            );
            assert!(value(&text, "process_cpu_seconds_total") > 0.0, "{text}");
            // Every node wrote entries to its log and fsynced them.
            assert!(value(&text, "raft_disk_wal_fsync_duration_seconds_count") >= 1.0);
            // Node i took one PUT, timed and counted by route and code.
            let route = "route=\"/v1/kv/{*key}\",method=\"PUT\"";
            let puts = format!("http_requests_total{{{route},code=\"200\"}}");
            assert!(value(&text, &puts) >= 1.0, "{text}");
            let timed = format!("http_request_duration_seconds_count{{{route}}}");
            assert!(value(&text, &timed) >= 1.0, "{text}");
        }
        // The leader applied the three proposals and timed each.
        let m = c.request(l, Method::GET, "/metrics", "").await.unwrap();
        let text = String::from_utf8_lossy(&m.body).into_owned();
        assert!(
            value(&text, "raft_proposal_duration_seconds_count") >= 3.0,
            "{text}"
        );
        assert!(
            value(&text, "raft_apply_duration_seconds_count") >= 1.0,
            "{text}"
        );
    })
    .await;
}

/// The value of the series named exactly `series` (with its labels) in
/// an exposition; panics if it is missing.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raftctl_finds_the_leader_and_speaks_kv() {
    let c = cluster(&["active"; 3], true);
    deadline(60, async {
        c.leader(&[]).await;
        let nodes: Vec<_> = c.nodes.iter().map(|n| n.api.clone()).collect();
        let ctl = |args: &[&str]| common::raftctl(&nodes, args);
        assert!(ctl(&["put", "colour", "blue"]).starts_with("ok"));
        assert_eq!(ctl(&["get", "colour"]).trim(), "blue");
        ctl(&["--ns", "t", "put", "a/1", "x"]);
        assert_eq!(ctl(&["--ns", "t", "list", "a/"]).trim(), "a/1");
        let status = ctl(&["status"]);
        assert_eq!(status.matches(" leader ").count(), 1, "{status}");
        // Given one node, it shows every member (issue 13, bug 7): the
        // others at the command ports that node knows them by (from their
        // connections to it, which every member opens at start).
        let listed = |out: &str| {
            c.nodes.iter().all(|n| {
                out.lines().any(|l| {
                    l.contains(&n.api) && l.contains(&n.name) && !l.contains("unreachable")
                })
            })
        };
        let mut one = String::new();
        for _ in 0..50 {
            one = common::raftctl(&nodes[..1], &["status"]);
            if listed(&one) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(listed(&one), "{one}");
        assert_eq!(one.matches(" leader ").count(), 1, "{one}");
        assert!(ctl(&["log", "--last", "2"]).contains("\"kind\":\"kv\""));
        // -o json: one JSON document per command (issue 13).
        let json = |args: &[&str]| -> serde_json::Value {
            let out = ctl(&[&["-o", "json"], args].concat());
            serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
        };
        let put = json(&["put", "shade", "dark"]);
        assert_eq!(put["ok"], true, "{put}");
        assert!(put["index"].as_u64().unwrap() > 0, "{put}");
        let got = json(&["get", "shade"]);
        assert_eq!(
            (got["Key"].as_str(), got["Value"].as_str()),
            (Some("shade"), Some("ZGFyaw=="))
        );
        assert_eq!(json(&["list", "sh"]), serde_json::json!(["shade"]));
        let st = json(&["status"]);
        assert_eq!(st.as_array().unwrap().len(), 3, "{st}");
        assert!(
            st.as_array()
                .unwrap()
                .iter()
                .any(|m| m["status"]["role"] == "leader")
        );
        let members = json(&["members"]);
        assert_eq!(members["Servers"].as_array().unwrap().len(), 3, "{members}");
        assert_eq!(json(&["delete", "shade"])["ok"], true);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raftctl_follows_the_log_across_the_loss_of_its_node() {
    use std::io::BufRead;
    let mut c = cluster(&["active"; 3], true);
    let l = c.leader(&[]).await;
    let f = (l + 1) % 3;
    // raftctl follows through the follower first, then the others.
    let mut nodes = vec![c.nodes[f].api.clone()];
    nodes.extend((0..3).filter(|&i| i != f).map(|i| c.nodes[i].api.clone()));
    /// Kills raftctl however the test ends.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut ctl = std::process::Command::new(env!("CARGO_BIN_EXE_raftctl"))
        .arg("--certs")
        .arg(common::certs())
        .arg("--nodes")
        .arg(nodes.join(","))
        .args(["log", "--last", "1", "--follow"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(Reap)
        .expect("starting raftctl");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let out = ctl.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // Waits until raftctl printed the put of `key`; each entry once.
    async fn saw(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>, key: &str) {
        let want = format!("\"key\":\"{key}\"");
        while let Some(line) = rx.recv().await {
            if line.contains(&want) {
                return;
            }
        }
        panic!("raftctl stopped before printing {key}");
    }
    deadline(60, async {
        for i in 0..5 {
            c.put(l, &format!("a{i}"), "x").await.unwrap();
        }
        saw(&mut rx, "a4").await;
        c.kill(f);
        for i in 0..5 {
            c.put(l, &format!("b{i}"), "x").await.unwrap();
        }
        saw(&mut rx, "b4").await;
    })
    .await;
    drop(ctl);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_is_replaced_and_catches_up_from_its_file() {
    let mut c = cluster(&["active"; 3], false);
    deadline(90, async {
        let old = c.leader(&[]).await;
        c.put(old, "before", "1").await.unwrap();
        c.kill(old);
        let new = c.leader(&[old]).await;
        assert_ne!(new, old);
        let mut last = 0;
        for i in 0..20 {
            last = c.put(new, &format!("after{i}"), "2").await.unwrap();
        }
        c.start(old).unwrap();
        c.wait_applied(old, last, Duration::from_secs(20)).await;
        assert_eq!(
            c.get(old, "before", true).await.unwrap().as_deref(),
            Some("1")
        );
        assert_eq!(
            c.get(old, "after19", true).await.unwrap().as_deref(),
            Some("2")
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_follower_does_not_stop_the_cluster() {
    let c = cluster(&["active"; 3], false);
    deadline(60, async {
        let l = c.leader(&[]).await;
        let f = (l + 1) % 3;
        c.pause(f);
        let mut last = 0;
        for i in 0..30 {
            last = c.put(l, &format!("k{i}"), "v").await.unwrap();
        }
        c.resume(f);
        c.wait_applied(f, last, Duration::from_secs(20)).await;
        assert_eq!(c.get(f, "k29", true).await.unwrap().as_deref(), Some("v"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_never_leads_and_reluctant_leads_only_without_an_active_node() {
    // 0 active, 1 reluctant, 2 passive.
    let mut c = cluster(&["active", "reluctant", "passive"], false);
    deadline(90, async {
        assert_eq!(c.leader(&[]).await, 0, "the active node leads");
        c.put(0, "a", "1").await.unwrap();
        c.kill(0);
        // Only the reluctant node may take over; the passive one never.
        assert_eq!(c.leader(&[0]).await, 1);
        c.put(1, "b", "2").await.unwrap();
        c.start(0).unwrap();
        // The reluctant leader hands over once the active node is back
        // and caught up.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let s = c.status(1).await;
            if s.is_some_and(|s| s["leader"] == c.nodes[0].name.as_str()) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no hand-over to the active node"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(c.get(0, "b", false).await.unwrap().as_deref(), Some("2"));
        let s = c.status(2).await.unwrap();
        assert_eq!(s["mode"], "passive");
        assert_ne!(s["role"], "leader");
        // raftctl says a transfer to the passive node failed, and exits
        // non-zero (it could print "done: false" and exit 0).
        let apis: Vec<String> = c.nodes.iter().map(|n| n.api.clone()).collect();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_raftctl"))
            .arg("--certs")
            .arg(common::certs())
            .args(["--nodes", &apis.join(","), "transfer", &c.nodes[2].name])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "transfer to a passive node succeeded: {err}"
        );
        // Refused up front once the leader knows the mode (409), or tried
        // and not moved: either way it says why.
        assert!(err.contains("passive"), "{err}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_writes_fail_fast_with_503() {
    let mut c = cluster(&["active"; 3], true);
    deadline(60, async {
        let l = c.leader(&[]).await;
        c.put(l, "k", "v").await.unwrap();
        let others: Vec<_> = (0..3).filter(|&i| i != l).collect();
        for &i in &others {
            c.kill(i);
        }
        let started = tokio::time::Instant::now();
        let r = c.request(l, Method::PUT, "/v1/kv/k2", "v").await.unwrap();
        assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
        assert!(r.json().unwrap()["error"].is_string());
        assert!(started.elapsed() < Duration::from_secs(10));
        // Reads need a quorum too, unless stale.
        let r = c.request(l, Method::GET, "/v1/kv/k", "").await.unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(c.get(l, "k", true).await.unwrap().as_deref(), Some("v"));
        let s = c.status(l).await.unwrap();
        assert_eq!(s["health"], "red");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_4xx_and_change_nothing() {
    let c = cluster(&["active"], true);
    deadline(60, async {
        c.leader(&[]).await;
        // A body over the 4 MiB limit: 413, or the connection is closed
        // before the client finishes sending it.
        let big = "x".repeat(5 << 20);
        if let Ok(r) = c.request(0, Method::PUT, "/v1/kv/k", &big).await {
            assert_eq!(r.status, 413);
        }
        let cases = [
            (Method::PUT, "/v1/kv/k?ns=a/b".to_string(), "v", 400),
            (Method::PUT, "/v1/kv/".into(), "v", 400),
            (Method::PUT, "/v1/kv/k?cas=notanumber".into(), "v", 400),
            (Method::PUT, "/v1/kv/k?client=1".into(), "v", 400),
            (Method::GET, "/v1/kv/k%zz".into(), "", 400),
            (Method::PATCH, "/".into(), "{not json", 400),
            (Method::PATCH, "/".into(), r#"{"mode":"sleepy"}"#, 400),
            (Method::GET, "/v1/nothing".into(), "", 404),
            (Method::GET, "/v1/log/abc".into(), "", 400),
            (Method::POST, "/v1/log".into(), "kv1forged", 400),
            (Method::PUT, "/v1/kv/k?ns=a&ns=b".into(), "v", 400),
            (Method::GET, "/v1/kv/k?stale=maybe".into(), "", 400),
            (Method::PUT, "/v1/kv/k?raw=yes".into(), "v", 400),
            // A typo for ?cas=1: refused, not an unconditional write.
            (Method::PUT, "/v1/kv/k?cass=1".into(), "v", 400),
            (Method::DELETE, "/v1/kv/k?recurce".into(), "", 400),
            (Method::GET, "/v1/status?verbose".into(), "", 400),
            (Method::GET, "/v1/log?form=1".into(), "", 400),
        ];
        for (m, path, body, want) in cases {
            let r = c.request(0, m.clone(), &path, body).await.unwrap();
            assert_eq!(
                r.status.as_u16(),
                want,
                "{m} {path}: {}",
                String::from_utf8_lossy(&r.body)
            );
            assert!(r.json().unwrap()["error"].is_string(), "{m} {path}");
        }
        assert_eq!(c.get(0, "k", false).await.unwrap(), None);
        c.put(0, "k", "fine").await.unwrap();
        assert_eq!(c.get(0, "k", false).await.unwrap().as_deref(), Some("fine"));
        // HEAD answers as GET does, without a body.
        let head = c
            .request(0, Method::HEAD, "/v1/kv/k?raw", "")
            .await
            .unwrap();
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        let head = c.request(0, Method::HEAD, "/v1/kv/none", "").await.unwrap();
        assert_eq!(head.status, 404);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_can_be_appended_to_read_and_followed() {
    let c = cluster(&["active"; 3], true);
    deadline(60, async {
        let l = c.leader(&[]).await;
        let f = (l + 1) % 3;
        for i in 0..12 {
            c.put(l, &format!("pad{i}"), "x").await.unwrap();
        }
        let r = c
            .request(f, Method::POST, "/v1/log", "hello log")
            .await
            .unwrap();
        assert_eq!(r.status, 201);
        let index = r.json().unwrap()["index"].as_u64().unwrap();
        c.wait_applied(f, index, Duration::from_secs(10)).await;
        let r = c
            .request(f, Method::GET, &format!("/v1/log/{index}"), "")
            .await
            .unwrap();
        let e = r.json().unwrap();
        assert_eq!(
            (e["kind"].as_str(), e["text"].as_str()),
            (Some("opaque"), Some("hello log"))
        );
        // pyraftlog's routes: `GET /log/<n>` and `GET /log` (any number of
        // digits, where pyraftlog's route matched one).
        let r = c
            .request(f, Method::GET, &format!("/log/{index}"), "")
            .await;
        assert_eq!(r.unwrap().json().unwrap(), e);
        // pyraftlog's `POST /`: 201 once applied (202 when committed but
        // not applied within 3 s), through a follower too.
        let r = c.request(f, Method::POST, "/", "hello root").await.unwrap();
        assert_eq!(r.status, 201, "{:?}", r.json());
        let root = r.json().unwrap()["index"].as_u64().unwrap();
        assert!(root > index);
        let r = c.request(l, Method::GET, &format!("/log/{root}"), "").await;
        assert_eq!(r.unwrap().json().unwrap()["text"], "hello root");
        let r = c.request(f, Method::POST, "/", "kv1forged").await.unwrap();
        assert_eq!(r.status, 400);
        let index = root;
        c.wait_applied(f, index, Duration::from_secs(10)).await;
        let r = c.request(f, Method::GET, "/log?from=1", "").await.unwrap();
        assert_eq!(r.status, 200);
        let all = r.json().unwrap()["entries"].as_array().unwrap().clone();
        assert_eq!(all.last().unwrap()["index"].as_u64(), Some(index));
        let r = c
            .request(f, Method::GET, "/v1/log?from=1", "")
            .await
            .unwrap();
        let entries = r.json().unwrap()["entries"].as_array().unwrap().clone();
        assert_eq!(entries.last().unwrap()["index"].as_u64(), Some(index));
        // `to` is inclusive: from=1&to=2 is two entries, from=2&to=2 one.
        for (q, want) in [("from=1&to=2", vec![1, 2]), ("from=2&to=2", vec![2])] {
            let r = c.request(f, Method::GET, &format!("/v1/log?{q}"), "").await;
            let v = r.unwrap().json().unwrap();
            let got: Vec<u64> = v["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["index"].as_u64().unwrap())
                .collect();
            assert_eq!(got, want, "{q}");
        }
        // Session retries apply once.
        let path = "/v1/kv/s?client=42&seq=1";
        let first = c.request(l, Method::PUT, path, "one").await.unwrap();
        let retry = c.request(f, Method::PUT, path, "one").await.unwrap();
        assert_eq!((first.status.as_u16(), retry.status.as_u16()), (200, 200));
        c.put(l, "s", "two").await.unwrap();
        let retry = c.request(l, Method::PUT, path, "one").await.unwrap();
        assert_eq!(retry.status, 200);
        assert_eq!(c.get(l, "s", false).await.unwrap().as_deref(), Some("two"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_a_certificate_are_refused() {
    let c = cluster(&["active"], true);
    deadline(30, async {
        c.leader(&[]).await;
        let tls =
            raft_net::tls::client_config(&common::certs().join("transport-ca.pem"), None).unwrap();
        let anon = raft_http::HttpsClient::new(tls);
        let r = anon
            .request(&c.nodes[0].api, Method::GET, "/", &[], bytes::Bytes::new())
            .await;
        assert!(r.is_err(), "a client without a certificate was served");
        // The node is unharmed.
        assert!(c.status(0).await.is_some());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_kills_under_concurrent_writes_lose_no_acknowledged_write() {
    let seed = common::seed("--test cluster random_kills");
    let c = Arc::new(tokio::sync::Mutex::new(cluster(&["active"; 3], false)));
    deadline(180, async {
        c.lock().await.leader(&[]).await;
        let acked = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Writers use their own client, so they keep going while the
        // cluster is being killed and restarted.
        let (client, apis) = {
            let g = c.lock().await;
            (
                g.client.clone(),
                g.nodes.iter().map(|n| n.api.clone()).collect::<Vec<_>>(),
            )
        };
        let mut writers = vec![];
        for w in 0..4 {
            let (client, apis, acked, stop) =
                (client.clone(), apis.clone(), acked.clone(), stop.clone());
            writers.push(tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let key = format!("w{w}-{n}");
                    let api = &apis[(n as usize + w) % apis.len()];
                    let r = client
                        .request(
                            api,
                            Method::PUT,
                            &format!("/v1/kv/{key}"),
                            &[],
                            bytes::Bytes::from(key.clone()),
                        )
                        .await;
                    if r.is_ok_and(|r| r.status == 200) {
                        acked.lock().unwrap().insert(key, ());
                    } else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    n += 1;
                }
            }));
        }
        let mut rng = Rng::new(seed);
        for _ in 0..10 {
            let victim = rng.range(0, 3) as usize;
            c.lock().await.kill(victim);
            tokio::time::sleep(Duration::from_millis(200 + rng.range(0, 600))).await;
            c.lock().await.start(victim).unwrap();
            tokio::time::sleep(Duration::from_millis(300 + rng.range(0, 700))).await;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for w in writers {
            w.await.unwrap();
        }
        let c = c.lock().await;
        let l = c.leader(&[]).await;
        let barrier = c.put(l, "final", "x").await.unwrap();
        let acked = acked.lock().unwrap().clone();
        assert!(
            acked.len() > 20,
            "too few writes got through: {}",
            acked.len()
        );
        let mut dumps = vec![];
        for i in 0..3 {
            c.wait_applied(i, barrier, Duration::from_secs(30)).await;
            dumps.push(c.dump(i).await);
        }
        let have: BTreeMap<_, _> = dumps[0].iter().cloned().collect();
        for k in acked.keys() {
            assert_eq!(
                have.get(k),
                Some(k),
                "acknowledged write {k} lost (seed {seed})"
            );
        }
        assert_eq!(dumps[0], dumps[1], "nodes differ (seed {seed})");
        assert_eq!(dumps[0], dumps[2], "nodes differ (seed {seed})");
    })
    .await;
}

#[test]
fn bad_flags_and_missing_certificates_exit_with_one_line() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(common::BIN)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["-n", "7001", "-t", "lazy"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("lazy"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let (code, err) = run(&[
        "-n",
        "127.0.0.1:59999",
        "-p",
        "59998",
        "--certs",
        empty.path().to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1));
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("transport-ca.pem"), "{err}");
    let (code, err) = run(&["-n", "notaport"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("notaport"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_a_node_down_cleanly() {
    let mut c = cluster(&["active"], false);
    deadline(30, async {
        c.leader(&[]).await;
        c.put(0, "k", "v").await.unwrap();
        assert!(
            c.stop(0, Duration::from_secs(10)),
            "raft-mock did not exit 0 on SIGTERM"
        );
        c.start(0).unwrap();
        c.leader(&[]).await;
        assert_eq!(c.get(0, "k", false).await.unwrap().as_deref(), Some("v"));
    })
    .await;
}

/// Issue 13: health that load balancers and probes read by status code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_live_and_ready_answer_by_status_code() {
    let mut c = cluster(&["active"; 3], true);
    deadline(60, async {
        let l = c.leader(&[]).await;
        let f = (l + 1) % 3;
        c.put(l, "k", "v").await.unwrap();
        let code = |r: Result<raft_http::client::Reply, _>| r.map(|r| r.status.as_u16());
        for path in ["/v1/health", "/livez", "/readyz"] {
            assert_eq!(
                code(c.request(f, Method::GET, path, "").await).ok(),
                Some(200),
                "{path}"
            );
        }
        // The port describes itself: every route of the table, by method.
        let doc = c
            .request(f, Method::GET, "/v1/openapi.json", "")
            .await
            .unwrap();
        assert_eq!(doc.status, 200);
        let doc = doc.json().unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        for r in raft_http::routes::ROUTES {
            let path = r.pattern.replace("{*", "{");
            let op = &doc["paths"][path.as_str()][r.method.to_lowercase()];
            assert!(op["summary"].is_string(), "{} {}", r.method, r.pattern);
        }
        // A follower alone has no leader: red, not ready, still live.
        c.kill(l);
        c.kill((l + 2) % 3);
        let until = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let r = c.request(f, Method::GET, "/v1/health", "").await.unwrap();
            if r.status == 503 {
                assert_eq!(r.json().unwrap()["health"], "red");
                break;
            }
            assert!(tokio::time::Instant::now() < until, "still {}", r.status);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let r = c.request(f, Method::GET, "/readyz", "").await.unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(r.json().unwrap()["ready"], false);
        assert_eq!(
            code(c.request(f, Method::GET, "/livez", "").await).ok(),
            Some(200)
        );
    })
    .await;
}

/// Issue 13: SIGTERM drains the command port. A write waiting for a
/// leader (the rest of the cluster is down) gets its answer, then the
/// node exits by itself; it used to be cut off with the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_requests_in_flight_finish() {
    let mut c = cluster(&["active"; 3], true);
    deadline(60, async {
        let l = c.leader(&[]).await;
        let f = (l + 1) % 3;
        c.kill(l);
        c.kill((l + 2) % 3);
        // Once it knows no leader, a write waits for one (up to 5 s).
        loop {
            let r = c.request(f, Method::GET, "/v1/health", "").await.unwrap();
            if r.json().unwrap()["reasons"]
                .to_string()
                .contains("no leader")
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (client, api) = (c.client.clone(), c.nodes[f].api.clone());
        let waiting = tokio::spawn(async move {
            client
                .request(&api, Method::PUT, "/v1/kv/k", &[], bytes::Bytes::from("v"))
                .await
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            !waiting.is_finished(),
            "the write should be waiting for a leader"
        );
        let stopped = tokio::task::block_in_place(|| c.stop(f, Duration::from_secs(20)));
        let r = waiting
            .await
            .unwrap()
            .expect("an answer, not a cut connection");
        assert_eq!(r.status, 503, "{:?}", r.json());
        assert!(stopped, "the node exits by itself once drained");
    })
    .await;
}

/// Issue 14: Consul's blocking queries. A read with `?index=` of an
/// earlier answer waits on a follower until the key changes through
/// another node (a write, then a delete), or until `wait` passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_queries_wake_on_change_or_after_wait() {
    let c = cluster(&["active"; 3], true);
    deadline(60, async {
        let l = c.leader(&[]).await;
        let f = (l + 1) % 3;
        c.put(l, "watched", "1").await.unwrap();
        c.put(l, "other", "x").await.unwrap();
        let r = c
            .request(f, Method::GET, "/v1/kv/watched", "")
            .await
            .unwrap();
        let seen = common::index(&r);
        let block = |since: u64, wait: &str| {
            let (client, api) = (c.client.clone(), c.nodes[f].api.clone());
            let path = format!("/v1/kv/watched?raw&index={since}&wait={wait}");
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                let r = client.request(&api, Method::GET, &path, &[], bytes::Bytes::new());
                (r.await.expect("an answer"), started.elapsed())
            })
        };
        // Nothing changes: it answers after the wait, with the value.
        let (r, took) = block(seen, "1s").await.unwrap();
        assert_eq!((r.status.as_u16(), r.body.as_ref()), (200, &b"1"[..]));
        assert!(took >= Duration::from_millis(900), "{took:?}");
        // A write elsewhere in the namespace is not a change of this key.
        let waiting = block(seen, "30s");
        c.put(l, "unrelated", "y").await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiting.is_finished());
        // A write to it through another node wakes it with the new value.
        c.put((l + 2) % 3, "watched", "2").await.unwrap();
        let (r, took) = waiting.await.unwrap();
        assert_eq!((r.status.as_u16(), r.body.as_ref()), (200, &b"2"[..]));
        assert!(took < Duration::from_secs(20), "{took:?}");
        let seen = common::index(&r);
        // So does deleting it: the answer is then 404.
        let waiting = block(seen, "30s");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let r = c
            .request(l, Method::DELETE, "/v1/kv/watched", "")
            .await
            .unwrap();
        assert!(r.status.is_success());
        let (r, _) = waiting.await.unwrap();
        assert_eq!(r.status, 404);
        // A bad wait is refused.
        let r = c.request(f, Method::GET, "/v1/kv/other?index=1&wait=soon", "");
        assert_eq!(r.await.unwrap().status, 400);
    })
    .await;
}
