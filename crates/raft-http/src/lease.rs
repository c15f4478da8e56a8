//! `/v1/lease` and `/v1/leases`: leases with a TTL, kept alive by their
//! owner, that take their keys (and locks) with them when they end.
//!
//! Which leases exist is replicated state (`raft_kv::lease`); when each is
//! due is the leader's alone. The leader keeps a deadline per lease on its
//! monotonic clock (`Lessor`): a lease it first sees gets its full TTL
//! from then, a keepalive sets it to a full TTL from when the keepalive
//! arrived, and a lease past its deadline is proposed for expiry
//! (`Op::LeaseExpire`), so every replica deletes its keys at the same
//! index and no replica ever reads a clock to do it. A new leader (a new
//! term) starts every deadline afresh (etcd's rule): a failover never
//! expires a lease whose owner kept it alive.
//!
//! A keepalive is answered by the leader after a read barrier, so a
//! deposed leader that has not noticed yet cannot renew a lease the new
//! leader is counting down.

use super::ApiContext;
use super::http::{self, ApiError, ApiResult, Query};
use super::kv;
use hyper::StatusCode;
use raft_core::Term;
use raft_kv::command::{Op, Output};
use raft_kv::lease::{LeaseId, Leases, MAX_TTL_MS, MIN_TTL_MS};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// How often the leader looks for leases past their deadline.
pub const CHECK_EVERY: Duration = Duration::from_millis(100);
/// How long an expiry proposal may take before it is proposed again.
const RETRY_EXPIRY: Duration = Duration::from_secs(2);

/// The leader's deadlines for leases (empty on other nodes).
#[derive(Default)]
pub struct Lessor {
    inner: Mutex<Deadlines>,
    keepalives: AtomicU64,
    expired: AtomicU64,
}

#[derive(Default)]
struct Deadlines {
    /// The term these deadlines were set in (`None`: not leading).
    term: Option<Term>,
    due: HashMap<LeaseId, Instant>,
    /// Leases proposed for expiry, and when.
    expiring: HashMap<LeaseId, Instant>,
}

impl Deadlines {
    fn lead(&mut self, term: Option<Term>) {
        if self.term != term {
            *self = Deadlines {
                term,
                ..Deadlines::default()
            };
        }
    }
}

impl Lessor {
    fn lock(&self) -> std::sync::MutexGuard<'_, Deadlines> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One check at `now`, leading in `term` (or not leading): gives
    /// leases not seen before their full TTL, forgets those gone, and
    /// returns those past their deadline that are not being expired.
    pub fn due(&self, term: Option<Term>, leases: &Leases, now: Instant) -> Vec<LeaseId> {
        let mut d = self.lock();
        d.lead(term);
        if term.is_none() {
            return Vec::new();
        }
        let Deadlines { due, expiring, .. } = &mut *d;
        if due.len() > leases.len() || expiring.len() > leases.len() {
            due.retain(|id, _| leases.contains(*id));
            expiring.retain(|id, _| leases.contains(*id));
        }
        let mut out = Vec::new();
        for (id, l) in leases.iter() {
            let at = *due
                .entry(id)
                .or_insert_with(|| now + Duration::from_millis(l.ttl_ms));
            let retry = expiring.get(&id).is_none_or(|t| now >= *t + RETRY_EXPIRY);
            if at <= now && retry {
                expiring.insert(id, now);
                out.push(id);
            }
        }
        out
    }

    /// A keepalive for lease `id` (of `ttl_ms`) that arrived at `at`, at
    /// the leader of `term`: false if the lease is being expired.
    pub fn renew(&self, term: Term, id: LeaseId, ttl_ms: u64, at: Instant) -> bool {
        let mut d = self.lock();
        if d.term != Some(term) {
            // The next check starts this term's deadlines: a full TTL.
            return true;
        }
        if d.expiring.contains_key(&id) {
            return false;
        }
        self.keepalives.fetch_add(1, Ordering::Relaxed);
        d.due.insert(id, at + Duration::from_millis(ttl_ms));
        true
    }

    /// Time left on lease `id`, as this leader counts it.
    pub fn remaining(&self, id: LeaseId, now: Instant) -> Option<Duration> {
        self.lock()
            .due
            .get(&id)
            .map(|at| at.saturating_duration_since(now))
    }

    /// Keepalives served, and leases this node expired as leader.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.keepalives.load(Ordering::Relaxed),
            self.expired.load(Ordering::Relaxed),
        )
    }
}

/// Expires leases while this node leads, until `drain`.
pub async fn run(ctx: std::sync::Arc<ApiContext>, mut drain: tokio::sync::watch::Receiver<bool>) {
    let mut every = tokio::time::interval(CHECK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = super::drained(&mut drain) => return,
        }
        let s = ctx.node.status();
        let term = s.is_leader().then_some(s.raft.term);
        let due = ctx.lessor.due(term, ctx.kv.read().leases(), Instant::now());
        if due.is_empty() {
            continue;
        }
        let n = due.len() as u64;
        match kv::propose(&ctx, None, Op::LeaseExpire { ids: due }).await {
            Ok(_) => {
                ctx.lessor.expired.fetch_add(n, Ordering::Relaxed);
            }
            // Retried after RETRY_EXPIRY if this node still leads.
            Err(e) => tracing::info!("proposing {n} lease expiries: {}", e.message),
        }
    }
}

