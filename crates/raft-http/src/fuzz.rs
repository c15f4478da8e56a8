//! The command port's request parsing, for `crate::fuzzing::request`.

use super::access::{Principal, Role};
use super::http::{self, Query};
use super::router::admit;
use super::{blocking, kv, routes};
use hyper::{Method, Uri};

const METHODS: [Method; 7] = [
    Method::GET,
    Method::HEAD,
    Method::PUT,
    Method::POST,
    Method::DELETE,
    Method::PATCH,
    Method::OPTIONS,
];

/// Parses a request target as the port does before a handler touches the
/// node: the URI (as hyper reads it), the query, the route table and the
/// role check for each kind of client, the key's percent-decoding, and
/// every parameter an endpoint reads.
pub(crate) fn request(data: &[u8]) {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let method = &METHODS[m as usize % METHODS.len()];
    let Ok(uri) = std::str::from_utf8(rest).map(str::parse::<Uri>) else {
        return;
    };
    let Ok(uri) = uri else {
        return;
    };
    let path = uri.path();
    let Ok(q) = Query::parse(uri.query()) else {
        return;
    };
    let client = |role, namespaces: &[&str]| Principal::Client {
        role,
        namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
        subject: "fuzz".into(),
    };
    let who = [
        client(Role::Admin, &[]),
        client(Role::ReadWrite, &["a", "b"]),
        client(Role::ReadOnly, &[]),
        Principal::Refused("fuzz".into()),
    ];
    if let Some(route) = routes::find(method, path) {
        for p in &who {
            for forwarded in [false, true] {
                let _ = admit(p, route, &q, forwarded);
            }
        }
    }
    let _ = routes::methods_for(path);
    let segs: Vec<&str> = path.trim_start_matches('/').splitn(3, '/').collect();
    if let ["v1", "kv", key] = segs[..]
        && let Ok(key) = http::decode(key)
    {
        let _ = kv::check_key(&key, true);
    }
    let _ = kv::namespace(&q);
    let _ = kv::session(&q);
    let _ = blocking::wait(&q);
    for k in ["cas", "index", "from", "to", "id", "flags", "client", "seq"] {
        let _ = q.u64(k);
    }
    for k in ["wait", "consistent", "keys", "learner", "raw", "recurse"] {
        let _ = q.strict_flag(k);
    }
}
