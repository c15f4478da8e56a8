//! Real mutual TLS on loopback: messages flow, restarted peers are
//! reconnected, and bad input closes only the offending connection.

use raft_core::{Body, Message, Mode, NodeId};
use raft_net::{NetConfig, TlsFiles, TlsSetup, Transport};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::Receiver;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{self, ClientConfig};

/// A CA and a node certificate for localhost/127.0.0.1 (any port),
/// written to `dir`.
fn make_pki(dir: &Path, ca_name: &str) -> TlsFiles {
    make_ca(dir, ca_name).0
}

type Ca = Issuer<'static, KeyPair>;

/// `make_pki`, and the CA to issue more certificates with.
fn make_ca(dir: &Path, ca_name: &str) -> (TlsFiles, Ca) {
    std::fs::create_dir_all(dir).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, ca_name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = p.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(p, ca_key);
    std::fs::write(dir.join("transport-ca.pem"), ca_cert.pem()).unwrap();
    let both = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let node = issue(
        dir,
        &issuer,
        "transport-consensus",
        &[
            "raftstack://node/localhost:*",
            "raftstack://node/127.0.0.1:*",
        ],
        both,
    );
    (node, issuer)
}

/// A certificate for localhost and 127.0.0.1 with these URIs and extended
/// key usages, as `dir/STEM.crt` and `.key` (beside the CA).
fn issue(
    dir: &Path,
    ca: &Ca,
    stem: &str,
    uris: &[&str],
    ekus: Vec<ExtendedKeyUsagePurpose>,
) -> TlsFiles {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    for uri in uris {
        p.subject_alt_names
            .push(SanType::URI(uri.to_string().try_into().unwrap()));
    }
    p.extended_key_usages = ekus;
    let cert = p.signed_by(&key, ca).unwrap();
    let files = TlsFiles {
        cert: dir.join(format!("{stem}.crt")),
        key: dir.join(format!("{stem}.key")),
        ..TlsFiles::node_in(dir)
    };
    std::fs::write(&files.cert, cert.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    files
}

fn msg(from: NodeId, to: NodeId, n: u64) -> Message {
    Message {
        from,
        to,
        term: n,
        mode: Mode::Active,
        body: Body::Heartbeat {
            commit: n,
            read_round: 0,
            all_applied: 0,
        },
        storage: 0,
    }
}

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

async fn node(
    id: NodeId,
    addr: SocketAddr,
    peers: &[(NodeId, SocketAddr)],
    tls: &TlsSetup,
) -> (Transport, Receiver<Message>) {
    let mut cfg = NetConfig::new(id, "test-cluster", addr, tls.clone());
    cfg.peers = peers.iter().map(|(i, a)| (*i, a.to_string())).collect();
    cfg.handshake_timeout = Duration::from_millis(500);
    cfg.client_addr = format!("client-of-{id}:7500");
    Transport::start(cfg).await.expect("start transport")
}

/// Sends until one arrives (connections may still be coming up).
async fn expect_delivery(from: &Transport, rx: &mut Receiver<Message>, m: Message) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        from.send(m.clone());
        match tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {
            Ok(Some(got)) if got == m => return,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("receiver closed"),
            Err(_) if tokio::time::Instant::now() > deadline => panic!("{m} never arrived"),
            Err(_) => {}
        }
    }
}

struct Pair {
    a: Transport,
    a_rx: Receiver<Message>,
    b: Transport,
    b_rx: Receiver<Message>,
    a_addr: SocketAddr,
    b_addr: SocketAddr,
    tls: TlsSetup,
    _dir: tempfile::TempDir,
}

async fn pair() -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsSetup::load(&make_pki(dir.path(), "test CA")).unwrap();
    let (a_addr, b_addr) = (free_addr(), free_addr());
    let peers = [(1, a_addr), (2, b_addr)];
    let (a, a_rx) = node(1, a_addr, &peers, &tls).await;
    let (b, b_rx) = node(2, b_addr, &peers, &tls).await;
    Pair {
        a,
        a_rx,
        b,
        b_rx,
        a_addr,
        b_addr,
        tls,
        _dir: dir,
    }
}

/// The pair still works both ways, and each side knows where the other
/// serves clients.
async fn still_healthy(p: &mut Pair, n: u64) {
    expect_delivery(&p.a, &mut p.b_rx, msg(1, 2, n)).await;
    expect_delivery(&p.b, &mut p.a_rx, msg(2, 1, n)).await;
    assert_eq!(p.a.client_addr(2).as_deref(), Some("client-of-2:7500"));
    assert_eq!(p.b.client_addr(1).as_deref(), Some("client-of-1:7500"));
}

