//! The storage thread: owns the `LogStore`, turns queued jobs into as few
//! writes as it can (one transaction and one fsync for all that queued up
//! while the last one ran), and reports completions in order.

use crate::Message;
use crate::storage::{LogStore, WriteBatch};
use crate::types::{Entry, HardState, Index, Term};
use prometheus_client::metrics::histogram::Histogram;
use std::sync::mpsc as std_mpsc;
use tokio::sync::mpsc;

/// One `Ready`'s durable part, plus what to send once it is durable; or
/// a change of where the log starts (compaction, a snapshot installed).
pub(super) struct Job {
    pub hard_state: Option<HardState>,
    pub entries: Vec<Entry>,
    pub then_send: Vec<Message>,
    pub start: Option<LogStart>,
}

/// Where the stored log starts after a snapshot.
#[derive(Clone, Copy, Debug)]
pub(super) enum LogStart {
    /// Drop entries up to this index (a snapshot covers them).
    Purge(Index),
    /// Drop everything; the log continues after (index, term).
    Reset(Index, Term),
}

impl Job {
    pub(super) fn start(start: LogStart) -> Self {
        Job {
            hard_state: None,
            entries: Vec::new(),
            then_send: Vec::new(),
            start: Some(start),
        }
    }
}

pub(super) enum Done {
    /// `jobs` jobs are done: everything queued before is durable up to
    /// `upto` (the last entry written, if any); send `then_send` now.
    Persisted {
        jobs: usize,
        upto: Option<(Index, Term)>,
        then_send: Vec<Message>,
    },
    /// The store failed; it takes no more writes.
    Failed(String),
}

/// Where the driver's writes go.
pub(super) enum Storage {
    /// A storage thread (durable stores: it blocks on fsync).
    Thread {
        jobs: std_mpsc::Sender<Job>,
        thread: Option<std::thread::JoinHandle<()>>,
    },
    /// On the driver's own task (stores whose writes do no I/O).
    Inline(Box<dyn FnMut(Job) -> Done + Send>),
}

impl Storage {
    pub(super) fn new<S: LogStore + Send + 'static>(
        mut store: S,
        done: mpsc::UnboundedSender<Done>,
        wal: Histogram,
    ) -> Self {
        if !store.writes_are_cheap() {
            let (jobs, thread) = spawn(store, done, wal);
            return Storage::Thread {
                jobs,
                thread: Some(thread),
            };
        }
        Storage::Inline(Box::new(move |job: Job| {
            let upto = job.entries.last().map(|e| (e.index, e.term));
            match timed(&wal, || run(&mut store, &job)) {
                Ok(()) => Done::Persisted {
                    jobs: 1,
                    upto,
                    then_send: job.then_send,
                },
                Err(e) => Done::Failed(e.to_string()),
            }
        }))
    }
}

fn spawn<S: LogStore + Send + 'static>(
    mut store: S,
    done: mpsc::UnboundedSender<Done>,
    wal: Histogram,
) -> (std_mpsc::Sender<Job>, std::thread::JoinHandle<()>) {
    let (tx, rx) = std_mpsc::channel::<Job>();
    let handle = std::thread::Builder::new()
        .name("raft-storage".into())
        .spawn(move || {
            let mut held: Option<Job> = None;
            loop {
                let first = match held.take() {
                    Some(j) => j,
                    None => match rx.recv() {
                        Ok(j) => j,
                        Err(_) => return,
                    },
                };
                // Writes that queued up merge into one; a change of the
                // log's start is done on its own, in order.
                let mut merged = first;
                let mut jobs = 1;
                while merged.start.is_none() {
                    match rx.try_recv() {
                        Ok(next) if next.start.is_none() => {
                            merge(&mut merged, next);
                            jobs += 1;
                        }
                        Ok(next) => {
                            held = Some(next);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let upto = merged.entries.last().map(|e| (e.index, e.term));
                if let Err(e) = timed(&wal, || run(&mut store, &merged)) {
                    let _ = done.send(Done::Failed(e.to_string()));
                    return;
                }
                let msg = Done::Persisted {
                    jobs,
                    upto,
                    then_send: merged.then_send,
                };
                if done.send(msg).is_err() {
                    return;
                }
            }
        })
        .expect("spawning the storage thread");
    (tx, handle)
}

/// Runs `f`, observing how long it took in `h` (failures too: a slow
/// failing disk is worth seeing).
fn timed<T>(h: &Histogram, f: impl FnOnce() -> T) -> T {
    let t = std::time::Instant::now();
    let r = f();
    h.observe(super::metrics::since(t));
    r
}

/// Does one job's storage work.
fn run<S: LogStore>(store: &mut S, job: &Job) -> Result<(), S::Error> {
    if job.hard_state.is_some() || !job.entries.is_empty() {
        store.write(WriteBatch {
            hard_state: job.hard_state,
            entries: &job.entries,
            membership: None,
        })?;
    }
    match job.start {
        Some(LogStart::Purge(i)) => store.purge_to(i),
        Some(LogStart::Reset(i, t)) => store.reset_to(i, t),
        None => Ok(()),
    }
}

/// Folds a later job into an earlier one: its entries replace any at the
/// same or higher indexes (as the store would), its hard state wins.
fn merge(into: &mut Job, next: Job) {
    if next.hard_state.is_some() {
        into.hard_state = next.hard_state;
    }
    if let Some(first) = next.entries.first() {
        let keep = into
            .entries
            .iter()
            .position(|e| e.index >= first.index)
            .unwrap_or(into.entries.len());
        into.entries.truncate(keep);
        into.entries.extend(next.entries);
    }
    into.then_send.extend(next.then_send);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Payload;

    fn e(index: Index, term: Term) -> Entry {
        Entry {
            index,
            term,
            payload: Payload::Noop,
        }
    }

    fn job(entries: Vec<Entry>, term: Option<Term>) -> Job {
        Job {
            hard_state: term.map(|term| HardState {
                term,
                ..Default::default()
            }),
            entries,
            then_send: vec![],
            start: None,
        }
    }

    #[test]
    fn merging_replaces_a_conflicting_suffix() {
        let mut a = job(vec![e(5, 1), e(6, 1), e(7, 1)], Some(1));
        merge(&mut a, job(vec![e(6, 2)], Some(2)));
        merge(&mut a, job(vec![], None));
        let got: Vec<_> = a.entries.iter().map(|e| (e.index, e.term)).collect();
        assert_eq!(got, vec![(5, 1), (6, 2)]);
        assert_eq!(a.hard_state.unwrap().term, 2);
        merge(&mut a, job(vec![e(7, 2), e(8, 2)], None));
        assert_eq!(a.entries.len(), 4);
    }
}
