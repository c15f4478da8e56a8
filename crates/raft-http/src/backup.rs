//! `GET /v1/snapshot`: a consistent snapshot of the whole KV, streamed in
//! the snapshot format (`raftctl backup` saves it; `raft-mock --restore`
//! starts a new cluster from it).

use super::ApiContext;
use super::http::{self, ApiError, ApiResult, ChannelBody, Query};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Response;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use std::io::Write;
use tokio::sync::mpsc;

/// Writes into the response body in 256 KiB pieces.
struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

const PIECE: usize = 256 << 10;

impl Write for ChannelWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= PIECE {
            self.flush()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(piece)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

/// Linearizable by default (the snapshot holds every write acknowledged
/// before the request); `?stale` serves this node's state as it is.
pub async fn snapshot(ctx: &ApiContext, q: &Query) -> ApiResult {
    if !q.flag("stale") {
        ctx.node.read_barrier().await.map_err(ApiError::from_node)?;
    }
    let view = ctx.kv.read().clone();
    let index = view.applied();
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter {
            tx,
            buf: Vec::with_capacity(PIECE),
        };
        // A client that hangs up ends the stream with BrokenPipe.
        if let Err(e) = raft_kv::snapshot::write(&view, &mut w) {
            tracing::debug!("backup stream ended early: {e}");
        }
    });
    let mut r = Response::new(ChannelBody(rx).boxed());
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(http::with_index(r, index))
}
