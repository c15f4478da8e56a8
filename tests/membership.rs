//! Membership changes across real `raft-mock` processes over mutual TLS:
//! nodes joining with `--join`, an operator adding and removing members
//! through the command port and raftctl, the leader removing itself, and
//! a failed node replaced.

mod common;

use bytes::Bytes;
use common::{TestCluster, cluster, deadline, write_many};
use raft_http::client::Method;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The configuration node `i` reports: (voters, learners, joint), by
/// member address.
async fn configuration(c: &TestCluster, i: usize) -> Option<(Vec<String>, Vec<String>, bool)> {
    let r = c
        .request(i, Method::GET, "/v1/operator/raft/configuration", "")
        .await
        .ok()?;
    let v = r.json()?;
    let names = |k: &str| -> Vec<String> {
        let mut n: Vec<String> = v["Configuration"][k]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(String::from))
            .collect();
        n.sort();
        n
    };
    Some((names("voters"), names("learners"), v["Joint"] == true))
}

/// Waits until node `i` reports exactly `voters` as voters, no learners
/// and no change in progress.
async fn wait_voters(c: &TestCluster, i: usize, voters: &[usize]) {
    let mut want: Vec<String> = voters.iter().map(|&v| c.nodes[v].name.clone()).collect();
    want.sort();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut last = None;
    while tokio::time::Instant::now() < deadline {
        last = configuration(c, i).await;
        if let Some((v, l, joint)) = &last
            && *v == want
            && l.is_empty()
            && !joint
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.dump_logs();
    panic!("node {i} never reported voters {want:?}; last: {last:?}");
}

/// Writes keys `w0, w1, ...` through the given nodes until stopped.
struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    fn start(c: &TestCluster, through: &[usize]) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let client = c.client.clone();
        let apis: Vec<String> = through.iter().map(|&i| c.nodes[i].api.clone()).collect();
        let (s, a) = (stop.clone(), acked.clone());
        let task = tokio::spawn(async move {
            let mut n = 0usize;
            while !s.load(Ordering::Relaxed) {
                let key = format!("w{n}");
                let api = &apis[n % apis.len()];
                let path = format!("/v1/kv/{key}");
                let r = client
                    .request(api, Method::PUT, &path, &[], Bytes::from_static(b"x"))
                    .await;
                if r.is_ok_and(|r| r.status.is_success()) {
                    a.lock().unwrap().push(key);
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        Writer { stop, acked, task }
    }

    /// Stops writing; the keys acknowledged.
    async fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        self.acked.lock().unwrap().clone()
    }
}

/// Every acknowledged key is on each of `members`. A dump is a stale
/// read and a follower may apply the last acknowledged write a moment
/// after the leader answered, so first each member waits until it applied
/// what the most advanced of them (the leader, which answered) has.
async fn assert_has(c: &TestCluster, members: &[usize], keys: &[String]) {
    let mut top = 0;
    for &i in members {
        top = top.max(common::index_of(c, i).await);
    }
    for &i in members {
        c.wait_applied(i, top, Duration::from_secs(20)).await;
        let have: std::collections::BTreeSet<String> =
            c.dump(i).await.into_iter().map(|(k, _)| k).collect();
        let missing: Vec<_> = keys.iter().filter(|k| !have.contains(*k)).collect();
        assert!(
            missing.is_empty(),
            "node {i} lacks acknowledged writes {missing:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grows_to_five_and_shrinks_back_while_writing() {
    let mut c = cluster(&["active"; 3], false);
    deadline(150, async {
        c.leader(&[]).await;
        let w = Writer::start(&c, &[0, 1, 2]);
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Two new nodes join through different members.
        let d = c.add_joiner("active", 1).expect("start node 4");
        let e = c.add_joiner("active", 2).expect("start node 5");
        wait_voters(&c, 0, &[0, 1, 2, d, e]).await;
        // The newcomers serve reads and writes like any member.
        c.put(d, "from-4", "x").await.unwrap();
        assert_eq!(
            c.get(e, "from-4", false).await.unwrap().as_deref(),
            Some("x")
        );
        // Shrink back: remove the two newcomers through the command port.
        for gone in [d, e] {
            let path = format!("/v1/operator/raft/peer?address={}", c.nodes[gone].name);
            let r = c.request(0, Method::DELETE, &path, "").await.unwrap();
            assert!(r.status.is_success(), "{:?}", r.json());
        }
        wait_voters(&c, 1, &[0, 1, 2]).await;
        let keys = w.finish().await;
        assert!(keys.len() > 20, "only {} writes acknowledged", keys.len());
        assert_has(&c, &[0, 1, 2], &keys).await;
        // The removed nodes learn it and stop (exit status 3); they no
        // longer count: the three can lose one and still commit.
        for gone in [d, e] {
            assert_eq!(c.wait_exit(gone, Duration::from_secs(20)).await, Some(3));
        }
        c.kill(2);
        let l = c.leader(&[2, d, e]).await;
        c.put(l, "after-shrink", "x").await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_removes_itself_and_a_new_one_takes_over() {
    let mut c = cluster(&["active"; 3], false);
    deadline(60, async {
        let l = c.leader(&[]).await;
        c.put(l, "before", "1").await.unwrap();
        let path = format!("/v1/operator/raft/peer?address={}", c.nodes[l].name);
        let r = c.request(l, Method::DELETE, &path, "").await.unwrap();
        if !r.status.is_success() {
            c.dump_logs();
            panic!("{:?}", r.json());
        }
        let rest: Vec<usize> = (0..3).filter(|&i| i != l).collect();
        let nl = c.leader(&[l]).await;
        assert_ne!(nl, l);
        wait_voters(&c, nl, &rest).await;
        c.put(rest[0], "after", "2").await.unwrap();
        for &i in &rest {
            assert_eq!(
                c.get(i, "before", false).await.unwrap().as_deref(),
                Some("1")
            );
            assert_eq!(
                c.get(i, "after", false).await.unwrap().as_deref(),
                Some("2")
            );
        }
        // The removed leader stepped down, learnt it is out, and stopped.
        assert_eq!(c.wait_exit(l, Duration::from_secs(20)).await, Some(3));
        let log = std::fs::read_to_string(&c.nodes[l].log).unwrap_or_default();
        assert!(log.contains("not a member of the cluster"), "{log}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_node_is_replaced_with_raftctl() {
    let mut c = cluster(&["active"; 3], false);
    deadline(90, async {
        c.leader(&[]).await;
        c.put(0, "k", "v").await.unwrap();
        c.kill(2);
        c.leader(&[2]).await;
        let nodes: Vec<String> = c.nodes[..2].iter().map(|n| n.api.clone()).collect();
        let ctl = |args: &[&str]| common::raftctl(&nodes, args);
        let dead = c.nodes[2].name.clone();
        assert!(ctl(&["remove", &dead]).starts_with("removed"));
        // The replacement joins by itself; raftctl shows it once promoted.
        let n = c.add_joiner("active", 0).expect("start the replacement");
        wait_voters(&c, 0, &[0, 1, n]).await;
        let members = ctl(&["members"]);
        assert!(members.contains(&c.nodes[n].name), "{members}");
        assert!(!members.contains(&dead), "{members}");
        assert_eq!(c.get(n, "k", false).await.unwrap().as_deref(), Some("v"));
        // Adding is idempotent: asking again for a voter changes nothing.
        let again = ctl(&["add", &c.nodes[n].name, "--id", &node_id(&c, n).await]);
        assert!(again.contains("is a voter"), "{again}");
        // One address is one member: adding the replacement's address again
        // as a learner, with no id (which would hash to another), is about
        // the replacement; under another id it is refused with 409. Both
        // made a phantom second member at that address before.
        let path = format!("/v1/operator/raft/peer?address={}&learner", c.nodes[n].name);
        let r = c.request(0, Method::PUT, &path, "").await.unwrap();
        assert!(r.status.is_success(), "{:?}", r.json());
        let other = format!("{path}&id=12345");
        let r = c.request(0, Method::PUT, &other, "").await.unwrap();
        assert_eq!(r.status, 409, "{:?}", r.json());
        let conf = c.request(0, Method::GET, "/v1/operator/raft/configuration", "");
        let conf = conf.await.unwrap().json().unwrap();
        let servers = conf["Servers"].as_array().unwrap();
        assert_eq!(servers.len(), 3, "{conf}");
        // The removed node comes back on its file: the members refuse it
        // with the committed configuration that left it out, and it stops.
        c.start(2).unwrap();
        assert_eq!(c.wait_exit(2, Duration::from_secs(20)).await, Some(3));
        let log = std::fs::read_to_string(&c.nodes[2].log).unwrap_or_default();
        assert!(
            log.contains("has committed a configuration without this node"),
            "{log}"
        );
        // With the replacement a voter, the cluster survives losing another.
        c.kill(1);
        c.leader(&[1, 2]).await;
        c.put(n, "k2", "v2").await.unwrap();
    })
    .await;
}

/// Issue 13, bug 4: `raftctl add ADDR` as docs/operations.md describes,
/// then the node started with `--join`: it joins as the member raftctl
/// added (it used to take a fresh id, so raftctl waited in silence for two
/// minutes and failed with 409), and raftctl shows it catching up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raftctl_add_waits_for_the_node_and_shows_it_catching_up() {
    let mut c = cluster(&["active"; 3], false);
    deadline(120, async {
        let l = c.leader(&[]).await;
        write_many(&c, l, 300, "k").await;
        let n = c.describe_joiner("active", 0);
        let nodes: Vec<String> = c.nodes[..3].iter().map(|n| n.api.clone()).collect();
        let ctl = std::process::Command::new(env!("CARGO_BIN_EXE_raftctl"))
            .arg("--certs")
            .arg(common::certs())
            .arg("--nodes")
            .arg(nodes.join(","))
            .args(["add", &c.nodes[n].name])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run raftctl");
        tokio::time::sleep(Duration::from_secs(2)).await;
        c.start(n).expect("start the new node");
        let out = tokio::task::spawn_blocking(move || ctl.wait_with_output())
            .await
            .unwrap()
            .expect("raftctl output");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        if !out.status.success() {
            c.dump_logs();
        }
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.contains("is a learner"), "{stdout}");
        assert!(stdout.contains("is a voter"), "{stdout}");
        assert!(
            stderr.contains("--join"),
            "it says how to start the node: {stderr}"
        );
        assert!(stderr.contains("caught up"), "{stderr}");
        wait_voters(&c, 0, &[0, 1, 2, n]).await;
        let conf = c.request(0, Method::GET, "/v1/operator/raft/configuration", "");
        let conf = conf.await.unwrap().json().unwrap();
        assert_eq!(conf["Servers"].as_array().unwrap().len(), 4, "{conf}");
        assert_eq!(
            c.get(n, "k7", false).await.unwrap().as_deref(),
            Some("value 7")
        );
    })
    .await;
}

/// Node `i`'s id, as the configuration lists it.
async fn node_id(c: &TestCluster, i: usize) -> String {
    let r = c
        .request(0, Method::GET, "/v1/operator/raft/configuration", "")
        .await
        .unwrap();
    let v = r.json().unwrap();
    v["Servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Address"] == c.nodes[i].name.as_str())
        .and_then(|s| s["ID"].as_str().map(String::from))
        .expect("listed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn solo_recovers_a_cluster_that_lost_its_quorum_for_good() {
    let mut c = cluster(&["active"; 3], false);
    deadline(60, async {
        let l = c.leader(&[]).await;
        c.put(l, "kept", "1").await.unwrap();
        let s = (l + 1) % 3;
        c.wait_applied(s, common::index_of(&c, l).await, Duration::from_secs(10))
            .await;
        // Two of three are gone for good.
        for i in (0..3).filter(|&i| i != s) {
            c.kill(i);
        }
        assert!(c.put(s, "lost", "x").await.is_err(), "no quorum, no write");
        assert!(c.stop(s, Duration::from_secs(5)));
        // Without the confirmation flag, solo is refused.
        c.c.nodes[s].extra = vec!["--solo".into()];
        c.start(s).unwrap();
        tokio::time::sleep(Duration::from_millis(800)).await;
        let log = std::fs::read_to_string(&c.nodes[s].log).unwrap();
        assert!(log.contains("add --confirm"), "{log}");
        c.kill(s);
        c.c.nodes[s].extra = vec!["--solo".into(), "--confirm".into()];
        c.start(s).unwrap();
        let l2 = c
            .leader(
                &[0, 1, 2]
                    .into_iter()
                    .filter(|&i| i != s)
                    .collect::<Vec<_>>(),
            )
            .await;
        assert_eq!(l2, s);
        assert_eq!(c.get(s, "kept", false).await.unwrap().as_deref(), Some("1"));
        c.put(s, "after", "2").await.unwrap();
        let log = std::fs::read_to_string(&c.nodes[s].log).unwrap();
        assert!(log.contains("SOLO"), "the solo is logged loudly");
        wait_voters(&c, s, &[s]).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detached_node_joins_another_cluster() {
    let mut a = cluster(&["active"; 3], false);
    let b = cluster(&["active"; 1], false);
    deadline(90, async {
        a.leader(&[]).await;
        b.leader(&[]).await;
        a.put(0, "from-a", "1").await.unwrap();
        b.put(0, "from-b", "2").await.unwrap();
        // Node 3 of A leaves A...
        common::raftctl(&[a.nodes[0].api.clone()], &["detach", &a.nodes[2].name]);
        wait_voters(&a, 0, &[0, 1]).await;
        // ... learns it was removed and stops by itself ...
        assert_eq!(a.wait_exit(2, Duration::from_secs(20)).await, Some(3));
        // ... is reset, and joins B with the same address.
        a.c.nodes[2].join = Some(b.nodes[0].api.clone());
        a.c.nodes[2].extra = vec!["--detach".into(), "--confirm".into()];
        a.start(2).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let s = a.status(2).await;
            let voters = s
                .as_ref()
                .and_then(|s| s["configuration"]["voters"].as_array().cloned());
            if voters
                .is_some_and(|v| v.len() == 2 && v.iter().any(|x| *x == b.nodes[0].name.as_str()))
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never joined B: {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            a.get(2, "from-b", false).await.unwrap().as_deref(),
            Some("2")
        );
        assert_eq!(
            a.get(2, "from-a", true).await.unwrap(),
            None,
            "A's data is gone"
        );
        // A goes on with its two remaining members.
        a.put(1, "still-a", "3").await.unwrap();
    })
    .await;
}
