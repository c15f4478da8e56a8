//! Node status (pyraftlog's `GET /`), Consul's status and operator
//! endpoints, and this node's mode.

use super::ApiContext;
use super::answers::{MemberBody, NodeStatusBody};
use super::http::{self, ApiError, ApiResult, Query};
use hyper::StatusCode;
use raft_core::node::{NodeError, NodeStatus};
use raft_core::{ConfChange, Membership, Mode, NodeId, Role};
use serde_json::json;
use std::time::Duration;

/// Applied lagging commit by more than this turns health yellow
/// (pyraftlog's threshold).
const APPLY_LAG_YELLOW: u64 = 500;

/// green / yellow / red, with the reasons for anything but green.
pub fn health(s: &NodeStatus) -> (&'static str, Vec<String>) {
    let mut red = Vec::new();
    let mut yellow = Vec::new();
    if let Some(f) = &s.failed {
        red.push(format!("storage failed: {f}"));
    }
    if let Some(d) = &s.damage {
        red.push(format!(
            "stored data is damaged (a new snapshot replaces it): {d}"
        ));
    }
    if s.raft.leader.is_none() {
        red.push("no leader".into());
    }
    if s.is_leader() && !s.quorum_live {
        red.push("the leader cannot reach a quorum".into());
    }
    if s.is_leader() {
        for p in &s.raft.peers {
            if p.last_contact >= s.election_tick {
                yellow.push(format!("member {} is unreachable", p.id));
            }
            if p.repairing {
                yellow.push(format!(
                    "member {} lost entries it had acknowledged; they are being sent again",
                    p.id
                ));
            }
        }
    }
    if s.raft.rebuilding {
        yellow.push(
            "being rebuilt from its peers: it does not vote until the leader has demoted it".into(),
        );
    }
    let lag = s.raft.commit.saturating_sub(s.raft.applied);
    if lag > APPLY_LAG_YELLOW {
        yellow.push(format!("applied lags commit by {lag} entries"));
    }
    if !red.is_empty() {
        red.extend(yellow);
        ("red", red)
    } else if !yellow.is_empty() {
        ("yellow", yellow)
    } else {
        ("green", Vec::new())
    }
}

