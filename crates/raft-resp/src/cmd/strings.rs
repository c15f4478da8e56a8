//! String commands. Each write is one entry (`raft_kv::strings`), applied
//! to the value the key holds then; each read is a peek at a read point.

use super::{Call, Plan, Spec, attempt, int, key, keys_of, peek, syntax, unexpected, write};
use crate::frame::Frame;
use bytes::Bytes;
use raft_kv::multi::Watched;
use raft_kv::strings::{Edit, StrDone, StrWrite, Ttl, When};
use raft_kv::{Op, Output};

pub const COMMANDS: &[Spec] = table! { "string":
    "get", 2, Read, ONE, "The value of a key", get;
    "set", -3, Write, ONE, "Sets a key (NX XX GET EX PX EXAT PXAT KEEPTTL)", set;
    "setnx", 3, Write, ONE, "Sets a key if it does not exist", setnx;
    "setex", 4, Write, ONE, "Sets a key with a TTL in seconds", setex;
    "psetex", 4, Write, ONE, "Sets a key with a TTL in milliseconds", psetex;
    "getset", 3, Write, ONE, "Sets a key, returning the old value", getset;
    "getdel", 2, Write, ONE, "Deletes a key, returning its value", getdel;
    "getex", -2, Write, ONE, "The value of a key, setting or clearing its TTL", getex;
    "mget", -2, Read, ALL, "The values of keys", mget;
    "mset", -3, Write, PAIRS, "Sets keys, in one entry", mset;
    "msetnx", -3, Write, PAIRS, "Sets keys if none exists, in one entry", msetnx;
    "incr", 2, Write, ONE, "Adds 1 to an integer", incr;
    "incrby", 3, Write, ONE, "Adds to an integer", incrby;
    "decr", 2, Write, ONE, "Takes 1 from an integer", decr;
    "decrby", 3, Write, ONE, "Takes from an integer", decrby;
    "incrbyfloat", 3, Write, ONE, "Adds to a float", incrbyfloat;
    "append", 3, Write, ONE, "Appends to a value; the new length", append;
    "strlen", 2, Read, ONE, "The length of a value", strlen;
    "getrange", 4, Read, ONE, "Part of a value", getrange;
    "substr", 4, Read, ONE, "Part of a value (GETRANGE's old name)", getrange;
    "setrange", 4, Write, ONE, "Overwrites part of a value; the new length", setrange;
};

/// A string write on the session's namespace.
fn str_op(c: &Call<'_>, key: String, edit: Edit, when: When, ttl: Ttl) -> Op {
    Op::Str(StrWrite {
        ns: c.s.ns.clone(),
        key,
        edit,
        when,
        ttl,
    })
}

/// A string write, replied to by `f` with what it did.
fn str_write(op: Op, f: impl FnOnce(StrDone) -> Frame + Send + 'static) -> Plan {
    write(op, move |out| match out {
        Output::Str(Ok(done)) => f(done),
        Output::Str(Err(e)) => Frame::err(e),
        other => unexpected(other),
    })
}

fn get(c: Call<'_>) -> Plan {
    attempt(|| {
        let k = key(&c.args[0])?;
        Ok(peek(c.s, vec![k], |mut v| Frame::maybe(v.remove(0))))
    })
}

/// When a TTL option says a key should expire.
pub enum Expiry {
    /// In this many milliseconds (> 0).
    In(u64),
    /// Already (an EXAT / PXAT in the past).
    Past,
}

/// A relative TTL in `unit_ms` units, as Redis checks one.
pub fn relative(n: i64, unit_ms: i64, cmd: &str) -> Result<Expiry, Frame> {
    let bad = || Frame::err(format!("invalid expire time in '{cmd}' command"));
    if n <= 0 {
        return Err(bad());
    }
    let ms = n.checked_mul(unit_ms).ok_or_else(bad)? as u64;
    if ms > raft_kv::strings::MAX_TTL_MS {
        return Err(bad());
    }
    Ok(Expiry::In(ms))
}

