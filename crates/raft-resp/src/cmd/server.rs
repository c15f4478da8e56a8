//! Server commands: INFO, ROLE, WAIT, COMMAND, CONFIG GET, TIME.

use super::{Call, Plan, Spec, attempt, int};
use crate::Server;
use crate::frame::Frame;
use raft_kv::KvState;
use std::fmt::Write;
use std::time::Duration;

pub const COMMANDS: &[Spec] = table! { "server":
    "info", -1, Status, NONE, "Server, clients, replication and keyspace facts", info;
    "role", 1, Status, NONE, "master or replica, with the replication offset", role;
    "wait", 3, Status, NONE, "How many replicas hold this connection's writes", wait;
    "command", -1, Status, NONE, "The commands served (COUNT DOCS INFO LIST)", command;
    "config", -2, Status, NONE, "CONFIG GET of the few settings clients ask for", config;
    "time", 1, Status, NONE, "This node's clock", time;
};

fn role_name(srv: &Server) -> &'static str {
    if srv.api.node.status().is_leader() {
        "master"
    } else {
        "slave"
    }
}

fn info(c: Call<'_>) -> Plan {
    let wanted: Vec<String> = c
        .args
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let resp3 = c.s.resp3;
    Plan::Local(Box::new(move |srv, kv| {
        let all = wanted.is_empty() || wanted.iter().any(|w| w == "all" || w == "everything");
        let want = |s: &str| all || wanted.iter().any(|w| w == s || w == "default");
        let mut out = String::new();
        if want("server") {
            server_section(srv, &mut out);
        }
        if want("clients") {
            let _ = write!(
                out,
                "# Clients\r\nconnected_clients:{}\r\n\r\n",
                srv.clients()
            );
        }
        if want("replication") {
            replication_section(srv, &mut out);
        }
        if want("keyspace") {
            keyspace_section(kv, &mut out);
        }
        if resp3 {
            Frame::Verbatim(out)
        } else {
            Frame::bulk(out)
        }
    }))
}

fn server_section(srv: &Server, out: &mut String) {
    let up = srv.started.elapsed().as_secs();
    let _ = write!(
        out,
        "# Server\r\nredis_version:{}\r\nraftstack_version:{}\r\nredis_mode:standalone\r\n\
         os:{}\r\narch_bits:64\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{up}\r\n\
         uptime_in_days:{}\r\n\r\n",
        crate::REDIS_VERSION,
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::process::id(),
        srv.port,
        up / 86_400,
    );
}

fn replication_section(srv: &Server, out: &mut String) {
    let s = srv.api.node.status();
    let r = &s.raft;
    let leader = r
        .leader
        .map(|l| srv.name(l))
        .unwrap_or_else(|| "none".into());
    let _ = write!(
        out,
        "# Replication\r\nrole:{}\r\nraft_id:{}\r\nraft_leader:{leader}\r\nraft_term:{}\r\n\
         raft_commit_index:{}\r\nraft_applied_index:{}\r\nraft_last_index:{}\r\n\
         master_repl_offset:{}\r\nconnected_slaves:{}\r\n",
        role_name(srv),
        r.id,
        r.term,
        r.commit,
        r.applied,
        r.last_index,
        r.commit,
        r.peers.len(),
    );
    for (i, p) in r.peers.iter().enumerate() {
        let _ = write!(
            out,
            "slave{i}:id={},name={},state={},offset={},voter={}\r\n",
            p.id,
            srv.name(p.id),
            if p.replicating {
                "online"
            } else {
                "wait_bgsave"
            },
            p.matched,
            p.voter as u8,
        );
    }
    out.push_str("\r\n");
}

fn keyspace_section(kv: &KvState, out: &mut String) {
    out.push_str("# Keyspace\r\n");
    for (ns, keys) in kv.namespaces() {
        let expires = kv.scan(ns, "").filter(|(_, v)| v.lease().is_some()).count();
        let _ = write!(out, "{ns}:keys={keys},expires={expires},avg_ttl=0\r\n");
    }
}

fn role(c: Call<'_>) -> Plan {
    let s = c.srv.api.node.status();
    let r = &s.raft;
    if s.is_leader() {
        let replicas = r
            .peers
            .iter()
            .map(|p| {
                let name = c.srv.name(p.id);
                let (host, port) = name.rsplit_once(':').unwrap_or((&name, "0"));
                Frame::strings([host.to_string(), port.to_string(), p.matched.to_string()])
            })
            .collect();
        return Plan::Now(Frame::Array(vec![
            Frame::bulk("master"),
            Frame::Integer(r.commit as i64),
            Frame::Array(replicas),
        ]));
    }
    let leader = r.leader.map(|l| c.srv.name(l)).unwrap_or_default();
    let (host, port) = leader.rsplit_once(':').unwrap_or((&leader, "0"));
    let state = if r.leader.is_some() {
        "connected"
    } else {
        "connect"
    };
    Plan::Now(Frame::Array(vec![
        Frame::bulk("slave"),
        Frame::bulk(host.to_string()),
        Frame::Integer(port.parse().unwrap_or(0)),
        Frame::bulk(state),
        Frame::Integer(r.applied as i64),
    ]))
}

