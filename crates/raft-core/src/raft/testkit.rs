//! Unit-test helpers: a node of the cluster 1, 2, 3, put into a chosen
//! state by stepping it the messages a real cluster would send it.

use crate::Raft;
use crate::config::{Config, InitialState};
use crate::message::{Body, Message, RejectHint};
use crate::ready::Ready;
use crate::types::{Index, Mode, NodeId, Term};

/// A message from `from` to `to` in `term`, from a node with no storage
/// id and in active mode.
pub(crate) fn msg(from: NodeId, to: NodeId, term: Term, body: Body) -> Message {
    Message {
        from,
        to,
        term,
        mode: Mode::Active,
        body,
        storage: 0,
    }
}

/// Node `id` of a new cluster 1, 2, 3 with pre-vote off (each campaign
/// raises the term at once) and `tweak` applied to its configuration.
pub(crate) fn node(id: NodeId, tweak: impl FnOnce(&mut Config)) -> Raft {
    node_from(id, InitialState::new_cluster([1, 2, 3]), tweak)
}

/// Node `id` started from `state`, pre-vote off, `tweak` applied.
pub(crate) fn node_from(id: NodeId, state: InitialState, tweak: impl FnOnce(&mut Config)) -> Raft {
    let mut cfg = Config::new(id);
    cfg.pre_vote = false;
    tweak(&mut cfg);
    let mut r = Raft::new(cfg, state).expect("a valid test node");
    let _ = r.ready();
    r
}

/// Drains `r`'s output, making what it holds durable first.
pub(crate) fn persist(r: &mut Raft) -> Ready {
    let rd = r.ready();
    if let Some(e) = rd.entries.last() {
        r.on_persisted(e.index, e.term);
    }
    rd
}

/// Node 1 elected in term 1 by node 2's vote, its no-op (index 1)
/// durable and acknowledged by 2 and 3, so committed; output drained.
pub(crate) fn leader(tweak: impl FnOnce(&mut Config)) -> Raft {
    let mut r = node(1, tweak);
    r.campaign().expect("an active node campaigns");
    persist(&mut r);
    r.step(vote_granted(2, 1));
    persist(&mut r);
    ack(&mut r, 2, 1);
    ack(&mut r, 3, 1);
    persist(&mut r);
    assert_eq!(r.status().commit, 1, "test set-up: the no-op commits");
    r
}

/// `from`'s vote for node 1 in `term`.
pub(crate) fn vote_granted(from: NodeId, term: Term) -> Message {
    let body = Body::VoteResponse {
        pre_vote: false,
        granted: true,
    };
    msg(from, 1, term, body)
}

/// Leader 1 hears `from` acknowledge its log up to `index`.
pub(crate) fn ack(r: &mut Raft, from: NodeId, index: Index) {
    let body = Body::AppendResponse {
        index,
        reject: None,
    };
    r.step(msg(from, 1, r.term(), body));
}

/// Leader 1 hears `from` reject an append after `index`: its log holds
/// `conflict_term` there from `conflict_index` on (`None`: it ends before
/// `index`, at `conflict_index - 1`).
pub(crate) fn reject(
    r: &mut Raft,
    from: NodeId,
    index: Index,
    conflict_term: Option<Term>,
    conflict_index: Index,
) {
    let hint = RejectHint {
        conflict_term,
        conflict_index,
    };
    let body = Body::AppendResponse {
        index,
        reject: Some(hint),
    };
    r.step(msg(from, 1, r.term(), body));
}

/// Leader 1 hears `from` answer a heartbeat.
pub(crate) fn heartbeat_answer(r: &mut Raft, from: NodeId) {
    let body = Body::HeartbeatResponse {
        read_round: 0,
        applied: 0,
    };
    r.step(msg(from, 1, r.term(), body));
}

/// Node `to` hears a heartbeat from leader 1 in `term`.
pub(crate) fn heartbeat(to: NodeId, term: Term, commit: Index) -> Message {
    let body = Body::Heartbeat {
        commit,
        read_round: 0,
        all_applied: 0,
    };
    msg(1, to, term, body)
}

/// Whether `rd` sends `to` a message matching `pred`.
pub(crate) fn sends(rd: &Ready, to: NodeId, pred: impl Fn(&Body) -> bool) -> bool {
    rd.messages
        .iter()
        .chain(&rd.persisted_messages)
        .any(|m| m.to == to && pred(&m.body))
}

/// Leader 1 ticks once and hears 2 and 3 answer; its output drained
/// (made durable first).
pub(crate) fn round(r: &mut Raft) -> Ready {
    r.tick();
    heartbeat_answer(r, 2);
    heartbeat_answer(r, 3);
    persist(r)
}