/// An absolute time (unix, in `unit_ms` units) as a TTL from now, by
/// this node's wall clock.
pub fn absolute(at: i64, unit_ms: i64, cmd: &str) -> Result<Expiry, Frame> {
    let bad = || Frame::err(format!("invalid expire time in '{cmd}' command"));
    if at <= 0 {
        return Err(bad());
    }
    let at_ms = at.checked_mul(unit_ms).ok_or_else(bad)?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    if at_ms <= now_ms {
        return Ok(Expiry::Past);
    }
    relative(at_ms - now_ms, 1, cmd)
}

/// SET's options.
struct SetOpts {
    when: When,
    get: bool,
    ttl: Ttl,
    past: bool,
}

fn set_opts(args: &[Bytes], cmd: &str) -> Result<SetOpts, Frame> {
    let mut o = SetOpts {
        when: When::Always,
        get: false,
        ttl: Ttl::Clear,
        past: false,
    };
    let mut ttl_given = false;
    let mut i = 0;
    while i < args.len() {
        let opt = String::from_utf8_lossy(&args[i]).to_ascii_uppercase();
        let timed = ["EX", "PX", "EXAT", "PXAT"].contains(&opt.as_str());
        match opt.as_str() {
            "NX" if o.when == When::Always => o.when = When::Missing,
            "XX" if o.when == When::Always => o.when = When::Present,
            "GET" => o.get = true,
            "KEEPTTL" if !ttl_given => {
                o.ttl = Ttl::Keep;
                ttl_given = true;
            }
            _ if timed && !ttl_given && i + 1 < args.len() => {
                i += 1;
                let n = int(&args[i])?;
                let e = match opt.as_str() {
                    "EX" => relative(n, 1000, cmd)?,
                    "PX" => relative(n, 1, cmd)?,
                    "EXAT" => absolute(n, 1000, cmd)?,
                    _ => absolute(n, 1, cmd)?,
                };
                match e {
                    Expiry::In(ms) => o.ttl = Ttl::For(ms),
                    Expiry::Past => o.past = true,
                }
                ttl_given = true;
            }
            _ => return Err(syntax()),
        }
        i += 1;
    }
    Ok(o)
}

fn set(c: Call<'_>) -> Plan {
    attempt(|| {
        let k = key(&c.args[0])?;
        let o = set_opts(&c.args[2..], "set")?;
        let op = str_op(&c, k.clone(), Edit::Set(c.args[1].clone()), o.when, o.ttl);
        let reply = move |d: StrDone| match (o.get, d.applied) {
            (true, _) => Frame::maybe(d.old),
            (false, true) => Frame::ok(),
            (false, false) => Frame::Null,
        };
        if !o.past {
            return Ok(str_write(op, reply));
        }
        // Set and gone at once: one entry does both.
        let del = Op::Delete {
            ns: c.s.ns.clone(),
            key: k,
            prefix: false,
            cas: None,
        };
        let multi = Op::Multi {
            watch: Vec::new(),
            ops: vec![op, del],
        };
        Ok(write(multi, move |out| match out {
            Output::Multi(Some(mut outs)) if !outs.is_empty() => match outs.remove(0) {
                Output::Str(Ok(d)) => reply(d),
                Output::Str(Err(e)) => Frame::err(e),
                other => unexpected(other),
            },
            other => unexpected(other),
        }))
    })
}

fn setnx(c: Call<'_>) -> Plan {
    attempt(|| {
        let op = str_op(
            &c,
            key(&c.args[0])?,
            Edit::Set(c.args[1].clone()),
            When::Missing,
            Ttl::Clear,
        );
        Ok(str_write(op, |d| Frame::Integer(d.applied as i64)))
    })
}

fn set_for(c: Call<'_>, unit_ms: i64) -> Plan {
    attempt(|| {
        let k = key(&c.args[0])?;
        let Expiry::In(ms) = relative(int(&c.args[1])?, unit_ms, c.name)? else {
            return Err(Frame::err("invalid expire time"));
        };
        let op = str_op(
            &c,
            k,
            Edit::Set(c.args[2].clone()),
            When::Always,
            Ttl::For(ms),
        );
        Ok(str_write(op, |_| Frame::ok()))
    })
}

fn setex(c: Call<'_>) -> Plan {
    set_for(c, 1000)
}

fn psetex(c: Call<'_>) -> Plan {
    set_for(c, 1)
}

