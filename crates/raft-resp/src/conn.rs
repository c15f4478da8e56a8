//! One connection's loop: read what the client pipelined (up to
//! `max_pipeline` requests already in the buffer), plan each, carry the
//! plans out in order (consecutive writes as one batch of proposals,
//! consecutive reads behind one read barrier), write the replies in order.
//!
//! Order is the client's: a read after a write in the same pipeline waits
//! for the write to apply, and a write after a read is proposed only once
//! the read is answered.

use crate::Server;
use crate::cmd::{self, Local, Plan, Queued, Render};
use crate::codec::{ProtocolError, RespCodec};
use crate::frame::Frame;
use crate::session::Session;
use futures_util::{FutureExt, SinkExt, StreamExt};
use raft_core::node::NodeError;
use raft_http::{ProposeError, Proposed};
use raft_kv::multi::Watched;
use raft_kv::{Op, Output, Request};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;

/// The error reply for a failed read barrier.
pub fn node_error(e: &NodeError) -> Frame {
    match e {
        NodeError::NotLeader { .. } | NodeError::NoLeader => {
            Frame::coded("TRYAGAIN", format!("no leader: {e}; retry"))
        }
        NodeError::NoQuorum => Frame::coded("CLUSTERDOWN", e),
        _ => Frame::coded("CLUSTERDOWN", format!("{e}")),
    }
}

/// The error reply for a write that did not apply.
fn propose_error(e: &ProposeError) -> Frame {
    match e {
        ProposeError::NoLeader(_) => {
            Frame::coded("TRYAGAIN", format!("{e}; nothing was written, retry"))
        }
        ProposeError::Refused(_) => Frame::err(e),
        _ => Frame::coded("CLUSTERDOWN", format!("{e}; the write may still apply")),
    }
}

/// Serves one connection until the client leaves, breaks the protocol,
/// says QUIT, or the node drains.
pub async fn serve<S>(
    io: S,
    mut s: Session,
    srv: &Arc<Server>,
    mut drain: tokio::sync::watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let codec = RespCodec::new(srv.config.max_bulk, srv.config.max_request);
    let mut framed = Framed::new(io, codec);
    let mut applied = srv.api.kv.subscribe();
    loop {
        let first = tokio::select! {
            f = framed.next() => f,
            () = drained(&mut drain) => break,
            Ok(()) = applied.changed(), if s.subs.active() => {
                if publish(&mut framed, &mut s, srv).await.is_err() {
                    break;
                }
                continue;
            }
        };
        let mut batch = Vec::new();
        let mut broken = None;
        match first {
            None | Some(Err(ProtocolError::Io(_))) => break,
            Some(Err(e)) => broken = Some(e),
            Some(Ok(args)) => batch.push(args),
        }
        while broken.is_none() && batch.len() < srv.config.max_pipeline {
            match framed.next().now_or_never() {
                Some(Some(Ok(args))) => batch.push(args),
                Some(Some(Err(e))) => broken = Some(e),
                _ => break,
            }
        }
        let (replies, close) = run(batch, &mut s, srv).await;
        for (frame, resp3) in replies {
            framed.codec_mut().resp3 = resp3;
            if framed.feed(frame).await.is_err() {
                return;
            }
        }
        if let Some(e) = &broken {
            tracing::debug!(peer = %s.addr, "RESP protocol error: {e}");
            let _ = framed.feed(Frame::err(e)).await;
        }
        if framed.flush().await.is_err() || close {
            break;
        }
        if broken.is_some() {
            return linger(framed.into_inner()).await;
        }
    }
}

/// How long, and for how many bytes, a connection that broke the
/// protocol is read and discarded after its error reply.
const LINGER: (Duration, usize) = (Duration::from_secs(2), 8 << 20);

/// Closes a connection that broke the protocol so that its error reply
/// arrives: closing a socket with unread input makes the kernel send a
/// reset, which can destroy the reply before the client reads it (a
/// client still writing a huge inline request gets `ECONNRESET`). So
/// shut the write side (TLS close_notify, then FIN) and discard what
/// the client still sends, bounded by [`LINGER`], before the drop.
async fn linger<S>(mut io: S)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (time, bytes) = LINGER;
    let drain = async {
        if io.shutdown().await.is_err() {
            return;
        }
        let mut buf = vec![0u8; 16 << 10];
        let mut seen = 0;
        while seen < bytes {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen += n,
            }
        }
    };
    let _ = tokio::time::timeout(time, drain).await;
}

/// Once `drain` turns true (or its sender is gone).
pub async fn drained(drain: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = drain.wait_for(|d| *d).await;
}

