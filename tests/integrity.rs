//! Damaged storage across real `raft-mock` processes: a node whose files
//! were damaged while it was down refuses to start, saying which file and
//! what to do, instead of serving what it cannot verify; `--rebuild
//! --confirm` then brings it back from its peers under its old identity,
//! while the cluster takes writes.

mod common;

use common::{TestCluster, cluster_with, deadline, write_many};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The files in `dir` whose names end with `suffix`.
fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.expect("entry").path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.to_string_lossy().ends_with(suffix));
    v.sort();
    v
}

/// Flips a byte `from_end` bytes before the end of `path`; returns the
/// file's bytes before.
fn flip(path: &Path, from_end: usize) -> Vec<u8> {
    let whole = std::fs::read(path).expect("read");
    let mut b = whole.clone();
    let at = b.len() - from_end;
    b[at] ^= 0x20;
    std::fs::write(path, &b).expect("write");
    whole
}

/// Starts node `i`, expects it to exit with an error whose text (in its
/// log) contains `what`.
async fn refused(c: &mut TestCluster, i: usize, what: &str) {
    let before = std::fs::read_to_string(&c.nodes[i].log)
        .unwrap_or_default()
        .len();
    c.start(i).expect("spawn");
    let code = c.wait_exit(i, Duration::from_secs(20)).await;
    let log = std::fs::read_to_string(&c.nodes[i].log).unwrap_or_default();
    let new = &log[before..];
    assert!(
        code.is_some_and(|c| c != 0 && c != 101),
        "node {i} should refuse to start cleanly (exit {code:?}):\n{new}"
    );
    assert!(new.contains(what), "the refusal says {what:?}:\n{new}");
}