/// Waits for the server to close `s` (EOF or error), with a deadline.
async fn closed_by_server<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> bool {
    let mut b = [0u8; 64];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

fn client_config(files: Option<&TlsFiles>, ca: &Path) -> Arc<ClientConfig> {
    let roots = raft_net::tls::load_roots(ca).unwrap();
    let b = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match files {
        Some(f) => b
            .with_client_auth_cert(
                raft_net::tls::load_certs(&f.cert).unwrap(),
                raft_net::tls::load_key(&f.key).unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    })
}

async fn tls_client(
    addr: SocketAddr,
    cfg: Arc<ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    tokio_rustls::TlsConnector::from(cfg)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

#[tokio::test]
async fn messages_flow_both_ways_over_mutual_tls() {
    let mut p = pair().await;
    still_healthy(&mut p, 1).await;
    // Many messages in a burst arrive in order.
    for i in 0..500 {
        p.a.send(msg(1, 2, 1000 + i));
    }
    for i in 0..500 {
        let m = tokio::time::timeout(Duration::from_secs(5), p.b_rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m, msg(1, 2, 1000 + i));
    }
}

#[tokio::test]
async fn a_restarted_peer_is_reconnected() {
    let mut p = pair().await;
    still_healthy(&mut p, 1).await;
    drop(p.b);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let peers = [(1, p.a_addr), (2, p.b_addr)];
    let (b, mut b_rx) = node(2, p.b_addr, &peers, &p.tls).await;
    let started = tokio::time::Instant::now();
    expect_delivery(&p.a, &mut b_rx, msg(1, 2, 7)).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "reconnected in {:?}",
        started.elapsed()
    );
    p.b = b;
    p.b_rx = b_rx;
}

#[tokio::test]
async fn garbage_bytes_close_only_that_connection() {
    let mut p = pair().await;
    let mut raw = TcpStream::connect(p.a_addr).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\xff\x13garbage")
        .await
        .unwrap();
    assert!(closed_by_server(&mut raw).await);
    still_healthy(&mut p, 2).await;
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let mut p = pair().await;
    let dir = p._dir.path().to_path_buf();
    match tls_client(p.a_addr, client_config(None, &dir.join("transport-ca.pem"))).await {
        Err(_) => {}
        // TLS 1.3 finishes the client side before the server checks the
        // client certificate; the server then closes.
        Ok(mut s) => {
            let _ = s.write_all(b"x").await;
            assert!(closed_by_server(&mut s).await);
        }
    }
    still_healthy(&mut p, 3).await;
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let mut p = pair().await;
    let other = tempfile::tempdir().unwrap();
    let files = make_pki(other.path(), "another CA");
    // It trusts our CA for the server, but presents a foreign client cert.
    let ca = p._dir.path().join("transport-ca.pem");
    match tls_client(p.a_addr, client_config(Some(&files), &ca)).await {
        Err(_) => {}
        Ok(mut s) => {
            let _ = s.write_all(b"x").await;
            assert!(closed_by_server(&mut s).await);
        }
    }
    still_healthy(&mut p, 4).await;
}

/// A peer made of stock tokio-rustls (no record layer of ours), through
/// the `Ready` frame: rustls reads the records the transport seals.
async fn valid_client(p: &Pair) -> tokio_rustls::client::TlsStream<TcpStream> {
    client_with(p.a_addr, &TlsFiles::node_in(p._dir.path())).await
}

/// A stock rustls client presenting `files`, through `Ready`.
async fn client_with(
    addr: SocketAddr,
    files: &TlsFiles,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut s = tls_client(addr, client_config(Some(files), &files.ca))
        .await
        .unwrap();
    let mut buf = bytes::BytesMut::new();
    let ready = loop {
        if let Some(body) = raft_net::frame::decode(&mut buf, 1024).unwrap() {
            break raft_net::wire::from_body(&body).unwrap();
        }
        let n = tokio::time::timeout(Duration::from_secs(5), s.read_buf(&mut buf))
            .await
            .expect("ready in time")
            .unwrap();
        assert!(n > 0, "closed before ready");
    };
    assert_eq!(ready, raft_net::wire::Frame::Ready);
    s
}

#[tokio::test]
async fn records_interoperate_with_stock_rustls() {
    // The transport seals Ready (read above by rustls), opens what rustls
    // seals: a hello, then messages in records of every size up to full.
    let mut p = pair().await;
    let mut s = valid_client(&p).await;
    s.write_all(&hello("test-cluster", 2)).await.unwrap();
    for n in [0usize, 1, 100, 5000, 40_000] {
        let m = Message {
            body: Body::Append {
                prev_index: 1,
                prev_term: 1,
                entries: vec![raft_core::Entry {
                    term: 1,
                    index: 2,
                    payload: raft_core::Payload::Normal(vec![7u8; n].into()),
                }],
                commit: 1,
            },
            ..msg(2, 1, 1)
        };
        let mut out = bytes::BytesMut::new();
        let f = raft_net::wire::Frame::Messages(vec![m.clone()]);
        raft_net::frame::encode(&raft_net::wire::to_body(&f), &mut out);
        s.write_all(&out).await.unwrap();
        s.flush().await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), p.a_rx.recv())
            .await
            .expect("delivered in time")
            .expect("channel open");
        assert_eq!(got, m);
    }
}

