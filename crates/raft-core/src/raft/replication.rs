//! Log replication (Raft §5.3, §5.4): appends, heartbeats, acknowledgements
//! and the commit rule; plus the leader's and follower's message dispatch.

use super::Raft;
use crate::message::{Body, Message, RejectHint};
use crate::progress::ProgressState;
use crate::types::{Index, Mode, NodeId, Role, Term};

/// Heartbeat rounds without an acknowledgement, with appends in flight,
/// after which the leader takes those appends for lost.
const STALLED_ROUNDS: u8 = 3;

impl Raft {
    pub(super) fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        for p in self.tracker.progress.values_mut() {
            p.last_contact = p.last_contact.saturating_add(1);
        }
        if self.transferee.is_some() {
            self.transfer_elapsed += 1;
            if self.transfer_elapsed >= self.cfg.election_tick {
                // The target never took over; accept proposals again.
                self.transferee = None;
                self.transfer_elapsed = 0;
            }
        }
        if self.election_elapsed >= self.cfg.election_tick {
            self.election_elapsed = 0;
            if self.cfg.check_quorum {
                if !self.tracker.quorum_active(self.id) {
                    self.become_follower(self.term, None);
                    return;
                }
                let me = self.id;
                for (&id, p) in self.tracker.progress.iter_mut() {
                    p.recent_active = id == me;
                }
            }
        }
        if self.heartbeat_elapsed >= self.cfg.heartbeat_tick {
            self.heartbeat_elapsed = 0;
            self.bcast_heartbeat();
            self.maybe_hand_over();
        }
    }

    pub(super) fn step_leader(&mut self, m: Message) {
        if let Some(p) = self.tracker.progress.get_mut(&m.from) {
            p.recent_active = true;
            p.mode = m.mode;
            p.last_contact = 0;
        } else {
            return; // not a member
        }
        match m.body {
            Body::AppendResponse {
                index,
                reject: None,
            } => self.handle_append_success(m.from, index),
            Body::AppendResponse {
                index,
                reject: Some(hint),
            } => self.handle_append_reject(m.from, index, hint),
            Body::HeartbeatResponse {
                read_round,
                applied,
            } => {
                let p = self
                    .tracker
                    .progress
                    .get_mut(&m.from)
                    .expect("checked above");
                p.read_round = p.read_round.max(read_round);
                p.applied = p.applied.max(applied);
                // Appends out for several heartbeat rounds with nothing
                // acknowledged were lost (a follower answering heartbeats
                // answers appends too): resend from what it has. One round
                // is not enough: a slow disk delays acks past a heartbeat,
                // and resending then would crawl one append per round.
                let waiting = p.matched == p.matched_at_heartbeat && p.next > p.matched + 1;
                p.stalled_rounds = if waiting { p.stalled_rounds + 1 } else { 0 };
                if p.state == ProgressState::Replicate && p.stalled_rounds >= STALLED_ROUNDS {
                    p.become_probe();
                    p.stalled_rounds = 0;
                }
                p.matched_at_heartbeat = p.matched;
                p.probe_sent = false;
                if p.state == ProgressState::Replicate && p.inflights.is_full() {
                    p.inflights.free_first();
                }
                if p.matched < self.log.last_index() {
                    self.send_append(m.from, false);
                }
                self.advance_reads();
            }
            Body::ReadIndex { id } => self.leader_read(id, m.from),
            Body::SnapshotAck { .. } => self.snapshot_msgs.push(m),
            _ => {}
        }
    }

    pub(super) fn step_follower(&mut self, m: Message) {
        match m.body {
            Body::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            } => {
                self.election_elapsed = 0;
                self.leader = Some(m.from);
                self.handle_append(m.from, prev_index, prev_term, &entries, commit);
            }
            Body::Heartbeat {
                commit,
                read_round,
                all_applied,
            } => {
                self.election_elapsed = 0;
                self.leader = Some(m.from);
                let last = self.log.last_index();
                self.log.commit_to(commit.min(last));
                self.check_rebuilt();
                if commit > last {
                    // The leader counts this node as holding `commit`, but
                    // its log ends before it: entries it acknowledged were
                    // lost (a damaged or replaced disk). Say where it ends.
                    let hint = RejectHint {
                        conflict_term: None,
                        conflict_index: last + 1,
                    };
                    let reject = Some(hint);
                    self.send(
                        m.from,
                        Body::AppendResponse {
                            index: commit,
                            reject,
                        },
                    );
                }
                self.all_applied = all_applied.min(self.log.applied);
                let applied = self.log.applied;
                self.send(
                    m.from,
                    Body::HeartbeatResponse {
                        read_round,
                        applied,
                    },
                );
                self.resend_forwarded_reads(m.from);
            }
            Body::SnapshotChunk { ref meta, .. } => {
                self.election_elapsed = 0;
                self.leader = Some(m.from);
                if meta.index <= self.log.committed {
                    // Not needed (any more): say where this log stands.
                    let index = self.log.committed;
                    self.send(
                        m.from,
                        Body::AppendResponse {
                            index,
                            reject: None,
                        },
                    );
                } else {
                    self.snapshot_msgs.push(m);
                }
            }
            // A passive node never campaigns, even when told to.
            Body::TimeoutNow if self.mode != Mode::Passive => self.start_campaign(true),
            Body::ReadIndexResponse { id, index } => self.follower_read_done(m.from, id, index),
            _ => {}
        }
    }

    fn handle_append(
        &mut self,
        from: NodeId,
        prev_index: Index,
        prev_term: Term,
        entries: &[crate::Entry],
        commit: Index,
    ) {
        if prev_index < self.log.committed {
            // Everything up to our commit index matches any leader's log.
            self.send(
                from,
                Body::AppendResponse {
                    index: self.log.committed,
                    reject: None,
                },
            );
            return;
        }
        match self.log.maybe_append(prev_index, prev_term, entries) {
            Some(last_new) => {
                self.confs_after_follower_append(prev_index, last_new, entries);
                self.log.commit_to(commit.min(last_new));
                self.check_rebuilt();
                self.send(
                    from,
                    Body::AppendResponse {
                        index: last_new,
                        reject: None,
                    },
                );
            }
            None => {
                let hint = match self.log.term(prev_index) {
                    None => RejectHint {
                        conflict_term: None,
                        conflict_index: self.log.last_index() + 1,
                    },
                    Some(t) => RejectHint {
                        conflict_term: Some(t),
                        conflict_index: self.log.first_index_of_term_at(prev_index),
                    },
                };
                self.send(
                    from,
                    Body::AppendResponse {
                        index: prev_index,
                        reject: Some(hint),
                    },
                );
            }
        }
    }

    fn handle_append_success(&mut self, from: NodeId, index: Index) {
        let p = self.tracker.progress.get_mut(&from).expect("member");
        if !p.maybe_update(index) {
            return;
        }
        if p.state != ProgressState::Replicate {
            // A probe matched, or a snapshot was installed.
            p.become_replicate();
        }
        self.maybe_commit();
        if self.role != Role::Leader {
            return; // the commit removed this leader from the cluster
        }
        // Keep the pipeline full.
        while self.send_append(from, false) {}
        if self.transferee == Some(from) && index == self.log.last_index() {
            self.send(from, Body::TimeoutNow);
        }
        self.maybe_hand_over();
    }

    fn handle_append_reject(&mut self, from: NodeId, rejected: Index, hint: RejectHint) {
        // Skip the follower's whole conflicting term: if we hold that term,
        // our entries of it match up to our last one; otherwise retry from
        // where the follower's run of it begins.
        let next = match hint.conflict_term {
            Some(t) => self
                .log
                .last_index_of_term(t, rejected)
                .map_or(hint.conflict_index, |i| i + 1),
            None => hint.conflict_index,
        };
        let p = self.tracker.progress.get_mut(&from).expect("member");
        // A rejection at or below what the peer acknowledged, saying its
        // log ends below that: it lost entries it had made durable (or
        // this answer is older than its acknowledgement: then resending
        // costs one append). Repair it rather than wait for ever.
        let lost = rejected <= p.matched
            && hint.conflict_term.is_none()
            && hint.conflict_index <= p.matched;
        let resend = if lost {
            p.lost_tail(hint.conflict_index.saturating_sub(1))
        } else {
            p.maybe_decr_to(rejected, next)
        };
        if resend {
            self.send_append(from, true);
        }
    }

    /// Commits what a quorum holds, if it is of the current term (§5.4.2).
    pub(super) fn maybe_commit(&mut self) {
        let quorum = self.tracker.committed();
        if quorum > self.log.committed && self.log.term(quorum) == Some(self.term) {
            self.log.commit_to(quorum);
            self.commit_bcast_pending = true;
            self.advance_reads();
            self.after_commit();
        }
    }

    /// Sends the next append to `to` unless its progress is paused. Returns
    /// whether anything was sent.
    pub(super) fn send_append(&mut self, to: NodeId, allow_empty: bool) -> bool {
        let last = self.log.last_index();
        let Some(p) = self.tracker.progress.get(&to) else {
            return false;
        };
        if p.is_paused() {
            return false;
        }
        let next = p.next;
        if next > last && !allow_empty {
            return false;
        }
        let prev_index = next - 1;
        let Some(prev_term) = self.log.term(prev_index) else {
            // Compacted away: only a snapshot can catch this peer up.
            self.start_snapshot(to);
            return true;
        };
        let mut entries = if next <= last {
            self.log.slice(next, last, self.cfg.max_append_bytes)
        } else {
            Vec::new()
        };
        entries.truncate(self.cfg.max_append_entries);
        let n = entries.len();
        let commit = self.log.committed;
        self.tracker
            .progress
            .get_mut(&to)
            .expect("checked")
            .sent_append(prev_index + n as Index, n);
        self.send(
            to,
            Body::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            },
        );
        true
    }

    pub(super) fn bcast_append(&mut self, allow_empty: bool) {
        for id in self.peers() {
            self.send_append(id, allow_empty);
        }
    }

    pub(super) fn bcast_heartbeat(&mut self) {
        let round = self.reads.current_round();
        self.update_all_applied();
        let all_applied = self.all_applied;
        for id in self.peers() {
            let matched = self.tracker.progress[&id].matched;
            let commit = matched.min(self.log.committed);
            self.send(
                id,
                Body::Heartbeat {
                    commit,
                    read_round: round,
                    all_applied,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::message::Body;
    use crate::raft::testkit::{
        ack, heartbeat, heartbeat_answer, leader, msg, node, persist, reject, round, sends,
    };
    use crate::types::{Mode, Role};
    use crate::{Error, Ready};
    use bytes::Bytes;

    /// Whether `rd` sends `to` an append carrying entry `index`.
    fn appends(rd: &Ready, to: u64, index: u64) -> bool {
        sends(rd, to, |b| match b {
            Body::Append { entries, .. } => entries.iter().any(|e| e.index == index),
            _ => false,
        })
    }

    fn replicating(r: &crate::Raft, id: u64) -> bool {
        let peers = r.status().peers;
        peers.iter().find(|p| p.id == id).unwrap().replicating
    }

    /// An idle, caught-up follower stays in the replicating state however
    /// many heartbeats pass: only appends in flight can stall.
    #[test]
    fn idle_followers_keep_replicating() {
        let mut r = leader(|_| {});
        for _ in 0..6 {
            round(&mut r);
        }
        assert!(replicating(&r, 2) && replicating(&r, 3));
    }

    /// Appends lost on the way (the follower answers heartbeats but never
    /// acknowledges) are sent again after a few heartbeat rounds.
    #[test]
    fn lost_appends_are_resent_after_stalled_rounds() {
        let mut r = leader(|_| {});
        r.propose(Bytes::from_static(b"x")).unwrap();
        let rd = persist(&mut r);
        assert!(
            appends(&rd, 2, 2),
            "test set-up: entry 2 went out (and is lost)"
        );
        ack(&mut r, 3, 2);
        let resent = (0..6).position(|_| appends(&round(&mut r), 2, 2));
        // The first answer records the match the rounds after it compare
        // with; three rounds without progress (STALLED_ROUNDS) follow.
        assert_eq!(resent, Some(3), "resent after round (0-based)");
        assert!(!replicating(&r, 2), "the peer is probed again");
    }

    /// With the inflight window full, a heartbeat answer frees its oldest
    /// slot, so one lost append does not stop the pipeline for good.
    #[test]
    fn a_heartbeat_answer_frees_a_full_window() {
        let mut r = leader(|c| c.max_inflight = 1);
        r.propose(Bytes::from_static(b"x")).unwrap();
        assert!(appends(&persist(&mut r), 2, 2), "test set-up");
        r.propose(Bytes::from_static(b"y")).unwrap();
        assert!(
            !appends(&persist(&mut r), 2, 3),
            "test set-up: the window is full"
        );
        heartbeat_answer(&mut r, 2);
        assert!(appends(&r.ready(), 2, 3), "the window stayed full");
    }

    /// A window with room keeps its count: a heartbeat answer frees a
    /// slot only when the window is full, so no more than `max_inflight`
    /// appends are ever out unacknowledged.
    #[test]
    fn a_heartbeat_answer_leaves_a_window_with_room_alone() {
        let mut r = leader(|c| c.max_inflight = 3);
        for (i, data) in ["a", "b"].into_iter().enumerate() {
            r.propose(Bytes::from(data)).unwrap();
            assert!(appends(&persist(&mut r), 2, 2 + i as u64), "test set-up");
        }
        heartbeat_answer(&mut r, 2);
        persist(&mut r);
        r.propose(Bytes::from_static(b"c")).unwrap();
        assert!(appends(&persist(&mut r), 2, 4), "the third append fits");
        r.propose(Bytes::from_static(b"d")).unwrap();
        assert!(
            !appends(&persist(&mut r), 2, 5),
            "a fourth append out of three slots"
        );
    }

    /// A transfer whose target never takes over is abandoned after an
    /// election timeout, not before: proposals are refused meanwhile.
    #[test]
    fn a_stuck_transfer_is_abandoned_after_an_election_timeout() {
        let mut r = leader(|_| {});
        r.propose(Bytes::from_static(b"x")).unwrap();
        persist(&mut r);
        ack(&mut r, 2, 2);
        r.transfer_leader(3).unwrap();
        for tick in 1..10 {
            round(&mut r);
            let refused = r.propose(Bytes::from_static(b"y"));
            assert_eq!(refused, Err(Error::TransferInProgress(3)), "tick {tick}");
        }
        round(&mut r);
        assert!(r.propose(Bytes::from_static(b"y")).is_ok());
    }

    /// A passive node never campaigns, even when a leader (that thought
    /// it active) tells it to take over.
    #[test]
    fn a_passive_follower_ignores_timeout_now() {
        let mut r = node(2, |c| c.mode = Mode::Passive);
        r.step(heartbeat(2, 1, 0));
        r.step(msg(1, 2, 1, Body::TimeoutNow));
        assert_eq!((r.role(), r.term()), (Role::Follower, 1));
    }

    /// A rejection older than the acknowledgement it arrives after (it
    /// names a conflicting term, so the follower's log did not end there)
    /// is not a lost tail: the acknowledged match stands.
    #[test]
    fn a_stale_rejection_is_not_a_lost_tail() {
        let mut r = leader(|_| {});
        r.propose_batch([Bytes::from_static(b"x"), Bytes::from_static(b"y")])
            .unwrap();
        persist(&mut r);
        ack(&mut r, 2, 3);
        reject(&mut r, 2, 2, Some(1), 1);
        let peers = r.status().peers;
        let p = peers.iter().find(|p| p.id == 2).unwrap();
        assert_eq!((p.lost_tails, p.matched), (0, 3));
    }
}
