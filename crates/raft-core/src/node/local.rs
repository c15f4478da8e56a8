//! An in-process network for nodes in one process: tests, benchmarks, and
//! embedding several nodes in one program. Messages move over channels,
//! unserialized; links can be cut to simulate partitions.

use super::Transport;
use crate::{Message, NodeId};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

#[derive(Default)]
struct Inner {
    inboxes: BTreeMap<NodeId, mpsc::Sender<Message>>,
    isolated: BTreeSet<NodeId>,
}

/// The shared switchboard; cheap to clone.
#[derive(Clone, Default)]
pub struct LocalNetwork {
    inner: Arc<Mutex<Inner>>,
}

impl LocalNetwork {
    pub fn new() -> Self {
        Self::default()
    }

    /// Connects node `id`, replacing an earlier connection of the same id
    /// (a restarted node). Returns its transport and inbox.
    pub fn join(&self, id: NodeId) -> (LocalTransport, mpsc::Receiver<Message>) {
        let (tx, rx) = mpsc::channel(64 * 1024);
        self.lock().inboxes.insert(id, tx);
        (
            LocalTransport {
                net: self.clone(),
                id,
            },
            rx,
        )
    }

    /// Cuts (or restores) every link of node `id`.
    pub fn isolate(&self, id: NodeId, cut: bool) {
        let mut g = self.lock();
        if cut {
            g.isolated.insert(id);
        } else {
            g.isolated.remove(&id);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct LocalTransport {
    net: LocalNetwork,
    id: NodeId,
}

impl Transport for LocalTransport {
    fn send(&self, m: Message) {
        let tx = {
            let g = self.net.lock();
            if g.isolated.contains(&self.id) || g.isolated.contains(&m.to) {
                return;
            }
            g.inboxes.get(&m.to).cloned()
        };
        if let Some(tx) = tx {
            let _ = tx.try_send(m);
        }
    }
}
