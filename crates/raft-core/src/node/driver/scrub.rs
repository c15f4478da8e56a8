//! The scrub: re-reading the latest snapshot through the store's checks at
//! a bounded rate, so damage on disk is found while the node runs rather
//! than at its next start (or when a follower needs the snapshot). On
//! damage, health turns red with the reason and a new snapshot is taken
//! from the state in memory (verified when it was loaded, and kept by the
//! log since), replacing the damaged files; a pass as soon as it is taken
//! checks the replacement and clears the reason.

use super::{Driver, Event, StateMachine, Transport};
use crate::message::SnapshotMeta;
use crate::storage::SnapshotStore;
use std::io::Read;
use std::time::{Duration, Instant};

/// What the scrub has done, for status and metrics.
#[derive(Debug)]
pub(super) struct Scrub {
    next: Instant,
    running: bool,
    /// Passes finished.
    pub runs: u64,
    /// Passes that found damage.
    pub found: u64,
    /// The damage the last pass found, until a pass finds none.
    pub damage: Option<String>,
}

impl Scrub {
    pub fn new(interval: Duration) -> Self {
        Scrub {
            next: Instant::now() + interval,
            running: false,
            runs: 0,
            found: 0,
            damage: None,
        }
    }
}

/// Reads snapshot `meta` to its end at most `bytes_per_sec` (0: no limit):
/// `Ok(false)` if it was replaced meanwhile, an error naming the damage.
pub(super) fn verify(
    snaps: &dyn SnapshotStore,
    meta: &SnapshotMeta,
    bytes_per_sec: u64,
) -> std::io::Result<bool> {
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    let mut r = match snaps.open(meta) {
        Err(e) if gone(&e) => return Ok(false),
        other => other?,
    };
    let mut buf = vec![0u8; 64 << 10];
    let (start, mut read) = (Instant::now(), 0u64);
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(n) => read += n as u64,
            Err(e) if gone(&e) => return Ok(false),
            Err(e) => return Err(e),
        }
        if bytes_per_sec > 0 {
            let due = Duration::from_secs_f64(read as f64 / bytes_per_sec as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
}

impl<T: Transport, M: StateMachine> Driver<T, M> {
    /// Per tick: starts a pass when one is due.
    pub(super) fn maybe_scrub(&mut self) {
        let interval = self.cfg.scrub_interval;
        if interval.is_zero() || self.scrub.running || Instant::now() < self.scrub.next {
            return;
        }
        let Some(meta) = self.raft.snapshot().cloned() else {
            self.scrub.next = Instant::now() + interval;
            return;
        };
        self.scrub.running = true;
        let (snaps, events, rate) = (self.snaps.clone(), self.events.clone(), self.cfg.scrub_rate);
        tokio::task::spawn_blocking(move || {
            let r = verify(snaps.as_ref(), &meta, rate).map_err(|e| e.to_string());
            let _ = events.send(Event::Scrubbed(r));
        });
    }

    pub(super) fn on_scrubbed(&mut self, r: Result<bool, String>) {
        self.scrub.running = false;
        self.scrub.next = Instant::now() + self.cfg.scrub_interval;
        match r {
            Ok(false) => {} // replaced meanwhile: the next pass reads the new one
            Ok(true) => {
                self.scrub.runs += 1;
                if self.scrub.damage.take().is_some() {
                    tracing::info!("scrub: the replacement snapshot verifies");
                }
            }
            Err(why) => {
                self.scrub.runs += 1;
                self.scrub.found += 1;
                tracing::error!("scrub: {why}; taking a new snapshot to replace it");
                self.scrub.damage = Some(why);
                self.force_snapshot = true;
            }
        }
    }

    /// A snapshot was taken: if it replaces a damaged one, check it at once.
    pub(super) fn scrub_replacement(&mut self) {
        if self.scrub.damage.is_some() {
            self.scrub.next = Instant::now();
        }
    }
}
