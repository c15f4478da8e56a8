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
            storage: 0,
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

/// A TLS connection to node `i`'s command port with the client
/// certificate.
async fn client_tls(
    c: &TestCluster,
    i: usize,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let cfg = raft_net::tls::client_config(
        &certs().join("transport-ca.pem"),
        Some((
            &certs().join("transport-client.crt"),
            &certs().join("transport-client.key"),
        )),
    )
    .unwrap();
    let tcp = tokio::net::TcpStream::connect(&c.nodes[i].api)
        .await
        .unwrap();
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .expect("TLS to the command port")
}

/// Reads until the server closes or `within` passes; what it sent.
async fn read_until_closed<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    within: Duration,
) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut b = [0u8; 4096];
        loop {
            match s.read(&mut b).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&b[..n]),
            }
        }
    });
    read.await.ok()?;
    Some(String::from_utf8_lossy(&got).into_owned())
}

/// A body that trickles in is cut off with 408 and its connection closed;
/// connections past the port's bounds are closed at once; and the node
/// serves others all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_numerous_clients_are_bounded() {
    use tokio::io::AsyncWriteExt;
    deadline(90, async {
        let c = cluster(&["active", "active", "active"], true);
        c.leader(&[]).await;
        let mut slow = client_tls(&c, 0).await;
        slow.write_all(b"PUT /v1/kv/slow HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000\r\n\r\nx")
            .await
            .unwrap();
        slow.flush().await.unwrap();
        // Unauthenticated connections that never say a word, past the
        // per-client bound (128): the later ones are closed at once.
        let mut idle = Vec::new();
        for _ in 0..160 {
            idle.push(
                tokio::net::TcpStream::connect(&c.nodes[0].api)
                    .await
                    .unwrap(),
            );
        }
        let mut closed_at_once = 0;
        for s in idle.iter_mut().rev().take(20) {
            if read_until_closed(s, Duration::from_millis(500))
                .await
                .is_some()
            {
                closed_at_once += 1;
            }
        }
        assert_eq!(closed_at_once, 20, "connections past the bound stay open");
        // The held ones are cut off by the handshake timeout (5 s).
        let first = idle.first_mut().unwrap();
        assert!(
            read_until_closed(first, Duration::from_secs(10))
                .await
                .is_some()
        );
        drop(idle);
        let answer = read_until_closed(&mut slow, Duration::from_secs(20)).await;
        let answer = answer.expect("the slow body is cut off");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        c.put(0, "after", "v").await.expect("the node still serves");
        assert_eq!(c.get(1, "slow", false).await.unwrap(), None);
    })
    .await;
}

/// A request with 20,000 headers is answered 431, not dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_headers_get_431() {
    use tokio::io::AsyncWriteExt;
    deadline(60, async {
        let c = cluster(&["active"], true);
        c.leader(&[]).await;
        let mut s = client_tls(&c, 0).await;
        let mut req = String::from("GET /v1/kv/k HTTP/1.1\r\nhost: x\r\n");
        for i in 0..20_000 {
            req += &format!("x-h{i}: v\r\n");
        }
        req += "\r\n";
        let _ = s.write_all(req.as_bytes()).await;
        let _ = s.flush().await;
        let answer = read_until_closed(&mut s, Duration::from_secs(15)).await;
        let answer = answer.expect("an answer, then the connection closed");
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
        c.put(0, "after", "v").await.expect("the node still serves");
    })
    .await;
}

/// A node given a certificate its peers would refuse says so at start
/// (status 1, one line naming the fix) instead of failing every
/// connection.
#[test]
fn a_node_without_a_node_certificate_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    xtask::certs::make_certs(dir.path(), true).unwrap();
    for ext in ["crt", "key"] {
        std::fs::copy(
            dir.path().join(format!("transport-client.{ext}")),
            dir.path().join(format!("transport-consensus.{ext}")),
        )
        .unwrap();
    }
    let ports = raft_mock::launch::free_ports(2);
    let out = std::process::Command::new(BIN)
        .args(["-n", &format!("127.0.0.1:{}", ports[0])])
        .args(["-p", &ports[1].to_string(), "--certs"])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("not a node certificate"), "{err}");
}
