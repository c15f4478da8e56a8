//! Snapshot transfers: a leader streams a snapshot file to a follower in
//! chunks, a window of them in flight, resuming from the last
//! acknowledged byte after a loss; the follower stores the chunks and,
//! after the last, commits the snapshot and reads it back for the state
//! machine, off the protocol task.
//!
//! A sender runs on its own thread (it reads files) and sends through the
//! transport directly, so a transfer never holds up heartbeats or other
//! peers: the transport's per-peer queue interleaves chunks with
//! everything else, and the window bounds how much of it chunks take.

use super::Transport;
use crate::message::{Body, Message, SnapshotMeta};
use crate::storage::{SnapshotSink, SnapshotStore};
use crate::types::{Mode, NodeId, Term};
use bytes::Bytes;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

/// What a sender reports back to the protocol task.
pub(super) enum SenderDone {
    /// Every byte was acknowledged; the follower installs it now.
    Delivered(NodeId),
    /// The transfer was given up; the peer needs a new one.
    Failed(NodeId, String),
}

/// The protocol task's handle on one running sender.
pub(super) struct SenderHandle {
    pub meta: SnapshotMeta,
    acks: std_mpsc::Sender<u64>,
    stop: Arc<AtomicBool>,
}

impl SenderHandle {
    pub(super) fn ack(&self, offset: u64) {
        let _ = self.acks.send(offset);
    }
}

impl Drop for SenderHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub(super) struct SenderSpec<T> {
    pub snaps: Arc<dyn SnapshotStore>,
    pub transport: Arc<T>,
    pub from: NodeId,
    pub to: NodeId,
    pub term: Term,
    pub mode: Mode,
    /// The sender's storage id (`Message::storage`).
    pub storage: u64,
    pub meta: SnapshotMeta,
    pub chunk: usize,
    pub window: usize,
    pub ack_timeout: Duration,
    pub retries: u32,
}

/// Starts streaming `spec.meta` to `spec.to`; `done` hears how it ended.
pub(super) fn spawn_sender<T: Transport>(
    spec: SenderSpec<T>,
    done: impl FnOnce(SenderDone) + Send + 'static,
) -> SenderHandle {
    let (acks, rx) = std_mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let handle = SenderHandle {
        meta: spec.meta.clone(),
        acks,
        stop: stop.clone(),
    };
    let to = spec.to;
    let spawned = std::thread::Builder::new()
        .name(format!("snapshot-to-{to}"))
        .spawn(move || {
            let to = spec.to;
            match send(&spec, &rx, &stop) {
                Ok(true) => done(SenderDone::Delivered(to)),
                Ok(false) => {} // stopped: nobody waits for an answer
                Err(why) => done(SenderDone::Failed(to, why)),
            }
        });
    if let Err(e) = spawned {
        tracing::error!(peer = to, "cannot start a snapshot sender: {e}");
    }
    handle
}

/// Streams the snapshot; Ok(true) once every byte is acknowledged,
/// Ok(false) when told to stop.
fn send<T: Transport>(
    s: &SenderSpec<T>,
    acks: &std_mpsc::Receiver<u64>,
    stop: &AtomicBool,
) -> Result<bool, String> {
    let open = || s.snaps.open(&s.meta).map_err(|e| e.to_string());
    let mut reader = open()?;
    let (mut pos, mut next, mut acked) = (0u64, 0u64, 0u64);
    let mut end: Option<u64> = None;
    let mut timeouts = 0;
    let mut buf = vec![0u8; s.chunk.max(1)];
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let in_flight_limit = acked + (s.window.max(1) * s.chunk.max(1)) as u64;
        while end.is_none_or(|e| next < e) && next < in_flight_limit {
            if pos != next {
                // Resending from an earlier byte: read again from the start.
                reader = open()?;
                std::io::copy(&mut (&mut reader).take(next), &mut std::io::sink())
                    .map_err(|e| e.to_string())?;
            }
            let n = fill(&mut reader, &mut buf).map_err(|e| e.to_string())?;
            let done = n < buf.len();
            s.transport.send(Message {
                from: s.from,
                to: s.to,
                term: s.term,
                mode: s.mode,
                body: Body::SnapshotChunk {
                    meta: s.meta.clone(),
                    offset: next,
                    data: Bytes::copy_from_slice(&buf[..n]),
                    done,
                },
                storage: s.storage,
            });
            next += n as u64;
            pos = next;
            if done {
                end = Some(next);
            }
        }
        match acks.recv_timeout(s.ack_timeout) {
            Ok(offset) => {
                timeouts = 0;
                if offset > next && end.is_none_or(|e| offset <= e) {
                    // The follower kept what an earlier transfer of this
                    // snapshot delivered: resume from there.
                    next = offset;
                }
                acked = acked.max(offset.min(next));
                if end == Some(acked) {
                    return Ok(true);
                }
            }
            Err(std_mpsc::RecvTimeoutError::Timeout) => {
                timeouts += 1;
                if timeouts > s.retries {
                    return Err(format!("no acknowledgement after {timeouts} timeouts"));
                }
                // Chunks were lost (a reconnect, a full queue): go back.
                next = acked;
            }
            Err(std_mpsc::RecvTimeoutError::Disconnected) => return Ok(false),
        }
    }
}

