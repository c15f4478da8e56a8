//! Typed answer bodies: what a route answers with `200`, as structs that
//! serialize to the JSON the route sends and describe themselves to the
//! OpenAPI document (`openapi::answer` names which route sends which).

use serde::Serialize;
use utoipa::ToSchema;

/// `GET /` (pyraftlog's status): this node, its view of the cluster, and
/// its health.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeStatusBody {
    /// This node's name (its peer address).
    pub id: String,
    /// `follower`, `pre-candidate`, `candidate` or `leader`.
    pub role: &'static str,
    /// `active`, `reluctant` or `passive`.
    pub mode: String,
    /// The current term.
    pub term: u64,
    /// Who this node voted for in the term.
    pub vote: Option<String>,
    /// The leader it knows of.
    pub leader: Option<String>,
    /// Where the leader serves clients (not set when this node leads).
    pub leader_command_port: Option<String>,
    /// The highest committed index.
    pub commit_index: u64,
    /// The highest index applied here.
    pub applied_index: u64,
    /// The last index in the log.
    pub last_index: u64,
    /// The last index durable here.
    pub persisted_index: u64,
    /// The latest snapshot's index (0: none).
    pub snapshot_index: u64,
    /// The first index still in the log.
    pub first_index: u64,
    /// Seconds since the node started.
    pub uptime_s: f64,
    /// `green`, `yellow` or `red`.
    pub health: &'static str,
    /// Why it is not green.
    pub health_reasons: Vec<String>,
    /// Every member of the configuration in force.
    pub members: Vec<MemberBody>,
    /// The configuration (`voters`, `learners`, and the joint phase while
    /// a change is in progress).
    #[schema(value_type = Object)]
    pub configuration: serde_json::Value,
    /// The index of the configuration's entry.
    pub configuration_index: u64,
    /// Keys in all namespaces.
    pub keys: usize,
    /// Whether pyraftlog's log reduction is on.
    pub log_reduction: bool,
    /// Why storage failed, once it has (the node then refuses writes).
    pub storage_failed: Option<String>,
    /// Being rebuilt from its peers (it does not vote yet).
    pub rebuilding: bool,
    /// Damage the scrub found in stored data.
    pub storage_damage: Option<String>,
    /// The asking client's role, from its certificate.
    pub client_role: String,
    /// The role of clients without a certificate, if they are let in.
    pub anonymous_role: Option<&'static str>,
}

/// One member, as `GET /` lists it. Replication fields are this node's
/// view: the leader knows every follower's; others know only their own.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct MemberBody {
    /// Its name (peer address).
    pub id: String,
    /// Whether it votes.
    pub voter: bool,
    /// Whether it is the node answering.
    #[serde(rename = "self")]
    pub this: bool,
    /// Where it serves clients, as its peer handshake said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command_port: Option<String>,
    /// Its mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The highest index known durable on it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub match_index: Option<u64>,
    /// Leader only: the next index to send it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_index: Option<u64>,
    /// Leader only: whether appends stream to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicating: Option<bool>,
    /// Leader only: milliseconds since it last answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_contact_ms: Option<u64>,
    /// Leader only: whether it answered within an election timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connected: Option<bool>,
}

/// `GET /v1/health`: `200` for green and yellow, `503` for red.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthBody {
    /// `green`, `yellow` or `red`.
    pub health: &'static str,
    /// Why it is not green.
    pub reasons: Vec<String>,
}

/// `GET /livez`: `200` while the node can go on, `503` once it cannot
/// (storage failed, or its storage is not the one the cluster knows).
#[derive(Debug, Serialize, ToSchema)]
pub struct LiveBody {
    /// Whether it is live.
    pub live: bool,
    /// Why not.
    pub reasons: Vec<String>,
}

/// `GET /readyz`: `200` when the node can serve linearizable requests
/// now, `503` otherwise.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyBody {
    /// Whether it is ready.
    pub ready: bool,
    /// Why not.
    pub reasons: Vec<String>,
}
