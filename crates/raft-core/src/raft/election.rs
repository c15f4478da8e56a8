//! Timers, campaigns and votes (Raft §5.2, pre-vote from dissertation §9.6).

use super::Raft;
use crate::message::{Body, Message};
use crate::quorum::VoteResult;
use crate::types::{Index, Mode, Role, Term};

impl Raft {
    /// A fresh timeout. Active nodes draw from
    /// `election_tick..2 * election_tick`; reluctant nodes from
    /// `2 * election_tick..3 * election_tick`, longer than any active node
    /// could wait, so a viable active node wins the race, yet random, so
    /// reluctant nodes alone (no active one up) do not campaign in lockstep
    /// and split the vote forever (the simulator found that livelock with
    /// a fixed timeout); passive nodes never campaign.
    pub(super) fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        let et = self.cfg.election_tick;
        self.randomized_timeout = match self.mode {
            Mode::Active => self.rng.range(et, 2 * et),
            Mode::Reluctant => self.rng.range(2 * et, 3 * et),
            Mode::Passive => 2 * et,
        };
    }

    /// Tick for every role but leader.
    pub(super) fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.election_elapsed >= self.randomized_timeout && self.mode != Mode::Passive {
            self.start_campaign(false);
        }
    }

    /// Runs a pre-vote round first when configured, unless a leadership
    /// transfer asked for this election (the old leader vouches for it).
    pub(super) fn start_campaign(&mut self, transfer: bool) {
        if !self.tracker.is_voter(self.id) || self.rebuilding {
            self.reset_election_timer();
            return;
        }
        if self.cfg.pre_vote && !transfer {
            self.become_pre_candidate();
            self.request_votes(true, false);
        } else {
            self.become_candidate();
            self.request_votes(false, transfer);
        }
    }

    fn request_votes(&mut self, pre_vote: bool, transfer: bool) {
        // Our own vote: for a real election it is in the hard state, which
        // the requests below wait for (they go out after persisting).
        if self.tracker.record_vote(self.id, true) == VoteResult::Won {
            self.on_election_won(pre_vote);
            return;
        }
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        let term = if pre_vote { self.term + 1 } else { self.term };
        for id in self.tracker.voters.ids() {
            if id == self.id {
                continue;
            }
            let body = Body::RequestVote {
                pre_vote,
                last_index,
                last_term,
                transfer,
            };
            let m = Message {
                from: self.id,
                to: id,
                term,
                mode: self.mode,
                body,
                storage: self.storage,
            };
            if pre_vote {
                self.messages.push(m);
            } else {
                self.persisted_messages.push(m);
            }
        }
    }

    fn on_election_won(&mut self, pre_vote: bool) {
        if pre_vote {
            self.become_candidate();
            self.request_votes(false, false);
        } else {
            self.become_leader();
        }
    }

    /// Any role, after term reconciliation.
    pub(super) fn handle_vote_request(
        &mut self,
        m: &Message,
        pre_vote: bool,
        last_index: Index,
        last_term: Term,
    ) {
        // We may vote for m.from if we already did, or have voted for nobody
        // and know no leader in this term, or (pre-vote) it asks about a
        // future term.
        let can_vote = !self.rebuilding
            && (self.vote == Some(m.from)
                || (self.vote.is_none() && self.leader.is_none())
                || (pre_vote && m.term > self.term));
        let granted = can_vote && self.log.is_up_to_date(last_index, last_term);
        let body = Body::VoteResponse { pre_vote, granted };
        if granted {
            // A granted pre-vote answers in the term it asked about.
            let term = if pre_vote { m.term } else { self.term };
            let reply = Message {
                from: self.id,
                to: m.from,
                term,
                mode: self.mode,
                body,
                storage: self.storage,
            };
            if pre_vote {
                self.messages.push(reply);
            } else {
                self.vote = Some(m.from);
                self.election_elapsed = 0;
                self.persisted_messages.push(reply);
            }
        } else {
            self.send(m.from, body);
        }
    }

    /// A node being rebuilt stops abstaining once a configuration in force
    /// at some committed index makes it a learner: it was demoted, so its
    /// lost votes and acknowledgements no longer count, and it becomes a
    /// voter again only by a later configuration change, once caught up.
    /// Every committed configuration is looked at, not only the latest: the
    /// promotion may follow the demotion within one append.
    pub(super) fn check_rebuilt(&mut self) {
        let (lo, hi) = (self.rebuild_seen, self.log.committed);
        if !self.rebuilding || hi <= lo {
            return;
        }
        let id = self.id;
        let demoted = self
            .confs
            .in_force_between(lo, hi)
            .any(|m| m.members().contains(&id) && !m.is_voter(id));
        self.rebuild_seen = hi;
        if demoted {
            self.rebuilding = false;
        }
    }

    /// Pre-candidates and candidates.
    pub(super) fn step_candidate(&mut self, m: Message) {
        match m.body {
            Body::Append { .. } | Body::Heartbeat { .. } | Body::SnapshotChunk { .. } => {
                // A leader exists in our term (for a pre-candidate: in the
                // term we did not raise).
                self.become_follower(m.term, Some(m.from));
                self.step_follower(m);
            }
            Body::VoteResponse { pre_vote, granted } => {
                let expected = if pre_vote {
                    Role::PreCandidate
                } else {
                    Role::Candidate
                };
                if self.role != expected {
                    return;
                }
                // A granted pre-vote arrives in term + 1; only that counts.
                if pre_vote && granted && m.term != self.term + 1 {
                    return;
                }
                match self.tracker.record_vote(m.from, granted) {
                    VoteResult::Won => self.on_election_won(pre_vote),
                    VoteResult::Lost => self.become_follower(self.term, None),
                    VoteResult::Pending => {}
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Raft;
    use crate::config::{Config, InitialState};
    use crate::membership::Membership;
    use crate::message::{Body, Message};
    use crate::raft::testkit::{msg, node, sends};
    use crate::types::Mode;
    use crate::types::{Entry, Payload};

    /// Ticks a fresh node 2 of 1, 2, 3 (election tick 10) until it asks
    /// for votes; returns how many ticks that took.
    fn ticks_to_campaign(mode: Mode, seed: u64) -> u64 {
        let mut cfg = Config::new(2);
        cfg.election_tick = 10;
        cfg.mode = mode;
        cfg.seed = seed;
        let mut r = Raft::new(cfg, InitialState::new_cluster([1, 2, 3])).unwrap();
        let _ = r.ready();
        for tick in 1..=100 {
            r.tick();
            let rd = r.ready();
            if rd
                .messages
                .iter()
                .any(|m| matches!(m.body, Body::RequestVote { .. }))
            {
                return tick;
            }
        }
        panic!("no campaign in 100 ticks");
    }

    /// Active nodes wait one to two election timeouts, reluctant ones two
    /// to three, each drawn at random over the whole range.
    #[test]
    fn campaigns_start_within_the_modes_range() {
        for (mode, lo, hi) in [(Mode::Active, 10, 20), (Mode::Reluctant, 20, 30)] {
            let waits: Vec<u64> = (0..200).map(|s| ticks_to_campaign(mode, s)).collect();
            let (min, max) = (waits.iter().min(), waits.iter().max());
            assert!(
                waits.iter().all(|w| (lo..hi).contains(w)),
                "{mode:?}: {waits:?}"
            );
            assert_eq!((min, max), (Some(&lo), Some(&(hi - 1))), "{mode:?}");
        }
    }

    /// A message meant for another node, or seemingly from this one, is
    /// ignored entirely (its term too).
    #[test]
    fn misaddressed_messages_are_ignored() {
        let mut r = Raft::new(Config::new(2), InitialState::new_cluster([1, 2, 3])).unwrap();
        for (from, to) in [(1, 3), (2, 2)] {
            r.step(Message {
                from,
                to,
                term: 5,
                mode: Mode::Active,
                body: Body::Heartbeat {
                    commit: 0,
                    read_round: 0,
                    all_applied: 0,
                },
                storage: 0,
            });
            assert_eq!(r.term(), 0, "from {from} to {to}");
        }
    }

    fn vote_request(from: u64, term: u64, pre_vote: bool) -> Message {
        let body = Body::RequestVote {
            pre_vote,
            last_index: 0,
            last_term: 0,
            transfer: false,
        };
        msg(from, 2, term, body)
    }

    /// One vote per term (§5.2): a node that voted for 3 in term 2
    /// refuses node 1 that term, for real and in a pre-vote asking about
    /// that same term (a pre-vote is granted freely only for a later one).
    #[test]
    fn a_node_that_voted_refuses_others_that_term() {
        let mut r = node(2, |c| c.check_quorum = false);
        r.step(vote_request(3, 2, false));
        let rd = r.ready();
        let granted = |b: &Body| matches!(b, Body::VoteResponse { granted: true, .. });
        assert!(sends(&rd, 3, granted), "test set-up: 2 votes for 3");
        for pre_vote in [true, false] {
            r.step(vote_request(1, 2, pre_vote));
            let rd = r.ready();
            assert!(!sends(&rd, 1, granted), "pre_vote {pre_vote}: voted twice");
            let refused = |b: &Body| matches!(b, Body::VoteResponse { granted: false, .. });
            assert!(sends(&rd, 1, refused), "pre_vote {pre_vote}: no answer");
        }
    }

    /// An append from leader 1 in term 1 carrying configuration `m` at
    /// `index` (after `index - 1` of term 1) and committing it.
    fn append_conf(index: u64, m: Membership) -> Message {
        let entries = vec![Entry {
            term: 1,
            index,
            payload: Payload::Config(Box::new(m)),
        }];
        let body = Body::Append {
            prev_index: index - 1,
            prev_term: if index > 1 { 1 } else { 0 },
            entries,
            commit: index,
        };
        msg(1, 2, 1, body)
    }

    /// A node being rebuilt abstains (votes for no one, acknowledges
    /// nothing as a voter) while the committed configurations keep it a
    /// voter, and stops once one makes it a learner.
    #[test]
    fn a_rebuilt_node_abstains_until_demoted() {
        let mut r = node(2, |c| c.rebuilding = true);
        let mut with_learner = Membership::new([1, 2, 3]);
        with_learner.learners.insert(4);
        r.step(append_conf(1, with_learner));
        r.tick();
        assert_eq!(r.status().commit, 1, "test set-up: the append applies");
        assert!(r.status().rebuilding, "stopped abstaining while a voter");
        let mut demoted = Membership::new([1, 3]);
        demoted.learners.insert(2);
        r.step(append_conf(2, demoted));
        r.tick();
        assert!(!r.status().rebuilding, "still abstaining once demoted");
    }
}
