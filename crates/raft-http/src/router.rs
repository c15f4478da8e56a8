//! The router: axum routes made from `routes::ROUTES`, each running one
//! pipeline: the query parsed and checked against the route's parameters,
//! the role check, the body read within its limits, the handler, and a
//! write this follower cannot do sent to the leader.

use super::access::{self, Principal};
use super::http::{self, ApiError, ApiResult, INDEX_HEADER, Query};
use super::routes::{Call, ROUTES, Route};
use super::{ApiContext, FORWARDED_HEADER};
use axum::Router;
use axum::body::Body as AxumBody;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter};
use bytes::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue, LOCATION, RETRY_AFTER};
use hyper::{Method, StatusCode};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// The command port's router. Each connection's requests carry its
/// client's `Arc<Principal>` as an extension.
pub(crate) fn router(ctx: Arc<ApiContext>) -> Router {
    routes().with_state(ctx)
}

/// Every route of the table, by pattern and method.
fn routes() -> Router<Arc<ApiContext>> {
    let mut by_pattern: BTreeMap<&str, MethodRouter<Arc<ApiContext>>> = BTreeMap::new();
    for r in ROUTES {
        let filter = method_filter(r.method);
        let handler = move |State(ctx): State<Arc<ApiContext>>, req: Request| pipeline(ctx, r, req);
        let m = by_pattern.remove(r.pattern).unwrap_or_default();
        by_pattern.insert(r.pattern, m.on(filter, handler));
    }
    let mut router = Router::new();
    for (pattern, m) in by_pattern {
        // `{*key}` may be empty: `/v1/kv/` is the root, as `/v1/kv` is.
        if let Some(root) = pattern
            .split("{*")
            .next()
            .filter(|_| pattern.contains("{*"))
        {
            router = router.route(root, m.clone());
        }
        router = router.route(pattern, m);
    }
    router
        .fallback(no_route)
        .method_not_allowed_fallback(no_route)
}

fn method_filter(m: &str) -> MethodFilter {
    match m {
        "GET" => MethodFilter::GET,
        "PUT" => MethodFilter::PUT,
        "POST" => MethodFilter::POST,
        "DELETE" => MethodFilter::DELETE,
        "PATCH" => MethodFilter::PATCH,
        _ => panic!("invariant: ROUTES uses GET, PUT, POST, DELETE and PATCH only, not {m}"),
    }
}

/// 404 for no route, 405 (naming the methods) for a route with others.
async fn no_route(State(ctx): State<Arc<ApiContext>>, req: Request) -> Response {
    let started = Instant::now();
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let allowed = super::routes::methods_for(&path);
    let e = if allowed.is_empty() {
        ApiError::not_found(format!("no endpoint {method} {path}"))
    } else {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{path} takes {}", allowed.join(", ")),
        )
    };
    let resp = e.into_response();
    ctx.metrics
        .record("unmatched", &method, resp.status(), started.elapsed());
    resp.into_response()
}

/// Checks that `who` may make the request (403 outside its role), then
/// refuses (400, naming it) a parameter the route does not take: a client
/// learns nothing of a route it may not use.
pub(crate) fn admit(
    who: &Principal,
    route: &Route,
    q: &Query,
    forwarded: bool,
) -> Result<(), ApiError> {
    let ask = access::Ask {
        need: route.need,
        namespace: q.get("ns").unwrap_or(raft_kv::DEFAULT_NAMESPACE),
        address: q.get("address"),
        forwarded,
    };
    access::authorize(who, &ask)?;
    q.allow(route.params)
}

