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

#[derive(Debug, Default)]
pub(super) struct ReadQueue {
    /// The newest round number started (leader); heartbeats carry it.
    round: u64,
    /// Reads not yet in a round.
    waiting: Vec<PendingRead>,
    /// Rounds started and not yet confirmed: (round, read index, reads).
    in_flight: VecDeque<(u64, Index, Vec<PendingRead>)>,
    /// Follower: reads forwarded to the leader, with the heartbeats seen
    /// since (each) was last sent.
    forwarded: Vec<(u64, u8)>,
}

impl ReadQueue {
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
        dropped.extend(self.forwarded.drain(..).map(|(id, _)| id));
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
                self.reads.forwarded.push((id, 0));
                self.send(leader, Body::ReadIndex { id });
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
        for (id, beats) in &mut self.reads.forwarded {
            *beats += 1;
            if *beats >= 2 {
                *beats = 0;
                again.push(*id);
            }
        }
        for id in again {
            self.send(leader, Body::ReadIndex { id });
        }
    }

    pub(super) fn follower_read_done(&mut self, id: u64, index: Index) {
        if let Some(pos) = self.reads.forwarded.iter().position(|&(f, _)| f == id) {
            self.reads.forwarded.swap_remove(pos);
            self.read_states.push(ReadState { id, index });
        }
    }
}
