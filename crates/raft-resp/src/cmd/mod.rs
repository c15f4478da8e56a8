//! Commands: one file per group (mini-redis's layout), each a table of
//! `Spec`s whose handler turns a request into a `Plan`. A plan says what
//! the command needs (a reply now, a read at a linearizable point, one
//! replicated entry...) and how to reply once it has it; `crate::conn`
//! carries plans out, batching a pipeline's writes into one proposal
//! round and its reads behind one read barrier.

/// A group's command table: `name, arity, kind, keys, summary, handler;`
/// per command (`Kind` by its variant's name; `keys` one of `NONE`,
/// `ONE`, `ALL`, `PAIRS`).
macro_rules! table {
    ($group:literal: $($name:literal, $arity:literal, $kind:ident, $keys:ident, $summary:literal, $run:ident;)*) => {
        &[$($crate::cmd::Spec {
            name: $name,
            arity: $arity,
            kind: $crate::cmd::Kind::$kind,
            keys: $crate::cmd::$keys,
            group: $group,
            summary: $summary,
            run: $run,
        }),*]
    };
}

/// Key positions (first, last, step) for COMMAND: none.
pub const NONE: (i32, i32, i32) = (0, 0, 0);
/// The first argument.
pub const ONE: (i32, i32, i32) = (1, 1, 1);
/// Every argument.
pub const ALL: (i32, i32, i32) = (1, -1, 1);
/// Every other argument, from the first (MSET's keys).
pub const PAIRS: (i32, i32, i32) = (1, -1, 2);

mod connection;
mod expire;
mod keys;
mod multi;
mod pubsub;
mod server;
mod strings;
mod types;

use crate::Server;
use crate::frame::Frame;
use crate::session::Session;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use raft_http::access::{self, Need, Scope};
use raft_kv::{KvState, Op, Output};
use std::sync::Arc;

/// Turns the output of a command's entry (or read) into its reply.
pub type Render = Box<dyn FnOnce(Output) -> Frame + Send>;
/// A reply computed from this node's state at a read point.
pub type Local = Box<dyn FnOnce(&Server, &KvState) -> Frame + Send>;

/// What a command needs before it can reply.
pub enum Plan {
    /// The reply, now.
    Now(Frame),
    /// A read (`Op::Peek`, evaluated here at a read point) or a write
    /// (one entry, replicated), and the reply from its output.
    Data { op: Op, render: Render },
    /// A read of more than keys (KEYS, SCAN, DBSIZE, INFO), at a read point.
    Local(Local),
    /// Work of its own (TTL, WAIT).
    Later(BoxFuture<'static, Frame>),
    /// WATCH these keys of the session's namespace.
    Watch(Vec<String>),
    /// EXEC the queued commands.
    Exec,
    /// Reply, then close the connection (QUIT).
    Close(Frame),
}

impl Plan {
    /// Whether the plan writes (one replicated entry).
    pub fn writes(&self) -> bool {
        matches!(self, Plan::Data { op, .. } if !matches!(op, Op::Peek { .. }))
    }
}

/// A command queued inside MULTI.
pub struct Queued(pub Plan);

/// What a handler gets.
pub struct Call<'a> {
    /// The arguments after the command name (and its subcommand, for
    /// commands that have them: `CLIENT`, `COMMAND`, `CONFIG`).
    pub args: &'a [Bytes],
    pub s: &'a mut Session,
    pub srv: &'a Arc<Server>,
    /// The command's name as the table spells it (lower case).
    pub name: &'static str,
}

/// What a command may touch, for access control.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Connection state only (PING, SELECT, MULTI...).
    Conn,
    /// The cluster's own state (INFO, ROLE).
    Status,
    /// Reads keys of the session's namespace.
    Read,
    /// Writes keys of the session's namespace.
    Write,
    /// Drops the namespace (FLUSHDB): admin, as on the command port.
    Admin,
}

