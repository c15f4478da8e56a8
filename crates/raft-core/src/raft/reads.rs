//! Linearizable reads by ReadIndex (dissertation §6.4), batched: every read
//! that arrived since the last `Ready` shares one heartbeat exchange, and
//! reads arriving while a round is out wait for the next one.
//!
//! A round is confirmed once a quorum has acknowledged a heartbeat that
//! carried its number or a later one; rounds start only after the read
//! arrived, so a confirmation proves this node was still leader then.

use super::Raft;
use crate::error::Error;
use crate::message::Body;
use crate::ready::ReadState;
use crate::types::{Index, NodeId, Role};
use std::collections::VecDeque;

#[derive(Clone, Copy, Debug)]
struct PendingRead {
    id: u64,
    /// This node, or the follower that forwarded the read.
    from: NodeId,
}

/// A read forwarded to the leader, waiting for its answer.
#[derive(Clone, Copy, Debug)]
struct Forwarded {
    /// The caller's id.
    id: u64,
    /// The leader it was sent to: only that node's answer completes it.
    leader: NodeId,
    /// Heartbeats seen since it was last sent.
    beats: u8,
}

#[derive(Debug, Default)]
pub(super) struct ReadQueue {
    /// Mixed into the ids of forwarded reads, drawn anew by every
    /// incarnation of the node. Callers number reads from 1 in every
    /// process, and an answer sent to an earlier incarnation can arrive
    /// after a restart (the leader's peer queue outlives connections): with
    /// bare ids it would complete a new read with an old read index, a
    /// stale read.
    nonce: u64,
    /// The newest round number started (leader); heartbeats carry it.
    round: u64,
    /// Reads not yet in a round.
    waiting: Vec<PendingRead>,
    /// Rounds started and not yet confirmed: (round, read index, reads).
    in_flight: VecDeque<(u64, Index, Vec<PendingRead>)>,
    /// Follower: reads forwarded to the leader.
    forwarded: Vec<Forwarded>,
}

impl ReadQueue {
    pub(super) fn new(nonce: u64) -> Self {
        ReadQueue {
            nonce,
            ..ReadQueue::default()
        }
    }

    /// The id a forwarded read travels under (and back from it, the same).
    fn wire_id(&self, id: u64) -> u64 {
        id ^ self.nonce
    }

    pub(super) fn current_round(&self) -> u64 {
        self.round
    }

    /// Leadership lost: local reads fail; forwarded ones are abandoned (the
    /// follower drops them when it sees the leader change).
    pub(super) fn drop_all(&mut self, me: NodeId, dropped: &mut Vec<u64>) {
        let waiting = std::mem::take(&mut self.waiting);
        let in_flight = std::mem::take(&mut self.in_flight);
        let all = waiting
            .into_iter()
            .chain(in_flight.into_iter().flat_map(|(_, _, r)| r));
        dropped.extend(all.filter(|r| r.from == me).map(|r| r.id));
    }

    pub(super) fn drop_forwarded(&mut self, dropped: &mut Vec<u64>) {
        dropped.extend(self.forwarded.drain(..).map(|f| f.id));
    }
}

impl Raft {
    /// Asks for a linearizable read. The result arrives in a later `Ready`
    /// as a `ReadState` with this `id` (or in `dropped_reads`).
    pub fn read_index(&mut self, id: u64) -> Result<(), Error> {
        match (self.role, self.leader) {
            (Role::Leader, _) => {
                self.leader_read(id, self.id);
                Ok(())
            }
            (_, Some(leader)) => {
                self.reads.forwarded.push(Forwarded {
                    id,
                    leader,
                    beats: 0,
                });
                let wire = self.reads.wire_id(id);
                self.send(leader, Body::ReadIndex { id: wire });
                Ok(())
            }
            (_, None) => Err(Error::NotLeader { leader: None }),
        }
    }

    pub(super) fn leader_read(&mut self, id: u64, from: NodeId) {
        self.reads.waiting.push(PendingRead { id, from });
    }

    /// Whether `start_read_round` has work: reads wait, none are in flight,
    /// and an entry of this term has committed (until then the commit index
    /// may lag what earlier leaders committed, §6.4 step 1).
    pub(super) fn read_round_due(&self) -> bool {
        self.role == Role::Leader
            && !self.reads.waiting.is_empty()
            && self.reads.in_flight.is_empty()
            && self.log.term(self.log.committed) == Some(self.term)
    }

