//! The Python client (clients/python) against a real 3-node cluster over
//! mutual TLS: its pytest suite, run with the package's source on
//! `PYTHONPATH`, the cluster described to it by the environment (see
//! clients/python/tests/conftest.py). Its last test kills a follower.

mod common;

use common::{certs, cluster, deadline, have_python_module};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_suite() {
    if !have_python_module("pytest") {
        return;
    }
    let c = cluster(&["active"; 3], false);
    deadline(240, async {
        let leader = c.leader(&[]).await;
        let follower = (leader + 1) % 3;
        let nodes: Vec<&str> = c.nodes.iter().map(|n| n.api.as_str()).collect();
        let root = env!("CARGO_MANIFEST_DIR");
        let pid = c.nodes[follower].pid().expect("the follower runs");
        let out = tokio::process::Command::new("python3")
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
            .arg(format!("{root}/clients/python/tests"))
            .env("PYTHONPATH", format!("{root}/clients/python/src"))
            .env("RAFTSTACK_NODES", nodes.join(","))
            .env("RAFTSTACK_CERTS", certs())
            .env("RAFTSTACK_FOLLOWER_PID", pid.to_string())
            .env("RAFTSTACK_FOLLOWER_NODE", &c.nodes[follower].api)
            .kill_on_drop(true)
            .output()
            .await
            .expect("running pytest");
        let text = String::from_utf8_lossy(&out.stdout);
        let err = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            c.dump_logs();
        }
        assert!(out.status.success(), "{text}\n{err}");
        assert!(text.contains(" passed"), "{text}");
        assert!(!text.contains("skipped"), "{text}");
        eprintln!("{text}");
    })
    .await;
}
