//! `/metrics` in the OpenMetrics text format, by prometheus-client:
//! request counts and latency by route (kept here), the node driver's
//! histograms and counters (`raft_core::node::NodeMetrics`), and the
//! node's state sampled at scrape time ([`sampled`]).

use super::ApiContext;
use super::http::{self, Body};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

mod process;
mod sampled;

/// A request's series: which route (its pattern, `unmatched` for none),
/// which method, which status code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    code: u16,
}

/// A route's latency series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
    method: &'static str,
}

/// Latency buckets for requests: 0.1 ms doubling to about 13 s.
fn request_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

/// The command port's own series. Clones of prometheus-client metrics
/// share their values, so a scrape registers clones.
#[derive(Debug)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram>,
    forwarded: Counter,
    watchers: Gauge,
    watchers_cut: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Family::default(),
            durations: Family::new_with_constructor(request_buckets),
            forwarded: Counter::default(),
            watchers: Gauge::default(),
            watchers_cut: Counter::default(),
        }
    }
}

/// Counts one open watch stream while it lives.
pub struct Watching {
    open: Gauge,
    cut: Counter,
}

impl Watching {
    /// This watcher fell out of the history and is cut off.
    pub fn cut(&self) {
        self.cut.inc();
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// The label for a method: the ones routes take, else `other` (so a
/// client cannot grow the series without bound).
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

impl Metrics {
    /// One answered request on `route` (a pattern of the route table, or
    /// `unmatched`): counted by status code, timed to its response head.
    pub fn record(&self, route: &'static str, method: &Method, status: StatusCode, took: Duration) {
        let method = method_label(method);
        let code = status.as_u16();
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                code,
            })
            .inc();
        self.durations
            .get_or_create(&RouteLabels { route, method })
            .observe(took.as_secs_f64());
    }

    /// A write this node forwarded to the leader.
    pub fn forwarded(&self) {
        self.forwarded.inc();
    }

    /// A watch stream opened; it counts until the guard drops.
    pub fn watching(&self) -> Watching {
        self.watchers.inc();
        Watching {
            open: self.watchers.clone(),
            cut: self.watchers_cut.clone(),
        }
    }

    /// Adds this port's series to `registry`.
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "http_requests",
            "Requests answered, by route pattern, method and status code",
            self.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a request (to its response head; a blocking query \
             counts its wait), by route pattern and method",
            self.durations.clone(),
        );
        registry.register(
            "http_forwarded",
            "Writes forwarded to the leader",
            self.forwarded.clone(),
        );
        registry.register("kv_watchers", "Watch streams open", self.watchers.clone());
        registry.register(
            "kv_watchers_cut",
            "Watchers cut off for falling behind the history",
            self.watchers_cut.clone(),
        );
    }
}

/// The whole exposition: this port's series, the driver's, the node's
/// state sampled now, and the process's.
pub fn render(ctx: &ApiContext) -> Response<Body> {
    let mut registry = Registry::default();
    ctx.metrics.register(&mut registry);
    ctx.node.metrics().register(&mut registry);
    registry.register_collector(Box::new(sampled::sample(ctx)));
    registry.register_collector(Box::new(process::Process::sample(ctx.started)));
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        let why = serde_json::json!({ "error": format!("encoding the metrics: {e}") });
        return http::json(StatusCode::INTERNAL_SERVER_ERROR, &why);
    }
    let mut r = Response::new(http::full(out));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}
