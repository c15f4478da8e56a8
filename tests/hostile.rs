//! An attacker holding a certificate of the cluster's CA, and operators
//! whose disks lost data, against real `raft-mock` processes.

mod common;

use common::*;
use raft_core::{Body, Message, Mode, NodeId};
use raft_net::{NetConfig, TlsFiles, TlsSetup, Transport};
use std::collections::BTreeMap;
use std::time::Duration;

/// Every node's term, as its status says (`None` for a node that does not
/// answer).
async fn terms(c: &TestCluster) -> Vec<Option<u64>> {
    let mut out = Vec::new();
    for i in 0..c.nodes.len() {
        out.push(c.status(i).await.and_then(|s| s["term"].as_u64()));
    }
    out
}

fn id_of(c: &TestCluster, i: usize) -> NodeId {
    raft_mock::node_id(&c.nodes[i].name)
}

/// Dials node `target`'s peer port presenting `files`, claiming to be node
/// `claim`, and sends it heartbeats from a term far ahead, for a while.
async fn impersonate(c: &TestCluster, files: &TlsFiles, claim: NodeId, target: usize, term: u64) {
    let tls = TlsSetup::load(files).expect("the attacker's TLS files");
    let listen = "127.0.0.1:0".parse().unwrap();
    let mut cfg = NetConfig::new(claim, "raftstack", listen, tls);
    let to = id_of(c, target);
    cfg.peers = BTreeMap::from([(to, c.nodes[target].name.clone())]);
    cfg.client_addr = "127.0.0.1:1".into();
    let (t, _rx) = Transport::start(cfg)
        .await
        .expect("the attacker's transport");
    for _ in 0..30 {
        t.send(Message {
            from: claim,
            to,
            term,
            mode: Mode::Active,
            body: Body::Heartbeat {
                commit: 0,
                read_round: 0,
                all_applied: 0,
            },
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The client certificate raftctl and curl users hold is not a peer: with
/// it, a `Hello` naming the leader and heartbeats 1000 terms ahead change
/// no node's term (they moved every term and the leadership before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_cannot_speak_for_a_member() {
    deadline(90, async {
        let c = cluster(&["active", "active", "active"], true);
        let leader = c.leader(&[]).await;
        let follower = (leader + 1) % 3;
        let before = terms(&c).await;
        let term = before[leader].expect("the leader's term");
        let client = TlsFiles {
            cert: certs().join("transport-client.crt"),
            key: certs().join("transport-client.key"),
            ..TlsFiles::node_in(certs())
        };
        impersonate(&c, &client, id_of(&c, leader), follower, term + 1000).await;
        let after = terms(&c).await;
        assert!(
            after.iter().all(|t| t.is_some_and(|t| t < term + 1000)),
            "terms before {before:?}, after {after:?}"
        );
        assert_eq!(c.leader(&[]).await, leader, "leadership moved");
    })
    .await;
}

/// With a certificate per node (`cargo xtask certs --node ADDR`, picked by
/// raft-mock from its certs directory), the cluster runs, and one node's
/// certificate cannot speak for another member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_node_certificates_bind_each_member_to_its_address() {
    deadline(90, async {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        xtask::certs::make_certs(&certs, true).expect("certs");
        let ports = raft_mock::launch::free_ports(6);
        for peer in ports.iter().step_by(2) {
            xtask::certs::make_node_cert(&certs, &format!("127.0.0.1:{peer}")).expect("a cert");
        }
        // The shared certificate is gone: only the bound ones are there.
        std::fs::remove_file(certs.join(xtask::certs::NODE_CERT)).unwrap();
        let mut c = described_with(&["active", "active", "active"], true, &certs, ports);
        c.start_all().expect("start");
        let leader = c.leader(&[]).await;
        c.put(leader, "k", "v").await.expect("a write");
        let (follower, other) = ((leader + 1) % 3, (leader + 2) % 3);
        let term = terms(&c).await[leader].expect("term");
        // The third node's own certificate, claiming to be the leader.
        let files = TlsFiles::for_member(&certs, &c.nodes[other].name);
        assert_ne!(files.cert, TlsFiles::node_in(&certs).cert);
        impersonate(&c, &files, id_of(&c, leader), follower, term + 1000).await;
        let after = terms(&c).await;
        assert!(
            after.iter().all(|t| t.is_some_and(|t| t < term + 1000)),
            "terms after: {after:?}"
        );
        let log = std::fs::read_to_string(&c.nodes[follower].log).unwrap_or_default();
        assert!(
            log.contains("but the certificate it presented speaks for"),
            "the follower logs why it refused"
        );
    })
    .await;
}

/// A node started with `-b` naming a running cluster (instead of
/// `--join`) is refused by every member and stops with status 3, as
/// docs/operations.md says (it campaigned for good).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_started_with_neighbours_stops() {
    deadline(90, async {
        let c = cluster(&["active", "active", "active"], true);
        c.leader(&[]).await;
        let ports = raft_mock::launch::free_ports(2);
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut child = std::process::Command::new(BIN)
            .args(["-n", &format!("127.0.0.1:{}", ports[0])])
            .args(["-p", &ports[1].to_string(), "-b"])
            .args(c.nodes.iter().map(|n| n.name.clone()))
            .arg("--certs")
            .arg(certs())
            .args(FLAGS)
            .stdout(std::process::Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("start the stranger");
        let started = std::time::Instant::now();
        let code = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status.code();
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(log.path()).unwrap_or_default();
                panic!("still running after 30 s:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(code, Some(3));
        c.leader(&[]).await;
    })
    .await;
}