fn role(r: Role) -> &'static str {
    match r {
        Role::Follower => "follower",
        Role::PreCandidate => "pre-candidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

/// `health`, its reasons naming members by address, not id.
pub fn health_named(s: &NodeStatus) -> (&'static str, Vec<String>) {
    let (colour, mut reasons) = health(s);
    for r in reasons.iter_mut() {
        for (id, name) in &s.raft.membership.addresses {
            *r = r.replace(&format!("member {id} "), &format!("member {name} "));
        }
    }
    (colour, reasons)
}

pub fn node_status(ctx: &ApiContext, who: &super::access::Principal) -> ApiResult {
    let s = ctx.node.status();
    let (colour, reasons) = health_named(&s);
    let conf = &s.raft.membership;
    let me = s.raft.id;
    let members = conf
        .members()
        .into_iter()
        .map(|id| member_body(ctx, &s, id))
        .collect();
    let leader = s.raft.leader.map(|l| ctx.name(l));
    let leader_api = s.raft.leader.and_then(|l| {
        if l == me {
            None
        } else {
            (ctx.peer_client_addr)(l)
        }
    });
    let body = NodeStatusBody {
        id: ctx.name(me),
        role: role(s.raft.role),
        mode: s.raft.mode.to_string(),
        term: s.raft.term,
        vote: s.raft.vote.map(|v| ctx.name(v)),
        leader,
        leader_command_port: leader_api,
        commit_index: s.raft.commit,
        applied_index: s.raft.applied,
        last_index: s.raft.last_index,
        persisted_index: s.raft.persisted,
        snapshot_index: s.raft.snapshot,
        first_index: s.raft.first_index,
        uptime_s: ctx.started.elapsed().as_secs_f64(),
        health: colour,
        health_reasons: reasons,
        members,
        configuration: membership_json(conf),
        configuration_index: s.raft.conf_index,
        keys: ctx.kv.read().keys(),
        log_reduction: ctx.log_reduction,
        storage_failed: s.failed.clone(),
        rebuilding: s.raft.rebuilding,
        storage_damage: s.damage.clone(),
        client_role: who.describe(),
        anonymous_role: ctx.anonymous.map(|r| r.name()),
    };
    Ok(http::with_index(
        http::answer(StatusCode::OK, &body),
        s.raft.applied,
    ))
}

/// One member as this node sees it: its own replication state, or (on
/// the leader) a follower's.
fn member_body(ctx: &ApiContext, s: &NodeStatus, id: NodeId) -> MemberBody {
    let me = s.raft.id;
    let mut m = MemberBody {
        id: ctx.name(id),
        voter: s.raft.membership.is_voter(id),
        this: id == me,
        ..MemberBody::default()
    };
    if id == me {
        m.mode = Some(s.raft.mode.to_string());
        m.match_index = Some(s.raft.persisted);
        return m;
    }
    m.command_port = (ctx.peer_client_addr)(id);
    if let Some(p) = s.raft.peers.iter().find(|p| p.id == id) {
        m.mode = Some(p.mode.to_string());
        m.match_index = Some(p.matched);
        m.next_index = Some(p.next);
        m.replicating = Some(p.replicating);
        m.last_contact_ms = Some(p.last_contact * s.tick_ms);
        m.connected = Some(p.last_contact < s.election_tick);
    }
    m
}

pub fn leader(ctx: &ApiContext) -> ApiResult {
    let s = ctx.node.status();
    let name = s.raft.leader.map(|l| ctx.name(l)).unwrap_or_default();
    Ok(http::json(StatusCode::OK, &json!(name)))
}

pub fn peers(ctx: &ApiContext) -> ApiResult {
    let s = ctx.node.status();
    let names: Vec<_> = s.voters.iter().map(|&v| ctx.name(v)).collect();
    Ok(http::json(StatusCode::OK, &json!(names)))
}

/// A configuration as JSON: members by address, the joint phase spelled
/// out while one is in progress.
pub fn membership_json(m: &Membership) -> serde_json::Value {
    let names = |ids: &std::collections::BTreeSet<NodeId>| -> Vec<String> {
        ids.iter()
            .map(|id| {
                m.addresses
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| id.to_string())
            })
            .collect()
    };
    json!({
        "voters": names(&m.voters),
        "learners": names(&m.learners),
        "joint": m.is_joint(),
        "outgoing_voters": names(&m.outgoing),
        "learners_after_joint": names(&m.learners_next),
    })
}

/// Consul's configuration: every member, voters and learners (non-voters),
/// plus this API's `Joint` while a change is in progress.
pub fn configuration(ctx: &ApiContext) -> ApiResult {
    let s = ctx.node.status();
    let conf = &s.raft.membership;
    let servers: Vec<_> = conf
        .members()
        .into_iter()
        .map(|v| {
            json!({
                "ID": v.to_string(),
                "Node": ctx.name(v),
                "Address": ctx.name(v),
                "Leader": s.raft.leader == Some(v),
                "Voter": conf.is_voter(v),
            })
        })
        .collect();
    Ok(http::json(
        StatusCode::OK,
        &json!({
            "Servers": servers,
            "Index": s.raft.conf_index,
            "Joint": conf.is_joint(),
            "Configuration": membership_json(conf),
        }),
    ))
}

/// Resolves a member given by name (its address) or numeric id.
fn member(ctx: &ApiContext, who: &str) -> Result<NodeId, ApiError> {
    let s = ctx.node.status();
    let conf = &s.raft.membership;
    if let Some(id) = conf.member_at(who) {
        return Ok(id);
    }
    let by_addr = (ctx.id_of)(who).ok().map(|(id, _)| id);
    by_addr
        .into_iter()
        .chain(who.parse::<NodeId>().ok())
        .find(|id| conf.members().contains(id))
        .ok_or_else(|| ApiError::bad_request(format!("{who:?} is not a member")))
}