/// Sends the keyspace notifications of what applied since the last
/// pass; `Err` when the connection is done (it fell behind the history,
/// or the client left).
async fn publish<S>(
    framed: &mut Framed<S, RespCodec>,
    s: &mut Session,
    srv: &Arc<Server>,
) -> Result<(), ()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let frames = s.subs.pass(&srv.api.kv.read());
    framed.codec_mut().resp3 = s.resp3;
    let Ok(frames) = frames else {
        let e = Frame::err("the subscriber fell behind the change history: disconnected");
        let _ = framed.send(e).await;
        return Err(());
    };
    for f in frames {
        framed.feed(f).await.map_err(|_| ())?;
    }
    framed.flush().await.map_err(|_| ())
}

/// A reply still to come, and where it goes.
enum Waiting {
    Write(usize, Op, Render),
    Peek(usize, Op, Render),
    Local(usize, Local),
}

/// What a batch answers: each reply with whether it is RESP3, and
/// whether the connection closes after them.
struct Replies {
    out: Vec<Option<(Frame, bool)>>,
    /// Consecutive plans of one kind (all writes, or all reads).
    pending: Vec<Waiting>,
}

impl Replies {
    fn slot(&mut self, resp3: bool) -> usize {
        self.out.push(Some((Frame::Null, resp3)));
        self.out.len() - 1
    }

    fn put(&mut self, i: usize, f: Frame) {
        if let Some((slot, _)) = self.out[i].as_mut() {
            *slot = f;
        }
    }

    fn pending_writes(&self) -> bool {
        matches!(self.pending.first(), Some(Waiting::Write(..)))
    }

    /// Carries out what is pending.
    async fn flush(&mut self, s: &mut Session, srv: &Arc<Server>) {
        let pending = std::mem::take(&mut self.pending);
        if pending.is_empty() {
            return;
        }
        if self.pending_writes_of(&pending) {
            let (slots, ops, renders) = split_writes(pending);
            let done = propose_in_order(srv, ops).await;
            for ((i, render), r) in slots.into_iter().zip(renders).zip(done) {
                let f = finish(s, render, r);
                self.put(i, f);
            }
            return;
        }
        if let Err(f) = srv.read_point(s.readonly).await {
            for w in &pending {
                let (Waiting::Peek(i, ..) | Waiting::Local(i, _) | Waiting::Write(i, ..)) = w;
                self.put(*i, f.clone());
            }
            return;
        }
        let kv = srv.api.kv.read();
        for w in pending {
            match w {
                Waiting::Peek(i, op, render) => self.put(i, render(peek_here(&kv, op))),
                Waiting::Local(i, f) => self.put(i, f(srv, &kv)),
                Waiting::Write(..) => unreachable!("invariant: a pending run is of one kind"),
            }
        }
    }

    fn pending_writes_of(&self, p: &[Waiting]) -> bool {
        matches!(p.first(), Some(Waiting::Write(..)))
    }
}

fn split_writes(p: Vec<Waiting>) -> (Vec<usize>, Vec<Op>, Vec<Render>) {
    let mut slots = Vec::new();
    let mut ops = Vec::new();
    let mut renders = Vec::new();
    for w in p {
        if let Waiting::Write(i, op, render) = w {
            slots.push(i);
            ops.push(op);
            renders.push(render);
        }
    }
    (slots, ops, renders)
}

/// Replicates `ops` in their order: runs of plain ops as one batch each,
/// a `Multi` (which cannot share an entry) alone, each waited for before
/// the next is sent.
async fn propose_in_order(srv: &Arc<Server>, ops: Vec<Op>) -> Vec<Proposed> {
    let mut out = Vec::with_capacity(ops.len());
    let mut run = Vec::new();
    for op in ops {
        if matches!(op, Op::Multi { .. }) {
            if !run.is_empty() {
                out.extend(srv.propose(std::mem::take(&mut run)).await);
            }
            out.extend(srv.propose(vec![op]).await);
        } else {
            run.push(op);
        }
    }
    if !run.is_empty() {
        out.extend(srv.propose(run).await);
    }
    out
}

/// A write's reply from its outcome; notes its index for WAIT.
fn finish(s: &mut Session, render: Render, r: Proposed) -> Frame {
    match r {
        Ok((index, out)) => {
            s.last_write = s.last_write.max(index);
            render(out)
        }
        Err(e) => propose_error(&e),
    }
}

/// A peek evaluated against this node's state.
fn peek_here(kv: &raft_kv::KvState, op: Op) -> Output {
    let Op::Peek { ns, keys } = op else {
        return Output::Done(false);
    };
    let seen = keys
        .iter()
        .map(|k| kv.get(&ns, k).map(|v| (v.data.clone(), v.modify_index)))
        .collect();
    Output::Peek(seen)
}

