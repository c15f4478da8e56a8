//! SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE, PUNSUBSCRIBE (keyspace
//! notifications, `crate::pubsub`) and PUBLISH (refused: messages are not
//! replicated, only changes are).

use super::{Call, Kind, Plan, Spec};
use crate::frame::Frame;
use crate::pubsub::confirm;

pub const COMMANDS: &[Spec] = &[
    spec(
        "subscribe",
        -2,
        Kind::Read,
        "Keyspace notification channels",
        subscribe,
    ),
    spec(
        "psubscribe",
        -2,
        Kind::Read,
        "Keyspace notification patterns",
        psubscribe,
    ),
    spec(
        "unsubscribe",
        -1,
        Kind::Conn,
        "Leaves channels (all if none named)",
        unsubscribe,
    ),
    spec(
        "punsubscribe",
        -1,
        Kind::Conn,
        "Leaves patterns (all if none named)",
        punsubscribe,
    ),
    spec(
        "publish",
        3,
        Kind::Write,
        "Refused: only keyspace notifications are published",
        publish,
    ),
];

const fn spec(
    name: &'static str,
    arity: i32,
    kind: Kind,
    summary: &'static str,
    run: fn(Call<'_>) -> Plan,
) -> Spec {
    Spec {
        name,
        arity,
        kind,
        keys: (0, 0, 0),
        group: "pubsub",
        summary,
        run,
    }
}

/// Starts publishing from what this node applied next, when the first
/// subscription is made.
fn start(c: &mut Call<'_>) {
    if !c.s.subs.active() {
        c.s.subs.next = c.srv.api.kv.read().applied() + 1;
    }
}

fn subscribe(mut c: Call<'_>) -> Plan {
    start(&mut c);
    let mut replies = Vec::new();
    for ch in c.args {
        c.s.subs.channels.insert(ch.clone());
        replies.push(confirm("subscribe", Some(ch.clone()), c.s.subs.count()));
    }
    Plan::Now(Frame::Seq(replies))
}

fn psubscribe(mut c: Call<'_>) -> Plan {
    start(&mut c);
    let mut replies = Vec::new();
    for p in c.args {
        c.s.subs.patterns.insert(p.clone());
        replies.push(confirm("psubscribe", Some(p.clone()), c.s.subs.count()));
    }
    Plan::Now(Frame::Seq(replies))
}

fn unsubscribe(c: Call<'_>) -> Plan {
    let named: Vec<_> = if c.args.is_empty() {
        c.s.subs.channels.iter().cloned().collect()
    } else {
        c.args.to_vec()
    };
    let mut replies = Vec::new();
    for ch in named {
        c.s.subs.channels.remove(&ch);
        replies.push(confirm("unsubscribe", Some(ch), c.s.subs.count()));
    }
    if replies.is_empty() {
        replies.push(confirm("unsubscribe", None, c.s.subs.count()));
    }
    Plan::Now(Frame::Seq(replies))
}

fn punsubscribe(c: Call<'_>) -> Plan {
    let named: Vec<_> = if c.args.is_empty() {
        c.s.subs.patterns.iter().cloned().collect()
    } else {
        c.args.to_vec()
    };
    let mut replies = Vec::new();
    for p in named {
        c.s.subs.patterns.remove(&p);
        replies.push(confirm("punsubscribe", Some(p), c.s.subs.count()));
    }
    if replies.is_empty() {
        replies.push(confirm("punsubscribe", None, c.s.subs.count()));
    }
    Plan::Now(Frame::Seq(replies))
}

fn publish(_: Call<'_>) -> Plan {
    Plan::Now(Frame::err(
        "PUBLISH is not supported: raftstack publishes keyspace notifications only (docs/resp.md)",
    ))
}
