//! Connection commands: PING, ECHO, HELLO, AUTH, SELECT, CLIENT, READONLY,
//! READWRITE, QUIT, RESET.

use super::{Call, Plan, Spec, syntax};
use crate::frame::Frame;
use bytes::Bytes;

pub const COMMANDS: &[Spec] = table! { "connection":
    "ping", -1, Conn, NONE, "Returns PONG, or the message given", ping;
    "echo", 2, Conn, NONE, "Returns the message given", echo;
    "hello", -1, Conn, NONE, "Picks RESP2 or RESP3 and describes the server", hello;
    "auth", -2, Conn, NONE, "Accepted and ignored: the TLS client certificate authenticates", auth;
    "select", 2, Conn, NONE, "Picks the namespace: db<n> for a number, else the name given", select;
    "client", -2, Conn, NONE, "SETNAME, GETNAME, ID, INFO, LIST, SETINFO, NO-EVICT, NO-TOUCH", client;
    "readonly", 1, Conn, NONE, "Reads on this connection are served locally, maybe stale", readonly;
    "readwrite", 1, Conn, NONE, "Reads on this connection are linearizable again", readwrite;
    "quit", -1, Conn, NONE, "Closes the connection", quit;
    "reset", 1, Conn, NONE, "Resets the connection's state", reset;
};

fn ping(c: Call<'_>) -> Plan {
    Plan::Now(match c.args {
        [] => Frame::Simple("PONG".into()),
        [m] => Frame::Bulk(m.clone()),
        _ => Frame::err("wrong number of arguments for 'ping' command"),
    })
}

fn echo(c: Call<'_>) -> Plan {
    Plan::Now(Frame::Bulk(c.args[0].clone()))
}

fn upper(b: &Bytes) -> String {
    String::from_utf8_lossy(b).to_ascii_uppercase()
}

fn hello(c: Call<'_>) -> Plan {
    let mut args = c.args.iter();
    if let Some(v) = args.next() {
        match upper(v).as_str() {
            "2" => c.s.resp3 = false,
            "3" => c.s.resp3 = true,
            _ => {
                return Plan::Now(Frame::coded("NOPROTO", "unsupported protocol version"));
            }
        }
    }
    while let Some(opt) = args.next() {
        match upper(opt).as_str() {
            "AUTH" if args.len() >= 2 => {
                args.next();
                args.next();
            }
            "SETNAME" if args.len() >= 1 => {
                let name = args.next().map(|n| String::from_utf8_lossy(n).into_owned());
                c.s.name = name;
            }
            _ => return Plan::Now(syntax()),
        }
    }
    let status = c.srv.api.node.status();
    let role = if status.is_leader() {
        "master"
    } else {
        "replica"
    };
    let proto = if c.s.resp3 { 3 } else { 2 };
    let pairs = [
        ("server", Frame::bulk("redis")),
        ("version", Frame::bulk(crate::REDIS_VERSION)),
        ("proto", Frame::Integer(proto)),
        ("id", Frame::Integer(c.s.id as i64)),
        ("mode", Frame::bulk("standalone")),
        ("role", Frame::bulk(role)),
        ("modules", Frame::Array(Vec::new())),
    ];
    Plan::Now(Frame::Map(
        pairs
            .into_iter()
            .map(|(k, v)| (Frame::bulk(k), v))
            .collect(),
    ))
}

fn auth(_: Call<'_>) -> Plan {
    Plan::Now(Frame::ok())
}

fn select(c: Call<'_>) -> Plan {
    let arg = String::from_utf8_lossy(&c.args[0]).into_owned();
    let (ns, db) = match raft_kv::strings::parse_int(arg.as_bytes()) {
        Some(n) if n >= 0 => (format!("db{n}"), Some(n as u64)),
        Some(_) => return Plan::Now(Frame::err("DB index is out of range")),
        None => (arg, None),
    };
    let ok = !ns.is_empty()
        && ns.len() <= 64
        && ns
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !ok {
        return Plan::Now(Frame::err(
            "a namespace is a number (db<n>) or 1 to 64 of A-Z a-z 0-9 - _ .",
        ));
    }
    (c.s.ns, c.s.db) = (ns, db);
    Plan::Now(Frame::ok())
}

fn client(c: Call<'_>) -> Plan {
    let sub = upper(&c.args[0]);
    let rest = &c.args[1..];
    Plan::Now(match (sub.as_str(), rest) {
        ("SETNAME", [name]) => {
            if name.iter().any(|b| *b == b' ' || !b.is_ascii_graphic()) {
                Frame::err("Client names cannot contain spaces, newlines or special characters.")
            } else {
                c.s.name = (!name.is_empty()).then(|| String::from_utf8_lossy(name).into());
                Frame::ok()
            }
        }
        ("GETNAME", []) => Frame::maybe(c.s.name.clone().map(Bytes::from)),
        ("ID", []) => Frame::Integer(c.s.id as i64),
        ("INFO", []) => Frame::bulk(format!("{}\n", info_line(c.s))),
        ("LIST", _) => Frame::bulk(format!("{}\n", info_line(c.s))),
        ("SETINFO", [_, _]) | ("NO-EVICT", [_]) | ("NO-TOUCH", [_]) => Frame::ok(),
        ("REPLY", _) | ("KILL", _) | ("PAUSE", _) | ("TRACKING", _) => {
            Frame::err(format!("CLIENT {sub} is not supported by raftstack"))
        }
        _ => Frame::err(format!(
            "unknown subcommand or wrong number of arguments for '{sub}'. Try CLIENT HELP."
        )),
    })
}

/// CLIENT INFO's line, in Redis's `key=value` form.
fn info_line(s: &crate::session::Session) -> String {
    format!(
        "id={} addr={} name={} db={} ns={} resp={} multi={} readonly={}",
        s.id,
        s.addr,
        s.name.as_deref().unwrap_or(""),
        s.db.map_or(-1, |d| d as i64),
        s.ns,
        if s.resp3 { 3 } else { 2 },
        s.multi.as_ref().map_or(-1, |(q, _)| q.len() as i64),
        s.readonly as u8,
    )
}

fn readonly(c: Call<'_>) -> Plan {
    c.s.readonly = true;
    Plan::Now(Frame::ok())
}

fn readwrite(c: Call<'_>) -> Plan {
    c.s.readonly = false;
    Plan::Now(Frame::ok())
}

fn quit(_: Call<'_>) -> Plan {
    Plan::Close(Frame::ok())
}

fn reset(c: Call<'_>) -> Plan {
    c.s.reset();
    Plan::Now(Frame::Simple("RESET".into()))
}
