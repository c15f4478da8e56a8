//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH. EXEC replicates
//! the queued commands as one entry (`raft_kv::multi`), applied only if
//! every WATCHed key still has the modify index it had when watched.

use super::{Call, Plan, Spec, keys_of};
use crate::frame::Frame;

pub const COMMANDS: &[Spec] = table! { "transactions":
    "multi", 1, Conn, NONE, "Starts queueing commands", multi;
    "exec", 1, Conn, NONE, "Runs the queued commands as one entry", exec;
    "discard", 1, Conn, NONE, "Drops the queued commands", discard;
    "watch", -2, Read, ALL, "EXEC applies only if these keys are unchanged", watch;
    "unwatch", 1, Conn, NONE, "Forgets the watched keys", unwatch;
};

fn multi(c: Call<'_>) -> Plan {
    if c.s.multi.is_some() {
        return Plan::Now(Frame::err("MULTI calls can not be nested"));
    }
    c.s.multi = Some((Vec::new(), false));
    Plan::Now(Frame::ok())
}

fn exec(c: Call<'_>) -> Plan {
    match &c.s.multi {
        None => Plan::Now(Frame::err("EXEC without MULTI")),
        Some((_, true)) => {
            c.s.multi = None;
            c.s.watched.clear();
            Plan::Now(Frame::coded(
                "EXECABORT",
                "Transaction discarded because of previous errors.",
            ))
        }
        Some(_) => Plan::Exec,
    }
}

fn discard(c: Call<'_>) -> Plan {
    if c.s.multi.take().is_none() {
        return Plan::Now(Frame::err("DISCARD without MULTI"));
    }
    c.s.watched.clear();
    Plan::Now(Frame::ok())
}

fn watch(c: Call<'_>) -> Plan {
    if c.s.multi.is_some() {
        return Plan::Now(Frame::err("WATCH inside MULTI is not allowed"));
    }
    match keys_of(c.args) {
        Ok(keys) => Plan::Watch(keys),
        Err(f) => Plan::Now(f),
    }
}

fn unwatch(c: Call<'_>) -> Plan {
    c.s.watched.clear();
    Plan::Now(Frame::ok())
}