/// One request on `route`, start to finish.
async fn pipeline(ctx: Arc<ApiContext>, route: &'static Route, req: Request) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let forwarded = req.headers().contains_key(FORWARDED_HEADER);
    let fwd = Forward {
        method: method.clone(),
        path_and_query: req
            .uri()
            .path_and_query()
            .map_or("/".into(), |p| p.to_string()),
        content_type: req.headers().get(CONTENT_TYPE).cloned(),
        body: Bytes::new(),
        redirect: false,
    };
    let resp = match checked(&ctx, route, req, forwarded).await {
        Err(e) => e.into_response(),
        Ok(call) => {
            let fwd = Forward {
                body: call.body.clone(),
                redirect: call.q.flag("redirect"),
                ..fwd
            };
            match (route.serve)(ctx.clone(), call).await {
                Ok(r) => r,
                Err(e) if e.not_leader && !forwarded => to_leader(&ctx, fwd)
                    .await
                    .unwrap_or_else(|e| e.into_response()),
                Err(e) => e.into_response(),
            }
        }
    };
    let mut resp = resp;
    if resp.status() == StatusCode::PAYLOAD_TOO_LARGE {
        // The rest of the body was not read: this connection is done.
        resp.headers_mut()
            .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    }
    ctx.metrics
        .record(route.pattern, &method, resp.status(), started.elapsed());
    resp.into_response()
}

/// The request as its handler gets it: query parsed and allowed, client
/// admitted, body read (within its size and time limits).
async fn checked(
    ctx: &ApiContext,
    route: &Route,
    req: Request,
    forwarded: bool,
) -> Result<Call, ApiError> {
    let who = req
        .extensions()
        .get::<Arc<Principal>>()
        .cloned()
        .unwrap_or_else(|| Arc::new(Principal::Refused("no client identity".into())));
    let q = Query::parse(req.uri().query())?;
    admit(&who, route, &q, forwarded)?;
    let method = if req.method() == Method::HEAD {
        Method::GET
    } else {
        req.method().clone()
    };
    let path = req.uri().path().to_string();
    let body = if method == Method::GET {
        Bytes::new()
    } else {
        read_body(ctx, req.into_body()).await?
    };
    Ok(Call {
        method,
        who,
        q,
        body,
        path,
    })
}

async fn read_body(ctx: &ApiContext, body: AxumBody) -> Result<Bytes, ApiError> {
    let limit = ctx.limits.body_read;
    match tokio::time::timeout(limit, http::read_body(body, ctx.max_body)).await {
        Ok(body) => body,
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("the body did not arrive within {limit:?}"),
        )),
    }
}

struct Forward {
    method: Method,
    path_and_query: String,
    content_type: Option<HeaderValue>,
    body: Bytes,
    redirect: bool,
}

/// Sends a write this follower cannot do to the leader: forwarded over
/// HTTPS, or a 307 naming the leader when the client asked for that.
async fn to_leader(ctx: &ApiContext, f: Forward) -> ApiResult {
    let Some(leader) = ctx.leader().await else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no leader: the cluster cannot take writes now",
        ));
    };
    if leader == ctx.node.status().raft.id {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "leadership is changing; retry",
        ));
    }
    let Some(addr) = (ctx.peer_client_addr)(leader) else {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the leader ({}) has not told us its command port yet",
                ctx.name(leader)
            ),
        );
        e.leader = Some(ctx.name(leader));
        return Err(e);
    };
    if f.redirect {
        let mut r = http::json(
            StatusCode::TEMPORARY_REDIRECT,
            &serde_json::json!({ "leader": addr }),
        );
        let loc = format!("https://{addr}{}", f.path_and_query);
        if let Ok(v) = HeaderValue::from_str(&loc) {
            r.headers_mut().insert(LOCATION, v);
        }
        return Ok(r);
    }
    ctx.metrics.forwarded();
    let ct = f
        .content_type
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream");
    let reply = ctx
        .client
        .request(
            &addr,
            f.method,
            &f.path_and_query,
            &[(FORWARDED_HEADER, "1"), ("content-type", ct)],
            f.body,
        )
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("forwarding to the leader: {e}"),
            )
        })?;
    let mut r = hyper::Response::new(http::full(reply.body));
    *r.status_mut() = reply.status;
    // What the leader's answer means travels with it: its index, and
    // when a refused request may be retried.
    for h in [
        CONTENT_TYPE.as_str(),
        INDEX_HEADER,
        http::CONSUL_INDEX_HEADER,
        RETRY_AFTER.as_str(),
    ] {
        if let Some(v) = reply.headers.get(h) {
            r.headers_mut().insert(h, v.clone());
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_makes_a_router() {
        // axum refuses (panics on) overlapping routes and unknown methods.
        let _ = routes();
    }
}