fn hello(cluster: &str, node: NodeId) -> Vec<u8> {
    hello_speaking(raft_net::wire::PROTOCOL_VERSION, cluster, node)
}

fn hello_speaking(version: u32, cluster: &str, node: NodeId) -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    let f = raft_net::wire::Frame::Hello {
        version,
        cluster: cluster.into(),
        node,
        client_addr: String::new(),
    };
    raft_net::frame::encode(&raft_net::wire::to_body(&f), &mut out);
    out.to_vec()
}

#[tokio::test]
async fn an_older_supported_version_is_accepted_for_rolling_upgrades() {
    let mut p = pair().await;
    let oldest = raft_net::wire::MIN_PROTOCOL_VERSION;
    let mut s = valid_client(&p).await;
    s.write_all(&hello_speaking(oldest, "test-cluster", 2))
        .await
        .unwrap();
    let m = msg(2, 1, 7);
    let mut out = bytes::BytesMut::new();
    let f = raft_net::wire::Frame::Messages(vec![m.clone()]);
    raft_net::frame::encode(&raft_net::wire::to_body(&f), &mut out);
    s.write_all(&out).await.unwrap();
    s.flush().await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), p.a_rx.recv()).await;
    assert_eq!(got.expect("delivered in time"), Some(m));
    // One older than that is refused.
    let mut s = valid_client(&p).await;
    s.write_all(&hello_speaking(oldest - 1, "test-cluster", 2))
        .await
        .unwrap();
    s.flush().await.unwrap();
    assert!(closed_by_server(&mut s).await);
    still_healthy(&mut p, 8).await;
}

#[tokio::test]
async fn an_oversized_frame_closes_the_connection() {
    let mut p = pair().await;
    let mut s = valid_client(&p).await;
    s.write_all(&hello("test-cluster", 2)).await.unwrap();
    s.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    s.flush().await.unwrap();
    assert!(closed_by_server(&mut s).await);
    still_healthy(&mut p, 5).await;
}

#[tokio::test]
async fn malformed_messagepack_closes_the_connection() {
    let mut p = pair().await;
    let mut s = valid_client(&p).await;
    s.write_all(&hello("test-cluster", 2)).await.unwrap();
    let mut out = bytes::BytesMut::new();
    raft_net::frame::encode(b"\x92\xc1\xc1 not msgpack", &mut out);
    s.write_all(&out).await.unwrap();
    s.flush().await.unwrap();
    assert!(closed_by_server(&mut s).await);
    still_healthy(&mut p, 6).await;
}

#[tokio::test]
async fn another_cluster_or_a_stranger_is_refused() {
    let mut p = pair().await;
    for h in [hello("other-cluster", 2), hello("test-cluster", 99)] {
        let mut s = valid_client(&p).await;
        s.write_all(&h).await.unwrap();
        s.flush().await.unwrap();
        assert!(closed_by_server(&mut s).await);
    }
    still_healthy(&mut p, 7).await;
}

#[tokio::test]
async fn a_slowloris_peer_is_cut_off() {
    let mut p = pair().await;
    // Stalls mid-handshake (TCP only) and mid-frame (after TLS).
    let mut raw = TcpStream::connect(p.a_addr).await.unwrap();
    raw.write_all(&[0x16, 0x03]).await.unwrap();
    let mut s = valid_client(&p).await;
    s.write_all(&hello("test-cluster", 2)).await.unwrap();
    s.write_all(&[0, 0, 1, 0, 0x92]).await.unwrap();
    s.flush().await.unwrap();
    still_healthy(&mut p, 8).await;
    assert!(
        closed_by_server(&mut raw).await,
        "stalled handshake cut off"
    );
    assert!(closed_by_server(&mut s).await, "stalled frame cut off");
}

