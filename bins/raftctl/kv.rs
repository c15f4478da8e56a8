//! raftctl's KV commands: get, put, delete, list, namespaces.

use super::{Ctl, array, check, enc};
use anyhow::bail;
use bytes::Bytes;
use raft_http::client::{Method, StatusCode};
use serde_json::json;
use std::io::Write;

pub(crate) async fn get(ctl: &Ctl, key: &str, stale: bool) -> anyhow::Result<()> {
    let q = if stale { "&stale" } else { "" };
    let ns = &ctl.ns;
    if ctl.json {
        // The entry, as `GET /v1/kv/<key>` gives it (the value in base64).
        let r = ctl.read(&format!("/v1/kv/{}?ns={ns}{q}", enc(key))).await?;
        let entry = array(&r).into_iter().next().unwrap_or_default();
        ctl.say(entry, String::new);
        return Ok(());
    }
    let r = ctl
        .read(&format!("/v1/kv/{}?raw&ns={ns}{q}", enc(key)))
        .await?;
    std::io::stdout().write_all(&r.body)?;
    println!();
    Ok(())
}

pub(crate) async fn put(
    ctl: &Ctl,
    key: &str,
    value: String,
    cas: Option<u64>,
    lease: Option<u64>,
) -> anyhow::Result<()> {
    let mut q = cas.map(|c| format!("&cas={c}")).unwrap_or_default();
    if let Some(l) = lease {
        q.push_str(&format!("&lease={l}"));
    }
    let path = format!("/v1/kv/{}?ns={}{q}", enc(key), ctl.ns);
    let r = ctl.write(Method::PUT, &path, Bytes::from(value)).await?;
    let index = super::index_of(&r);
    if r.json() != Some(serde_json::Value::Bool(true)) {
        bail!("not written: the compare-and-set index did not match");
    }
    ctl.say(json!({ "ok": true, "index": index }), || {
        format!("ok (index {index})")
    });
    Ok(())
}

pub(crate) async fn delete(ctl: &Ctl, key: &str, recurse: bool) -> anyhow::Result<()> {
    let q = if recurse { "&recurse" } else { "" };
    let path = format!("/v1/kv/{}?ns={}{q}", enc(key), ctl.ns);
    let r = ctl.write(Method::DELETE, &path, Bytes::new()).await?;
    let index = super::index_of(&r);
    ctl.say(json!({ "ok": true, "index": index }), || "ok".into());
    Ok(())
}

pub(crate) async fn list(ctl: &Ctl, prefix: &str) -> anyhow::Result<()> {
    let path = format!("/v1/kv/{}?keys&ns={}", enc(prefix), ctl.ns);
    let r = ctl.call(Method::GET, &path, Bytes::new(), false).await?;
    let keys = if r.status == StatusCode::NOT_FOUND {
        Vec::new()
    } else {
        check(&r)?;
        array(&r)
    };
    let lines: Vec<String> = keys
        .iter()
        .map(|k| k.as_str().unwrap_or_default().to_string())
        .collect();
    ctl.say(json!(keys), || lines.join("\n"));
    Ok(())
}

pub(crate) async fn namespaces(ctl: &Ctl) -> anyhow::Result<()> {
    let r = ctl.read("/v1/namespaces").await?;
    let all = array(&r);
    let text = || {
        all.iter()
            .map(|n| {
                format!(
                    "{}\t{} keys",
                    n["Namespace"].as_str().unwrap_or(""),
                    n["Keys"]
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    ctl.say(json!(all), text);
    Ok(())
}
