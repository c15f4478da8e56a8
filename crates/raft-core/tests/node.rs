//! The async driver, three nodes in one process over the in-process network.

use bytes::Bytes;
use raft_core::node::local::LocalNetwork;
use raft_core::node::{Node, NodeConfig, NodeError, StateMachine};
use raft_core::{Config, Index, Mode, NodeId, Role};
use raft_log::{FileSnapshots, MemLogStore, MemSnapshots, RedbLogStore};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Records what it applied; answers each entry with its running count.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(Index, Bytes)>>>);

impl StateMachine for Recorder {
    type Output = usize;
    type Snapshot = Vec<(Index, Bytes)>;
    fn apply(&mut self, index: Index, data: &Bytes) -> usize {
        let mut g = self.0.lock().unwrap();
        g.push((index, data.clone()));
        g.len()
    }
    fn snapshot(&mut self) -> Self::Snapshot {
        self.0.lock().unwrap().clone()
    }
    /// (index, length, bytes) per entry, little-endian.
    fn write_snapshot(view: Self::Snapshot, w: &mut dyn Write) -> std::io::Result<()> {
        for (i, d) in view {
            w.write_all(&i.to_le_bytes())?;
            w.write_all(&(d.len() as u64).to_le_bytes())?;
            w.write_all(&d)?;
        }
        Ok(())
    }
    fn read_snapshot(r: &mut dyn Read) -> std::io::Result<Self::Snapshot> {
        let mut all = Vec::new();
        r.read_to_end(&mut all)?;
        let mut out = Vec::new();
        let mut rest = &all[..];
        while !rest.is_empty() {
            let i = u64::from_le_bytes(rest[..8].try_into().unwrap());
            let n = u64::from_le_bytes(rest[8..16].try_into().unwrap()) as usize;
            out.push((i, Bytes::copy_from_slice(&rest[16..16 + n])));
            rest = &rest[16 + n..];
        }
        Ok(out)
    }
    fn restore(&mut self, view: Self::Snapshot) {
        *self.0.lock().unwrap() = view;
    }
}

fn mem() -> Arc<MemSnapshots> {
    Arc::new(MemSnapshots::new())
}

fn config(id: NodeId) -> NodeConfig {
    let mut c = NodeConfig::new(Config::new(id), vec![1, 2, 3]);
    c.tick = Duration::from_millis(10);
    c.request_timeout = Duration::from_secs(2);
    c
}

struct Cluster {
    net: LocalNetwork,
    nodes: Vec<Node<usize>>,
    sms: Vec<Recorder>,
}

fn cluster() -> Cluster {
    let net = LocalNetwork::new();
    let mut nodes = vec![];
    let mut sms = vec![];
    for id in 1..=3 {
        let (t, rx) = net.join(id);
        let sm = Recorder::default();
        nodes.push(Node::start(config(id), MemLogStore::new(), mem(), t, rx, sm.clone()).unwrap());
        sms.push(sm);
    }
    Cluster { net, nodes, sms }
}

