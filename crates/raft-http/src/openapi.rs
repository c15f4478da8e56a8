//! The command port described in OpenAPI 3.1 (`GET /v1/openapi.json`),
//! made from the route table: every route, with its path and query
//! parameters, what it needs, and the error body every refusal carries.
//! Any language's OpenAPI generator makes a client from it.

use super::access::{Need, Scope};
use super::http::{self, Body};
use super::routes::{ROUTES, Route};
use crate::answers::{HealthBody, LiveBody, NodeStatusBody, ReadyBody};
use hyper::Response;
use serde::Serialize;
use std::sync::OnceLock;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref,
    RefOr, Required, ResponseBuilder,
};
use utoipa::{PartialSchema, ToSchema};

/// The body of every refusal (4xx and 5xx).
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
    /// The leader's address, when the refusal is "ask the leader".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
}

/// What a query parameter is, for its schema.
#[derive(Clone, Copy)]
enum Kind {
    /// Present (or `true`, `1`) or absent (or `false`, `0`).
    Flag,
    Number,
    Text,
}

/// Every query parameter some route takes: its kind and meaning.
const PARAMS: &[(&str, Kind, &str)] = &[
    ("ns", Kind::Text, "the KV namespace (default: `default`)"),
    ("recurse", Kind::Flag, "every key under the key as a prefix"),
    ("keys", Kind::Flag, "key names only"),
    (
        "separator",
        Kind::Text,
        "with ?keys: list up to this separator",
    ),
    ("raw", Kind::Flag, "the value's bytes as the body, not JSON"),
    (
        "stale",
        Kind::Flag,
        "read this node's state, without a ReadIndex round",
    ),
    (
        "consistent",
        Kind::Flag,
        "a linearizable read (the default)",
    ),
    (
        "index",
        Kind::Number,
        "a blocking read: wait until the index passes this",
    ),
    (
        "wait",
        Kind::Text,
        "KV reads: how long a blocking read waits (`10s`, `500ms`); PUT /v1/operator/raft/peer: a flag, wait for the new member to catch up",
    ),
    (
        "cas",
        Kind::Number,
        "compare-and-set: write only if the key's modify index is this (0: only if absent)",
    ),
    (
        "client",
        Kind::Number,
        "a client session's id (with ?seq): a retry gets the first answer",
    ),
    (
        "seq",
        Kind::Number,
        "the request's sequence number in its client session (from 1)",
    ),
    ("lease", Kind::Number, "the lease the key dies with"),
    (
        "acquire",
        Kind::Number,
        "takes the key's lock for this lease",
    ),
    (
        "release",
        Kind::Number,
        "frees the key's lock held by this lease",
    ),
    ("from", Kind::Number, "the first index to return"),
    ("to", Kind::Number, "the last index to return (inclusive)"),
    ("id", Kind::Number, "a member's node id"),
    ("address", Kind::Text, "a member's peer address (host:port)"),
    ("learner", Kind::Flag, "add as a learner (no vote)"),
    (
        "rebuild",
        Kind::Flag,
        "the member lost its disk: take it back as a learner",
    ),
    ("ttl", Kind::Text, "the lease's time to live (`10s`, `1m`)"),
    (
        "redirect",
        Kind::Flag,
        "a follower answers 307 to the leader instead of forwarding",
    ),
];

fn kind_of(name: &str) -> Option<(Kind, &'static str)> {
    PARAMS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, k, d)| (*k, *d))
}

/// The description, made once.
pub fn document() -> &'static OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(build)
}

/// `GET /v1/openapi.json`.
pub fn serve() -> Response<Body> {
    let body = document()
        .to_pretty_json()
        .expect("invariant: the description serializes");
    let mut r = Response::new(http::full(body));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn build() -> OpenApi {
    let mut paths = PathsBuilder::new().build();
    for r in ROUTES {
        paths.add_path_operation(path_of(r.pattern), vec![method(r.method)], operation(r));
    }
    let mut components = ComponentsBuilder::new();
    components = with_schema::<NodeStatusBody>(components);
    components = with_schema::<HealthBody>(components);
    components = with_schema::<LiveBody>(components);
    components = with_schema::<ReadyBody>(components);
    let components = components.schema("Error", ErrorBody::schema()).build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("raftstack command port")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "HTTP/1.1 + JSON over mutual TLS. Writes on a follower are forwarded to the \
                     leader (or answered 307 with ?redirect); reads are linearizable unless \
                     ?stale. Every reply carries X-Raft-Index. See docs/api.md.",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components))
        .build()
}