fn leader_only(ctx: &ApiContext) -> Result<(), ApiError> {
    let s = ctx.node.status();
    if s.is_leader() {
        return Ok(());
    }
    Err(ApiError::from_node(match s.raft.leader {
        None => NodeError::NoLeader,
        leader => NodeError::NotLeader { leader },
    }))
}

/// How long a newcomer may take to catch up before its promotion to voter
/// is given up (it stays a learner; asking again retries).
const CATCH_UP: Duration = Duration::from_secs(120);

/// `PUT /v1/operator/raft/peer?address=<peer address>[&id=<node id>][&learner][&wait]`:
/// adds a member (the id defaults to the one the address hashes to, which
/// is what a founding member has; a node started with `--join` sends its
/// own). A voter joins as a learner first; once its log has caught up it
/// is promoted, in the background unless `wait` is given.
pub async fn add_peer(ctx: &ApiContext, q: &Query) -> ApiResult {
    let addr = q
        .get("address")
        .ok_or_else(|| ApiError::bad_request("expected ?address=<host:port of the new member>"))?;
    let (default_id, address) = (ctx.id_of)(addr).map_err(ApiError::bad_request)?;
    let asked = match q.get("id") {
        Some(i) => Some(
            i.parse::<NodeId>()
                .ok()
                .filter(|&i| i != 0)
                .ok_or_else(|| ApiError::bad_request(format!("bad node id {i:?}")))?,
        ),
        None => None,
    };
    let wait = q.strict_flag("wait")?;
    leader_only(ctx)?;
    let conf = ctx.node.status().raft.membership;
    // One address is one member: asking again for a member's address is
    // about that member, whatever id the address would hash to.
    let id = match (conf.member_at(&address), asked) {
        (Some(h), Some(a)) if h != a => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("{address} is already the address of member {h}, not of node {a}"),
            ));
        }
        (Some(h), _) => h,
        (None, a) => a.unwrap_or(default_id),
    };
    let answer = |code, state: &str, index: u64| {
        let v = json!({ "address": address, "state": state, "index": index });
        Ok(http::json(code, &v))
    };
    if q.flag("rebuild") {
        return rebuild_peer(ctx, id, address).await;
    }
    if conf.voters.contains(&id) && !conf.is_joint() {
        return answer(StatusCode::OK, "voter", ctx.node.status().raft.conf_index);
    }
    if q.flag("learner") {
        if conf.learners.contains(&id) {
            return answer(StatusCode::OK, "learner", ctx.node.status().raft.conf_index);
        }
        let index = add_learner(ctx, id, &address).await?;
        return answer(StatusCode::OK, "learner", index);
    }
    if wait {
        let index = ctx
            .node
            .add_voter(id, address.clone(), CATCH_UP)
            .await
            .map_err(ApiError::from_node)?;
        return answer(StatusCode::OK, "voter", index);
    }
    if !conf.learners.contains(&id) {
        add_learner(ctx, id, &address).await?;
    }
    let node = ctx.node.clone();
    let name = address.clone();
    tokio::spawn(async move {
        match node.add_voter(id, name.clone(), CATCH_UP).await {
            Ok(_) => tracing::info!(member = %name, "promoted to voter"),
            Err(e) => tracing::warn!(member = %name, "not promoted: {e}"),
        }
    });
    let index = ctx.node.status().raft.conf_index;
    answer(StatusCode::ACCEPTED, "learner, promotion pending", index)
}

/// Makes `id` a learner at `address` (adding it, or demoting a voter);
/// the index of the change.
async fn add_learner(ctx: &ApiContext, id: NodeId, address: &str) -> Result<u64, ApiError> {
    let address = address.to_string();
    let change = ConfChange::AddLearner { id, address };
    ctx.node
        .change_membership(vec![change])
        .await
        .map_err(ApiError::from_node)
}

