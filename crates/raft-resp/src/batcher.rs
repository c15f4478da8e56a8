//! Group commit across connections: the writes every connection sends at
//! about the same time go into one log entry (`Op::Multi`, no watched
//! keys) instead of one entry each. While `IN_FLIGHT` entries are being
//! replicated, writes queue, and the next entry takes all that queued
//! (up to `MAX_OPS` and `MAX_BYTES`); an idle port sends each write at
//! once. Within an entry ops apply in the order they arrived, each
//! connection's in its own order; a connection waits for its writes
//! before it sends more (`crate::conn`), so its order is kept across
//! entries too. A write that is itself a `Multi` (EXEC, MSET...) is an
//! entry of its own: Multis do not nest.

use raft_http::{ApiContext, ProposeError, Proposed};
use raft_kv::{Op, Output, Request};
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Entries being replicated at once.
const IN_FLIGHT: usize = 4;
/// The most ops one entry takes.
const MAX_OPS: usize = 4096;
/// Roughly the most bytes of values one entry takes.
const MAX_BYTES: usize = 512 << 10;

struct Job {
    ops: Vec<Op>,
    reply: oneshot::Sender<Vec<Proposed>>,
}

/// The port's write path.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Job>,
}

impl Batcher {
    /// Starts the batching task (it ends when every handle is dropped).
    pub fn start(api: Arc<ApiContext>) -> Batcher {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(run(api, rx));
        Batcher { tx }
    }

    /// Replicates `ops` (plain ops, or one `Multi` alone), answering each
    /// in order.
    pub async fn propose(&self, ops: Vec<Op>) -> Vec<Proposed> {
        let n = ops.len();
        let (reply, rx) = oneshot::channel();
        let gone = || vec![Err(ProposeError::NoLeader("the port is shutting down".into())); n];
        if self.tx.send(Job { ops, reply }).await.is_err() {
            return gone();
        }
        rx.await.unwrap_or_else(|_| gone())
    }
}

fn size(op: &Op) -> usize {
    match op {
        Op::Str(w) => {
            w.key.len()
                + 64
                + match &w.edit {
                    raft_kv::strings::Edit::Set(v) | raft_kv::strings::Edit::Append(v) => v.len(),
                    raft_kv::strings::Edit::SetRange { data, .. } => data.len(),
                    _ => 16,
                }
        }
        Op::Put { key, value, .. } => key.len() + value.len() + 64,
        _ => 256,
    }
}

fn alone(job: &Job) -> bool {
    job.ops.iter().any(|op| matches!(op, Op::Multi { .. }))
}

async fn run(api: Arc<ApiContext>, mut rx: mpsc::Receiver<Job>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut carried: Option<Job> = None;
    loop {
        let first = match carried.take() {
            Some(j) => j,
            None => match rx.recv().await {
                Some(j) => j,
                None => return,
            },
        };
        // Waiting for a slot is when writes pile up into the next entry.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut jobs = vec![first];
        if !alone(&jobs[0]) {
            let (mut ops, mut bytes) = (
                jobs[0].ops.len(),
                jobs[0].ops.iter().map(size).sum::<usize>(),
            );
            while let Ok(j) = rx.try_recv() {
                let b: usize = j.ops.iter().map(size).sum();
                if alone(&j) || ops + j.ops.len() > MAX_OPS || bytes + b > MAX_BYTES {
                    carried = Some(j);
                    break;
                }
                (ops, bytes) = (ops + j.ops.len(), bytes + b);
                jobs.push(j);
            }
        }
        let api = api.clone();
        tokio::spawn(async move {
            let _slot = slot;
            entry(&api, jobs).await;
        });
    }
}

/// Proposes `jobs` as one entry and answers each.
async fn entry(api: &ApiContext, jobs: Vec<Job>) {
    let lens: Vec<usize> = jobs.iter().map(|j| j.ops.len()).collect();
    let (ops, replies): (Vec<Vec<Op>>, Vec<_>) = jobs.into_iter().map(|j| (j.ops, j.reply)).unzip();
    let mut ops: Vec<Op> = ops.into_iter().flatten().collect();
    let outcomes: Vec<Proposed> = if ops.len() == 1 {
        let req = Request {
            session: None,
            op: ops.remove(0),
        };
        raft_http::propose_anywhere(api, vec![req]).await
    } else {
        let n = ops.len();
        let req = Request {
            session: None,
            op: Op::Multi {
                watch: Vec::new(),
                ops,
            },
        };
        let mut done = raft_http::propose_anywhere(api, vec![req]).await;
        match done.pop() {
            Some(Ok((index, Output::Multi(Some(outs))))) if outs.len() == n => {
                outs.into_iter().map(|o| Ok((index, o))).collect()
            }
            Some(Ok((_, other))) => {
                let why = format!("invariant broken: a batch applied as {other:?}");
                tracing::error!("{why}");
                vec![Err(ProposeError::Refused(why)); n]
            }
            Some(Err(e)) => vec![Err(e); n],
            None => vec![Err(ProposeError::Unknown("no outcome".into())); n],
        }
    };
    let mut outcomes = outcomes.into_iter();
    for (len, reply) in lens.into_iter().zip(replies) {
        let mine: Vec<Proposed> = outcomes.by_ref().take(len).collect();
        let _ = reply.send(mine);
    }
}
