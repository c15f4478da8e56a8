//! Rebuilding a node from its peers (`--rebuild --confirm --join ADDR`),
//! after its storage was damaged or lost.
//!
//! A voter that lost its storage may have voted, and acknowledged entries,
//! that it no longer holds: back under its old id with an empty log, its
//! vote could elect a leader missing committed entries, or be cast twice
//! in one term. So: its files are moved aside (never deleted: an operator
//! may want them), a durable marker says a rebuild is under way, and until
//! the marker is cleared the node starts with `Config::rebuilding` (no
//! votes, no campaigns, every term it enters counted as voted in). It asks
//! the cluster to rebuild it; the leader demotes it to a learner, which
//! ends the abstention (its lost acknowledgements no longer count), sends
//! it a snapshot and the log, and promotes it back once it has caught up.
//! The argument is in docs/architecture.md, the procedure in
//! docs/operations.md.

use crate::{MockError, Output, snapshot_dir};
use raft_core::node::Node;
use raft_http::client::HttpsClient;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The marker beside the storage file: present while a rebuild is under way.
pub(crate) fn marker(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".rebuilding");
    PathBuf::from(name)
}

fn sync_parent(path: &Path) -> std::io::Result<()> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    std::fs::File::open(parent.unwrap_or(Path::new(".")))?.sync_all()
}

/// Moves this node's storage aside and sets the marker, durably; a rebuild
/// already under way (the marker is there) is continued, not restarted.
/// Refused while the node's peer address is taken: the node, still
/// running, would go on writing into the files moved aside.
pub(crate) fn prepare(file: &Path, peer: std::net::SocketAddr) -> Result<(), MockError> {
    let fail = |why: String| MockError::Storage {
        path: file.to_path_buf(),
        why: format!("--rebuild: {why}"),
    };
    if let Err(e) = std::net::TcpListener::bind(peer) {
        return Err(fail(format!(
            "{peer} is in use ({e}): is this node still running? Stop it first"
        )));
    }
    let mark = marker(file);
    if mark.exists() {
        tracing::warn!(file = %file.display(), "continuing the rebuild under way");
        return Ok(());
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut moved = Vec::new();
    for p in [
        file.to_path_buf(),
        raft_log::wal_dir(file),
        snapshot_dir(file),
    ] {
        if p.exists() {
            let mut to = p.as_os_str().to_owned();
            to.push(format!(".damaged-{stamp}"));
            std::fs::rename(&p, &to).map_err(|e| fail(format!("moving {}: {e}", p.display())))?;
            moved.push(PathBuf::from(to));
        }
    }
    std::fs::write(&mark, stamp.to_string()).map_err(|e| fail(e.to_string()))?;
    std::fs::File::open(&mark)
        .and_then(|f| f.sync_all())
        .and_then(|()| sync_parent(&mark))
        .map_err(|e| fail(e.to_string()))?;
    tracing::warn!(
        file = %file.display(), moved = ?moved,
        "REBUILD: this node's storage was moved aside; it starts empty under its old id and \
         is rebuilt from its peers"
    );
    Ok(())
}

/// Where and as whom a node being rebuilt asks the cluster to rebuild it.
pub(crate) struct Ask {
    pub client: HttpsClient,
    /// A member's command port.
    pub via: String,
    /// This node's member address.
    pub me: String,
}

/// Until the node sees itself demoted, asks the cluster (when `ask` says
/// where) to rebuild it; then clears the marker. The request is
/// idempotent, so retrying across leader changes is safe. Without `ask`
/// (restarted without --join) it only waits, for a demotion asked before.
pub(crate) async fn run(node: Node<Output>, ask: Option<Ask>, mark: PathBuf) {
    let id = node.status().raft.id;
    let mut rx = node.watch_status();
    let done = |s: &raft_core::node::NodeStatus| !s.raft.rebuilding;
    while !done(&rx.borrow_and_update()) {
        if let Some(a) = &ask {
            let path = format!("/v1/operator/raft/peer?address={}&id={id}&rebuild", a.me);
            let put = raft_http::client::Method::PUT;
            let via = &a.via;
            match a
                .client
                .request(via, put, &path, &[], Default::default())
                .await
            {
                Ok(r) if r.status.is_success() => tracing::info!(%via, "asked to be rebuilt"),
                Ok(r) => tracing::warn!(
                    %via, status = %r.status,
                    "rebuild refused: {}", String::from_utf8_lossy(&r.body)
                ),
                Err(e) => tracing::warn!(%via, "cannot ask to be rebuilt: {e}"),
            }
        }
        if let Ok(Err(_)) = tokio::time::timeout(Duration::from_secs(2), rx.wait_for(done)).await {
            return; // the node stopped
        }
    }
    match std::fs::remove_file(&mark).and_then(|()| sync_parent(&mark)) {
        Ok(()) => tracing::info!("rebuilt: demoted to learner, catching up to be promoted"),
        Err(e) => tracing::error!(marker = %mark.display(), "cannot clear the rebuild marker: {e}"),
    }
}
