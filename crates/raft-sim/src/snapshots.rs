//! Snapshots in the simulation: nodes snapshot their register store and
//! compact their logs at random; a follower behind a compacted log gets
//! the leader's snapshot over the lossy network; what each snapshot holds
//! is checked against every other of the same (index, term).

use crate::linearizability::{Key, Value};
use crate::{Body, Sim, Write};
use bytes::Bytes;
use raft_core::{Message, NodeId, SnapshotMeta};
use std::collections::BTreeMap;

impl Sim {
    /// A node snapshots its register store at its applied index and
    /// compacts its log, keeping a random short tail.
    pub(crate) fn take_snapshot(&mut self, id: NodeId) {
        let Some(r) = self.nodes[&id].raft.as_ref() else {
            return;
        };
        let applied = r.log().applied;
        if r.snapshot().is_some_and(|s| s.index >= applied) || applied == 0 {
            return;
        }
        let meta = SnapshotMeta {
            index: applied,
            term: r.log().term(applied).expect("applied entry in the log"),
            membership: r.membership_at(applied).clone(),
            digest: None,
        };
        let kv = self.nodes[&id].kv.clone();
        if let Err(e) = self.record_snapshot(&meta, &kv) {
            self.violation = Some(e);
            return;
        }
        let keep = self.rng.range(0, 6);
        let n = self.nodes.get_mut(&id).expect("node exists");
        n.snap = Some((meta.clone(), kv));
        let r = n.raft.as_mut().expect("live");
        let start = r
            .compact(meta, applied.saturating_sub(keep))
            .expect("valid snapshot");
        if start > n.log_prev.0 {
            let term = r.log().term(start).expect("compaction point");
            n.durable_log.retain(|e| e.index > start);
            n.log_prev = (start, term);
        }
        if self.cfg.trace {
            eprintln!(
                "t={} node {id} SNAPSHOT at {applied}, log after {start}",
                self.now
            );
        }
    }

    /// State machine safety for snapshots: every snapshot of (index, term)
    /// holds the same state, whoever took it.
    pub(crate) fn record_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        kv: &BTreeMap<Key, Value>,
    ) -> Result<(), String> {
        match self.snapshot_states.get(&(meta.index, meta.term)) {
            Some(seen) if seen != kv => Err(format!(
                "snapshot {}/{} differs between nodes: {seen:?} vs {kv:?}",
                meta.term, meta.index
            )),
            Some(_) => Ok(()),
            None => {
                self.snapshot_states
                    .insert((meta.index, meta.term), kv.clone());
                Ok(())
            }
        }
    }

    /// The leader's snapshot goes over the lossy network as one chunk; if
    /// it is lost, the transfer times out and the leader is told.
    pub(crate) fn send_snapshot(&mut self, from: NodeId, to: NodeId, meta: SnapshotMeta) {
        let r = self.nodes[&from].raft.as_ref().expect("live");
        let m = Message {
            from,
            to,
            term: r.term(),
            mode: r.mode(),
            storage: r.storage(),
            body: Body::SnapshotChunk {
                meta,
                offset: 0,
                data: Bytes::new(),
                done: true,
            },
        };
        self.transfers.push((from, to, self.tick + 30));
        self.net.send(self.now, m, &mut self.rng);
    }

    /// Transfers not done in time are reported failed.
    pub(crate) fn expire_transfers(&mut self) -> Result<(), String> {
        let tick = self.tick;
        let (due, later): (Vec<_>, Vec<_>) =
            self.transfers.drain(..).partition(|&(_, _, at)| at <= tick);
        self.transfers = later;
        for (from, to, _) in due {
            if let Some(r) = self.raft_mut(from) {
                r.report_snapshot(to, false);
                self.process(from)?;
            }
        }
        Ok(())
    }

    /// A follower received the snapshot: stored at once, installed, and
    /// the log reset queued behind the writes in flight.
    pub(crate) fn on_snapshot_msg(&mut self, id: NodeId, m: Message) -> Result<(), String> {
        let Body::SnapshotChunk { meta, .. } = m.body else {
            return Ok(());
        };
        let Some(kv) = self.snapshot_states.get(&(meta.index, meta.term)).cloned() else {
            return Err(format!(
                "node {id} got snapshot {}/{} nobody took",
                meta.term, meta.index
            ));
        };
        let n = self.nodes.get_mut(&id).expect("node exists");
        let r = n.raft.as_mut().expect("live");
        if !r.wants_snapshot(&meta) {
            return Ok(());
        }
        n.snap = Some((meta.clone(), kv.clone()));
        if !r.restore(meta.clone()) {
            return Ok(());
        }
        if self.cfg.trace {
            eprintln!(
                "t={} node {id} INSTALL snapshot {}/{}",
                self.now, meta.term, meta.index
            );
        }
        n.kv = kv;
        self.installs += 1;
        let w = Write {
            hard_state: None,
            entries: Vec::new(),
            messages: Vec::new(),
            reset: Some((meta.index, meta.term)),
        };
        self.queue_write(id, w);
        self.checker.on_restore(id, meta.index, meta.term)?;
        self.serve_reads(id);
        Ok(())
    }
}
