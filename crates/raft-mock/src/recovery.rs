//! Operator actions on a node's storage, done before it starts: seeding a
//! new cluster from a backup, `solo` (recovery when a quorum is lost for
//! good) and `detach` (wiping a node's history so it can join another
//! cluster). Each is explicit and logged loudly.

use crate::MockError;
use raft_core::{LogStore, Membership, NodeId, SnapshotStore, WriteBatch};
use std::collections::BTreeMap;
use std::path::Path;

/// Seeds an empty node with a backup (`raftctl backup`): the backup
/// becomes its snapshot at index 1, term 1, and its log starts after it.
/// Every founding member restored from the same file starts from the same
/// state; members added later get it by snapshot.
pub(crate) fn restore_backup<S: LogStore>(
    store: &mut S,
    snaps: &dyn SnapshotStore,
    backup: &std::path::Path,
    membership: raft_core::Membership,
) -> Result<(), MockError>
where
    S::Error: std::fmt::Display,
{
    let bad = |why: String| MockError::Restore {
        path: backup.to_path_buf(),
        why,
    };
    let st = store.state().map_err(|e| bad(e.to_string()))?;
    let has_snapshot = snaps.latest().map_err(|e| bad(e.to_string()))?.is_some();
    if st.last_index > 0 || st.purged.0 > 0 || st.hard_state.term > 0 || has_snapshot {
        return Err(bad(
            "this node already has data; --restore only seeds a new, empty node".into(),
        ));
    }
    let open = || std::fs::File::open(backup).map_err(|e| bad(e.to_string()));
    let state = raft_kv::snapshot::read(&mut open()?).map_err(|e| bad(e.to_string()))?;
    // The new cluster's log goes on from index 1.
    let state = state.rebased_at(1);
    let mut sink = snaps.create().map_err(|e| bad(e.to_string()))?;
    {
        let mut out = std::io::BufWriter::new(&mut sink);
        raft_kv::snapshot::write(&state, &mut out)
            .and_then(|()| std::io::Write::flush(&mut out))
            .map_err(|e| bad(e.to_string()))?;
    }
    let meta = raft_core::SnapshotMeta {
        index: 1,
        term: 1,
        membership,
        digest: None,
    };
    sink.commit(&meta).map_err(|e| bad(e.to_string()))?;
    store.reset_to(1, 1).map_err(|e| bad(e.to_string()))?;
    let hs = raft_core::HardState {
        term: 1,
        vote: None,
        commit: 1,
    };
    store
        .write(raft_core::WriteBatch {
            hard_state: Some(hs),
            ..Default::default()
        })
        .map_err(|e| bad(e.to_string()))?;
    tracing::warn!(
        backup = %backup.display(), keys = state.keys(),
        "restored a backup: this node starts a new cluster from it"
    );
    Ok(())
}

/// `solo`: makes this node, without consensus, the only voter of a new
/// one-node cluster that keeps its whole log. The configuration is set as
/// of the node's last index, so configuration entries in the log are older
/// and ignored; as the only voter it elects itself and commits everything
/// it holds, including entries the old cluster may never have committed.
pub(crate) fn solo<S: LogStore>(
    store: &mut S,
    snaps: &dyn SnapshotStore,
    id: NodeId,
    name: &str,
) -> Result<(), MockError>
where
    S::Error: std::fmt::Display,
{
    let fail = |why: String| MockError::Settings(format!("--solo: {why}"));
    let st = store.state().map_err(|e| fail(e.to_string()))?;
    let snap = snaps.latest().map_err(|e| fail(e.to_string()))?;
    let index = st.last_index.max(snap.map_or(0, |s| s.index));
    if index == 0 && st.hard_state.term == 0 {
        return Err(fail("this node has no history to keep".into()));
    }
    let mut m = Membership::new([id]);
    m.addresses = BTreeMap::from([(id, name.to_string())]);
    store
        .write(WriteBatch {
            membership: Some((index, &m)),
            ..Default::default()
        })
        .map_err(|e| fail(e.to_string()))?;
    tracing::warn!(
        node = %name, last_index = index,
        "SOLO: this node is now the only member of a new one-node cluster, \
         without its former peers' consent; its former cluster must not be \
         restarted alongside it"
    );
    Ok(())
}

/// `detach`: deletes this node's history (its log, write-ahead log and
/// snapshots) so
/// it starts as a new, empty node, e.g. to join another cluster. Remove it
/// from its old cluster first (`raftctl detach`), or the old cluster keeps
/// counting it as a member.
pub(crate) fn detach(file: &Path, snapshots: &Path) -> Result<(), MockError> {
    let fail = |why: String| MockError::Storage {
        path: file.to_path_buf(),
        why: format!("--detach: {why}"),
    };
    raft_log::remove(file).map_err(|e| fail(e.to_string()))?;
    if snapshots.exists() {
        std::fs::remove_dir_all(snapshots).map_err(|e| fail(e.to_string()))?;
    }
    tracing::warn!(
        file = %file.display(),
        "DETACH: deleted this node's history; it starts as a new, empty node"
    );
    Ok(())
}
