//! Snapshots across real `raft-mock` processes: catching up a node the
//! leader compacted past, pyraftlog's log reduction, and backup / restore.

mod common;

use common::{TestCluster, cluster_with, deadline, described, write_many};
use raft_http::client::Method;
use std::time::Duration;

async fn status_u64(c: &TestCluster, i: usize, field: &str) -> u64 {
    c.status(i).await.expect("status")[field]
        .as_u64()
        .unwrap_or(0)
}

/// Waits until `check` holds for node `i`'s status.
async fn wait_status(
    c: &TestCluster,
    i: usize,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = c.status(i).await {
            if check(&s) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                c.dump_logs();
                panic!("node {i}: {what} never held; status {s}");
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_the_leader_compacted_past_catches_up_by_snapshot() {
    let flags = ["--snapshot-entries", "100", "--keep-entries", "0"];
    let mut c = cluster_with(&["active"; 3], false, &flags);
    deadline(90, async {
        let l = c.leader(&[]).await;
        let f = (l + 1) % 3;
        c.kill(f);
        let top = write_many(&c, l, 400, "k").await;
        wait_status(&c, l, "compacted past 100", |s| {
            s["first_index"].as_u64().unwrap_or(0) > 100
        })
        .await;
        c.start(f).unwrap();
        c.wait_applied(f, top, Duration::from_secs(30)).await;
        assert!(status_u64(&c, f, "snapshot_index").await > 100);
        assert_eq!(c.dump(f).await, c.dump(l).await);
        // Compacted entries are gone from the log API, with a clear answer.
        let r = c.request(l, Method::GET, "/v1/log/2", "").await.unwrap();
        assert_eq!(r.status, 410, "{:?}", r.json());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_reduction_compacts_what_every_member_applied() {
    let mut c = cluster_with(&["active"; 3], false, &["-r"]);
    deadline(120, async {
        let l = c.leader(&[]).await;
        write_many(&c, l, 1300, "a").await;
        for i in 0..3 {
            wait_status(&c, i, "log reduced", |s| {
                s["first_index"].as_u64().unwrap_or(0) > 1000
            })
            .await;
        }
        // A member that is down holds the reduction back: the others keep
        // the entries it has not applied.
        let f = (l + 1) % 3;
        let f_applied = status_u64(&c, f, "applied_index").await;
        c.kill(f);
        let top = write_many(&c, l, 1300, "b").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let first = status_u64(&c, l, "first_index").await;
        assert!(
            first <= f_applied + 1,
            "the leader compacted to {first} past the down member's {f_applied}"
        );
        c.start(f).unwrap();
        c.wait_applied(f, top, Duration::from_secs(30)).await;
        assert_eq!(c.dump(f).await.len(), 2600);
        // With everyone back, the reduction moves on.
        wait_status(&c, l, "log reduced again", |s| {
            s["first_index"].as_u64().unwrap_or(0) > first + 1000
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_starts_a_new_cluster() {
    let a = cluster_with(&["active"; 3], false, &[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.snap");
    deadline(90, async {
        let l = a.leader(&[]).await;
        write_many(&a, l, 200, "k").await;
        let r = a
            .request(l, Method::PUT, "/v1/kv/other?ns=team2", "x")
            .await
            .unwrap();
        assert!(r.status.is_success());
        let via = [a.nodes[(l + 1) % 3].api.clone()];
        let said = common::raftctl(&via, &["backup", &file.display().to_string()]);
        assert!(said.contains("saved 201 keys"), "{said}");
        assert!(!dir.path().join("backup.snap.partial").exists());
        // A new one-node cluster from the backup; two more nodes join it
        // and get the data by snapshot.
        let mut b = described(&["active"], false);
        b.c.nodes[0].extra = vec!["--restore".into(), file.display().to_string()];
        b.start_all().unwrap();
        b.leader(&[]).await;
        let j1 = b.add_joiner("active", 0).unwrap();
        let j2 = b.add_joiner("active", 0).unwrap();
        for i in [0, j1, j2] {
            wait_status(&b, i, "3 voters", |s| {
                s["configuration"]["voters"].as_array().map(Vec::len) == Some(3)
            })
            .await;
        }
        let want = a.dump(l).await;
        assert_eq!(want.len(), 200);
        for i in [0, j1, j2] {
            b.wait_applied(i, 2, Duration::from_secs(20)).await;
            assert_eq!(b.dump(i).await, want, "node {i}");
            let r = b
                .request(i, Method::GET, "/v1/kv/other?ns=team2&raw", "")
                .await;
            assert_eq!(r.unwrap().body, "x");
        }
        b.put(j2, "new", "1").await.unwrap();
        // A node that has data refuses a restore.
        b.kill(0);
        b.c.nodes[0].extra = vec!["--restore".into(), file.display().to_string()];
        b.start(0).unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let log = std::fs::read_to_string(&b.nodes[0].log).unwrap();
        assert!(log.contains("already has data"), "{log}");
    })
    .await;
}