/// Reads until `buf` is full or the input ends; the bytes read.
fn fill(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// A snapshot a follower is receiving.
pub(super) struct Incoming {
    pub meta: SnapshotMeta,
    /// `None` once the last chunk arrived and it is being installed.
    pub sink: Option<Box<dyn SnapshotSink>>,
    pub written: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Membership;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<Message>>);

    impl Transport for Recorder {
        fn send(&self, m: Message) {
            self.0.lock().unwrap().push(m);
        }
    }

    struct OneSnapshot(Vec<u8>);

    impl SnapshotStore for OneSnapshot {
        fn latest(&self) -> std::io::Result<Option<SnapshotMeta>> {
            Ok(None)
        }
        fn open(&self, _: &SnapshotMeta) -> std::io::Result<Box<dyn Read + Send>> {
            Ok(Box::new(std::io::Cursor::new(self.0.clone())))
        }
        fn create(&self) -> std::io::Result<Box<dyn SnapshotSink>> {
            Err(std::io::ErrorKind::Unsupported.into())
        }
    }

    fn spec(t: &Arc<Recorder>, data: Vec<u8>) -> SenderSpec<Recorder> {
        SenderSpec {
            snaps: Arc::new(OneSnapshot(data)),
            transport: t.clone(),
            from: 1,
            to: 2,
            term: 3,
            mode: Mode::Active,
            storage: 0,
            meta: SnapshotMeta {
                index: 10,
                term: 3,
                membership: Membership::new([1, 2]),
                digest: None,
            },
            chunk: 4,
            window: 2,
            // Long against a loaded machine's scheduling delays, so no
            // chunk is resent while a test waits for the first ones.
            ack_timeout: Duration::from_millis(300),
            retries: 3,
        }
    }

    /// Waits (up to 10 s: no timing is assumed) until `n` chunks were
    /// sent, and takes what was sent.
    fn take(t: &Recorder, n: usize) -> Vec<(u64, usize, bool)> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while t.0.lock().unwrap().len() < n && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        chunks(t)
    }

    fn chunks(t: &Recorder) -> Vec<(u64, usize, bool)> {
        let mut g = t.0.lock().unwrap();
        g.drain(..)
            .map(|m| match m.body {
                Body::SnapshotChunk {
                    offset, data, done, ..
                } => (offset, data.len(), done),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn streams_a_window_at_a_time_and_resends_after_a_loss() {
        let t = Arc::new(Recorder::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let h = spawn_sender(spec(&t, (0..10).collect()), move |d| {
            let _ = tx.send(matches!(d, SenderDone::Delivered(2)));
        });
        assert_eq!(
            take(&t, 2),
            [(0, 4, false), (4, 4, false)],
            "a window of two"
        );
        h.ack(4);
        assert_eq!(take(&t, 1), [(8, 2, true)]);
        // The acknowledgement of the rest is "lost": after a timeout,
        // everything after the acknowledged 4 bytes is sent again.
        assert_eq!(take(&t, 2), [(4, 4, false), (8, 2, true)]);
        h.ack(10);
        assert!(rx.recv_timeout(Duration::from_secs(10)).unwrap());
    }

    #[test]
    fn resumes_where_the_follower_already_is() {
        let t = Arc::new(Recorder::default());
        let mut s = spec(&t, (0..10).collect());
        s.window = 1;
        let (tx, rx) = std::sync::mpsc::channel();
        let h = spawn_sender(s, move |d| {
            let _ = tx.send(matches!(d, SenderDone::Delivered(2)));
        });
        assert_eq!(take(&t, 1), [(0, 4, false)]);
        // The follower already holds 8 bytes from a transfer that failed.
        h.ack(8);
        assert_eq!(take(&t, 1), [(8, 2, true)]);
        h.ack(10);
        assert!(rx.recv_timeout(Duration::from_secs(10)).unwrap());
    }

    #[test]
    fn gives_up_when_nothing_is_acknowledged() {
        let t = Arc::new(Recorder::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let _h = spawn_sender(spec(&t, vec![7; 3]), move |d| {
            let _ = tx.send(matches!(d, SenderDone::Failed(2, _)));
        });
        assert!(rx.recv_timeout(Duration::from_secs(10)).unwrap());
    }
}
