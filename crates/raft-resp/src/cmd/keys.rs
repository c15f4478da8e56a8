//! Keyspace commands: DEL, UNLINK, EXISTS, TYPE, KEYS, SCAN, DBSIZE,
//! FLUSHDB.

use super::{Call, Local, Plan, Spec, attempt, int, key, keys_of, peek, syntax, unexpected, write};
use crate::frame::Frame;
use crate::glob;
use bytes::Bytes;
use raft_kv::{Op, Output};

pub const COMMANDS: &[Spec] = table! { "keyspace":
    "del", -2, Write, ALL, "Deletes keys, in one entry; how many existed", del;
    "unlink", -2, Write, ALL, "DEL (deleting is never slow here)", del;
    "exists", -2, Read, ALL, "How many of the keys exist", exists;
    "type", 2, Read, ONE, "string, or none", type_of;
    "keys", 2, Read, NONE, "The keys matching a pattern", keys;
    "scan", -2, Read, NONE, "Iterates over the keys (MATCH COUNT TYPE)", scan;
    "dbsize", 1, Read, NONE, "How many keys the namespace holds", dbsize;
    "flushdb", -1, Admin, NONE, "Drops the namespace; replies once that is committed", flushdb;
};

fn delete(ns: &str, key: String) -> Op {
    Op::Delete {
        ns: ns.to_string(),
        key,
        prefix: false,
        cas: None,
    }
}

fn removed(out: &Output) -> Option<i64> {
    match out {
        Output::Removed(n) => Some(*n as i64),
        _ => None,
    }
}

fn del(c: Call<'_>) -> Plan {
    attempt(|| {
        let mut keys = keys_of(c.args)?;
        if keys.len() == 1 {
            let op = delete(&c.s.ns, keys.remove(0));
            return Ok(write(op, |out| {
                removed(&out).map_or_else(|| unexpected(out), Frame::Integer)
            }));
        }
        let ops = keys.into_iter().map(|k| delete(&c.s.ns, k)).collect();
        let multi = Op::Multi {
            watch: Vec::new(),
            ops,
        };
        Ok(write(multi, |out| match out {
            Output::Multi(Some(outs)) => Frame::Integer(outs.iter().filter_map(removed).sum()),
            other => unexpected(other),
        }))
    })
}

fn exists(c: Call<'_>) -> Plan {
    attempt(|| {
        let keys = keys_of(c.args)?;
        Ok(peek(c.s, keys, |v| {
            Frame::Integer(v.iter().filter(|x| x.is_some()).count() as i64)
        }))
    })
}

fn type_of(c: Call<'_>) -> Plan {
    attempt(|| {
        let k = key(&c.args[0])?;
        Ok(peek(c.s, vec![k], |v| {
            Frame::Simple(if v[0].is_some() { "string" } else { "none" }.into())
        }))
    })
}

/// The keys of `ns` matching `pattern`, after `after`, at most `limit`
/// looked at: those that matched, and the last looked at if keys remain.
fn walk(
    kv: &raft_kv::KvState,
    ns: &str,
    pattern: &[u8],
    after: Option<&str>,
    limit: usize,
) -> (Vec<Bytes>, Option<String>) {
    let fixed = String::from_utf8_lossy(&glob::prefix(pattern)).into_owned();
    let mut out = Vec::new();
    let mut last: Option<&str> = None;
    for (seen, (k, _)) in kv.scan_after(ns, &fixed, after).enumerate() {
        if seen == limit {
            return (out, last.map(str::to_string));
        }
        last = Some(k.as_str());
        if glob::matches(pattern, k.as_bytes()) {
            out.push(Bytes::copy_from_slice(k.as_bytes()));
        }
    }
    (out, None)
}

fn keys(c: Call<'_>) -> Plan {
    let pattern = c.args[0].clone();
    let ns = c.s.ns.clone();
    let f: Local = Box::new(move |_, kv| {
        Frame::Array(
            walk(kv, &ns, &pattern, None, usize::MAX)
                .0
                .into_iter()
                .map(Frame::Bulk)
                .collect(),
        )
    });
    Plan::Local(f)
}

/// SCAN's cursors: 0 starts; any other is a position this connection
/// was given (keys are walked in order, so every key there for the whole
/// scan is returned exactly once).
fn scan(c: Call<'_>) -> Plan {
    attempt(|| {
        let cursor = u64::try_from(int(&c.args[0])?).map_err(|_| Frame::err("invalid cursor"))?;
        let mut pattern = Bytes::from_static(b"*");
        let mut count = 10usize;
        let mut rest = c.args[1..].chunks(2);
        for opt in rest.by_ref() {
            let [name, v] = opt else { return Err(syntax()) };
            match String::from_utf8_lossy(name).to_ascii_uppercase().as_str() {
                "MATCH" => pattern = v.clone(),
                "COUNT" => {
                    count = usize::try_from(int(v)?)
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(syntax)?;
                }
                "TYPE" if v.eq_ignore_ascii_case(b"string") => {}
                // Only strings are kept: any other type has no keys.
                "TYPE" => count = 0,
                _ => return Err(syntax()),
            }
        }
        let after =
            match cursor {
                0 => None,
                n => Some(c.s.cursor(n).ok_or_else(|| {
                    Frame::err("invalid cursor: not one this connection was given")
                })?),
            };
        if count == 0 {
            return Ok(Plan::Now(Frame::Array(vec![
                Frame::bulk("0"),
                Frame::Array(vec![]),
            ])));
        }
        let ns = c.s.ns.clone();
        let cursors = c.s.cursors.clone();
        let f: Local = Box::new(move |_, kv| {
            let (found, last) = walk(kv, &ns, &pattern, after.as_deref(), count);
            let next = last.map_or(0, |k| cursors.give(k));
            Frame::Array(vec![
                Frame::bulk(next.to_string()),
                Frame::Array(found.into_iter().map(Frame::Bulk).collect()),
            ])
        });
        Ok(Plan::Local(f))
    })
}

fn dbsize(c: Call<'_>) -> Plan {
    let ns = c.s.ns.clone();
    Plan::Local(Box::new(move |_, kv| {
        let n = kv
            .namespaces()
            .find(|(n, _)| **n == ns)
            .map_or(0, |(_, k)| k);
        Frame::Integer(n as i64)
    }))
}

fn flushdb(c: Call<'_>) -> Plan {
    match c.args {
        [] => {}
        [m] if m.eq_ignore_ascii_case(b"ASYNC") || m.eq_ignore_ascii_case(b"SYNC") => {}
        _ => return Plan::Now(syntax()),
    }
    let op = Op::DropNamespace { ns: c.s.ns.clone() };
    write(op, |out| match out {
        Output::Removed(_) => Frame::ok(),
        other => unexpected(other),
    })
}