/// `?ttl=`: seconds, or a number with a unit (ms, s, m, h).
fn ttl(q: &Query) -> Result<u64, ApiError> {
    let v = q
        .get("ttl")
        .ok_or_else(|| ApiError::bad_request("a lease needs ?ttl= (e.g. 10s)"))?;
    let d = http::duration(v).ok_or_else(|| {
        ApiError::bad_request(format!("?ttl= wants e.g. 10, 10s or 1500ms, not {v:?}"))
    })?;
    let ms = d.as_millis() as u64;
    if !(MIN_TTL_MS..=MAX_TTL_MS).contains(&ms) {
        return Err(ApiError::bad_request(format!(
            "a TTL of {ms} ms: from {MIN_TTL_MS} ms to {MAX_TTL_MS} ms"
        )));
    }
    Ok(ms)
}

fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// `PUT /v1/lease?ttl=`: a new lease.
pub async fn grant(ctx: &ApiContext, q: &Query) -> ApiResult {
    let op = Op::LeaseGrant {
        ns: kv::namespace(q)?,
        ttl_ms: ttl(q)?,
    };
    let (index, out) = kv::propose(ctx, kv::session(q)?, op).await?;
    let Output::Granted { id, ttl_ms } = out else {
        return Err(super::kv::unexpected(out));
    };
    let v = json!({ "ID": id, "TTL": secs(ttl_ms) });
    Ok(http::with_index(http::json(StatusCode::OK, &v), index))
}

/// The lease `id` names, if it exists in namespace `ns`: its TTL.
fn lease_in(ctx: &ApiContext, id: &str, ns: &str) -> Result<(LeaseId, u64), ApiError> {
    let id: LeaseId = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("lease id {id:?}: a number")))?;
    let kv = ctx.kv.read();
    match kv.leases().get(id) {
        Some(l) if l.ns == ns => Ok((id, l.ttl_ms)),
        _ => Err(super::kv::no_lease(id)),
    }
}

/// Only the leader counts time on leases: others send it there.
fn leader_only(ctx: &ApiContext) -> Result<Term, ApiError> {
    let s = ctx.node.status();
    if s.is_leader() {
        return Ok(s.raft.term);
    }
    let mut e = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "only the leader counts lease time",
    );
    e.not_leader = true;
    Err(e)
}

/// `PUT /v1/lease/<id>/keepalive`.
pub async fn keepalive(ctx: &ApiContext, id: &str, q: &Query) -> ApiResult {
    let ns = kv::namespace(q)?;
    let arrived = Instant::now();
    let term = leader_only(ctx)?;
    // Still the leader (of that term), and the lease's grant applied here.
    let index = ctx.node.read_barrier().await.map_err(ApiError::from_node)?;
    let (id, ttl_ms) = lease_in(ctx, id, &ns)?;
    if ctx.node.status().raft.term != term {
        return Err(leader_only(ctx).err().unwrap_or_else(|| {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "leadership changed; retry")
        }));
    }
    if !ctx.lessor.renew(term, id, ttl_ms, arrived) {
        return Err(ApiError::not_found(format!("lease {id} expired")));
    }
    let v = json!({ "ID": id, "TTL": secs(ttl_ms) });
    Ok(http::with_index(http::json(StatusCode::OK, &v), index))
}

/// `GET /v1/lease/<id>`: its TTL, the time left and its keys.
pub async fn info(ctx: &ApiContext, id: &str, q: &Query) -> ApiResult {
    let ns = kv::namespace(q)?;
    leader_only(ctx)?;
    let index = ctx.node.read_barrier().await.map_err(ApiError::from_node)?;
    let (id, ttl_ms) = lease_in(ctx, id, &ns)?;
    let left = ctx
        .lessor
        .remaining(id, Instant::now())
        .unwrap_or(Duration::from_millis(ttl_ms));
    let keys: Vec<_> = ctx
        .kv
        .read()
        .lease_keys(id)
        .into_iter()
        .map(|(n, k, v)| {
            let mut e = json!({ "Namespace": n.as_str(), "Key": k.as_str() });
            e["Attached"] = (v.lease() == Some(id)).into();
            e["Locked"] = (v.holder() == Some(id)).into();
            e
        })
        .collect();
    let v = json!({
        "ID": id,
        "Namespace": ns,
        "TTL": secs(ttl_ms),
        "Remaining": left.as_millis() as f64 / 1000.0,
        "Keys": keys,
    });
    Ok(http::with_index(http::json(StatusCode::OK, &v), index))
}