/// One command.
pub struct Spec {
    pub name: &'static str,
    /// Redis's arity: the argument count with the name, or at least
    /// `-arity` when negative.
    pub arity: i32,
    pub kind: Kind,
    /// First key, last key (-1: the last argument) and step, as COMMAND
    /// reports them (0 0 0: no keys).
    pub keys: (i32, i32, i32),
    pub group: &'static str,
    pub summary: &'static str,
    pub run: fn(Call<'_>) -> Plan,
}

/// Every command, group by group.
pub fn all() -> impl Iterator<Item = &'static Spec> {
    [
        connection::COMMANDS,
        strings::COMMANDS,
        keys::COMMANDS,
        expire::COMMANDS,
        multi::COMMANDS,
        pubsub::COMMANDS,
        server::COMMANDS,
        types::COMMANDS,
    ]
    .into_iter()
    .flatten()
}

fn find(name: &str) -> Option<&'static Spec> {
    all().find(|s| s.name.eq_ignore_ascii_case(name))
}

/// The commands a RESP2 connection may send while subscribed.
const WHILE_SUBSCRIBED: &[&str] = &[
    "subscribe",
    "psubscribe",
    "unsubscribe",
    "punsubscribe",
    "ping",
    "quit",
    "reset",
];

/// Commands MULTI does not queue.
const UNQUEUED: &[&str] = &[
    "exec", "discard", "multi", "watch", "unwatch", "quit", "reset",
];

/// The plan for one request.
pub fn plan(args: &[Bytes], s: &mut Session, srv: &Arc<Server>) -> Plan {
    let Some((name, rest)) = args.split_first() else {
        return Plan::Now(Frame::err("empty command"));
    };
    let text = String::from_utf8_lossy(name);
    let Some(spec) = find(&text) else {
        let plan = Plan::Now(unknown(&text, rest));
        return queue_failed(s, plan);
    };
    let n = args.len() as i32;
    if (spec.arity >= 0 && n != spec.arity) || n < -spec.arity {
        let plan = Plan::Now(Frame::err(format!(
            "wrong number of arguments for '{}' command",
            spec.name
        )));
        return queue_failed(s, plan);
    }
    if let Err(e) = authorize(spec.kind, s) {
        return queue_failed(s, Plan::Now(e));
    }
    if s.subs.active() && !s.resp3 && !WHILE_SUBSCRIBED.contains(&spec.name) {
        return Plan::Now(Frame::err(format!(
            "Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET \
             are allowed in this context",
            spec.name
        )));
    }
    if s.subs.active() && !s.resp3 && spec.name == "ping" {
        let msg = rest.first().cloned().unwrap_or_default();
        return Plan::Now(Frame::Array(vec![Frame::bulk("pong"), Frame::Bulk(msg)]));
    }
    let queueing = s.multi.is_some() && !UNQUEUED.contains(&spec.name);
    let plan = (spec.run)(Call {
        args: rest,
        s,
        srv,
        name: spec.name,
    });
    if !queueing {
        return plan;
    }
    match plan {
        Plan::Now(f) if f.is_error() => queue_failed(s, Plan::Now(f)),
        p => {
            if let Some((q, _)) = s.multi.as_mut() {
                if q.len() >= raft_kv::multi::MAX_OPS {
                    return queue_failed(s, Plan::Now(Frame::err("too many commands in MULTI")));
                }
                q.push(Queued(p));
            }
            Plan::Now(Frame::Simple("QUEUED".into()))
        }
    }
}

/// A command refused while queueing makes EXEC abort (Redis's rule).
fn queue_failed(s: &mut Session, p: Plan) -> Plan {
    if let Some((_, failed)) = s.multi.as_mut() {
        *failed = true;
    }
    p
}

fn unknown(name: &str, rest: &[Bytes]) -> Frame {
    let mut args = String::new();
    for a in rest.iter().take(16) {
        args.push_str(&format!("'{}' ", String::from_utf8_lossy(a)));
    }
    Frame::err(format!(
        "unknown command '{name}', with args beginning with: {args}"
    ))
}

