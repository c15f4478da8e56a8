//! The RESP port on a real 3-node cluster over mutual TLS, driven by
//! clients nobody here wrote: redis-cli (Debian's redis-tools), the `redis`
//! crate, and a Python script with the `redis` package. A key written
//! over RESP is read over HTTPS and the other way round; writes go
//! through followers; bad input gets Redis's errors and disturbs nothing.

mod common;

use common::{TestCluster, certs, deadline, described, have_python_module};
use raft_http::client::Method;
use raft_mock::launch::free_ports;
use redis::{Commands, RedisResult, Value};
use std::process::Command;
use std::time::Duration;

/// A 3-node cluster serving RESP; the RESP ports.
fn resp_cluster(memory: bool) -> (TestCluster, Vec<u16>) {
    let mut c = described(&["active"; 3], memory);
    let ports = free_ports(3);
    for (n, p) in c.c.nodes.iter_mut().zip(&ports) {
        n.extra = vec!["--resp-port".into(), p.to_string()];
    }
    c.start_all().expect("starting raft-mock");
    (c, ports)
}

fn client(port: u16) -> redis::Client {
    let read = |f: &str| std::fs::read(certs().join(f)).expect("test certificate");
    let tls = redis::TlsCertificates {
        client_tls: Some(redis::ClientTlsConfig {
            client_cert: read("transport-client.crt"),
            client_key: read("transport-client.key"),
        }),
        root_cert: Some(read("transport-ca.pem")),
    };
    let url = format!("rediss://127.0.0.1:{port}/");
    redis::Client::build_with_tls(url, tls).expect("a TLS client")
}

fn connect(port: u16) -> redis::Connection {
    let c = client(port);
    let conn = c
        .get_connection_with_timeout(Duration::from_secs(10))
        .expect("connecting over TLS");
    conn.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    conn
}

