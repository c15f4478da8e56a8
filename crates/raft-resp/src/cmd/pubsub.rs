//! SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE, PUNSUBSCRIBE (keyspace
//! notifications, `crate::pubsub`) and PUBLISH (refused: messages are not
//! replicated, only changes are).

use super::{Call, Plan, Spec};
use crate::frame::Frame;
use crate::pubsub::confirm;

pub const COMMANDS: &[Spec] = table! { "pubsub":
    "subscribe", -2, Read, NONE, "Keyspace notification channels", subscribe;
    "psubscribe", -2, Read, NONE, "Keyspace notification patterns", psubscribe;
    "unsubscribe", -1, Conn, NONE, "Leaves channels (all if none named)", unsubscribe;
    "punsubscribe", -1, Conn, NONE, "Leaves patterns (all if none named)", punsubscribe;
    "publish", 3, Write, NONE, "Refused: only keyspace notifications are published", publish;
};

/// Starts publishing from what this node applied next, when the first
/// subscription is made.
fn start(c: &mut Call<'_>) {
    if !c.s.subs.active() {
        c.s.subs.next = c.srv.api.kv.read().applied() + 1;
    }
}

/// Channels (SUBSCRIBE) or patterns (PSUBSCRIBE).
#[derive(Clone, Copy)]
enum Which {
    Channels,
    Patterns,
}

fn set<'a>(c: &'a mut Call<'_>, which: Which) -> &'a mut std::collections::BTreeSet<bytes::Bytes> {
    match which {
        Which::Channels => &mut c.s.subs.channels,
        Which::Patterns => &mut c.s.subs.patterns,
    }
}

/// (P)SUBSCRIBE: one confirmation per name.
fn join(mut c: Call<'_>, which: Which, kind: &str) -> Plan {
    start(&mut c);
    let mut replies = Vec::new();
    for name in c.args {
        set(&mut c, which).insert(name.clone());
        replies.push(confirm(kind, Some(name.clone()), c.s.subs.count()));
    }
    Plan::Now(Frame::Seq(replies))
}

/// (P)UNSUBSCRIBE: the names given, or all; one confirmation each (one
/// with no name when there were none).
fn leave(mut c: Call<'_>, which: Which, kind: &str) -> Plan {
    let named: Vec<_> = match c.args {
        [] => set(&mut c, which).iter().cloned().collect(),
        some => some.to_vec(),
    };
    let mut replies = Vec::new();
    for name in named {
        set(&mut c, which).remove(&name);
        replies.push(confirm(kind, Some(name), c.s.subs.count()));
    }
    if replies.is_empty() {
        replies.push(confirm(kind, None, c.s.subs.count()));
    }
    Plan::Now(Frame::Seq(replies))
}

fn subscribe(c: Call<'_>) -> Plan {
    join(c, Which::Channels, "subscribe")
}

fn psubscribe(c: Call<'_>) -> Plan {
    join(c, Which::Patterns, "psubscribe")
}

fn unsubscribe(c: Call<'_>) -> Plan {
    leave(c, Which::Channels, "unsubscribe")
}

fn punsubscribe(c: Call<'_>) -> Plan {
    leave(c, Which::Patterns, "punsubscribe")
}

fn publish(_: Call<'_>) -> Plan {
    Plan::Now(Frame::err(
        "PUBLISH is not supported: raftstack publishes keyspace notifications only (docs/resp.md)",
    ))
}