/// The time left on lease `id` as the leader counts it, asked of the
/// leader when this node is not it; `None` if the lease is gone.
pub async fn remaining_anywhere(
    ctx: &ApiContext,
    id: LeaseId,
) -> Result<Option<Duration>, ApiError> {
    let Some((ns, ttl_ms)) = ctx
        .kv
        .read()
        .leases()
        .get(id)
        .map(|l| (l.ns.clone(), l.ttl_ms))
    else {
        return Ok(None);
    };
    if ctx.node.status().is_leader() {
        let left = ctx.lessor.remaining(id, Instant::now());
        return Ok(Some(left.unwrap_or(Duration::from_millis(ttl_ms))));
    }
    let unavailable = |why: String| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, why);
    let leader = ctx
        .leader()
        .await
        .ok_or_else(|| unavailable("no leader".into()))?;
    let addr = (ctx.peer_client_addr)(leader)
        .ok_or_else(|| unavailable("the leader has not said its command port".into()))?;
    let path = format!("/v1/lease/{id}?ns={ns}");
    let headers = [(super::FORWARDED_HEADER, "1")];
    let reply = ctx
        .client
        .request(
            &addr,
            hyper::Method::GET,
            &path,
            &headers,
            Default::default(),
        )
        .await
        .map_err(|e| unavailable(format!("asking the leader: {e}")))?;
    if reply.status == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let secs = reply
        .json()
        .and_then(|v| v["Remaining"].as_f64())
        .ok_or_else(|| unavailable(format!("the leader answered {}", reply.status)))?;
    Ok(Some(Duration::from_secs_f64(secs.max(0.0))))
}

/// `DELETE /v1/lease/<id>`: ends it now.
pub async fn revoke(ctx: &ApiContext, id: &str, q: &Query) -> ApiResult {
    let ns = kv::namespace(q)?;
    let (id, _) = lease_in(ctx, id, &ns)?;
    let (index, out) = kv::propose(ctx, kv::session(q)?, Op::LeaseRevoke { id }).await?;
    let deleted = match out {
        Output::Removed(n) => n,
        Output::NoLease(id) => return Err(super::kv::no_lease(id)),
        other => return Err(super::kv::unexpected(other)),
    };
    let v = json!({ "ID": id, "Deleted": deleted });
    Ok(http::with_index(http::json(StatusCode::OK, &v), index))
}

/// `GET /v1/leases`: the namespace's leases, from any node.
pub async fn list(ctx: &ApiContext, q: &Query) -> ApiResult {
    let ns = kv::namespace(q)?;
    let index = kv::read_barrier(ctx, q).await?;
    let kv = ctx.kv.read();
    let all: Vec<_> = kv
        .leases()
        .iter()
        .filter(|(_, l)| l.ns == ns)
        .map(|(id, l)| json!({ "ID": id, "TTL": secs(l.ttl_ms) }))
        .collect();
    Ok(http::with_index(
        http::json(StatusCode::OK, &json!(all)),
        index.max(kv.applied()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Leases granted in order (ids 1, 2, ...) with these TTLs.
    fn leases(ttls: &[u64]) -> Leases {
        use raft_core::node::StateMachine;
        let mut kv = raft_kv::KvStore::default();
        for (i, &ttl_ms) in ttls.iter().enumerate() {
            let op = raft_kv::Op::LeaseGrant {
                ns: "n".into(),
                ttl_ms,
            };
            let r = raft_kv::Request { session: None, op };
            kv.apply(i as u64 + 1, &raft_kv::command::encode(&r));
        }
        kv.read().leases().clone()
    }

    #[test]
    fn a_lease_is_due_a_full_ttl_after_the_leader_first_sees_it() {
        let lessor = Lessor::default();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let l = leases(&[1_000, 3_000]);
        assert!(lessor.due(Some(5), &l, t0).is_empty());
        assert!(lessor.due(Some(5), &l, t0 + ms(999)).is_empty());
        assert_eq!(lessor.due(Some(5), &l, t0 + ms(1_000)), [1]);
        // Proposed once; again only if it is still there after a while.
        assert!(lessor.due(Some(5), &l, t0 + ms(1_100)).is_empty());
        assert!(!lessor.renew(5, 1, 1_000, t0 + ms(1_100)), "being expired");
        assert_eq!(lessor.due(Some(5), &l, t0 + ms(3_000)), [1, 2]);
    }

    #[test]
    fn keepalives_push_the_deadline_and_a_new_term_starts_afresh() {
        let lessor = Lessor::default();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let l = leases(&[1_000]);
        lessor.due(Some(5), &l, t0);
        assert!(lessor.renew(5, 1, 1_000, t0 + ms(900)));
        assert!(lessor.due(Some(5), &l, t0 + ms(1_800)).is_empty());
        assert_eq!(lessor.remaining(1, t0 + ms(1_800)), Some(ms(100)));
        // Deposed: nothing is due; leading again, a full TTL from then.
        assert!(lessor.due(None, &l, t0 + ms(5_000)).is_empty());
        assert!(lessor.due(Some(7), &l, t0 + ms(5_000)).is_empty());
        assert!(lessor.due(Some(7), &l, t0 + ms(5_999)).is_empty());
        assert_eq!(lessor.due(Some(7), &l, t0 + ms(6_000)), [1]);
        // A lease gone from the state is forgotten.
        assert!(lessor.due(Some(7), &leases(&[]), t0 + ms(6_000)).is_empty());
        assert_eq!(lessor.remaining(1, t0), None);
    }
}