/// `PUT /v1/operator/raft/peer?address=..&id=..&rebuild`, asked by a
/// member that lost its storage and restarted empty under its old id
/// (`raft-mock --rebuild`): it may have voted and acknowledged entries it
/// no longer holds, so it is demoted to a learner first (its old
/// acknowledgements then count for nothing), and promoted back to voter
/// once it has caught up, in the background.
async fn rebuild_peer(ctx: &ApiContext, id: NodeId, address: String) -> ApiResult {
    let conf = ctx.node.status().raft.membership;
    if !conf.members().contains(&id) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "node {id} is not a member: nothing to rebuild (a new node joins without ?rebuild)"
            ),
        ));
    }
    if conf.is_voter(id) {
        add_learner(ctx, id, &address).await?;
        tracing::warn!(member = %address, "demoted to learner to be rebuilt from its peers");
    }
    let node = ctx.node.clone();
    let name = address.clone();
    tokio::spawn(async move {
        // It must see itself a learner before it is a voter again (until
        // then it does not vote): promote it only once it has applied the
        // demotion, not in the same snapshot or append as it.
        let mut rx = node.watch_status();
        let wait = async {
            let learner = |s: &raft_core::node::NodeStatus| {
                let m = &s.raft.membership;
                !m.is_joint() && m.learners.contains(&id) && s.raft.commit >= s.raft.conf_index
            };
            let demoted_at = rx.wait_for(learner).await?.raft.conf_index;
            let applied = |s: &raft_core::node::NodeStatus| {
                s.raft
                    .peers
                    .iter()
                    .any(|p| p.id == id && p.applied >= demoted_at)
            };
            rx.wait_for(applied).await.map(|_| ())
        };
        if !matches!(tokio::time::timeout(CATCH_UP, wait).await, Ok(Ok(()))) {
            tracing::warn!(member = %name, "not promoted: it did not apply its demotion");
            return;
        }
        match node.add_voter(id, name.clone(), CATCH_UP).await {
            Ok(_) => tracing::info!(member = %name, "rebuilt and promoted to voter"),
            Err(e) => tracing::warn!(member = %name, "not promoted after its rebuild: {e}"),
        }
    });
    let index = ctx.node.status().raft.conf_index;
    let v = json!({ "address": address, "state": "learner, being rebuilt", "index": index });
    Ok(http::json(StatusCode::ACCEPTED, &v))
}

/// Consul's `DELETE /v1/operator/raft/peer?address=<member>` (or `?id=`).
/// Removing the leader works: it steps down once the change commits.
pub async fn remove_peer(ctx: &ApiContext, q: &Query) -> ApiResult {
    let who = q
        .get("address")
        .or_else(|| q.get("id"))
        .ok_or_else(|| ApiError::bad_request("expected ?address=<member>"))?;
    let id = member(ctx, who)?;
    leader_only(ctx)?;
    let name = ctx.name(id);
    let index = ctx
        .node
        .change_membership(vec![ConfChange::Remove { id }])
        .await
        .map_err(ApiError::from_node)?;
    Ok(http::json(
        StatusCode::OK,
        &json!({ "removed": name, "index": index }),
    ))
}

/// Consul's `POST /v1/operator/raft/transfer-leader?id=<member>`; without
/// `id`, the leader picks the most caught-up voter.
pub async fn transfer(ctx: &ApiContext, q: &Query) -> ApiResult {
    let s = ctx.node.status();
    if !s.is_leader() {
        let mut e = ApiError::from_node(raft_core::node::NodeError::NotLeader {
            leader: s.raft.leader,
        });
        e.message = "only the leader can transfer leadership".into();
        return Err(e);
    }
    let target = match q.get("id") {
        Some(who) => member(ctx, who)?,
        None => s
            .raft
            .peers
            .iter()
            .filter(|p| p.mode != Mode::Passive)
            .max_by_key(|p| (p.matched, std::cmp::Reverse(p.id)))
            .map(|p| p.id)
            .ok_or_else(|| ApiError::new(StatusCode::CONFLICT, "no member can take over"))?,
    };
    ctx.node
        .transfer_leader(target)
        .await
        .map_err(ApiError::from_node)?;
    // Wait (bounded) for the hand-over, so the answer says how it went.
    let mut rx = ctx.node.watch_status();
    let wait = std::time::Duration::from_secs(3);
    let done = tokio::time::timeout(wait, rx.wait_for(|s| s.raft.leader == Some(target))).await;
    let ok = matches!(done, Ok(Ok(_)));
    let v = json!({ "Success": ok, "leader": ctx.name(target) });
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok(http::json(code, &v))
}

