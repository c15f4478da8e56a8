//! Leadership transfer (dissertation §3.10), and the hand-over that
//! reluctant and passive leaders make to an eligible peer.

use super::Raft;
use crate::error::Error;
use crate::message::Body;
use crate::types::{Mode, NodeId, Role};

impl Raft {
    /// Hands leadership to `target`: once its log is caught up it is told
    /// to campaign at once. Proposals are refused meanwhile; the transfer
    /// is abandoned after an election timeout.
    pub fn transfer_leader(&mut self, target: NodeId) -> Result<(), Error> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader {
                leader: self.leader,
            });
        }
        if target == self.id {
            return Ok(());
        }
        if !self.tracker.is_voter(target) {
            return Err(Error::NotAVoter(target));
        }
        if self.tracker.progress[&target].mode == Mode::Passive {
            return Err(Error::IneligibleTarget(target));
        }
        if self.transferee == Some(target) {
            return Ok(());
        }
        self.transferee = Some(target);
        self.transfer_elapsed = 0;
        let p = self
            .tracker
            .progress
            .get_mut(&target)
            .expect("voters have progress");
        if p.matched == self.log.last_index() {
            self.send(target, Body::TimeoutNow);
        } else {
            // Catch the target up now, from what it is known to hold,
            // rather than trusting appends in flight to arrive.
            p.become_probe();
            self.send_append(target, false);
        }
        Ok(())
    }

    /// pyraftlog's reluctance: a leader that is not active gives leadership
    /// to a caught-up, recently heard voter that is more willing than it
    /// (active first; a passive leader also accepts a reluctant one). Waits
    /// for the term's no-op to commit so the target inherits a settled log.
    pub(super) fn maybe_hand_over(&mut self) {
        if self.role != Role::Leader || self.mode == Mode::Active || self.transferee.is_some() {
            return;
        }
        if self.log.term(self.log.committed) != Some(self.term) {
            return;
        }
        let last = self.log.last_index();
        let eligible = |mode: Mode| match self.mode {
            Mode::Reluctant => mode == Mode::Active,
            _ => mode != Mode::Passive,
        };
        let mut candidates: Vec<(bool, NodeId)> = self
            .tracker
            .progress
            .iter()
            .filter(|(id, p)| {
                **id != self.id
                    && self.tracker.is_voter(**id)
                    && p.recent_active
                    && p.matched == last
                    && eligible(p.mode)
            })
            .map(|(&id, p)| (p.mode != Mode::Active, id))
            .collect();
        candidates.sort_unstable();
        if let Some(&(_, target)) = candidates.first() {
            let _ = self.transfer_leader(target);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::message::{Body, Message};
    use crate::raft::testkit::{leader, msg, persist, sends};
    use crate::types::Mode;

    /// A passive leader hands over to an active peer rather than a
    /// reluctant one when both are caught up and heard from.
    #[test]
    fn a_passive_leader_prefers_an_active_heir() {
        let mut r = leader(|_| {});
        r.set_mode(Mode::Passive);
        for (from, mode) in [(2, Mode::Reluctant), (3, Mode::Active)] {
            let body = Body::HeartbeatResponse {
                read_round: 0,
                applied: 0,
            };
            r.step(Message {
                mode,
                ..msg(from, 1, 1, body)
            });
        }
        r.tick();
        let rd = persist(&mut r);
        let told = |to| sends(&rd, to, |b| matches!(b, Body::TimeoutNow));
        assert!(told(3) && !told(2), "{:?}", rd.messages);
    }
}
