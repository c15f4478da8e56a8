//! An in-process network for nodes in one process: tests, benchmarks, and
//! embedding several nodes in one program. Messages move over channels,
//! unserialized; links can be cut to simulate partitions.

use super::Transport;
use crate::{Message, NodeId};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use tokio::sync::mpsc;

#[derive(Default)]
struct Inner {
    inboxes: BTreeMap<NodeId, mpsc::Sender<Message>>,
    isolated: BTreeSet<NodeId>,
}

/// The shared switchboard; cheap to clone.
#[derive(Clone, Default)]
pub struct LocalNetwork {
    inner: Arc<RwLock<Inner>>,
}

impl LocalNetwork {
    /// A network with no nodes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Connects node `id`, replacing an earlier connection of the same id
    /// (a restarted node). Returns its transport and inbox.
    pub fn join(&self, id: NodeId) -> (LocalTransport, mpsc::Receiver<Message>) {
        let (tx, rx) = mpsc::channel(64 * 1024);
        self.write().inboxes.insert(id, tx);
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
        let mut g = self.write();
        if cut {
            g.isolated.insert(id);
        } else {
            g.isolated.remove(&id);
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends take the read side only, so they do not queue behind each
    /// other.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// One node's end of a [`LocalNetwork`].
pub struct LocalTransport {
    net: LocalNetwork,
    id: NodeId,
}

impl Transport for LocalTransport {
    fn send(&self, m: Message) {
        let tx = {
            let g = self.net.read();
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