/// WAIT: on the leader, the peers whose log holds this connection's last
/// write (waiting up to the timeout for `want` of them); on a follower,
/// what the write's commit implies (a majority but the leader).
fn wait(c: Call<'_>) -> Plan {
    attempt(|| {
        let want = int(&c.args[0])?;
        let ms = int(&c.args[1])?;
        if ms < 0 {
            return Err(Frame::err("timeout is negative"));
        }
        let (srv, index) = (c.srv.clone(), c.s.last_write);
        Ok(Plan::Later(Box::pin(async move {
            let count = |s: &raft_core::node::NodeStatus| {
                if s.is_leader() {
                    s.raft.peers.iter().filter(|p| p.matched >= index).count() as i64
                } else {
                    let voters = s.raft.membership.voters.len() as i64;
                    if s.raft.commit >= index {
                        voters / 2
                    } else {
                        0
                    }
                }
            };
            let mut rx = srv.api.node.watch_status();
            let wait = if ms == 0 {
                Duration::from_secs(3600)
            } else {
                Duration::from_millis(ms as u64)
            };
            let _ = tokio::time::timeout(wait, rx.wait_for(|s| count(s) >= want)).await;
            Frame::Integer(count(&srv.api.node.status()))
        })))
    })
}

fn command(c: Call<'_>) -> Plan {
    let sub = c
        .args
        .first()
        .map(|a| String::from_utf8_lossy(a).to_ascii_uppercase());
    let named = |args: &[bytes::Bytes]| -> Vec<&'static super::Spec> {
        if args.is_empty() {
            return super::all().collect();
        }
        args.iter()
            .filter_map(|a| super::find(&String::from_utf8_lossy(a)))
            .collect()
    };
    Plan::Now(match sub.as_deref() {
        None => Frame::Array(super::all().map(command_info).collect()),
        Some("COUNT") => Frame::Integer(super::all().count() as i64),
        Some("LIST") => Frame::strings(super::all().map(|s| s.name)),
        Some("INFO") => Frame::Array(named(&c.args[1..]).into_iter().map(command_info).collect()),
        Some("DOCS") => Frame::Map(
            named(&c.args[1..])
                .into_iter()
                .map(|s| (Frame::bulk(s.name), command_doc(s)))
                .collect(),
        ),
        Some(other) => Frame::err(format!("unknown subcommand '{other}'. Try COMMAND HELP.")),
    })
}

fn command_info(s: &super::Spec) -> Frame {
    let flags = match s.kind {
        super::Kind::Write | super::Kind::Admin => vec!["write"],
        super::Kind::Read => vec!["readonly"],
        _ => vec!["fast"],
    };
    let (first, last, step) = s.keys;
    Frame::Array(vec![
        Frame::bulk(s.name),
        Frame::Integer(s.arity as i64),
        Frame::Array(flags.into_iter().map(|f| Frame::Simple(f.into())).collect()),
        Frame::Integer(first as i64),
        Frame::Integer(last as i64),
        Frame::Integer(step as i64),
    ])
}

fn command_doc(s: &super::Spec) -> Frame {
    Frame::Map(vec![
        (Frame::bulk("summary"), Frame::bulk(s.summary)),
        (Frame::bulk("since"), Frame::bulk("1.0.0")),
        (Frame::bulk("group"), Frame::bulk(s.group)),
    ])
}

/// The settings redis-benchmark and client libraries read.
fn config(c: Call<'_>) -> Plan {
    let sub = String::from_utf8_lossy(&c.args[0]).to_ascii_uppercase();
    if sub != "GET" || c.args.len() != 2 {
        return Plan::Now(Frame::err(
            "only CONFIG GET <pattern> is served: raftstack is configured by its command line",
        ));
    }
    let pattern = c.args[1].clone();
    let known = [
        ("appendonly", "yes"),
        ("appendfsync", "always"),
        ("save", ""),
        ("databases", "16"),
        ("maxmemory", "0"),
    ];
    let pairs = known
        .into_iter()
        .filter(|(k, _)| crate::glob::matches(&pattern, k.as_bytes()))
        .map(|(k, v)| (Frame::bulk(k), Frame::bulk(v)))
        .collect();
    Plan::Now(Frame::Map(pairs))
}

fn time(_: Call<'_>) -> Plan {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Plan::Now(Frame::strings([
        now.as_secs().to_string(),
        now.subsec_micros().to_string(),
    ]))
}
