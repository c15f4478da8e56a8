//! `GET /v1/watch/<key>`: the changes to a key (or, with `?recurse`, to
//! every key under a prefix) as a stream of newline-delimited JSON events,
//! served by any node from its own applied state and its watch history
//! (`raft_kv::history`).
//!
//! Without `?from` the stream starts linearizably: after a read barrier at
//! index R (the `X-Raft-Index` header), with the events from R+1 on. With
//! `?from=N` it starts at index N, which makes a watch resumable on any
//! node: every replica records the same events in the same order. A `from`
//! older than the history answers 410 with the oldest index served.
//!
//! Lines besides events: `progress` (every event up to its `Index` was
//! sent; said first, then whenever the stream was quiet for `PROGRESS`, so
//! an idle watcher can resume from a recent index), and one last line before the node
//! ends the stream: `compacted` when the watcher fell so far behind that
//! the history no longer holds where it is, `end` when the node shuts down.

use super::ApiContext;
use super::http::{self, ApiError, ApiResult, ChannelBody, Query};
use base64::Engine;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use raft_core::Index;
use raft_kv::KvState;
use raft_kv::history::{Compacted, Event};
use serde_json::json;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A quiet stream says how far it has come this often.
pub const PROGRESS: Duration = Duration::from_secs(5);
/// Chunks queued per watcher (the last slot is kept for the final line).
const QUEUE: usize = 16;
/// Events looked at per pass, and bytes of events sent per chunk, at most:
/// a pass holds the state's read lock, and a watcher's queue is bounded
/// by `QUEUE` chunks.
const SCAN: usize = 4096;
const CHUNK: usize = 256 << 10;

/// Which keys a watch is about.
#[derive(Clone, Debug)]
pub struct Filter {
    pub ns: String,
    pub key: String,
    /// `key` is a prefix.
    pub prefix: bool,
}

impl Filter {
    fn wants(&self, e: &Event) -> bool {
        e.ns == self.ns
            && if self.prefix {
                e.key.starts_with(self.key.as_str())
            } else {
                e.key == self.key
            }
    }
}

/// What one pass over the history found.
#[derive(Debug, PartialEq, Eq)]
pub struct Batch {
    /// The matching events, one JSON object per line.
    pub lines: Vec<u8>,
    /// Where the next pass starts.
    pub next: Index,
    /// The pass stopped at a bound: more is there to read now.
    pub more: bool,
}

/// The events from `pos` on that `filter` wants, as lines; whole indexes
/// only (a pass stops between indexes, never inside one).
pub fn collect(kv: &KvState, filter: &Filter, pos: Index) -> Result<Batch, Compacted> {
    let mut lines = Vec::new();
    let mut current = None;
    for (scanned, e) in kv.history().since(pos)?.enumerate() {
        if current != Some(e.index) {
            if scanned >= SCAN || lines.len() >= CHUNK {
                return Ok(Batch {
                    lines,
                    next: e.index,
                    more: true,
                });
            }
            current = Some(e.index);
        }
        if filter.wants(e) {
            // Encoded once, for every watcher.
            lines.extend_from_slice(&e.encoded_or(|| line(event_json(e))));
        }
    }
    Ok(Batch {
        lines,
        next: pos.max(kv.applied() + 1),
        more: false,
    })
}

/// An event as watchers see it.
pub fn event_json(e: &Event) -> serde_json::Value {
    let mut v = json!({
        "Index": e.index,
        "Op": e.change.name(),
        "Namespace": e.ns.as_str(),
        "Key": e.key.as_str(),
    });
    if let Some(value) = &e.value {
        v["Value"] = base64::engine::general_purpose::STANDARD
            .encode(value)
            .into();
        v["CreateIndex"] = e.create_index.into();
        v["ModifyIndex"] = e.index.into();
    }
    v
}

fn line(v: serde_json::Value) -> Bytes {
    let mut b = serde_json::to_vec(&v).expect("JSON values serialize");
    b.push(b'\n');
    Bytes::from(b)
}

fn compacted_line(c: Compacted, pos: Index) -> Bytes {
    line(json!({
        "Op": "compacted",
        "Oldest": c.oldest,
        "Next": pos,
        "Reason": format!(
            "this watcher fell behind: the events from {pos} were dropped from the history; \
             re-read, then watch from the index of that read + 1"
        ),
    }))
}