async fn is_voter(c: &TestCluster, i: usize) -> bool {
    let Some(s) = c.status(i).await else {
        return false;
    };
    let name = &c.nodes[i].name;
    let voters = &s["configuration"]["voters"];
    !s["rebuilding"].as_bool().unwrap_or(true)
        && voters
            .as_array()
            .is_some_and(|v| v.iter().any(|x| x == name.as_str()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_node_refuses_to_start_and_is_rebuilt_from_its_peers() {
    let flags = ["--snapshot-entries", "60", "--keep-entries", "0"];
    let mut c = cluster_with(&["active"; 3], false, &flags);
    deadline(150, async {
        let l = c.leader(&[]).await;
        let f = (l + 1) % 3;
        let top = write_many(&c, l, 200, "k").await;
        c.wait_applied(f, top, Duration::from_secs(20)).await;
        let file = c.nodes[f].file.clone().expect("a storage file");
        let snaps = raft_mock::snapshot_dir(&file);
        while files_ending(&snaps, ".data").is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Asked to rebuild while it still runs: refused, nothing moved.
        let port = c.nodes[f].api.rsplit_once(':').expect("port").1.to_string();
        let out = std::process::Command::new(&c.c.bin)
            .args(["-n", &c.nodes[f].name, "-p", &port, "--certs"])
            .arg(&c.c.certs)
            .arg("-f")
            .arg(&file)
            .args(["--rebuild", "--confirm", "--join", &c.nodes[l].api])
            .output()
            .expect("run raft-mock");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("still running"),
            "{err}"
        );
        assert!(
            !rebuild_marker(&file).exists() && file.exists(),
            "nothing moved"
        );

        // Stopped cleanly, so its last write was acknowledged (a kill -9
        // during an fsync leaves a record that was not, and may be cut).
        assert!(c.stop(f, Duration::from_secs(10)), "a clean stop");

        // The last record of its write-ahead log (acknowledged: a durable
        // mark of 25 bytes follows it) with a flipped byte: not a torn write.
        let seg = files_ending(&raft_log::wal_dir(&file), ".seg")
            .pop()
            .expect("a segment");
        let whole = flip(&seg, 25 + 10);
        refused(&mut c, f, "durable mark").await;
        std::fs::write(&seg, whole).expect("restore");

        // A flipped byte in the middle of its snapshot.
        let data = files_ending(&snaps, ".data").pop().expect("a snapshot");
        let size = std::fs::metadata(&data).expect("size").len() as usize;
        flip(&data, size / 2);
        refused(&mut c, f, "damaged").await;

        // Rebuilt from its peers, under writes.
        let api = c.nodes[l].api.clone();
        c.c.nodes[f].join = Some(api);
        c.c.nodes[f].extra = vec!["--rebuild".into(), "--confirm".into()];
        c.start(f).expect("spawn");
        let more = write_many(&c, l, 150, "m").await;
        let until = tokio::time::Instant::now() + Duration::from_secs(60);
        while !is_voter(&c, f).await {
            if tokio::time::Instant::now() > until {
                c.dump_logs();
                panic!("node {f} was not rebuilt into a voter");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        c.wait_applied(f, more, Duration::from_secs(20)).await;
        let want = c.dump(l).await;
        assert_eq!(want.len(), 350);
        assert_eq!(
            c.dump(f).await,
            want,
            "the rebuilt node holds what the others hold"
        );
        assert!(!rebuild_marker(&file).exists(), "the marker is cleared");
        let dir = file.parent().expect("dir");
        let name = file
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        let aside = files_ending(dir, "").into_iter().filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().to_string();
            n.starts_with(&name) && n.contains(".damaged-")
        });
        assert!(aside.count() >= 2, "the damaged files are kept aside");

        // It restarts as an ordinary voter.
        c.kill(f);
        c.c.nodes[f].extra.clear();
        c.start(f).expect("spawn");
        let last = c.put(l, "after", "restart").await.expect("write");
        c.wait_applied(f, last, Duration::from_secs(20)).await;
        assert!(is_voter(&c, f).await);
    })
    .await;
}

/// Issue 24, item 4: one member paused, writes acknowledged by the other
/// two, both killed, and one of them wiped and started again as it was
/// (no --rebuild). With its empty log it would vote the paused member,
/// which lacks the writes, into leadership, and the old leader's log would
/// be overwritten when it came back. Instead the paused member's log
/// records the wiped one's storage id: the vote is ignored, the wiped node
/// is told, and it stops with status 4 naming the way back. Once the old
/// leader is back, every acknowledged write is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_member_started_again_stops_instead_of_voting() {
    let mut c = cluster_with(&["active"; 3], false, &[]);
    deadline(150, async {
        let l = c.leader(&[]).await;
        let (p, w) = ((l + 1) % 3, (l + 2) % 3);
        // Every member has answered the leader, which has recorded their
        // storage ids.
        let first = c.put(l, "first", "1").await.expect("write");
        for i in 0..3 {
            c.wait_applied(i, first, Duration::from_secs(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;

        c.pause(p);
        write_many(&c, l, 50, "w").await;
        c.kill(l);
        c.kill(w);
        let file = c.nodes[w].file.clone().expect("a storage file");
        raft_log::remove(&file).expect("wipe the log");
        std::fs::remove_dir_all(raft_mock::snapshot_dir(&file)).ok();
        let before = std::fs::read_to_string(&c.nodes[w].log)
            .unwrap_or_default()
            .len();
        c.start(w).expect("spawn");
        c.resume(p);
        let code = c.wait_exit(w, Duration::from_secs(30)).await;
        let log = std::fs::read_to_string(&c.nodes[w].log).unwrap_or_default();
        let new = &log[before..];
        if code != Some(4) {
            c.dump_logs();
        }
        assert_eq!(code, Some(4), "the wiped node stops (status 4):\n{new}");
        assert!(new.contains("--rebuild --confirm"), "{new}");
        let s = c.status(p).await.expect("the paused member answers");
        assert_ne!(s["role"], "leader", "{s}");

        c.start(l).expect("spawn");
        let l2 = c.leader(&[w]).await;
        for i in 0..50 {
            let got = c.get(l2, &format!("w{i}"), false).await.expect("read");
            assert_eq!(got.as_deref(), Some(format!("value {i}").as_str()), "w{i}");
        }
    })
    .await;
}

fn rebuild_marker(file: &Path) -> PathBuf {
    let mut n = file.as_os_str().to_owned();
    n.push(".rebuilding");
    PathBuf::from(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrub_finds_a_flipped_byte_in_a_running_nodes_snapshot_and_replaces_it() {
    let flags = [
        "--snapshot-entries",
        "60",
        "--keep-entries",
        "0",
        "--scrub-secs",
        "1",
    ];
    let mut c = cluster_with(&["active"; 3], false, &flags);
    deadline(90, async {
        let l = c.leader(&[]).await;
        let f = (l + 1) % 3;
        let top = write_many(&c, l, 100, "k").await;
        c.wait_applied(f, top, Duration::from_secs(20)).await;
        let snaps = raft_mock::snapshot_dir(c.nodes[f].file.as_ref().expect("a file"));
        // The snapshot of the last writes (an older one is replaced).
        let data = loop {
            let at = c.status(f).await.expect("status")["snapshot_index"].as_u64();
            let name = format!("snap-{:020}-", at.unwrap_or(0));
            let found = files_ending(&snaps, ".data")
                .into_iter()
                .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&name));
            if let Some(d) = found.filter(|_| at.unwrap_or(0) + 60 > top) {
                break d;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let size = std::fs::metadata(&data).expect("size").len() as usize;
        flip(&data, size / 3);
        let damaged = std::fs::read(&data).expect("read");
        // The scrub finds it within a pass and repairs it within
        // milliseconds, so look at the counter, not at the passing alarm.
        let until = tokio::time::Instant::now() + Duration::from_secs(30);
        while damage_found(&c, f).await < 1.0 {
            if tokio::time::Instant::now() > until {
                c.dump_logs();
                panic!("the scrub never found the flipped byte");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = std::fs::read_to_string(&c.nodes[f].log).unwrap_or_default();
        assert!(
            log.contains("the snapshot is damaged"),
            "the log says what it found"
        );
        // A new snapshot replaced it, and a later pass cleared the alarm.
        let until = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let s = c.status(f).await.expect("status");
            if s["storage_damage"].is_null() && s["health"] == "green" {
                break;
            }
            assert!(tokio::time::Instant::now() < until, "never repaired: {s}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            std::fs::read(&data).ok() != Some(damaged),
            "the damaged file is gone"
        );
        // The replacement verifies at the next start, too.
        c.kill(f);
        c.start(f).expect("spawn");
        let last = c.put(l, "after", "scrub").await.expect("write");
        c.wait_applied(f, last, Duration::from_secs(20)).await;
        assert_eq!(c.dump(f).await, c.dump(l).await);
    })
    .await;
}

/// `raft_scrub_damage_total` on node `i`.
async fn damage_found(c: &TestCluster, i: usize) -> f64 {
    let r = c
        .request(i, raft_http::client::Method::GET, "/metrics", "")
        .await;
    let text = String::from_utf8_lossy(&r.expect("metrics").body).to_string();
    text.lines()
        .find_map(|l| l.strip_prefix("raft_scrub_damage_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0)
}
