//! Authorization by certificate role (issue 17), end to end over real TLS:
//! every route of the command port's table, asked by every kind of
//! certificate. Each request carries an unknown parameter, so a request
//! the role allows is refused by its handler with 400 and changes
//! nothing, and one it does not allow gets 403 first. Any other answer (a
//! 404 or 405 above all) is a route the table and the router disagree on.

mod common;

use common::{cluster, deadline};
use raft_http::HttpsClient;
use raft_http::access::{Need, Scope};
use raft_http::client::Method;
use raft_http::routes::ROUTES;
use std::path::Path;
use std::time::Duration;

/// The kinds of certificate asked with.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Admin,
    ReadWrite,
    ReadOnly,
    /// readwrite, limited to namespace `a`.
    NamespaceA,
    /// A node's certificate (it may be a member at 127.0.0.1, any port).
    Node,
}

/// Whether `who` may do what `need` asks, for a request in the default
/// namespace for `address` (if any): written out per role, not computed
/// by the code under test.
fn allowed(who: Who, need: Need, address: Option<&str>) -> bool {
    use Who::*;
    match need {
        Need::Status => true,
        Need::Read(Scope::Namespace) => matches!(who, Admin | ReadWrite | ReadOnly | Node),
        Need::Read(Scope::Everything) => matches!(who, Admin | ReadWrite | ReadOnly | Node),
        Need::Write(_) => matches!(who, Admin | ReadWrite),
        Need::Admin => who == Admin,
        Need::AddMember => {
            who == Admin || (who == Node && address.is_some_and(|a| a.starts_with("127.0.0.1:")))
        }
    }
}

fn client(certs: &Path, cert: &str, key: &str) -> HttpsClient {
    let tls = raft_net::tls::client_config(
        &certs.join("transport-ca.pem"),
        Some((&certs.join(cert), &certs.join(key))),
    )
    .expect("client TLS");
    let mut c = HttpsClient::new(tls);
    c.timeout = Duration::from_secs(10);
    c
}

/// A concrete path for a route pattern.
fn concrete(pattern: &str) -> String {
    pattern
        .replace("{*key}", "k")
        .replace("{n}", "1")
        .replace("{ns}", "zz")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_each_role_as_the_table_says() {
    let c = cluster(&["active"; 3], true);
    let certs = common::certs();
    for (name, role, ns) in [
        ("ro", "readonly", vec![]),
        ("rw", "readwrite", vec![]),
        ("nsa", "readwrite", vec!["a".to_string()]),
    ] {
        xtask::certs::make_client_cert(certs, name, role, &ns).expect("issue");
    }
    let clients = [
        (
            Who::Admin,
            client(certs, "transport-client.crt", "transport-client.key"),
        ),
        (
            Who::ReadWrite,
            client(certs, "client-rw.crt", "client-rw.key"),
        ),
        (
            Who::ReadOnly,
            client(certs, "client-ro.crt", "client-ro.key"),
        ),
        (
            Who::NamespaceA,
            client(certs, "client-nsa.crt", "client-nsa.key"),
        ),
        (
            Who::Node,
            client(certs, "transport-consensus.crt", "transport-consensus.key"),
        ),
    ];
    deadline(120, async {
        let l = c.leader(&[]).await;
        let api = &c.nodes[l].api;
        let mut checked = 0;
        for r in ROUTES {
            let (method, need): (Method, _) = (r.method.parse().expect("a method"), &r.need);
            let path = concrete(r.pattern);
            for address in [None, Some("127.0.0.1:1"), Some("10.9.9.9:1")] {
                if address.is_some() && *need != Need::AddMember {
                    continue;
                }
                let q = match address {
                    Some(a) => format!("?address={a}&zz=1"),
                    None => "?zz=1".to_string(),
                };
                for (who, cl) in &clients {
                    let r = cl
                        .request(api, method.clone(), &format!("{path}{q}"), &[], "x".into())
                        .await
                        .expect("an answer");
                    let want = if allowed(*who, *need, address) {
                        400
                    } else {
                        403
                    };
                    assert_eq!(
                        r.status.as_u16(),
                        want,
                        "{method} {path}{q} as {who:?}: {}",
                        String::from_utf8_lossy(&r.body)
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked >= ROUTES.len() * clients.len());
        // Status says which role the asking certificate has.
        for (i, want) in [
            (0, "admin"),
            (2, "readonly"),
            (3, "readwrite in namespaces a"),
            (4, "node"),
        ] {
            let r = clients[i]
                .1
                .request(api, Method::GET, "/", &[], "".into())
                .await
                .unwrap();
            assert_eq!(r.json().unwrap()["client_role"], want);
        }
        // Within its namespace, the limited certificate reads and writes.
        let nsa = &clients[3].1;
        let r = nsa
            .request(api, Method::PUT, "/v1/kv/k?ns=a", &[], "v".into())
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{:?}", r.json());
        let r = nsa
            .request(api, Method::PUT, "/v1/kv/k?ns=b", &[], "v".into())
            .await
            .unwrap();
        assert_eq!(r.status, 403);
        let why = r.json().unwrap()["error"].as_str().unwrap().to_string();
        assert!(why.contains("namespace \"b\""), "{why}");
        // A readonly write is refused naming the role it needs, and a
        // follower does not forward it: it never reaches the leader.
        let f = (l + 1) % 3;
        let ro = &clients[2].1;
        let r = ro
            .request(&c.nodes[f].api, Method::PUT, "/v1/kv/k", &[], "v".into())
            .await
            .unwrap();
        assert_eq!(r.status, 403);
        assert!(String::from_utf8_lossy(&r.body).contains("readwrite"));
        // A readwrite write through a follower is forwarded (the follower's
        // node certificate vouches for it) and lands.
        let rw = &clients[1].1;
        let r = rw
            .request(&c.nodes[f].api, Method::PUT, "/v1/kv/fwd", &[], "v".into())
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{:?}", r.json());
        assert_eq!(c.get(l, "fwd", false).await.unwrap().as_deref(), Some("v"));
    })
    .await;
}
