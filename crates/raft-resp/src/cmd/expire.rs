//! TTLs: EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT, TTL, PTTL, PERSIST. A key's
//! TTL is a lease of its own (`raft_kv::strings`), counted down by the
//! leader; a key expires when the leader's expiry entry commits.

use super::strings::{Expiry, absolute, relative};
use super::{Call, Plan, Spec, attempt, int, key, unexpected, write};
use crate::frame::Frame;
use raft_kv::strings::{Edit, StrWrite, Ttl, When};
use raft_kv::{Op, Output};

pub const COMMANDS: &[Spec] = table! { "generic":
    "expire", -3, Write, ONE, "Sets a key's TTL in seconds", expire;
    "pexpire", -3, Write, ONE, "Sets a key's TTL in milliseconds", pexpire;
    "expireat", -3, Write, ONE, "Expires a key at a unix time (s)", expireat;
    "pexpireat", -3, Write, ONE, "Expires a key at a unix time (ms)", pexpireat;
    "ttl", 2, Read, ONE, "Seconds left (-1: no TTL, -2: no key)", ttl;
    "pttl", 2, Read, ONE, "Milliseconds left (-1: no TTL, -2: no key)", pttl;
    "persist", 2, Write, ONE, "Clears a key's TTL", persist;
};

/// EXPIRE and its kin: `when` makes the expiry from the number given.
fn expire_with(c: Call<'_>, when: fn(i64, &str) -> Result<Expiry, Frame>) -> Plan {
    attempt(|| {
        let k = key(&c.args[0])?;
        if c.args.len() > 2 {
            return Err(Frame::err(
                "NX, XX, GT and LT are not supported by raftstack's EXPIRE",
            ));
        }
        let n = int(&c.args[1])?;
        let ns = c.s.ns.clone();
        // Redis: a TTL of zero or less (or a past time) deletes the key.
        let e = if n <= 0 && c.name.ends_with("expire") {
            Expiry::Past
        } else {
            when(n, c.name)?
        };
        let op = match e {
            Expiry::Past => Op::Delete {
                ns,
                key: k,
                prefix: false,
                cas: None,
            },
            Expiry::In(ms) => Op::Str(StrWrite {
                ns,
                key: k,
                edit: Edit::Keep,
                when: When::Always,
                ttl: Ttl::For(ms),
            }),
        };
        Ok(write(op, |out| match out {
            Output::Str(Ok(d)) => Frame::Integer(d.applied as i64),
            Output::Str(Err(e)) => Frame::err(e),
            Output::Removed(n) => Frame::Integer((n > 0) as i64),
            other => unexpected(other),
        }))
    })
}

fn expire(c: Call<'_>) -> Plan {
    expire_with(c, |n, cmd| relative(n, 1000, cmd))
}

fn pexpire(c: Call<'_>) -> Plan {
    expire_with(c, |n, cmd| relative(n, 1, cmd))
}

fn expireat(c: Call<'_>) -> Plan {
    expire_with(c, |n, cmd| absolute(n, 1000, cmd))
}

fn pexpireat(c: Call<'_>) -> Plan {
    expire_with(c, |n, cmd| absolute(n, 1, cmd))
}

/// TTL and PTTL: -2 without the key, -1 without a TTL, else the time the
/// leader has left on the key's lease, in `unit_ms` (rounded as Redis).
fn time_left(c: Call<'_>, unit_ms: u64) -> Plan {
    attempt(|| {
        let k = key(&c.args[0])?;
        let (ns, srv, readonly) = (c.s.ns.clone(), c.srv.clone(), c.s.readonly);
        Ok(Plan::Later(Box::pin(async move {
            if let Err(f) = srv.read_point(readonly).await {
                return f;
            }
            let lease = match srv.api.kv.read().get(&ns, &k) {
                None => return Frame::Integer(-2),
                Some(v) => v.lease(),
            };
            let Some(id) = lease else {
                return Frame::Integer(-1);
            };
            match raft_http::lease::remaining_anywhere(&srv.api, id).await {
                Ok(Some(left)) => {
                    let ms = left.as_millis() as u64;
                    Frame::Integer(((ms + unit_ms / 2) / unit_ms) as i64)
                }
                // Expired between the read and the ask.
                Ok(None) => Frame::Integer(-2),
                Err(e) => Frame::coded("TRYAGAIN", e.message),
            }
        })))
    })
}

fn ttl(c: Call<'_>) -> Plan {
    time_left(c, 1000)
}

fn pttl(c: Call<'_>) -> Plan {
    time_left(c, 1)
}

fn persist(c: Call<'_>) -> Plan {
    attempt(|| {
        let op = Op::Str(StrWrite {
            ns: c.s.ns.clone(),
            key: key(&c.args[0])?,
            edit: Edit::Keep,
            when: When::Present,
            ttl: Ttl::Clear,
        });
        Ok(write(op, |out| match out {
            Output::Str(Ok(d)) => Frame::Integer((d.applied && d.had_ttl) as i64),
            Output::Str(Err(e)) => Frame::err(e),
            other => unexpected(other),
        }))
    })
}