fn gone(c: Compacted, from: Index) -> ApiResult {
    let v = json!({
        "error": format!(
            "the events from {from} were compacted: this node's history starts at {}",
            c.oldest
        ),
        "oldest": c.oldest,
    });
    Ok(http::json(StatusCode::GONE, &v))
}

/// `GET /v1/watch/<key>?recurse&ns=&from=&stale`.
pub async fn watch(ctx: &ApiContext, key: &str, q: &Query) -> ApiResult {
    let filter = Filter {
        ns: super::kv::namespace(q)?,
        key: key.to_string(),
        prefix: q.flag("recurse"),
    };
    super::kv::check_key(key, filter.prefix)?;
    let (from, at) = match q.u64("from")? {
        Some(0) => return Err(ApiError::bad_request("?from= counts from 1")),
        Some(from) => (from, from - 1),
        None => {
            let at = super::kv::read_barrier(ctx, q).await?;
            (at + 1, at)
        }
    };
    if let Err(c) = ctx.kv.read().history().since(from) {
        return gone(c, from);
    }
    let (tx, rx) = mpsc::channel::<Bytes>(QUEUE);
    let stream = Stream {
        ctx: StreamCtx {
            kv: ctx.kv.clone(),
            draining: ctx.draining.clone(),
        },
        filter,
        pos: from,
    };
    let watching = ctx.metrics.watching();
    tokio::spawn(async move {
        if stream.run(tx).await {
            watching.cut();
        }
    });
    let mut r = Response::new(ChannelBody(rx).boxed());
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(http::with_index(r, at))
}

/// What a stream needs of the node.
struct StreamCtx {
    kv: raft_kv::KvStore,
    draining: tokio::sync::watch::Receiver<bool>,
}

/// One watcher's stream.
struct Stream {
    ctx: StreamCtx,
    filter: Filter,
    /// Every event below it was sent.
    pos: Index,
}

/// How a stream ends.
enum End {
    /// The client went away (nothing more to say).
    Gone,
    /// Said as the last line.
    Say(Bytes),
    /// The watcher fell out of the history: said as the last line.
    Cut(Bytes),
}

impl Stream {
    /// Sends events until the client hangs up, the watcher falls out of
    /// the history, or the node drains; whether it fell out.
    async fn run(mut self, tx: mpsc::Sender<Bytes>) -> bool {
        // The last slot of the queue, so the final line always fits.
        let Ok(last) = tx.clone().reserve_owned().await else {
            return false;
        };
        match self.send_events(&tx).await {
            End::Gone => false,
            End::Say(b) => {
                last.send(b);
                false
            }
            End::Cut(b) => {
                last.send(b);
                true
            }
        }
    }

    async fn send_events(&mut self, tx: &mpsc::Sender<Bytes>) -> End {
        // Subscribed before the first look, so no apply slips between.
        let mut applied = self.ctx.kv.subscribe();
        let mut draining = self.ctx.draining.clone();
        // First, where the stream starts (a client that did not name it
        // learns where to resume from even if nothing changes).
        if let Err(end) = self.send(tx, self.progress_line(), &mut applied).await {
            return end;
        }
        let mut said = Instant::now();
        loop {
            let batch = collect(&self.ctx.kv.read(), &self.filter, self.pos);
            let batch = match batch {
                Ok(b) => b,
                Err(c) => return End::Cut(compacted_line(c, self.pos)),
            };
            if !batch.lines.is_empty() {
                if let Err(end) = self.send(tx, Bytes::from(batch.lines), &mut applied).await {
                    return end;
                }
                said = Instant::now();
            }
            self.pos = batch.next;
            if batch.more {
                continue;
            }
            tokio::select! {
                r = applied.changed() => if r.is_err() { return End::Gone },
                () = tx.closed() => return End::Gone,
                () = super::drained(&mut draining) => return End::Say(self.end_line()),
                () = tokio::time::sleep_until(said + PROGRESS) => {
                    if let Err(end) = self.send(tx, self.progress_line(), &mut applied).await {
                        return end;
                    }
                    said = Instant::now();
                }
            }
        }
    }

