//! The simulated world's event queue and its unreliable network: drops,
//! duplicates, random delays (hence reordering) and partitions, symmetric or
//! one-way. All randomness comes from the simulation's seeded `Rng`.

use raft_core::{Message, NodeId, Rng};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

/// Simulated time: `TICK` units make one protocol tick.
pub type Time = u64;
/// Time units per protocol tick.
pub const TICK: Time = 10;

/// Something the network delivers at a time.
#[derive(Debug)]
pub enum Event {
    /// A message arrives.
    Deliver(Box<Message>),
    /// A node's oldest outstanding disk write finished.
    WriteDone {
        /// The node.
        node: NodeId,
        /// Its disk's generation (a crash starts a new one; writes of an older one are
        /// lost).
        generation: u64,
    },
}

struct Queued {
    at: Time,
    seq: u64,
    event: Event,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// How unreliable the network is.
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    /// Per-mille chance that a message is lost.
    pub drop_permille: u64,
    /// Per-mille chance that a message arrives twice.
    pub dup_permille: u64,
    /// Largest delay, in time units; each message draws from `1..=max`.
    pub max_delay: Time,
    /// Per-mille chance that a message is held up far longer, up to
    /// `max_slow` (a retransmission, a queue behind a stalled peer): long
    /// enough to arrive after elections have moved the terms on, which is
    /// how stale replies from earlier terms reach a node.
    pub slow_permille: u64,
    /// The longest of those delays.
    pub max_slow: Time,
    /// Per-mille chance, per message sent, that one of the last `PAST`
    /// messages sent is delivered again: a duplicate of any age, so
    /// replies of earlier terms reach nodes however the timing goes.
    pub replay_permille: u64,
}

/// How many sent messages the network remembers for replays.
const PAST: usize = 64;

/// The simulated network: an event queue in time order, per-link cuts, and faults drawn
/// from the run's seed.
pub struct Network {
    queue: BinaryHeap<Reverse<Queued>>,
    seq: u64,
    /// Its faults.
    pub faults: Faults,
    /// Directed links that lose everything.
    blocked: BTreeSet<(NodeId, NodeId)>,
    /// Messages delivered so far.
    pub delivered: u64,
    /// Draws for messages held for a node that is down, apart from the
    /// main generator so that holding them changes no other draw.
    held: Rng,
    /// The last messages sent, for replays.
    past: std::collections::VecDeque<Message>,
}

impl Network {
    /// A network with `faults`; `seed` draws for messages held for down nodes.
    pub fn new(faults: Faults, seed: u64) -> Self {
        Network {
            queue: BinaryHeap::new(),
            seq: 0,
            faults,
            blocked: BTreeSet::new(),
            delivered: 0,
            held: Rng::new(seed ^ 0x6865_6c64),
            past: std::collections::VecDeque::new(),
        }
    }

    /// A message reached a node that is down. The real transport keeps a
    /// queue per peer that outlives its connections, so what was sent to
    /// an earlier life of a node can reach the next one: half the time the
    /// message is tried again a little later.
    pub fn hold(&mut self, now: Time, m: Message) {
        if self.held.chance(1, 2) {
            let d = self.held.range(TICK, 100 * TICK);
            self.schedule(now + d, Event::Deliver(Box::new(m)));
        }
    }

    /// Queues `event` for time `at` (ties in the order queued).
    pub fn schedule(&mut self, at: Time, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Queued {
            at,
            seq: self.seq,
            event,
        }));
    }

    /// Pops the next event due at or before `until`.
    pub fn next_due(&mut self, until: Time) -> Option<(Time, Event)> {
        if self.queue.peek().is_some_and(|Reverse(q)| q.at <= until) {
            let Reverse(q) = self.queue.pop().expect("peeked");
            return Some((q.at, q.event));
        }
        None
    }

    /// Sends `m` at `now`: lost, delayed, duplicated or replayed as the faults draw.
    pub fn send(&mut self, now: Time, m: Message, rng: &mut Rng) {
        if self.blocked.contains(&(m.from, m.to)) || rng.chance(self.faults.drop_permille, 1000) {
            return;
        }
        if self.faults.replay_permille > 0 {
            if rng.chance(self.faults.replay_permille, 1000) && !self.past.is_empty() {
                let old = self.past[rng.range(0, self.past.len() as u64) as usize].clone();
                let d = self.delay(rng);
                self.schedule(now + d, Event::Deliver(Box::new(old)));
            }
            if self.past.len() == PAST {
                self.past.pop_front();
            }
            self.past.push_back(m.clone());
        }
        if rng.chance(self.faults.dup_permille, 1000) {
            let d = self.delay(rng);
            self.schedule(now + d, Event::Deliver(Box::new(m.clone())));
        }
        let d = self.delay(rng);
        self.schedule(now + d, Event::Deliver(Box::new(m)));
    }

    /// A message's time in flight.
    fn delay(&self, rng: &mut Rng) -> Time {
        if rng.chance(self.faults.slow_permille, 1000) {
            rng.range(self.faults.max_delay, self.faults.max_slow + 1)
        } else {
            rng.range(1, self.faults.max_delay + 1)
        }
    }

    /// Whether the link from `from` to `to` is cut.
    pub fn is_blocked(&self, from: NodeId, to: NodeId) -> bool {
        self.blocked.contains(&(from, to))
    }

    /// Cuts every link between the two groups, both ways.
    pub fn partition(&mut self, a: &[NodeId], b: &[NodeId]) {
        for &x in a {
            for &y in b {
                self.blocked.insert((x, y));
                self.blocked.insert((y, x));
            }
        }
    }

    /// Cuts every link of `id`, both ways.
    pub fn isolate(&mut self, id: NodeId, all: &[NodeId]) {
        let rest: Vec<NodeId> = all.iter().copied().filter(|&o| o != id).collect();
        self.partition(&[id], &rest);
    }

    /// Restores every link of `id` (including any another fault cut).
    pub fn release(&mut self, id: NodeId) {
        self.blocked.retain(|&(a, b)| a != id && b != id);
    }

    /// Cuts the link from `from` to `to` only.
    pub fn block_one_way(&mut self, from: NodeId, to: NodeId) {
        self.blocked.insert((from, to));
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.blocked.clear();
    }
}