/// Adds `T`'s schema and those it refers to.
fn with_schema<T: ToSchema>(b: ComponentsBuilder) -> ComponentsBuilder {
    let mut deps = Vec::new();
    T::schemas(&mut deps);
    b.schema_from::<T>().schemas_from_iter(deps)
}

/// A schema, made when the document is built.
type MakeSchema = fn() -> RefOr<Schema>;

/// The routes whose `200` body is typed (`crate::answers`), and its
/// schema.
const ANSWERS: &[(&str, &str, MakeSchema)] = &[
    ("GET", "/", status_ref),
    ("GET", "/v1/status", status_ref),
    ("GET", "/v1/status/leader", || {
        ObjectBuilder::new().schema_type(Type::String).into()
    }),
    ("GET", "/v1/status/peers", || {
        ArrayBuilder::new()
            .items(ObjectBuilder::new().schema_type(Type::String))
            .into()
    }),
    ("GET", "/v1/health", || {
        Ref::from_schema_name(HealthBody::name()).into()
    }),
    ("GET", "/livez", || {
        Ref::from_schema_name(LiveBody::name()).into()
    }),
    ("GET", "/readyz", || {
        Ref::from_schema_name(ReadyBody::name()).into()
    }),
];

fn status_ref() -> RefOr<Schema> {
    Ref::from_schema_name(NodeStatusBody::name()).into()
}

/// The schema of a route's `200` body, where it is typed.
fn answer(r: &Route) -> Option<RefOr<Schema>> {
    ANSWERS
        .iter()
        .find(|(m, p, _)| *m == r.method && *p == r.pattern)
        .map(|(_, _, make)| make())
}

/// `{*key}` is `{key}` in OpenAPI (a key may hold `/`).
fn path_of(pattern: &str) -> String {
    pattern.replace("{*", "{")
}

fn method(m: &str) -> HttpMethod {
    match m {
        "GET" => HttpMethod::Get,
        "PUT" => HttpMethod::Put,
        "POST" => HttpMethod::Post,
        "DELETE" => HttpMethod::Delete,
        "PATCH" => HttpMethod::Patch,
        _ => panic!("invariant: ROUTES uses GET, PUT, POST, DELETE and PATCH only, not {m}"),
    }
}

fn operation(r: &Route) -> utoipa::openapi::path::Operation {
    let mut op = OperationBuilder::new()
        .summary(Some(r.summary))
        .description(Some(format!("Needs: {}.", need(r.need))))
        .operation_id(Some(operation_id(r)))
        .tag(
            r.pattern
                .trim_start_matches('/')
                .split('/')
                .find(|s| *s != "v1")
                .unwrap_or("status"),
        );
    for name in r.pattern.split('/').filter(|s| s.starts_with('{')) {
        let name = name.trim_matches(['{', '}', '*']);
        op = op.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
        );
    }
    for name in r.params.iter().copied().chain(["redirect"]) {
        let (kind, doc) = kind_of(name).expect("invariant: every parameter in ROUTES is in PARAMS");
        op = op.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(doc))
                .schema(Some(schema(kind))),
        );
    }
    if r.method != "GET" && r.method != "DELETE" {
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .content("application/octet-stream", ContentBuilder::new().build())
                .content("application/json", ContentBuilder::new().build())
                .build(),
        ));
    }
    let error = ResponseBuilder::new()
        .description("refused: the body says why")
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Error")))
                .build(),
        );
    let done = match answer(r) {
        Some(schema) => ResponseBuilder::new().description("done").content(
            "application/json",
            ContentBuilder::new().schema(Some(schema)).build(),
        ),
        None => ResponseBuilder::new().description("done"),
    };
    op.response("200", done).response("default", error).build()
}

fn schema(kind: Kind) -> ObjectBuilder {
    match kind {
        Kind::Flag => ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .enum_values(Some(["", "true", "false", "1", "0"])),
        Kind::Number => ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0)),
        Kind::Text => ObjectBuilder::new().schema_type(Type::String),
    }
}

