//! The driver's snapshot work: loading the latest one at start, taking
//! them by policy, streaming them to followers that need them, and
//! receiving and installing one from the leader.

use super::super::snapshot::{Incoming, SenderDone, SenderSpec, spawn_sender};
use super::super::storage::{Job, LogStart};
use super::super::{NodeError, StateMachine, Transport};
use super::{Driver, Event};
use crate::Message;
use crate::message::{Body, SnapshotMeta};
use crate::storage::{LogStore, SnapshotStore};
use crate::types::{NodeId, Role};
use bytes::Bytes;
use std::time::Instant;

/// Loads the latest snapshot into the state machine and makes the log
/// store agree with it (a crash may have come between storing a snapshot
/// received from the leader and resetting the log).
pub(super) fn load_snapshot<S: LogStore, M: StateMachine>(
    store: &mut S,
    snaps: &dyn SnapshotStore,
    sm: &mut M,
) -> Result<Option<SnapshotMeta>, NodeError> {
    let fail = |e: S::Error| NodeError::Storage(e.to_string());
    let io = |what: &str, e: std::io::Error| NodeError::Storage(format!("{what}: {e}"));
    let stored = store.state().map_err(fail)?;
    let Some(meta) = snaps.latest().map_err(|e| io("reading snapshots", e))? else {
        if stored.purged.0 > 0 {
            return Err(NodeError::Storage(format!(
                "the log was compacted up to {} but no snapshot was found",
                stored.purged.0
            )));
        }
        return Ok(None);
    };
    let view = read_verified::<M>(snaps, &meta).map_err(|e| io("reading the snapshot", e))?;
    sm.restore(view);
    if meta.index > stored.purged.0 {
        let holds = meta.index <= stored.last_index
            && store.term(meta.index).map_err(fail)? == Some(meta.term);
        if holds {
            store.purge_to(meta.index).map_err(fail)?;
        } else {
            store.reset_to(meta.index, meta.term).map_err(fail)?;
        }
    } else if meta.index < stored.purged.0 {
        return Err(NodeError::Storage(format!(
            "the log was compacted up to {} but the latest snapshot is at {}",
            stored.purged.0, meta.index
        )));
    }
    Ok(Some(meta))
}

/// Reads snapshot `meta` into a state machine view, then reads on to the
/// end of the stream, where the store checks the digest: a view is only
/// used once every byte of it was verified.
pub(super) fn read_verified<M: StateMachine>(
    snaps: &dyn SnapshotStore,
    meta: &SnapshotMeta,
) -> std::io::Result<M::Snapshot> {
    let mut r = snaps.open(meta)?;
    let view = M::read_snapshot(&mut r)?;
    let rest = std::io::copy(&mut r, &mut std::io::sink())?;
    if rest > 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{rest} bytes after the state machine's snapshot"),
        ));
    }
    Ok(view)
}

