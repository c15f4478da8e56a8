//! The command-port guide runs as written: every shell line of
//! docs/api.md (curl and raftctl) against a local TLS cluster, in order,
//! in one shell, as a reader would type them after `cargo xtask cluster`.
//!
//! The doc's fixed addresses (command ports 7501-7503, peers 7001-7003,
//! a newcomer at 7004/7504/7005) are mapped to the test's free ports, and
//! `certs/` and `target/bins/release/raftctl` to the test's own. A line
//! fails the test if its exit status is not 0 or if what it printed shows
//! that the line itself is wrong: an endpoint or method that does not
//! exist, a parameter the route does not take, a curl error. Lines the
//! doc says wait for something (a follow stream, a watch for the next
//! change) are given a few seconds and then stopped.

mod common;

use common::{certs, cluster, deadline};
use raft_mock::launch::free_ports;
use std::path::Path;
use std::process::Command;

/// The shell blocks of a Markdown file: (line of the opening fence, body).
fn shell_blocks(md: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, Vec<String>)> = None;
    for (i, line) in md.lines().enumerate() {
        match (&mut current, line.trim_start().starts_with("```")) {
            (None, true) if line.trim() == "```sh" => current = Some((i + 1, Vec::new())),
            (Some(_), true) => out.extend(current.take()),
            (Some((_, body)), false) => body.push(line.to_string()),
            (None, _) => {}
        }
    }
    out
}

/// Whether the doc says this line waits (a stream, a watch): it is
/// stopped after a few seconds instead of run to its end.
fn waits(line: &str) -> bool {
    let l = line.to_lowercase();
    l.contains("--follow") || l.contains("waits for") || l.contains("/follow?")
}

/// What in a line's output shows the line itself is wrong.
const WRONG: &[&str] = &[
    "no endpoint",
    "unknown parameter",
    " takes GET",
    " takes PUT",
    " takes POST",
    " takes DELETE",
    "error: unexpected argument",
    "error: unrecognized subcommand",
    "curl: (",
];

/// One script: each doc line, then a marker with its status.
fn script(blocks: &[(usize, Vec<String>)], map: &[(String, String)]) -> String {
    let mut s = String::from("exec 2>&1\n");
    for (fence, body) in blocks {
        for (k, line) in body.iter().enumerate() {
            let at = fence + k + 1;
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let mut l = line.clone();
            for (from, to) in map {
                l = l.replace(from.as_str(), to);
            }
            let l = if waits(line) {
                // On lines of their own: the doc line may end in a comment.
                format!(
                    "timeout -s INT 3 {l}\nr=$?; [ $r = 124 ] || [ $r = 130 ] && r=0; (exit $r)"
                )
            } else {
                l
            };
            s += &format!("echo \"@@line {at} (at $SECONDS s)\"\n{l}\necho \"@@rc $?\"\n");
        }
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shell_line_of_the_api_guide_runs_as_written() {
    let c = cluster(&["active"; 3], false);
    let work = tempfile::tempdir().unwrap();
    let md =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/api.md")).unwrap();
    let blocks = shell_blocks(&md);
    assert!(blocks.len() > 20, "docs/api.md lost its examples?");
    // The doc's addresses, mapped to this cluster's.
    let spare = free_ports(3);
    let mut map: Vec<(String, String)> = Vec::new();
    for (i, n) in c.nodes.iter().enumerate() {
        map.push((format!("127.0.0.1:{}", 7501 + i), n.api.clone()));
        map.push((format!("127.0.0.1:{}", 7001 + i), n.name.clone()));
    }
    for (doc, port) in [7004, 7504, 7005].into_iter().zip(&spare) {
        map.push((format!("127.0.0.1:{doc}"), format!("127.0.0.1:{port}")));
        for flag in ["-n", "-p"] {
            map.push((format!("{flag} {doc}"), format!("{flag} {port}")));
        }
    }
    // `certs/` and `target/bins/release/raftctl` where the doc has them.
    std::os::unix::fs::symlink(certs(), work.path().join("certs")).unwrap();
    let bins = work.path().join("target/bins/release");
    std::fs::create_dir_all(&bins).unwrap();
    std::fs::create_dir_all(work.path().join("target/cluster")).unwrap();
    let nodes: Vec<_> = c.nodes.iter().map(|n| n.api.as_str()).collect();
    let ctl = format!(
        "exec {} --nodes {} \"$@\"",
        env!("CARGO_BIN_EXE_raftctl"),
        nodes.join(",")
    );
    // A node the doc starts in the background is stopped with the test.
    let node = format!(
        "echo $$ >> {0}/pids\nexec {1} \"$@\" >> {0}/node.log 2>&1",
        work.path().display(),
        common::BIN
    );
    for (name, body) in [("raftctl", ctl), ("raft-mock", node)] {
        std::fs::write(bins.join(name), format!("#!/bin/sh\n{body}\n")).unwrap();
        let status = Command::new("chmod")
            .arg("+x")
            .arg(bins.join(name))
            .status();
        assert!(status.unwrap().success());
    }
    let _started = KillOnDrop(work.path().join("pids"));
    let text = script(&blocks, &map);
    deadline(300, async {
        c.leader(&[]).await;
        let dir = work.path().to_path_buf();
        let out = tokio::task::spawn_blocking(move || {
            Command::new("bash")
                .arg("-c")
                .arg(text)
                .current_dir(dir)
                .output()
                .expect("running bash")
        })
        .await
        .unwrap();
        let out = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Err(e) = check(&out) {
            let log = std::fs::read_to_string(work.path().join("node.log"));
            panic!(
                "{e}\nthe doc's own node logged:\n{}",
                log.unwrap_or_default()
            );
        }
    })
    .await;
}

/// Kills the processes whose ids the file lists.
struct KillOnDrop(std::path::PathBuf);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let pids = std::fs::read_to_string(&self.0).unwrap_or_default();
        for pid in pids.split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
    }
}

/// The first line whose status or output shows it is wrong, quoting
/// what it printed.
fn check(out: &str) -> Result<(), String> {
    let mut ran = 0;
    for part in out.split("@@line ").skip(1) {
        let (at, rest) = part.split_once('\n').unwrap_or((part, ""));
        let (printed, status) = rest.rsplit_once("@@rc ").unwrap_or((rest, "missing"));
        let status = status.trim();
        // curl's (23) only says a `| head` stopped reading, as the doc
        // warns.
        let printed = printed.replace("curl: (23) Failure writing output", "");
        let wrong = WRONG.iter().find(|w| printed.contains(*w));
        if status != "0" || wrong.is_some() {
            return Err(format!(
                "docs/api.md line {at} (status {status}, {wrong:?}) printed:\n{printed}"
            ));
        }
        ran += 1;
    }
    if ran < 60 {
        return Err(format!("only {ran} lines ran:\n{out}"));
    }
    Ok(())
}