pub fn get_mode(ctx: &ApiContext) -> ApiResult {
    let s = ctx.node.status();
    Ok(http::json(
        StatusCode::OK,
        &json!({ "mode": s.raft.mode.to_string() }),
    ))
}

/// pyraftlog's `PATCH /` with `{"mode": "..."}`.
pub async fn set_mode(ctx: &ApiContext, body: &[u8]) -> ApiResult {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body must be JSON: {e}")))?;
    let mode: Mode = v
        .get("mode")
        .and_then(|m| m.as_str())
        .ok_or_else(|| ApiError::bad_request(r#"expected {"mode": "active|reluctant|passive"}"#))?
        .parse()
        .map_err(|e: raft_core::Error| ApiError::bad_request(e.to_string()))?;
    ctx.node.set_mode(mode).await.map_err(ApiError::from_node)?;
    Ok(http::json(
        StatusCode::OK,
        &json!({ "mode": mode.to_string() }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::{PeerStatus, Status};

    fn status(role: Role, leader: Option<NodeId>, peers: Vec<PeerStatus>) -> NodeStatus {
        NodeStatus {
            raft: Status {
                id: 1,
                role,
                mode: Mode::Active,
                term: 2,
                vote: None,
                leader,
                commit: 10,
                applied: 10,
                last_index: 10,
                persisted: 10,
                transferee: None,
                rebuilding: false,
                replaced: None,
                membership: Membership::new([1, 2, 3]).into(),
                conf_index: 0,
                snapshot: 0,
                first_index: 1,
                all_applied: 0,
                peers,
            },
            voters: vec![1, 2, 3],
            failed: None,
            damage: None,
            scrubs: 0,
            scrub_damage: 0,
            tick_ms: 50,
            election_tick: 10,
            quorum_live: true,
        }
    }

    fn peer(id: NodeId, last_contact: u64) -> PeerStatus {
        PeerStatus {
            id,
            voter: true,
            mode: Mode::Active,
            matched: 10,
            next: 11,
            replicating: true,
            recent_active: true,
            last_contact,
            applied: 10,
            snapshotting: false,
            lost_tails: 0,
            repairing: false,
        }
    }

    #[test]
    fn health_colours() {
        let ok = status(Role::Leader, Some(1), vec![peer(2, 0), peer(3, 1)]);
        assert_eq!(health(&ok).0, "green");
        let lagging = status(Role::Leader, Some(1), vec![peer(2, 0), peer(3, 10)]);
        assert_eq!(health(&lagging).0, "yellow");
        let mut repairing = ok.clone();
        repairing.raft.peers[0].repairing = true;
        let (colour, why) = health(&repairing);
        assert_eq!(colour, "yellow");
        assert!(
            why[0].contains("lost entries it had acknowledged"),
            "{why:?}"
        );
        let mut no_quorum = lagging.clone();
        no_quorum.quorum_live = false;
        assert_eq!(health(&no_quorum).0, "red");
        assert_eq!(health(&status(Role::Follower, None, vec![])).0, "red");
        let mut behind = status(Role::Follower, Some(2), vec![]);
        behind.raft.commit = 1000;
        assert_eq!(health(&behind).0, "yellow");
        behind.failed = Some("disk full".into());
        let (colour, why) = health(&behind);
        assert_eq!(colour, "red");
        assert!(why[0].contains("disk full"));
    }
}