fn getset(c: Call<'_>) -> Plan {
    attempt(|| {
        let op = str_op(
            &c,
            key(&c.args[0])?,
            Edit::Set(c.args[1].clone()),
            When::Always,
            Ttl::Clear,
        );
        Ok(str_write(op, |d| Frame::maybe(d.old)))
    })
}

fn getdel(c: Call<'_>) -> Plan {
    attempt(|| {
        let k = key(&c.args[0])?;
        let ns = c.s.ns.clone();
        let ops = vec![
            Op::Peek {
                ns: ns.clone(),
                keys: vec![k.clone()],
            },
            Op::Delete {
                ns,
                key: k,
                prefix: false,
                cas: None,
            },
        ];
        let multi = Op::Multi {
            watch: Vec::new(),
            ops,
        };
        Ok(write(multi, |out| match out {
            Output::Multi(Some(mut outs)) if !outs.is_empty() => match outs.remove(0) {
                Output::Peek(mut v) => Frame::maybe(v.remove(0).map(|(b, _)| b)),
                other => unexpected(other),
            },
            other => unexpected(other),
        }))
    })
}

fn getex(c: Call<'_>) -> Plan {
    attempt(|| {
        let k = key(&c.args[0])?;
        let rest = &c.args[1..];
        let ttl = match rest {
            [] => Ttl::Keep,
            [p] if p.eq_ignore_ascii_case(b"PERSIST") => Ttl::Clear,
            [opt, n] => {
                let n = int(n)?;
                let e = match String::from_utf8_lossy(opt).to_ascii_uppercase().as_str() {
                    "EX" => relative(n, 1000, "getex")?,
                    "PX" => relative(n, 1, "getex")?,
                    "EXAT" => absolute(n, 1000, "getex")?,
                    "PXAT" => absolute(n, 1, "getex")?,
                    _ => return Err(syntax()),
                };
                match e {
                    Expiry::In(ms) => Ttl::For(ms),
                    // Expires at once: the least TTL there is.
                    Expiry::Past => Ttl::For(1),
                }
            }
            _ => return Err(syntax()),
        };
        let op = str_op(&c, k, Edit::Keep, When::Always, ttl);
        Ok(str_write(op, |d| Frame::maybe(d.old)))
    })
}

fn mget(c: Call<'_>) -> Plan {
    attempt(|| {
        let keys = keys_of(c.args)?;
        Ok(peek(c.s, keys, |v| {
            Frame::Array(v.into_iter().map(Frame::maybe).collect())
        }))
    })
}

/// MSET's and MSETNX's pairs as string writes.
fn pairs(c: &Call<'_>) -> Result<Vec<Op>, Frame> {
    if !c.args.len().is_multiple_of(2) {
        return Err(Frame::err(format!(
            "wrong number of arguments for '{}' command",
            c.name
        )));
    }
    c.args
        .chunks(2)
        .map(|kv| {
            Ok(str_op(
                c,
                key(&kv[0])?,
                Edit::Set(kv[1].clone()),
                When::Always,
                Ttl::Clear,
            ))
        })
        .collect()
}

fn mset(c: Call<'_>) -> Plan {
    attempt(|| {
        let ops = pairs(&c)?;
        let multi = Op::Multi {
            watch: Vec::new(),
            ops,
        };
        Ok(write(multi, |out| match out {
            Output::Multi(Some(_)) => Frame::ok(),
            other => unexpected(other),
        }))
    })
}

fn msetnx(c: Call<'_>) -> Plan {
    attempt(|| {
        let ops = pairs(&c)?;
        // Watched as absent: any that exists stops them all.
        let watch = c
            .args
            .chunks(2)
            .map(|kv| {
                Ok(Watched {
                    ns: c.s.ns.clone(),
                    key: key(&kv[0])?,
                    modify_index: 0,
                })
            })
            .collect::<Result<_, Frame>>()?;
        Ok(write(Op::Multi { watch, ops }, |out| match out {
            Output::Multi(applied) => Frame::Integer(applied.is_some() as i64),
            other => unexpected(other),
        }))
    })
}

fn add(c: Call<'_>, by: Result<i64, Frame>) -> Plan {
    attempt(|| {
        let op = str_op(
            &c,
            key(&c.args[0])?,
            Edit::IncrBy(by?),
            When::Always,
            Ttl::Keep,
        );
        Ok(str_write(op, |d| {
            let n = d.new.as_deref().and_then(raft_kv::strings::parse_int);
            n.map_or_else(super::not_integer, Frame::Integer)
        }))
    })
}