#[tokio::test]
async fn missing_or_mismatched_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let files = make_pki(dir.path(), "test CA");
    let missing = TlsFiles {
        cert: dir.path().join("nope.crt"),
        ..files.clone()
    };
    let err = TlsSetup::load(&missing)
        .err()
        .expect("missing file")
        .to_string();
    assert!(
        err.contains("nope.crt") && err.contains("cannot read"),
        "{err}"
    );
    let other = tempfile::tempdir().unwrap();
    let other_files = make_pki(other.path(), "another CA");
    let mismatched = TlsFiles {
        key: other_files.key.clone(),
        ..files.clone()
    };
    let err = TlsSetup::load(&mismatched)
        .err()
        .expect("mismatched key")
        .to_string();
    assert!(err.contains("does not go with"), "{err}");
    std::fs::write(dir.path().join("junk.pem"), "not pem at all").unwrap();
    let junk = TlsFiles {
        ca: dir.path().join("junk.pem"),
        ..files
    };
    let err = TlsSetup::load(&junk).err().expect("junk CA").to_string();
    assert!(err.contains("junk.pem"), "{err}");
}

/// Membership changes reach the transport: a node added later is dialed
/// and accepted; a removed one is disconnected and refused.
#[tokio::test]
async fn peers_follow_membership_changes() {
    let mut p = pair().await;
    still_healthy(&mut p, 1).await;
    let c_addr = free_addr();
    let all = [(1, p.a_addr), (2, p.b_addr), (3, c_addr)];
    let (c, mut c_rx) = node(3, c_addr, &all, &p.tls).await;
    let with_c: std::collections::BTreeMap<NodeId, String> =
        all.iter().map(|(i, a)| (*i, a.to_string())).collect();
    p.a.set_peers(&with_c);
    p.b.set_peers(&with_c);
    assert_eq!(p.a.peers().len(), 2, "a talks to b and c, not itself");
    expect_delivery(&p.a, &mut c_rx, msg(1, 3, 2)).await;
    expect_delivery(&c, &mut p.b_rx, msg(3, 2, 3)).await;
    // Node 3 is removed: a drops it and refuses its connections.
    let without_c: std::collections::BTreeMap<NodeId, String> = with_c
        .iter()
        .filter(|(i, _)| **i != 3)
        .map(|(i, a)| (*i, a.clone()))
        .collect();
    p.a.set_peers(&without_c);
    while p.a_rx.try_recv().is_ok() {}
    for n in 0..20 {
        c.send(msg(3, 1, 100 + n));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = tokio::time::timeout(Duration::from_millis(300), p.a_rx.recv()).await;
    assert!(got.is_err(), "a removed peer's message arrived: {got:?}");
    still_healthy(&mut p, 4).await;
}

#[tokio::test]
async fn a_refused_node_is_told_which_configuration_it_is_not_in() {
    let p = pair().await;
    let c_addr = free_addr();
    let all = [(1, p.a_addr), (2, p.b_addr), (3, c_addr)];
    // Node 3 believes it is a member; a's configuration (index 42,
    // committed) has only 1 and 2.
    let (c, _c_rx) = node(3, c_addr, &all, &p.tls).await;
    p.a.set_config_source(|| raft_net::ConfigStamp {
        index: 42,
        committed: true,
    });
    let mut refusals = c.watch_refusals();
    let told = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            c.send(msg(3, 1, 1));
            if let Some(r) = *refusals.borrow_and_update()
                && r.peer == 1
            {
                return r;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), refusals.changed()).await;
        }
    })
    .await
    .expect("node 3 was never told");
    assert_eq!(told.config.index, 42);
    assert!(told.config.committed);
}