/// Whether the session's certificate allows a command of `kind` here.
fn authorize(kind: Kind, s: &Session) -> Result<(), Frame> {
    let need = match kind {
        Kind::Conn | Kind::Status => Need::Status,
        Kind::Read => Need::Read(Scope::Namespace),
        Kind::Write => Need::Write(Scope::Namespace),
        Kind::Admin => Need::Admin,
    };
    let ask = access::Ask {
        need,
        namespace: &s.ns,
        address: None,
        forwarded: false,
    };
    access::authorize(&s.who, &ask).map_err(|e| Frame::coded("NOPERM", e.message))
}

// Helpers the groups share.

/// `-ERR syntax error`.
pub fn syntax() -> Frame {
    Frame::err("syntax error")
}

/// `-ERR value is not an integer or out of range`.
pub fn not_integer() -> Frame {
    Frame::err("value is not an integer or out of range")
}

/// A key as the KV holds it: UTF-8 without control characters, at most
/// 1024 bytes (the command port's rule).
pub fn key(b: &Bytes) -> Result<String, Frame> {
    let k = std::str::from_utf8(b).map_err(|_| {
        Frame::err("invalid key: keys are UTF-8 (raftstack shares them with its HTTP API)")
    })?;
    if k.is_empty() || k.len() > 1024 || k.chars().any(char::is_control) {
        return Err(Frame::err(
            "invalid key: 1 to 1024 bytes without control characters",
        ));
    }
    Ok(k.to_string())
}

/// The keys `args` name.
pub fn keys_of(args: &[Bytes]) -> Result<Vec<String>, Frame> {
    args.iter().map(key).collect()
}

/// An integer argument.
pub fn int(b: &Bytes) -> Result<i64, Frame> {
    raft_kv::strings::parse_int(b).ok_or_else(not_integer)
}

/// Runs `f`, whose `Err` is the reply.
pub fn attempt(f: impl FnOnce() -> Result<Plan, Frame>) -> Plan {
    f().unwrap_or_else(Plan::Now)
}

/// A read of `keys` in the session's namespace, replied to by `f` with
/// what each holds.
pub fn peek(
    s: &Session,
    keys: Vec<String>,
    f: impl FnOnce(Vec<Option<Bytes>>) -> Frame + Send + 'static,
) -> Plan {
    let op = Op::Peek {
        ns: s.ns.clone(),
        keys,
    };
    Plan::Data {
        op,
        render: Box::new(move |out| match out {
            Output::Peek(v) => f(v.into_iter().map(|p| p.map(|(b, _)| b)).collect()),
            other => unexpected(other),
        }),
    }
}

/// A write, replied to by `f` with its output.
pub fn write(op: Op, f: impl FnOnce(Output) -> Frame + Send + 'static) -> Plan {
    Plan::Data {
        op,
        render: Box::new(f),
    }
}

/// An output a command's entry cannot have applied as.
pub fn unexpected(out: Output) -> Frame {
    tracing::error!("invariant broken: a RESP command's entry applied as {out:?}");
    Frame::err(format!("internal error: the entry applied as {out:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_lower_case_and_arities_sane() {
        let mut names: Vec<_> = all().map(|s| s.name).collect();
        assert!(names.iter().all(|n| *n == n.to_lowercase()));
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "a command is in two tables");
        assert!(all().all(|s| s.arity != 0 && !s.summary.is_empty()));
    }

    #[test]
    fn docs_resp_md_lists_every_command() {
        let doc = include_str!("../../../../docs/resp.md");
        let missing: Vec<_> = all()
            .map(|s| s.name.to_uppercase())
            .filter(|n| !doc.contains(&format!("`{n}`")))
            .collect();
        assert!(missing.is_empty(), "docs/resp.md lacks {missing:?}");
    }
}