    /// Starts a round for every waiting read. Called once per `Ready`, so
    /// all reads that arrived since the last one share a round.
    pub(super) fn start_read_round(&mut self) {
        if !self.read_round_due() {
            return;
        }
        self.reads.round += 1;
        let round = self.reads.round;
        let reads = std::mem::take(&mut self.reads.waiting);
        self.reads
            .in_flight
            .push_back((round, self.log.committed, reads));
        let me = self.id;
        if let Some(p) = self.tracker.progress.get_mut(&me) {
            p.read_round = round;
        }
        if self.tracker.read_round_confirmed(round) {
            self.advance_reads();
        } else {
            self.bcast_heartbeat();
        }
    }

    /// Completes the rounds a quorum has confirmed.
    pub(super) fn advance_reads(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        while let Some(&(round, index, _)) = self.reads.in_flight.front() {
            if !self.tracker.read_round_confirmed(round) {
                break;
            }
            let (_, _, reads) = self.reads.in_flight.pop_front().expect("front exists");
            for r in reads {
                if r.from == self.id {
                    self.read_states.push(ReadState { id: r.id, index });
                } else {
                    self.send(r.from, Body::ReadIndexResponse { id: r.id, index });
                }
            }
        }
    }

    /// Follower, on each heartbeat from the leader: a read still unanswered
    /// after two heartbeats was lost on the way (or its answer was), so it
    /// is asked again; the leader answers a repeat like a new read.
    pub(super) fn resend_forwarded_reads(&mut self, leader: NodeId) {
        let mut again = Vec::new();
        for f in &mut self.reads.forwarded {
            f.beats += 1;
            if f.beats >= 2 && f.leader == leader {
                f.beats = 0;
                again.push(f.id);
            }
        }
        for id in again {
            let wire = self.reads.wire_id(id);
            self.send(leader, Body::ReadIndex { id: wire });
        }
    }

    /// An answer from `from` to the forwarded read `wire` travelled as:
    /// completes it if this incarnation sent it there.
    pub(super) fn follower_read_done(&mut self, from: NodeId, wire: u64, index: Index) {
        let id = self.reads.wire_id(wire);
        let sent = |f: &Forwarded| f.id == id && f.leader == from;
        if let Some(pos) = self.reads.forwarded.iter().position(sent) {
            self.reads.forwarded.swap_remove(pos);
            self.read_states.push(ReadState { id, index });
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Raft;
    use crate::config::{Config, InitialState};
    use crate::message::{Body, Message};
    use crate::types::Mode;

    /// Node 2 in a cluster of 1, 2, 3 at term 1, following leader 1, in an
    /// incarnation seeded with `seed` (drivers give each a new one).
    fn follower(seed: u64) -> Raft {
        let mut cfg = Config::new(2);
        cfg.seed = seed;
        let mut r = Raft::new(cfg, InitialState::new_cluster([1, 2, 3])).unwrap();
        r.step(from_leader(Body::Heartbeat {
            commit: 0,
            read_round: 0,
            all_applied: 0,
        }));
        let _ = r.ready();
        r
    }

    fn from_leader(body: Body) -> Message {
        Message {
            from: 1,
            to: 2,
            term: 1,
            mode: Mode::Active,
            body,
            storage: 0,
        }
    }

    /// The id read `id` was forwarded under.
    fn forward(r: &mut Raft, id: u64) -> u64 {
        r.read_index(id).unwrap();
        let rd = r.ready();
        let sent = rd.messages.iter().find_map(|m| match m.body {
            Body::ReadIndex { id } if m.to == 1 => Some(id),
            _ => None,
        });
        sent.expect("the read went to the leader")
    }

    fn reads_done(r: &mut Raft) -> Vec<(u64, u64)> {
        r.ready().reads.iter().map(|s| (s.id, s.index)).collect()
    }

    /// Read ids restart at 1 in every process, and the leader's answer to
    /// an earlier incarnation's read can arrive after a restart: it must
    /// not complete the new incarnation's read 1 (with an old index).
    #[test]
    fn an_answer_to_an_earlier_incarnation_completes_nothing() {
        let mut before = follower(100);
        let old = forward(&mut before, 1);
        let mut after = follower(200);
        let new = forward(&mut after, 1);
        after.step(from_leader(Body::ReadIndexResponse { id: old, index: 5 }));
        assert_eq!(reads_done(&mut after), vec![], "a stale answer served");
        after.step(from_leader(Body::ReadIndexResponse { id: new, index: 9 }));
        assert_eq!(reads_done(&mut after), vec![(1, 9)]);
    }

    /// Only the leader a read was forwarded to answers it.
    #[test]
    fn an_answer_from_another_node_completes_nothing() {
        let mut r = follower(7);
        let wire = forward(&mut r, 1);
        r.step(Message {
            from: 3,
            ..from_leader(Body::ReadIndexResponse { id: wire, index: 5 })
        });
        assert_eq!(reads_done(&mut r), vec![]);
    }
}
