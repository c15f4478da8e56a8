//! How a node learns that it was removed from the cluster (or was never
//! added: a node started with `-b` naming a running cluster instead of
//! `--join` looks the same from outside, and is as wrong). Once removed,
//! nobody sends it anything, so it finds out one of two ways: its own log
//! holds a committed configuration without it (a leader that removed
//! itself, or a follower that got the change), or a peer refuses its
//! connection naming a committed configuration newer than any it has
//! (`raft_net::Refusal`). Either way the cluster decided for good: a
//! committed configuration is never undone, and node ids are not reused.

use raft_core::Index;
use raft_core::node::Node;
use raft_kv::Output;
use raft_net::{ConfigStamp, Refusal, Transport};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// This node's own view of its configuration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Own {
    /// Whether the node is in its newest configuration.
    pub member: bool,
    /// That configuration's index.
    pub conf_index: Index,
    pub commit: Index,
}

/// Whether this node was removed, from its own view and a peer's latest
/// refusal: the reason if certain, `None` otherwise.
pub(crate) fn judge(own: Own, refusal: Option<Refusal>) -> Option<String> {
    if !own.member && own.commit >= own.conf_index {
        return Some(format!(
            "the committed configuration at index {} does not include this node",
            own.conf_index
        ));
    }
    let r = refusal.filter(|r| r.config.committed)?;
    // A configuration newer than this node's, or (when this node already
    // knows it is not in its own) the same one, committed. Index 0 is the
    // founding configuration, which is no log entry but what each node
    // was started with: a peer's founding configuration without this node
    // means it was never of that cluster (started with `-b` naming a
    // running cluster instead of `--join`).
    let newer = if own.member && own.conf_index > 0 {
        r.config.index > own.conf_index
    } else {
        r.config.index >= own.conf_index
    };
    newer.then(|| {
        format!(
            "node {} has committed a configuration without this node (index {}; this node's newest is {})",
            r.peer, r.config.index, own.conf_index
        )
    })
}

/// Tells the transport where refused nodes' `NotMember` answers come from.
pub(crate) fn serve_stamps(node: &Node<Output>, transport: &Transport) {
    let status = node.watch_status();
    transport.set_config_source(move || {
        let s = status.borrow();
        ConfigStamp {
            index: s.raft.conf_index,
            committed: s.raft.commit >= s.raft.conf_index,
        }
    });
}

/// Why a node stops by itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The cluster's committed configuration does not include it.
    Removed(String),
    /// Its storage is not the one the cluster knows for its id: it lost
    /// its state (`raft_core::Status::replaced`).
    LostState(String),
}

/// What a node that lost its state is told.
pub(crate) fn lost_state(id: raft_core::NodeId, r: raft_core::Replaced) -> String {
    let by = match r.peer {
        Some(p) => format!("node {p} knows it"),
        None => "this node's own log records it".into(),
    };
    format!(
        "this node's storage is not the one the cluster knows as node {id}: {by} with storage \
         {:016x}, and this storage is {:016x}. It lost the state it had under that id (a wiped \
         or replaced disk, a copy put back), and its votes could elect a leader without \
         acknowledged writes, so it stops and changes nothing. Rebuild it from its peers under \
         its id: raft-mock --rebuild --confirm --join <a member's command port> (with its \
         other flags as before; docs/operations.md, \"Damaged storage\")",
        r.known, r.ours
    )
}

/// Watches for this node's removal, or its storage found replaced; sends
/// the reason once. A node joining a cluster judges its removal only once
/// it has seen itself a member (before that, every peer rightly refuses
/// it).
pub(crate) async fn watch(
    node: Node<Output>,
    transport: Arc<Transport>,
    joining: bool,
    tx: watch::Sender<Option<Stop>>,
) {
    let id = node.status().raft.id;
    let mut refusals = transport.watch_refusals();
    let status = node.watch_status();
    let mut seen_member = false;
    loop {
        let replaced = status.borrow().raft.replaced;
        if let Some(r) = replaced {
            let why = lost_state(id, r);
            tracing::error!("{why}");
            tx.send_replace(Some(Stop::LostState(why)));
            return;
        }
        let own = {
            let s = status.borrow();
            Own {
                member: s.raft.membership.members().contains(&id),
                conf_index: s.raft.conf_index,
                commit: s.raft.commit,
            }
        };
        seen_member |= own.member;
        let refusal = *refusals.borrow_and_update();
        let verdict = (seen_member || !joining)
            .then(|| judge(own, refusal))
            .flatten();
        if let Some(why) = verdict {
            tracing::error!("this node is not a member of the cluster: {why}");
            tx.send_replace(Some(Stop::Removed(why)));
            return;
        }
        // Refusals wake this at once; the node's own commits are checked
        // once a second (the status changes every round, too often to
        // follow).
        let second = Duration::from_secs(1);
        if let Ok(Err(_)) = tokio::time::timeout(second, refusals.changed()).await {
            // The transport is gone (shutting down): no busy loop.
            tokio::time::sleep(second).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own(member: bool, conf_index: Index, commit: Index) -> Own {
        Own {
            member,
            conf_index,
            commit,
        }
    }

    fn refusal(index: Index, committed: bool) -> Option<Refusal> {
        Some(Refusal {
            peer: 9,
            config: ConfigStamp { index, committed },
        })
    }

    #[test]
    fn only_a_committed_configuration_without_the_node_removes_it() {
        // Its own log: removed once the configuration without it commits.
        assert!(judge(own(false, 10, 9), None).is_none());
        assert!(judge(own(false, 10, 10), None).is_some());
        // A member, told of a newer committed configuration: removed.
        let me = own(true, 10, 12);
        assert!(judge(me, refusal(11, true)).is_some());
        // Not committed, or not newer (the peer is behind): nothing.
        assert!(judge(me, refusal(11, false)).is_none());
        assert!(judge(me, refusal(10, true)).is_none());
        assert!(judge(me, refusal(3, true)).is_none());
        assert!(judge(me, None).is_none());
        // Out of its own uncommitted configuration (after a restart: the
        // commit index is not durable), a committed refusal settles it.
        let out = own(false, 10, 4);
        assert!(judge(out, refusal(10, true)).is_some());
        assert!(judge(out, refusal(9, true)).is_none());
        // A node started with `-b` naming a running cluster that never
        // changed its members: its peers' founding configuration (index 0)
        // lacks it.
        assert!(judge(own(true, 0, 0), refusal(0, true)).is_some());
        assert!(judge(own(true, 0, 0), refusal(0, false)).is_none());
    }
}