fn incr(c: Call<'_>) -> Plan {
    add(c, Ok(1))
}

fn decr(c: Call<'_>) -> Plan {
    add(c, Ok(-1))
}

fn incrby(c: Call<'_>) -> Plan {
    let by = int(&c.args[1]);
    add(c, by)
}

fn decrby(c: Call<'_>) -> Plan {
    let by = int(&c.args[1]).and_then(|n| {
        n.checked_neg()
            .ok_or_else(|| Frame::err("decrement would overflow"))
    });
    add(c, by)
}

fn incrbyfloat(c: Call<'_>) -> Plan {
    attempt(|| {
        let k = key(&c.args[0])?;
        let by = &c.args[1];
        raft_kv::strings::parse_float(by)
            .ok_or_else(|| Frame::err("value is not a valid float"))?;
        let edit = Edit::IncrByFloat(String::from_utf8_lossy(by).into_owned());
        let op = str_op(&c, k, edit, When::Always, Ttl::Keep);
        Ok(str_write(op, |d| Frame::maybe(d.new)))
    })
}

fn append(c: Call<'_>) -> Plan {
    attempt(|| {
        let op = str_op(
            &c,
            key(&c.args[0])?,
            Edit::Append(c.args[1].clone()),
            When::Always,
            Ttl::Keep,
        );
        Ok(str_write(op, |d| {
            Frame::Integer(d.new.map_or(0, |v| v.len() as i64))
        }))
    })
}

fn strlen(c: Call<'_>) -> Plan {
    attempt(|| {
        let k = key(&c.args[0])?;
        Ok(peek(c.s, vec![k], |v| {
            Frame::Integer(v[0].as_ref().map_or(0, |b| b.len() as i64))
        }))
    })
}

/// GETRANGE's slice of `v`: Redis's rules for negative and out-of-range
/// ends.
pub fn range(v: &Bytes, start: i64, end: i64) -> Bytes {
    let len = v.len() as i64;
    let fix = |i: i64| if i < 0 { (len + i).max(0) } else { i };
    let (s, e) = (fix(start), fix(end).min(len - 1));
    if len == 0 || s > e || (start < 0 && end < 0 && start > end) {
        return Bytes::new();
    }
    v.slice(s as usize..=e as usize)
}

fn getrange(c: Call<'_>) -> Plan {
    attempt(|| {
        let k = key(&c.args[0])?;
        let (s, e) = (int(&c.args[1])?, int(&c.args[2])?);
        Ok(peek(c.s, vec![k], move |v| {
            Frame::Bulk(v[0].as_ref().map_or_else(Bytes::new, |b| range(b, s, e)))
        }))
    })
}

fn setrange(c: Call<'_>) -> Plan {
    attempt(|| {
        let k = key(&c.args[0])?;
        let offset = int(&c.args[1])?;
        if offset < 0 {
            return Err(Frame::err("offset is out of range"));
        }
        let data = c.args[2].clone();
        if data.is_empty() {
            // Redis creates nothing for an empty write: the length.
            return Ok(peek(c.s, vec![k], |v| {
                Frame::Integer(v[0].as_ref().map_or(0, |b| b.len() as i64))
            }));
        }
        let edit = Edit::SetRange {
            offset: offset as u64,
            data,
        };
        let op = str_op(&c, k, edit, When::Always, Ttl::Keep);
        Ok(str_write(op, |d| {
            Frame::Integer(d.new.map_or(0, |v| v.len() as i64))
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getrange_follows_redis() {
        let v = Bytes::from("This is a string");
        let r = |s, e| String::from_utf8(range(&v, s, e).to_vec()).unwrap();
        assert_eq!(r(0, 3), "This");
        assert_eq!(r(-3, -1), "ing");
        assert_eq!(r(0, -1), "This is a string");
        assert_eq!(r(10, 100), "string");
        assert_eq!(r(5, 2), "");
        assert_eq!(r(-100, 3), "This");
        assert_eq!(range(&Bytes::new(), 0, -1), Bytes::new());
    }
}
