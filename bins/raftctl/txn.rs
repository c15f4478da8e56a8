//! `raftctl txn`: operations applied all or none (`PUT /v1/txn`), one per
//! argument as `VERB KEY [VALUE | INDEX]`.

use super::Ctl;
use anyhow::{Context, bail};
use base64::Engine;
use bytes::Bytes;
use raft_http::client::{Method, StatusCode};
use serde_json::{Value, json};

const USAGE: &str = "an operation is VERB KEY [VALUE | INDEX]: set KEY VALUE, cas KEY INDEX VALUE, \
     get KEY, get-tree PREFIX, check-index KEY INDEX, check-not-exists KEY, delete KEY, \
     delete-tree PREFIX, delete-cas KEY INDEX";

/// One argument as a Consul KV operation in namespace `ns`.
fn op(arg: &str, ns: &str) -> anyhow::Result<Value> {
    let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
    let index = |i: &str| {
        i.parse::<u64>()
            .with_context(|| format!("{i:?} is not an index"))
    };
    let words: Vec<&str> = arg.splitn(3, ' ').collect();
    let (verb, key, rest) = match words.as_slice() {
        [verb, key] => (*verb, *key, None),
        [verb, key, rest] => (*verb, *key, Some(*rest)),
        _ => bail!("{arg:?}: {USAGE}"),
    };
    let mut kv = json!({ "Verb": verb, "Key": key, "Namespace": ns });
    match (verb, rest) {
        ("set", Some(v)) => kv["Value"] = b64(v).into(),
        ("cas", Some(r)) => {
            let (i, v) = r
                .split_once(' ')
                .with_context(|| format!("{arg:?}: {USAGE}"))?;
            kv["Index"] = index(i)?.into();
            kv["Value"] = b64(v).into();
        }
        ("check-index" | "delete-cas", Some(i)) => kv["Index"] = index(i)?.into(),
        ("get" | "get-tree" | "check-not-exists" | "delete" | "delete-tree", None) => {}
        _ => bail!("{arg:?}: {USAGE}"),
    }
    Ok(json!({ "KV": kv }))
}

pub(crate) async fn run(ctl: &Ctl, ops: &[String]) -> anyhow::Result<()> {
    let body: Vec<Value> = ops
        .iter()
        .map(|a| op(a, &ctl.ns))
        .collect::<Result<_, _>>()?;
    let body = Bytes::from(Value::from(body).to_string());
    let r = ctl.call(Method::PUT, "/v1/txn", body, true).await?;
    if r.status != StatusCode::OK && r.status != StatusCode::CONFLICT {
        super::check(&r)?;
    }
    let v = r.json().context("the answer is not JSON")?;
    let applied = r.status == StatusCode::OK;
    ctl.say(v.clone(), || describe(&v, applied));
    if !applied {
        bail!("nothing was applied");
    }
    Ok(())
}

fn describe(v: &Value, applied: bool) -> String {
    let index = &v["Index"];
    if !applied {
        let lines: Vec<String> = super::array_of(&v["Errors"])
            .iter()
            .map(|e| {
                format!(
                    "operation {}: {}",
                    e["OpIndex"],
                    e["What"].as_str().unwrap_or("")
                )
            })
            .collect();
        return lines.join("\n");
    }
    let mut lines: Vec<String> = super::array_of(&v["Results"])
        .iter()
        .map(|x| {
            let kv = &x["KV"];
            let key = kv["Key"].as_str().unwrap_or("");
            let at = &kv["ModifyIndex"];
            match kv["Value"].as_str() {
                Some(b) => {
                    let raw = base64::engine::general_purpose::STANDARD
                        .decode(b)
                        .unwrap_or_default();
                    format!(
                        "{key} = {} (modify index {at})",
                        String::from_utf8_lossy(&raw)
                    )
                }
                None => format!("{key} (modify index {at})"),
            }
        })
        .collect();
    lines.push(format!("ok (index {index})"));
    lines.join("\n")
}
