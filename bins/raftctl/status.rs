//! `raftctl status`: every member's status as a table, found from the
//! nodes given (each node's status lists every member, with the command
//! port its peer handshake announced).

use super::Ctl;
use comfy_table::{Table, presets::NOTHING};
use std::collections::BTreeMap;

pub(crate) async fn status(ctl: &Ctl) -> anyhow::Result<()> {
    // Every node asked, by member address: (command port, its status).
    let mut seen: BTreeMap<String, (String, Option<serde_json::Value>)> = BTreeMap::new();
    let mut ports = Vec::new();
    for n in &ctl.nodes {
        let s = ctl.node_status(n).await;
        if let Some(s) = &s {
            ports.extend(command_ports(s));
        }
        let name = s.as_ref().and_then(|s| s["id"].as_str().map(String::from));
        seen.insert(name.unwrap_or_else(|| format!("(at {n})")), (n.clone(), s));
    }
    // Members the nodes given did not cover, through the command ports
    // the others know them by.
    for (member, port) in ports {
        if seen.contains_key(&member) {
            continue;
        }
        let s = match &port {
            Some(p) => ctl.node_status(p).await,
            None => None,
        };
        seen.insert(member, (port.unwrap_or_else(|| "?".into()), s));
    }
    if ctl.json {
        let rows: Vec<_> = seen
            .into_iter()
            .map(|(member, (port, s))| {
                serde_json::json!({ "member": member, "command_port": port, "status": s })
            })
            .collect();
        ctl.say(serde_json::json!(rows), String::new);
        return Ok(());
    }
    let mut t = Table::new();
    t.load_preset(NOTHING).set_header([
        "COMMAND PORT",
        "MEMBER",
        "ROLE",
        "MODE",
        "TERM",
        "LEADER",
        "COMMIT",
        "APPLIED",
        "HEALTH",
    ]);
    for (member, (port, s)) in &seen {
        match s {
            Some(s) => t.add_row([
                port.clone(),
                member.clone(),
                text(&s["role"]),
                text(&s["mode"]),
                s["term"].to_string(),
                s["leader"].as_str().unwrap_or("-").to_string(),
                s["commit_index"].to_string(),
                s["applied_index"].to_string(),
                text(&s["health"]),
            ]),
            None => t.add_row([port.clone(), member.clone(), "(unreachable)".into()]),
        };
    }
    println!("{t}");
    Ok(())
}

fn text(v: &serde_json::Value) -> String {
    v.as_str().unwrap_or("?").to_string()
}

/// Every member a status lists, with its command port if known.
fn command_ports(s: &serde_json::Value) -> Vec<(String, Option<String>)> {
    let members = s["members"].as_array().cloned().unwrap_or_default();
    members
        .iter()
        .filter(|m| m["self"] != true)
        .filter_map(|m| {
            let name = m["id"].as_str()?.to_string();
            Some((name, m["command_port"].as_str().map(String::from)))
        })
        .collect()
}
