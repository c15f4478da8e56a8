//! Health by status code, for load balancers and Kubernetes probes:
//! `/v1/health`, `/livez`, `/readyz`. Each answers JSON with its reasons.

use super::ApiContext;
use super::answers::{HealthBody, LiveBody, ReadyBody};
use super::http::{ApiResult, answer};
use super::status::health_named;
use hyper::StatusCode;

fn code(ok: bool) -> StatusCode {
    if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// `GET /v1/health`: the health colour of `GET /`, as a status code: 200
/// for green and yellow, 503 for red.
pub fn health(ctx: &ApiContext) -> ApiResult {
    let s = ctx.node.status();
    let (colour, reasons) = health_named(&s);
    let ok = colour != "red";
    let body = HealthBody {
        health: colour,
        reasons,
    };
    Ok(answer(code(ok), &body))
}

/// `GET /livez`: the process is serving and its node can go on (503 once
/// its storage failed, or it found its storage is not the one the cluster
/// knows for it: a restart, or an operator, is needed).
pub fn livez(ctx: &ApiContext) -> ApiResult {
    let s = ctx.node.status();
    let mut reasons = Vec::new();
    if let Some(f) = &s.failed {
        reasons.push(format!("storage failed: {f}"));
    }
    if s.raft.replaced.is_some() {
        reasons.push("its storage is not the one the cluster knows for it".to_string());
    }
    let live = reasons.is_empty();
    Ok(answer(code(live), &LiveBody { live, reasons }))
}

/// `GET /readyz`: this node can serve linearizable requests now: health
/// not red (a leader with a quorum is known, storage is sound), and it is
/// not being rebuilt.
pub fn readyz(ctx: &ApiContext) -> ApiResult {
    let s = ctx.node.status();
    let (colour, reasons) = health_named(&s);
    let mut reasons = if colour == "red" { reasons } else { Vec::new() };
    if s.raft.rebuilding {
        reasons.push("being rebuilt from its peers".to_string());
    }
    let ready = reasons.is_empty();
    Ok(answer(code(ready), &ReadyBody { ready, reasons }))
}