/// Only node certificates get past the handshake: a client certificate
/// of the same CA (what raftctl and curl users hold) is refused before
/// `Ready`, so it can send nothing.
#[tokio::test]
async fn a_client_certificate_is_not_a_peer() {
    let dir = tempfile::tempdir().unwrap();
    let (files, ca) = make_ca(dir.path(), "test CA");
    let tls = TlsSetup::load(&files).unwrap();
    let (a_addr, b_addr) = (free_addr(), free_addr());
    let peers = [(1, a_addr), (2, b_addr)];
    let (_a, mut a_rx) = node(1, a_addr, &peers, &tls).await;
    let client_only = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let marked_client = issue(
        dir.path(),
        &ca,
        "marked-client",
        &["raftstack://node/127.0.0.1:*"],
        client_only.clone(),
    );
    for f in [
        issue(dir.path(), &ca, "client", &[], client_only),
        marked_client,
    ] {
        let s = tls_client(a_addr, client_config(Some(&f), &f.ca)).await;
        // TLS 1.3: the client's handshake can finish before the server
        // judged its certificate; then the server closes at once, unread.
        if let Ok(mut s) = s {
            let _ = s.write_all(&hello("test-cluster", 2)).await;
            let _ = s.write_all(&frame_of(&[msg(2, 1, 1000)])).await;
            let _ = s.flush().await;
            assert!(closed_by_server(&mut s).await);
        }
    }
    let heard = tokio::time::timeout(Duration::from_millis(300), a_rx.recv()).await;
    assert!(heard.is_err(), "a client certificate delivered {heard:?}");
}

/// A node certificate speaks only for the member addresses it names: a
/// node at another address cannot claim a member's id, and a dialler
/// refuses a node whose certificate is for another address.
#[tokio::test]
async fn a_node_cannot_claim_another_members_id() {
    let dir = tempfile::tempdir().unwrap();
    let (files, ca) = make_ca(dir.path(), "test CA");
    let both = || {
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ]
    };
    let (a_addr, b_addr, c_addr) = (free_addr(), free_addr(), free_addr());
    let bound = |stem: &str, addr: SocketAddr| {
        let uri = format!("raftstack://node/{addr}");
        issue(dir.path(), &ca, stem, &[uri.as_str()], both())
    };
    let (a_files, b_files, c_files) = (bound("a", a_addr), bound("b", b_addr), bound("c", c_addr));
    let peers = [(1, a_addr), (2, b_addr)];
    let a_tls = TlsSetup::load(&a_files).unwrap();
    let (_a, mut a_rx) = node(1, a_addr, &peers, &a_tls).await;

    // C's certificate claiming to be member 2: refused, nothing delivered.
    let mut s = client_with(a_addr, &c_files).await;
    s.write_all(&hello("test-cluster", 2)).await.unwrap();
    let _ = s.write_all(&frame_of(&[msg(2, 1, 1000)])).await;
    let _ = s.flush().await;
    assert!(closed_by_server(&mut s).await);
    let heard = tokio::time::timeout(Duration::from_millis(300), a_rx.recv()).await;
    assert!(heard.is_err(), "an impersonator delivered {heard:?}");

    // B's own certificate: accepted.
    let mut s = client_with(a_addr, &b_files).await;
    s.write_all(&hello("test-cluster", 2)).await.unwrap();
    s.write_all(&frame_of(&[msg(2, 1, 5)])).await.unwrap();
    s.flush().await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), a_rx.recv()).await;
    assert_eq!(got.expect("delivered in time"), Some(msg(2, 1, 5)));

    // Node 1 dialling member 2 finds C's certificate there: it never
    // sends (B's listener is C's transport, configured to take node 1).
    let c_tls = TlsSetup::load(&c_files).unwrap();
    let (_c, mut c_rx) = node(2, b_addr, &peers, &c_tls).await;
    _a.send(msg(1, 2, 9));
    let heard = tokio::time::timeout(Duration::from_millis(1500), c_rx.recv()).await;
    assert!(heard.is_err(), "node 1 sent to the wrong node: {heard:?}");
    drop(files);
}

/// The hello is read with a small limit: before a peer is identified it
/// cannot make the node buffer a full frame.
#[tokio::test]
async fn an_oversized_hello_is_refused() {
    let mut p = pair().await;
    let mut s = valid_client(&p).await;
    let big = hello(&"c".repeat(raft_net::wire::MAX_HELLO), 2);
    let _ = s.write_all(&big).await;
    let _ = s.flush().await;
    assert!(closed_by_server(&mut s).await);
    still_healthy(&mut p, 9).await;
}

fn frame_of(ms: &[Message]) -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    let f = raft_net::wire::Frame::Messages(ms.to_vec());
    raft_net::frame::encode(&raft_net::wire::to_body(&f), &mut out);
    out.to_vec()
}