fn need(n: Need) -> &'static str {
    match n {
        Need::Status => "any client (status)",
        Need::Read(Scope::Namespace) => "readonly, in the namespace",
        Need::Read(Scope::Everything) => "readonly, in every namespace",
        Need::Write(Scope::Namespace) => "readwrite, in the namespace",
        Need::Write(Scope::Everything) => "readwrite, in every namespace",
        Need::Admin => "admin",
        Need::AddMember => "admin, or a node adding itself",
    }
}

/// `get_v1_kv_key`, `put_v1_operator_raft_peer`, `get_root`.
fn operation_id(r: &Route) -> String {
    let path: Vec<String> = r
        .pattern
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_matches(['{', '}', '*']).replace(['-', '.'], "_"))
        .collect();
    let path = if path.is_empty() {
        "root".to_string()
    } else {
        path.join("_")
    };
    format!("{}_{path}", r.method.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described_with_its_parameters() {
        let doc: serde_json::Value = serde_json::from_str(&document().to_json().unwrap()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut ids = std::collections::BTreeSet::new();
        for r in ROUTES {
            let op = &doc["paths"][path_of(r.pattern)][r.method.to_lowercase()];
            assert!(
                op.is_object(),
                "{} {} is not described",
                r.method,
                r.pattern
            );
            let names: Vec<&str> = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            for p in r.params {
                assert!(names.contains(p), "{} {}: ?{p}", r.method, r.pattern);
            }
            assert!(ids.insert(op["operationId"].as_str().unwrap().to_string()));
        }
        let described: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|item| item.as_object().unwrap().len())
            .sum();
        assert_eq!(
            described,
            ROUTES.len(),
            "nothing described that is not routed"
        );
    }

    #[test]
    fn every_parameter_is_explained_once() {
        for (i, (name, _, _)) in PARAMS.iter().enumerate() {
            assert!(!PARAMS[i + 1..].iter().any(|(n, _, _)| n == name), "{name}");
            let used = ROUTES.iter().any(|r| r.params.contains(name));
            assert!(
                used || *name == "redirect",
                "?{name} is explained but no route takes it"
            );
        }
    }

    /// Every `$ref` names a schema the document holds.
    #[test]
    fn every_reference_resolves() {
        let doc = serde_json::to_value(document()).unwrap();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(
            refs.iter().any(|r| r.ends_with("/NodeStatusBody")),
            "{refs:?}"
        );
        for r in refs {
            let name = r.strip_prefix("#/components/schemas/").unwrap();
            assert!(schemas.contains_key(name), "{r} does not resolve");
        }
    }

    fn collect_refs(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| collect_refs(v, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }

    /// The status schema lists exactly the fields a status body has.
    #[test]
    fn the_status_schema_is_the_body_it_describes() {
        let doc = serde_json::to_value(document()).unwrap();
        let schema = &doc["components"]["schemas"]["NodeStatusBody"]["properties"];
        let mut described: Vec<_> = schema.as_object().unwrap().keys().cloned().collect();
        let body = crate::answers::NodeStatusBody {
            id: String::new(),
            role: "leader",
            mode: String::new(),
            term: 0,
            vote: None,
            leader: None,
            leader_command_port: None,
            commit_index: 0,
            applied_index: 0,
            last_index: 0,
            persisted_index: 0,
            snapshot_index: 0,
            first_index: 0,
            uptime_s: 0.0,
            health: "green",
            health_reasons: vec![],
            members: vec![],
            configuration: serde_json::json!({}),
            configuration_index: 0,
            keys: 0,
            log_reduction: false,
            storage_failed: None,
            rebuilding: false,
            storage_damage: None,
            client_role: String::new(),
            anonymous_role: None,
        };
        let v = serde_json::to_value(body).unwrap();
        let mut sent: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        described.sort();
        sent.sort();
        assert_eq!(described, sent);
        let member = &doc["components"]["schemas"]["MemberBody"]["properties"];
        assert!(member.get("self").is_some(), "{member}");
    }

    /// Every typed answer belongs to a route that exists.
    #[test]
    fn typed_answers_name_real_routes() {
        for (m, p, _) in ANSWERS {
            let known = ROUTES.iter().any(|r| r.method == *m && r.pattern == *p);
            assert!(known, "{m} {p} is not a route");
        }
    }
}