impl<T: Transport, M: StateMachine> Driver<T, M> {
    /// Takes a snapshot when the policy says so: every `snapshot_entries`
    /// entries or `snapshot_bytes` bytes of them, or (log reduction) once
    /// every member has applied `reduction_step` entries past the log's
    /// start.
    pub(super) fn maybe_snapshot(&mut self) {
        if self.taking_snapshot || self.failed.is_some() {
            return;
        }
        let log = self.raft.log();
        let applied = log.applied;
        let last = self.raft.snapshot().map_or(0, |s| s.index);
        let due = self.force_snapshot
            || if self.cfg.log_reduction {
                let floor = self.raft.status().all_applied;
                floor >= log.first_index() - 1 + self.cfg.reduction_step.max(1)
            } else {
                let by_count =
                    self.cfg.snapshot_entries > 0 && applied >= last + self.cfg.snapshot_entries;
                let by_bytes = self.cfg.snapshot_bytes > 0
                    && self.bytes_since_snapshot >= self.cfg.snapshot_bytes;
                by_count || by_bytes
            };
        // A forced snapshot may be taken at the latest one's index: it
        // replaces a damaged copy of the same state.
        if !due || applied < last || (applied == last && !self.force_snapshot) || applied == 0 {
            return;
        }
        let Some(term) = log.term(applied) else {
            return;
        };
        let meta = SnapshotMeta {
            index: applied,
            term,
            membership: self.raft.membership_at(applied).clone(),
            digest: None,
        };
        let view = self.sm.snapshot();
        self.taking_snapshot = true;
        self.bytes_since_snapshot = 0;
        let (snaps, events) = (self.snaps.clone(), self.events.clone());
        let save = self.metrics.snapshot_save.clone();
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let r = (|| -> std::io::Result<SnapshotMeta> {
                let mut sink = snaps.create()?;
                M::write_snapshot(view, &mut sink)?;
                sink.commit(&meta)
            })();
            if r.is_ok() {
                save.observe(started.elapsed().as_secs_f64());
            }
            let _ = events.send(Event::Taken(r.map_err(|e| e.to_string())));
        });
    }

    pub(super) fn on_event(&mut self, e: Event<M::Snapshot>) {
        match e {
            Event::Taken(Ok(meta)) => {
                self.taking_snapshot = false;
                self.force_snapshot = false;
                self.scrub_replacement();
                let compact_to = if self.cfg.log_reduction {
                    self.raft.status().all_applied
                } else {
                    meta.index.saturating_sub(self.cfg.keep_entries)
                };
                let before = self.raft.log().first_index() - 1;
                let index = meta.index;
                match self.raft.compact(meta, compact_to) {
                    Ok(start) if start > before => {
                        tracing::debug!(snapshot = index, compacted = start, "snapshot taken");
                        self.queue(Job::start(LogStart::Purge(start)));
                    }
                    Ok(_) => tracing::debug!(snapshot = index, "snapshot taken"),
                    Err(e) => tracing::warn!("snapshot not used: {e}"),
                }
            }
            Event::Taken(Err(why)) => {
                self.taking_snapshot = false;
                self.metrics.snapshot_failures.inc();
                tracing::error!("taking a snapshot failed: {why}");
            }
            Event::Received(Ok((meta, view))) => {
                self.incoming = None;
                let log = self.raft.log();
                let holds = log.matches(meta.index, meta.term) && log.persisted >= meta.index;
                let start = if holds {
                    LogStart::Purge(meta.index)
                } else {
                    LogStart::Reset(meta.index, meta.term)
                };
                let index = meta.index;
                if self.raft.restore(meta) {
                    self.sm.restore(view);
                    // Queued before anything the restored log appends next.
                    self.queue(Job::start(start));
                    self.metrics.snapshots_installed.inc();
                    tracing::info!(snapshot = index, "installed a snapshot from the leader");
                }
            }
            Event::Received(Err(why)) => {
                self.incoming = None;
                tracing::warn!("receiving a snapshot failed: {why}");
            }
            Event::Sender(SenderDone::Delivered(to)) => {
                self.senders.remove(&to);
                self.delivered.insert(to, Instant::now());
                self.metrics.snapshots_sent.inc();
            }
            Event::Scrubbed(r) => self.on_scrubbed(r),
            Event::Sender(SenderDone::Failed(to, why)) => {
                tracing::warn!(peer = to, "snapshot transfer abandoned: {why}");
                self.metrics.snapshot_sends_failed.inc();
                self.senders.remove(&to);
                self.raft.report_snapshot(to, false);
            }
        }
        self.advance();
    }

    pub(super) fn start_sender(&mut self, to: NodeId, meta: SnapshotMeta) {
        if self.senders.get(&to).is_some_and(|s| s.meta == meta) {
            return;
        }
        tracing::info!(peer = to, snapshot = meta.index, "sending a snapshot");
        self.delivered.remove(&to);
        let spec = SenderSpec {
            snaps: self.snaps.clone(),
            transport: self.transport.clone(),
            from: self.raft.id(),
            to,
            term: self.raft.term(),
            mode: self.raft.mode(),
            storage: self.raft.storage(),
            meta,
            chunk: self.cfg.snapshot_chunk,
            window: self.cfg.snapshot_window,
            ack_timeout: self.cfg.snapshot_ack_timeout,
            retries: self.cfg.snapshot_retries,
        };
        let events = self.events.clone();
        let h = spawn_sender(spec, move |d| {
            let _ = events.send(Event::Sender(d));
        });
        self.senders.insert(to, h);
    }

    /// Per tick: stops transfers nobody needs any more (leadership lost,
    /// the peer caught up or left), and gives up on a delivered snapshot
    /// the follower never reported installed.
    pub(super) fn watch_transfers(&mut self) {
        if self.senders.is_empty() && self.delivered.is_empty() {
            return;
        }
        let s = self.raft.status();
        let snapshotting = |id: NodeId| {
            s.role == Role::Leader && s.peers.iter().any(|p| p.id == id && p.snapshotting)
        };
        self.senders.retain(|&id, _| snapshotting(id));
        let patience = self.cfg.snapshot_ack_timeout * (self.cfg.snapshot_retries + 1);
        let mut stuck = Vec::new();
        self.delivered.retain(|&id, at| {
            if !snapshotting(id) {
                return false;
            }
            if at.elapsed() > patience {
                stuck.push(id);
                return false;
            }
            true
        });
        for id in stuck {
            tracing::warn!(
                peer = id,
                "a delivered snapshot was never installed; sending again"
            );
            self.raft.report_snapshot(id, false);
        }
    }

    /// Snapshot transfer messages the protocol passed on.
    pub(super) fn on_snapshot_msg(&mut self, m: Message) {
        match m.body {
            Body::SnapshotAck { index, offset } => {
                if let Some(s) = self.senders.get(&m.from)
                    && s.meta.index == index
                {
                    s.ack(offset);
                }
            }
            Body::SnapshotChunk {
                meta,
                offset,
                data,
                done,
            } => self.on_chunk(m.from, meta, offset, data, done),
            _ => {}
        }
    }

    /// Follower: stores a chunk if it is the next one expected, and always
    /// says where it stands so the leader resends from there.
    fn on_chunk(&mut self, from: NodeId, meta: SnapshotMeta, offset: u64, data: Bytes, done: bool) {
        let index = meta.index;
        let same = self.incoming.as_ref().is_some_and(|i| i.meta == meta);
        if !same {
            if offset != 0 {
                self.raft.snapshot_ack(from, index, 0);
                return;
            }
            match self.snaps.create() {
                Ok(sink) => {
                    self.incoming = Some(Incoming {
                        meta: meta.clone(),
                        sink: Some(sink),
                        written: 0,
                    });
                }
                Err(e) => {
                    tracing::error!("cannot store an incoming snapshot: {e}");
                    return;
                }
            }
        }
        let inc = self.incoming.as_mut().expect("set above");
        let Some(sink) = inc.sink.as_mut() else {
            return; // complete, being installed
        };
        if offset != inc.written {
            let written = inc.written;
            self.raft.snapshot_ack(from, index, written);
            return;
        }
        if let Err(e) = sink.write_all(&data) {
            tracing::error!("writing an incoming snapshot: {e}");
            self.incoming = None;
            return;
        }
        inc.written += data.len() as u64;
        let written = inc.written;
        if done {
            let sink = inc.sink.take().expect("checked above");
            let (snaps, events) = (self.snaps.clone(), self.events.clone());
            tokio::task::spawn_blocking(move || {
                let r = (|| -> std::io::Result<(SnapshotMeta, M::Snapshot)> {
                    let meta = sink.commit(&meta)?;
                    let view = read_verified::<M>(snaps.as_ref(), &meta)?;
                    Ok((meta, view))
                })();
                let _ = events.send(Event::Received(r.map_err(|e| e.to_string())));
            });
        }
        self.raft.snapshot_ack(from, index, written);
    }
}