/// Plans and carries out `batch`: the replies, and whether to close.
async fn run(
    batch: Vec<crate::codec::Args>,
    s: &mut Session,
    srv: &Arc<Server>,
) -> (Vec<(Frame, bool)>, bool) {
    let mut r = Replies {
        out: Vec::with_capacity(batch.len()),
        pending: Vec::new(),
    };
    let mut close = false;
    for args in batch {
        let plan = cmd::plan(&args, s, srv);
        let writes = plan.writes();
        let i = r.slot(s.resp3);
        match plan {
            Plan::Now(f) => r.put(i, f),
            Plan::Data { op, render } => {
                if writes != r.pending_writes() && !r.pending.is_empty() {
                    r.flush(s, srv).await;
                }
                r.pending.push(if writes {
                    Waiting::Write(i, op, render)
                } else {
                    Waiting::Peek(i, op, render)
                });
            }
            Plan::Local(f) => {
                if r.pending_writes() {
                    r.flush(s, srv).await;
                }
                r.pending.push(Waiting::Local(i, f));
            }
            other => {
                r.flush(s, srv).await;
                let (f, quit) = alone(other, s, srv).await;
                r.put(i, f);
                if quit {
                    close = true;
                    break;
                }
            }
        }
    }
    r.flush(s, srv).await;
    (r.out.into_iter().flatten().collect(), close)
}

/// A plan that runs by itself: its reply, and whether to close.
async fn alone(plan: Plan, s: &mut Session, srv: &Arc<Server>) -> (Frame, bool) {
    match plan {
        Plan::Later(f) => (f.await, false),
        Plan::Watch(keys) => (watch(keys, s, srv).await, false),
        Plan::Exec => (exec(s, srv).await, false),
        Plan::Close(f) => (f, true),
        Plan::Now(f) => (f, false),
        Plan::Data { .. } | Plan::Local(_) => {
            unreachable!("invariant: data plans are batched, not run alone")
        }
    }
}

/// WATCH: the keys' modify indexes now, for EXEC to compare.
async fn watch(keys: Vec<String>, s: &mut Session, srv: &Arc<Server>) -> Frame {
    if let Err(f) = srv.read_point(false).await {
        return f;
    }
    let kv = srv.api.kv.read();
    for key in keys {
        let modify_index = kv.get(&s.ns, &key).map_or(0, |v| v.modify_index);
        s.watched.push(Watched {
            ns: s.ns.clone(),
            key,
            modify_index,
        });
    }
    Frame::ok()
}

/// A queued command's part in EXEC.
enum Part {
    Entry(Render),
    Done(Frame),
    After(Plan),
}

/// EXEC: the queued commands' entries as one `Op::Multi`, guarded by the
/// watched keys; the replies of commands that are not entries (KEYS,
/// TTL...) are computed after it applied.
async fn exec(s: &mut Session, srv: &Arc<Server>) -> Frame {
    let (queued, _) = s.multi.take().unwrap_or_default();
    let watch = std::mem::take(&mut s.watched);
    let mut ops = Vec::new();
    let mut parts = Vec::new();
    for Queued(plan) in queued {
        match plan {
            Plan::Data { op, render } => {
                ops.push(op);
                parts.push(Part::Entry(render));
            }
            Plan::Now(f) | Plan::Close(f) => parts.push(Part::Done(f)),
            other => parts.push(Part::After(other)),
        }
    }
    let mut outs = Vec::new();
    if !ops.is_empty() || !watch.is_empty() {
        let req = Request {
            session: None,
            op: Op::Multi { watch, ops },
        };
        let done = srv.propose(vec![req.op]).await;
        let index = match done.into_iter().next() {
            Some(Ok((i, Output::Multi(Some(o))))) => {
                outs = o;
                i
            }
            Some(Ok((_, Output::Multi(None)))) => return Frame::NullArray,
            Some(Ok((_, other))) => return cmd::unexpected(other),
            Some(Err(e)) => return propose_error(&e),
            None => return Frame::err("internal error: no outcome"),
        };
        s.last_write = s.last_write.max(index);
        // Later parts read the state as of the entry, at least.
        let _ = srv
            .api
            .node
            .wait_applied(index, Duration::from_secs(5))
            .await;
    }
    let mut outs = outs.into_iter();
    let mut replies = Vec::new();
    for p in parts {
        replies.push(match p {
            Part::Entry(render) => outs.next().map_or_else(|| Frame::err("no output"), render),
            Part::Done(f) => f,
            Part::After(Plan::Local(f)) => f(srv, &srv.api.kv.read()),
            Part::After(Plan::Later(f)) => f.await,
            Part::After(_) => Frame::err("not allowed inside MULTI"),
        });
    }
    Frame::Array(replies)
}