/// A follower (not `leader`) and another node.
fn others(leader: usize) -> (usize, usize) {
    ((leader + 1) % 3, (leader + 2) % 3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_crate_through_followers() {
    let (c, ports) = resp_cluster(false);
    deadline(120, async {
        let leader = c.leader(&[]).await;
        let (f1, f2) = others(leader);
        let (p1, p2) = (ports[f1], ports[f2]);
        tokio::task::spawn_blocking(move || strings_and_keys(p1, p2))
            .await
            .unwrap();
        // What RESP wrote, HTTPS reads (namespace db0), and back.
        let r = c
            .request(f2, Method::GET, "/v1/kv/user:1?ns=db0&raw", "")
            .await
            .unwrap();
        assert_eq!(r.body, "alice");
        let r = c
            .request(f1, Method::PUT, "/v1/kv/from-http?ns=db3", "hello")
            .await
            .unwrap();
        assert!(r.status.is_success());
        tokio::task::spawn_blocking(move || {
            let mut conn = connect(p2);
            redis::cmd("SELECT").arg(3).exec(&mut conn).unwrap();
            let v: String = conn.get("from-http").unwrap();
            assert_eq!(v, "hello");
            transactions(p1, p2);
            expiry(p1, p2);
        })
        .await
        .unwrap();
    })
    .await;
}

fn strings_and_keys(p1: u16, p2: u16) {
    let mut a = connect(p1);
    let mut b = connect(p2);
    let _: () = a.set("user:1", "alice").unwrap();
    let got: String = b.get("user:1").unwrap();
    assert_eq!(
        got, "alice",
        "a write through one follower, read at the other"
    );
    assert_eq!(a.incr::<_, _, i64>("n", 5).unwrap(), 5);
    assert_eq!(b.decr::<_, _, i64>("n", 2).unwrap(), 3);
    let e: RedisResult<i64> = a.incr("user:1", 1);
    assert!(e.unwrap_err().to_string().contains("not an integer"));
    assert_eq!(a.append::<_, _, i64>("s", "Hello ").unwrap(), 6);
    assert_eq!(a.append::<_, _, i64>("s", "World").unwrap(), 11);
    assert_eq!(b.getrange::<_, String>("s", -5, -1).unwrap(), "World");
    let _: () = a.mset(&[("m1", "1"), ("m2", "2")]).unwrap();
    let v: Vec<Option<String>> = b.mget(&["m1", "nope", "m2"]).unwrap();
    assert_eq!(v, [Some("1".into()), None, Some("2".into())]);
    let set: bool = a.set_nx("m1", "x").unwrap();
    assert!(!set, "SETNX of a key that exists");
    // A pipeline: its writes in order, its reads after them.
    let (x, y, z): (String, i64, String) = redis::pipe()
        .set("p", "1")
        .ignore()
        .get("p")
        .incr("p", 1)
        .set("p", "last")
        .ignore()
        .get("p")
        .query(&mut a)
        .unwrap();
    assert_eq!((x.as_str(), y, z.as_str()), ("1", 2, "last"));
    let mut keys: Vec<String> = b.scan().unwrap().collect();
    keys.sort();
    assert_eq!(keys, ["m1", "m2", "n", "p", "s", "user:1"]);
    let gone: i64 = a.del(&["m1", "m2", "missing"]).unwrap();
    assert_eq!(gone, 2);
    assert_eq!(b.exists::<_, i64>(&["m1", "n"]).unwrap(), 1);
    let e: RedisResult<i64> = a.lpush("n", "x");
    assert!(e.unwrap_err().to_string().contains("WRONGTYPE"));
}

fn transactions(p1: u16, p2: u16) {
    let mut a = connect(p1);
    let mut b = connect(p2);
    let _: () = a.set("balance", 100).unwrap();
    // The optimistic loop: WATCH, read, MULTI ... EXEC; a write by
    // another client between the read and EXEC makes EXEC answer nil.
    redis::cmd("WATCH").arg("balance").exec(&mut a).unwrap();
    let bal: i64 = a.get("balance").unwrap();
    let _: () = b.set("balance", 5).unwrap();
    let r: Option<(i64,)> = redis::pipe()
        .atomic()
        .decr("balance", 10)
        .query(&mut a)
        .unwrap();
    assert_eq!(r, None, "a watched key changed: nothing applied");
    assert_eq!(bal, 100);
    let (v,): (i64,) = redis::transaction(&mut a, &["balance"], |conn, pipe| {
        let bal: i64 = conn.get("balance")?;
        pipe.set("balance", bal - 1)
            .ignore()
            .get("balance")
            .query(conn)
    })
    .unwrap();
    assert_eq!(v, 4);
    // MULTI keeps going past a failing command, as Redis does (the
    // client reports the failing one's error for the whole EXEC).
    let r: RedisResult<Vec<Value>> = redis::pipe()
        .atomic()
        .set("t", "word")
        .incr("t", 1)
        .set("t2", "after")
        .query(&mut b);
    assert!(r.unwrap_err().to_string().contains("not an integer"));
    let after: Vec<String> = b.mget(&["t", "t2"]).unwrap();
    assert_eq!(after, ["word", "after"]);
    let e = redis::cmd("EXEC").query::<Value>(&mut b).unwrap_err();
    assert!(e.to_string().contains("EXEC without MULTI"), "{e}");
}

fn expiry(p1: u16, p2: u16) {
    let mut a = connect(p1);
    let mut b = connect(p2);
    let _: () = redis::cmd("SET")
        .arg("session")
        .arg("s1")
        .arg("PX")
        .arg(1500)
        .exec(&mut a)
        .unwrap();
    let left: i64 = b.pttl("session").unwrap();
    assert!((1..=1500).contains(&left), "pttl {left}");
    assert_eq!(b.ttl::<_, i64>("user:1").unwrap(), -1);
    assert_eq!(b.ttl::<_, i64>("nothing").unwrap(), -2);
    let _: () = a.set_ex("kept", "v", 1).unwrap();
    assert!(a.persist::<_, bool>("kept").unwrap());
    let until = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let v: Option<String> = b.get("session").unwrap();
        if v.is_none() {
            break;
        }
        assert!(std::time::Instant::now() < until, "the key never expired");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let kept: Option<String> = b.get("kept").unwrap();
    assert_eq!(kept.as_deref(), Some("v"), "PERSIST cleared its TTL");
}

fn redis_cli(port: u16, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let d = certs();
    let mut cmd = Command::new("redis-cli");
    cmd.args(["--tls", "--cacert"])
        .arg(d.join("transport-ca.pem"))
        .arg("--cert")
        .arg(d.join("transport-client.crt"))
        .arg("--key")
        .arg(d.join("transport-client.key"))
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = cmd
        .spawn()
        .expect("redis-cli (apt-get install redis-tools)");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_end_to_end_through_a_follower() {
    let (c, ports) = resp_cluster(true);
    deadline(90, async {
        let leader = c.leader(&[]).await;
        let (f1, f2) = others(leader);
        let (p1, p2) = (ports[f1], ports[f2]);
        tokio::task::spawn_blocking(move || {
            assert_eq!(redis_cli(p1, &["PING"], None), "PONG");
            assert_eq!(redis_cli(p1, &["SET", "greeting", "hi"], None), "OK");
            assert_eq!(redis_cli(p2, &["GET", "greeting"], None), "hi");
            let piped = redis_cli(p1, &[], Some("MULTI\nINCR hits\nINCR hits\nEXEC\n"));
            assert_eq!(
                piped.lines().collect::<Vec<_>>(),
                ["OK", "QUEUED", "QUEUED", "1", "2"]
            );
            let info = redis_cli(p2, &["INFO", "replication"], None);
            assert!(
                info.contains("role:slave") && info.contains("raft_leader:"),
                "{info}"
            );
            let e = redis_cli(p1, &["NOSUCH", "x"], None);
            assert!(e.contains("unknown command 'NOSUCH'"), "{e}");
            assert_eq!(redis_cli(p2, &["DBSIZE"], None), "2");
            let s = redis_cli(p2, &["--scan"], None);
            let mut keys: Vec<_> = s.lines().collect();
            keys.sort();
            assert_eq!(keys, ["greeting", "hits"]);
        })
        .await
        .unwrap();
    })
    .await;
}

/// Sends raw bytes over TLS and reads what comes back until the node
/// closes the connection or `quiet` passes without a byte.
async fn raw(port: u16, send: &[u8], quiet: Duration) -> (Vec<u8>, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = common::resp::tls(port, true).await.unwrap();
    s.write_all(send).await.unwrap();
    s.flush().await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(quiet, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_redis_errors_and_disturbs_nothing() {
    let (c, ports) = resp_cluster(true);
    deadline(90, async {
        c.leader(&[]).await;
        let p = ports[0];
        let q = Duration::from_millis(1500);
        // Errors a connection survives, each in order.
        let (out, closed) = raw(
            p,
            b"NOSUCH a\r\nGET\r\nEXEC\r\nDISCARD\r\nMULTI\r\nMULTI\r\nGET\r\nEXEC\r\nSET k v EX 0\r\nPING\r\n",
            q,
        )
        .await;
        let text = String::from_utf8_lossy(&out);
        let want = [
            "-ERR unknown command 'NOSUCH', with args beginning with: 'a' ",
            "-ERR wrong number of arguments for 'get' command",
            "-ERR EXEC without MULTI",
            "-ERR DISCARD without MULTI",
            "+OK",
            "-ERR MULTI calls can not be nested",
            "-ERR wrong number of arguments for 'get' command",
            "-EXECABORT Transaction discarded because of previous errors.",
            "-ERR invalid expire time in 'set' command",
            "+PONG",
        ];
        assert_eq!(text.split("\r\n").take(want.len()).collect::<Vec<_>>(), want);
        assert!(!closed, "the connection survives command errors");
        // Protocol errors: answered, then the connection closes.
        for (bad, want) in [
            (&b"*1\r\n$1099511627776\r\n"[..], "-ERR Protocol error: invalid bulk length"),
            (b"*2\r\n$3\r\nGET\r\n:1\r\n", "-ERR Protocol error: expected '$', got ':'"),
            (b"*99999999999\r\n", "-ERR Protocol error: invalid multibulk length"),
        ] {
            let (out, closed) = raw(p, bad, q).await;
            let text = String::from_utf8_lossy(&out);
            assert!(text.starts_with(want) && closed, "{bad:?}: {text:?} closed={closed}");
        }
        // Larger than the socket buffers: the node answers while the client
        // is still writing, and must close without a reset that eats it.
        let inline = vec![b'a'; 4 << 20];
        let (out, closed) = raw(p, &inline, q).await;
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("-ERR Protocol error: too big inline request") && closed, "{text}");
        // A client without a certificate never gets in.
        let refused = async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = common::resp::tls(p, false).await?;
            s.write_all(b"PING\r\n").await?;
            let mut buf = [0u8; 16];
            let n = s.read(&mut buf).await?;
            if n > 0 {
                return Ok(buf[..n].to_vec());
            }
            Err(std::io::Error::other("closed"))
        };
        assert!(refused.await.is_err(), "a client without a certificate was served");
        // Nothing else was disturbed: every node still serves.
        for port in ports {
            let (out, _) = raw(port, b"SET after ok\r\nGET after\r\n", q).await;
            let text = String::from_utf8_lossy(&out);
            assert!(text.starts_with("+OK\r\n"), "{text}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_redis_package() {
    if !have_python_module("redis") {
        return;
    }
    let (c, ports) = resp_cluster(true);
    deadline(120, async {
        let leader = c.leader(&[]).await;
        let (f1, f2) = others(leader);
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/resp_client.py");
        let args = [
            certs().display().to_string(),
            ports[f1].to_string(),
            ports[leader].to_string(),
            ports[f2].to_string(),
        ];
        let out = tokio::process::Command::new("python3")
            .arg(script)
            .args(args)
            .kill_on_drop(true)
            .output()
            .await
            .expect("running python3");
        let text = String::from_utf8_lossy(&out.stdout);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}\n{err}");
        assert!(text.contains("redis-py: all passed"), "{text}");
        eprintln!("{text}");
    })
    .await;
}
