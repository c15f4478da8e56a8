//! Linearizable reads by ReadIndex (dissertation §6.4), batched: every read
//! waiting when a round starts shares that round's heartbeat exchange.
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
    /// Follower: ids of reads forwarded to the leader.
    forwarded: Vec<u64>,
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
        dropped.append(&mut self.forwarded);
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
                self.reads.forwarded.push(id);
                self.send(leader, Body::ReadIndex { id });
                Ok(())
            }
            (_, None) => Err(Error::NotLeader { leader: None }),
        }
    }

    pub(super) fn leader_read(&mut self, id: u64, from: NodeId) {
        self.reads.waiting.push(PendingRead { id, from });
        self.advance_reads();
    }

    /// Starts a round for waiting reads and completes confirmed rounds.
    pub(super) fn advance_reads(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        // Until an entry of this term commits, the commit index may lag what
        // earlier leaders committed (§6.4 step 1).
        let committed_in_term = self.log.term(self.log.committed) == Some(self.term);
        if !committed_in_term {
            return;
        }
        if !self.reads.waiting.is_empty() && self.reads.in_flight.is_empty() {
            self.reads.round += 1;
            let reads = std::mem::take(&mut self.reads.waiting);
            self.reads
                .in_flight
                .push_back((self.reads.round, self.log.committed, reads));
            let me = self.id;
            let round = self.reads.round;
            if let Some(p) = self.tracker.progress.get_mut(&me) {
                p.read_round = round;
            }
            if !self.tracker.read_round_confirmed(round) {
                self.bcast_heartbeat();
            }
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
            // Reads that arrived during this round get the next one.
            if !self.reads.waiting.is_empty() {
                self.advance_reads();
                return;
            }
        }
    }

    pub(super) fn follower_read_done(&mut self, id: u64, index: Index) {
        if let Some(pos) = self.reads.forwarded.iter().position(|&f| f == id) {
            self.reads.forwarded.swap_remove(pos);
            self.read_states.push(ReadState { id, index });
        }
    }
}
