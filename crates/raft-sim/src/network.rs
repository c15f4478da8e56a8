//! The simulated world's event queue and its unreliable network: drops,
//! duplicates, random delays (hence reordering) and partitions, symmetric or
//! one-way. All randomness comes from the simulation's seeded `Rng`.

use raft_core::{Message, NodeId, Rng};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

/// Simulated time: `TICK` units make one protocol tick.
pub type Time = u64;
pub const TICK: Time = 10;

#[derive(Debug)]
pub enum Event {
    Deliver(Box<Message>),
    /// A node's oldest outstanding disk write finished.
    WriteDone {
        node: NodeId,
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

#[derive(Clone, Copy, Debug)]
pub struct Faults {
    /// Per-mille chance that a message is lost.
    pub drop_permille: u64,
    /// Per-mille chance that a message arrives twice.
    pub dup_permille: u64,
    /// Largest delay, in time units; each message draws from `1..=max`.
    pub max_delay: Time,
}

pub struct Network {
    queue: BinaryHeap<Reverse<Queued>>,
    seq: u64,
    pub faults: Faults,
    /// Directed links that lose everything.
    blocked: BTreeSet<(NodeId, NodeId)>,
    pub delivered: u64,
    /// Draws for messages held for a node that is down, apart from the
    /// main generator so that holding them changes no other draw.
    held: Rng,
}

impl Network {
    pub fn new(faults: Faults, seed: u64) -> Self {
        Network {
            queue: BinaryHeap::new(),
            seq: 0,
            faults,
            blocked: BTreeSet::new(),
            delivered: 0,
            held: Rng::new(seed ^ 0x6865_6c64),
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

    pub fn send(&mut self, now: Time, m: Message, rng: &mut Rng) {
        if self.blocked.contains(&(m.from, m.to)) || rng.chance(self.faults.drop_permille, 1000) {
            return;
        }
        if rng.chance(self.faults.dup_permille, 1000) {
            let d = rng.range(1, self.faults.max_delay + 1);
            self.schedule(now + d, Event::Deliver(Box::new(m.clone())));
        }
        let d = rng.range(1, self.faults.max_delay + 1);
        self.schedule(now + d, Event::Deliver(Box::new(m)));
    }

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

    pub fn block_one_way(&mut self, from: NodeId, to: NodeId) {
        self.blocked.insert((from, to));
    }

    pub fn heal(&mut self) {
        self.blocked.clear();
    }
}
