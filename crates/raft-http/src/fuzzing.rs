//! Entry points for fuzzing the command port's request parsing (`cargo
//! xtask fuzz`; the targets are in `fuzz/`). Built with the `fuzzing`
//! feature only: not part of the API. `tests/fuzz_corpus.rs` runs the kept
//! corpus and every regression through them.

/// `data` as a command-port request: a method (the first byte) and a
/// request target (the rest), parsed as the port parses it.
pub fn request(data: &[u8]) {
    crate::fuzz::request(data);
}

/// A request for every route with the parameters its endpoint takes, as
/// (target, name, bytes).
pub fn seeds() -> Vec<(String, String, Vec<u8>)> {
    let mut out = Vec::new();
    let methods = ["GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"];
    let queries = [
        "",
        "?ns=a&cas=3&client=1&seq=2",
        "?recurse&keys&index=5&wait=10s",
        "?raw&stale&consistent=false",
        "?from=1&to=9",
        "?address=127.0.0.1:7004&id=4&learner&wait",
        "?id=2&redirect=true",
        "?ns=%61%62&x=%zz",
        "?ttl=10s&lease=2&acquire=2",
    ];
    for (k, r) in crate::routes::ROUTES.iter().enumerate() {
        let (method, pattern) = (&r.method, r.pattern);
        let m = methods
            .iter()
            .position(|x| x == method)
            .expect("a known method") as u8;
        let path = pattern
            .replace("{*key}", "dir/a%20key")
            .replace("{n}", "7")
            .replace("{ns}", "a");
        let q = queries[k % queries.len()];
        let name = format!("route-{k}");
        out.push((
            "http_request".into(),
            name,
            [&[m][..], path.as_bytes(), q.as_bytes()].concat(),
        ));
    }
    out
}