    /// Queues a chunk; while the queue is full, cuts the watcher off if
    /// the history moves past it, and ends on a drain.
    async fn send(
        &self,
        tx: &mpsc::Sender<Bytes>,
        chunk: Bytes,
        applied: &mut tokio::sync::watch::Receiver<Index>,
    ) -> Result<(), End> {
        let mut draining = self.ctx.draining.clone();
        let send = tx.send(chunk);
        let mut send = std::pin::pin!(send);
        loop {
            tokio::select! {
                r = &mut send => return r.map_err(|_| End::Gone),
                () = super::drained(&mut draining) => return Err(End::Say(self.end_line())),
                r = applied.changed() => {
                    if r.is_err() {
                        return Err(End::Gone);
                    }
                    let kv = self.ctx.kv.read();
                    if let Err(c) = kv.history().since(self.pos) {
                        return Err(End::Cut(compacted_line(c, self.pos)));
                    }
                }
            }
        }
    }

    fn progress_line(&self) -> Bytes {
        line(json!({ "Op": "progress", "Index": self.pos - 1 }))
    }

    fn end_line(&self) -> Bytes {
        line(json!({
            "Op": "end",
            "Next": self.pos,
            "Reason": format!(
                "the node is shutting down; watch again from {} on another node",
                self.pos
            ),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::node::StateMachine;
    use raft_kv::KvStore;
    use raft_kv::command::{self, Op, Request};

    fn put(kv: &mut KvStore, index: Index, key: &str) {
        let op = Op::Put {
            ns: "default".into(),
            key: key.into(),
            value: Bytes::from_static(b"v"),
            cas: None,
            lease: None,
        };
        kv.apply(index, &command::encode(&Request { session: None, op }));
    }

    fn filter(key: &str, prefix: bool) -> Filter {
        Filter {
            ns: "default".into(),
            key: key.into(),
            prefix,
        }
    }

    fn keys(b: &Batch) -> Vec<(u64, String)> {
        String::from_utf8(b.lines.clone())
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["Index"].as_u64().unwrap(),
                    v["Key"].as_str().unwrap().into(),
                )
            })
            .collect()
    }

    #[test]
    fn a_pass_sends_what_the_filter_wants_from_its_position() {
        let mut kv = KvStore::new();
        for (i, k) in ["a/1", "b", "a/2", "a"].iter().enumerate() {
            put(&mut kv, i as u64 + 1, k);
        }
        let state = kv.read();
        let b = collect(&state, &filter("a/", true), 2).unwrap();
        assert_eq!(keys(&b), vec![(3, "a/2".to_string())]);
        assert_eq!((b.next, b.more), (5, false));
        let b = collect(&state, &filter("a", false), 1).unwrap();
        assert_eq!(keys(&b), vec![(4, "a".to_string())]);
        // A position past the applied index stays where it is.
        assert_eq!(collect(&state, &filter("a", false), 9).unwrap().next, 9);
    }

    #[test]
    fn passes_stop_at_their_bounds_and_together_send_everything_once() {
        let mut kv = KvStore::new();
        let n = SCAN as u64 * 2 + 10;
        for i in 1..=n {
            put(&mut kv, i, if i % 2 == 0 { "k" } else { "other" });
        }
        let state = kv.read();
        let (mut pos, mut passes, mut seen) = (1, 0, Vec::new());
        loop {
            let b = collect(&state, &filter("k", false), pos).unwrap();
            assert!(b.lines.len() <= CHUNK + 200, "a chunk past its bound");
            seen.extend(keys(&b).into_iter().map(|(i, _)| i));
            passes += 1;
            pos = b.next;
            if !b.more {
                break;
            }
        }
        assert!(passes > 2, "the scan bound never stopped a pass");
        let want: Vec<u64> = (1..=n).filter(|i| i % 2 == 0).collect();
        assert_eq!(seen, want);
        assert_eq!(pos, n + 1);
    }

    #[test]
    fn a_position_below_the_history_is_compacted() {
        let mut kv = KvStore::with_history(3);
        for i in 1..=10 {
            put(&mut kv, i, "k");
        }
        let e = collect(&kv.read(), &filter("k", false), 2).unwrap_err();
        assert_eq!(e.oldest, 8);
    }
}