impl Cluster {
    async fn leader(&self, except: Option<usize>) -> usize {
        for _ in 0..500 {
            for (i, n) in self.nodes.iter().enumerate() {
                if Some(i) != except && n.status().raft.role == Role::Leader {
                    return i;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no leader elected within 5 s");
    }

    /// The leader, once it has recorded every voter's storage id (the
    /// configuration entry that does it moves the last index).
    async fn settled_leader(&self) -> usize {
        for _ in 0..500 {
            let l = self.leader(None).await;
            let s = self.nodes[l].status().raft;
            if s.membership.storage.len() == 3 && s.commit >= s.conf_index {
                return l;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the leader did not record every voter's storage within 5 s");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_apply_everywhere_and_followers_refuse_with_the_leader() {
    let c = cluster();
    let l = c.settled_leader().await;
    let (i1, n1) = c.nodes[l].propose(Bytes::from("a")).await.unwrap();
    let (i2, n2) = c.nodes[l].propose(Bytes::from("b")).await.unwrap();
    assert_eq!((i2, n2), (i1 + 1, n1 + 1));
    let f = (l + 1) % 3;
    match c.nodes[f].propose(Bytes::from("x")).await {
        Err(NodeError::NotLeader { leader }) => assert_eq!(leader, Some(l as NodeId + 1)),
        other => panic!("follower accepted a proposal: {other:?}"),
    }
    // A read barrier on a follower returns once it applied both writes.
    let idx = c.nodes[f].read_barrier().await.unwrap();
    assert!(idx >= i2);
    assert!(c.sms[f].0.lock().unwrap().iter().any(|(i, _)| *i == i2));
    // Every node ends with the same applied entries.
    for n in &c.nodes {
        n.wait_applied(i2, Duration::from_secs(5)).await.unwrap();
    }
    let first = c.sms[0].0.lock().unwrap().clone();
    for sm in &c.sms[1..] {
        assert_eq!(*sm.0.lock().unwrap(), first);
    }
    // The log can be read back, and followed.
    let entries = c.nodes[f].entries(i1, i2 + 1, 1 << 20).await.unwrap();
    assert_eq!(entries.len(), 2);
    // `lo..hi` is exclusive of `hi`: exactly the entries asked for.
    let one = c.nodes[f].entries(i1, i1 + 1, 1 << 20).await.unwrap();
    assert_eq!(one.iter().map(|e| e.index).collect::<Vec<_>>(), vec![i1]);
    assert!(
        c.nodes[f]
            .entries(i1, i1, 1 << 20)
            .await
            .unwrap()
            .is_empty()
    );
    let mut follow = c.nodes[f].follow(i1);
    let batch = follow.next_batch().await.unwrap();
    assert_eq!(batch[0].index, i1);
    for n in &c.nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_over_the_limit_is_refused_and_nothing_is_written() {
    let c = cluster();
    let l = c.settled_leader().await;
    let max = NodeConfig::new(Config::new(1), vec![1]).max_entry_bytes;
    let before = c.nodes[l].status().raft.last_index;
    let big = Bytes::from(vec![7u8; max + 1]);
    assert_eq!(
        c.nodes[l].propose(big.clone()).await.unwrap_err(),
        NodeError::TooLarge { len: max + 1, max }
    );
    assert!(matches!(
        c.nodes[l].append(big).await,
        Err(NodeError::TooLarge { .. })
    ));
    assert_eq!(c.nodes[l].status().raft.last_index, before);
    // At the limit it goes through, and the cluster goes on.
    let (i, _) = c.nodes[l]
        .propose(Bytes::from(vec![7u8; max]))
        .await
        .unwrap();
    c.nodes[l].propose(Bytes::from("after")).await.unwrap();
    for n in &c.nodes {
        n.wait_applied(i + 1, Duration::from_secs(5)).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_proposals_each_get_their_own_result() {
    let c = cluster();
    let l = c.settled_leader().await;
    let mut tasks = vec![];
    for i in 0..200 {
        let n = c.nodes[l].clone();
        tasks.push(tokio::spawn(async move {
            n.propose(Bytes::from(format!("w{i}"))).await.unwrap()
        }));
    }
    let mut indexes = vec![];
    for t in tasks {
        indexes.push(t.await.unwrap().0);
    }
    indexes.sort();
    indexes.dedup();
    assert_eq!(indexes.len(), 200, "two proposals got the same index");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leader_fails_requests_and_the_rest_elect_another() {
    let c = cluster();
    let old = c.leader(None).await;
    c.net.isolate(old as NodeId + 1, true);
    let r = c.nodes[old].propose(Bytes::from("lost")).await;
    assert!(
        matches!(
            r,
            Err(NodeError::NoQuorum | NodeError::NoLeader | NodeError::Dropped)
        ),
        "{r:?}"
    );
    // The cut-off leader holds "lost" uncommitted: reading or following
    // its log never hands it out (it did: the range's end was taken as
    // exclusive and then as inclusive).
    let commit = c.nodes[old].status().raft.commit;
    assert!(c.nodes[old].status().raft.last_index > commit);
    let all = c.nodes[old].entries(1, Index::MAX, 1 << 20).await.unwrap();
    assert_eq!(all.last().map(|e| e.index), Some(commit), "{all:?}");
    let upto = c.nodes[old].entries(1, commit + 5, 1 << 20).await.unwrap();
    assert_eq!(upto.len() as u64, commit, "{upto:?}");
    let mut follow = c.nodes[old].follow(commit + 1);
    let early = tokio::time::timeout(Duration::from_millis(300), follow.next_batch()).await;
    assert!(early.is_err(), "followed an uncommitted entry: {early:?}");
    let new = c.leader(Some(old)).await;
    assert_ne!(new, old);
    c.nodes[new].propose(Bytes::from("kept")).await.unwrap();
    c.net.isolate(old as NodeId + 1, false);
    // The old leader rejoins as a follower and catches up.
    let idx = c.nodes[old].read_barrier().await;
    let idx = match idx {
        Ok(i) => i,
        Err(_) => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            c.nodes[old].read_barrier().await.unwrap()
        }
    };
    let applied = c.sms[old].0.lock().unwrap().clone();
    assert!(applied.iter().any(|(_, d)| d == "kept"), "{idx}");
    assert!(!applied.iter().any(|(_, d)| d == "lost"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modes_and_transfer_through_the_handle() {
    let c = cluster();
    let l = c.settled_leader().await;
    let target = (l + 1) % 3;
    // On a loaded machine a transfer can time out (the target must win
    // before an election timeout) or another node can win the election it
    // starts; then it is asked again, of whoever leads.
    let mut leader = l;
    for attempt in 1..=3 {
        let r = c.nodes[leader].transfer_leader(target as NodeId + 1).await;
        for _ in 0..200 {
            if c.nodes[target].status().raft.role == Role::Leader {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if c.nodes[target].status().raft.role == Role::Leader {
            break;
        }
        assert!(attempt < 3, "no transfer in three attempts (last: {r:?})");
        leader = c.leader(None).await;
        eprintln!(
            "transfer attempt {attempt}: {r:?}; node {} leads",
            leader + 1
        );
    }
    // A passive leader hands leadership to someone else.
    c.nodes[target].set_mode(Mode::Passive).await.unwrap();
    let next = c.leader(Some(target)).await;
    assert_ne!(next, target);
    assert_eq!(c.nodes[target].status().raft.mode, Mode::Passive);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_disk_stops_writes_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let net = LocalNetwork::new();
    let mut cfg = config(1);
    cfg.voters = vec![1];
    let (store, faults) = RedbLogStore::open_with_faults(dir.path().join("n1.redb")).unwrap();
    let (t, rx) = net.join(1);
    let sm = Recorder::default();
    let node = Node::start(cfg, store, mem(), t, rx, sm.clone()).unwrap();
    for _ in 0..500 {
        if node.status().raft.role == Role::Leader {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (acked, _) = node.propose(Bytes::from("safe")).await.unwrap();
    faults.fail(true);
    let r = node.propose(Bytes::from("doomed")).await;
    assert!(matches!(r, Err(NodeError::Storage(_))), "{r:?}");
    assert!(node.status().failed.is_some());
    let r = node.propose(Bytes::from("after")).await;
    assert!(matches!(r, Err(NodeError::Storage(_))), "{r:?}");
    node.shutdown().await;
    // What was acknowledged is still there after a restart.
    let mut cfg = config(1);
    cfg.voters = vec![1];
    let store = RedbLogStore::open(dir.path().join("n1.redb")).unwrap();
    let (t, rx) = net.join(1);
    let sm2 = Recorder::default();
    let node = Node::start(cfg, store, mem(), t, rx, sm2.clone()).unwrap();
    node.wait_applied(acked, Duration::from_secs(5))
        .await
        .unwrap();
    let got = sm2.0.lock().unwrap().clone();
    assert!(got.iter().any(|(i, d)| *i == acked && d == "safe"));
    // "doomed" may or may not be there: its write failed part-way, and its
    // client was told the outcome is unknown, not that it was lost.
}

/// A durable node of the snapshot test: redb log, snapshot files.
fn durable(dir: &std::path::Path, net: &LocalNetwork, id: NodeId, sm: &Recorder) -> Node<usize> {
    let mut cfg = config(id);
    cfg.snapshot_entries = 20;
    cfg.keep_entries = 0;
    cfg.snapshot_chunk = 64;
    cfg.snapshot_window = 2;
    cfg.snapshot_ack_timeout = Duration::from_millis(200);
    let store = RedbLogStore::open(dir.join(format!("n{id}.redb"))).unwrap();
    let snaps = FileSnapshots::open(dir.join(format!("n{id}.snapshots"))).unwrap();
    let (t, rx) = net.join(id);
    Node::start(cfg, store, Arc::new(snaps), t, rx, sm.clone()).unwrap()
}

/// The leader compacts its log behind snapshots while a follower is down;
/// the follower comes back, gets the snapshot in many small chunks, and
/// ends with exactly the state of the others. A node restarted on its
/// files starts from its own latest snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_the_compacted_log_catches_up_by_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let net = LocalNetwork::new();
    let sms: Vec<Recorder> = (0..3).map(|_| Recorder::default()).collect();
    let mut nodes: Vec<Node<usize>> = (1..=3)
        .map(|id| durable(dir.path(), &net, id, &sms[id as usize - 1]))
        .collect();
    let leader = loop {
        if let Some(l) = nodes.iter().position(|n| n.status().is_leader()) {
            break l;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let behind = (leader + 1) % 3;
    nodes[behind].shutdown().await;
    let mut last = 0;
    for i in 0..100 {
        let data = Bytes::from(format!("entry {i} {}", "x".repeat(i % 7)));
        last = nodes[leader].propose(data).await.unwrap().0;
    }
    let s = nodes[leader].status().raft;
    assert!(s.snapshot >= 80, "the leader took snapshots: {s:?}");
    assert!(s.first_index > 80, "and compacted its log: {s:?}");
    *sms[behind].0.lock().unwrap() = Vec::new();
    nodes[behind] = durable(dir.path(), &net, behind as NodeId + 1, &sms[behind]);
    nodes[behind]
        .wait_applied(last, Duration::from_secs(20))
        .await
        .unwrap();
    let s = nodes[behind].status().raft;
    assert!(
        s.snapshot > 1 && s.first_index > 1,
        "caught up by snapshot: {s:?}"
    );
    let want = sms[leader].0.lock().unwrap().clone();
    assert_eq!(*sms[behind].0.lock().unwrap(), want);
    // Restarted on its files, a node starts from its snapshot and replays
    // only the log after it.
    let other = 3 - leader - behind;
    nodes[other].shutdown().await;
    let fresh = Recorder::default();
    nodes[other] = durable(dir.path(), &net, other as NodeId + 1, &fresh);
    nodes[other]
        .wait_applied(last, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(*fresh.0.lock().unwrap(), want);
    for n in &nodes {
        n.shutdown().await;
    }
}

/// The byte policy: with no entry count set, a snapshot comes once enough
/// bytes of entries were applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_follow_the_byte_budget_too() {
    let net = LocalNetwork::new();
    let mut cfg = config(1);
    cfg.voters = vec![1];
    cfg.snapshot_entries = 0;
    cfg.snapshot_bytes = 2_000;
    cfg.keep_entries = 0;
    let (t, rx) = net.join(1);
    let node = Node::start(cfg, MemLogStore::new(), mem(), t, rx, Recorder::default()).unwrap();
    while !node.status().is_leader() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut last = 0;
    for _ in 0..10 {
        last = node.propose(Bytes::from(vec![b'x'; 100])).await.unwrap().0;
    }
    let s = node.status().raft;
    assert_eq!(
        s.snapshot, 0,
        "about 1,200 bytes applied: no snapshot yet: {s:?}"
    );
    for _ in 0..10 {
        last = node.propose(Bytes::from(vec![b'x'; 100])).await.unwrap().0;
    }
    for _ in 0..100 {
        if node.status().raft.snapshot > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let s = node.status().raft;
    assert!(s.snapshot > 0 && s.snapshot <= last, "{s:?}");
    assert!(s.first_index > 1, "and compacted: {s:?}");
    node.shutdown().await;
}
