//! Consul's blocking queries on the KV: `?index=N[&wait=D]` makes a read
//! wait until what it reads has changed since index N (the `X-Consul-Index`
//! of an earlier answer), or `wait` has passed, then answer as usual.

use super::ApiContext;
use super::http::{ApiError, Query};
use std::time::Duration;

/// Consul's default and longest wait.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5 * 60);
pub const MAX_WAIT: Duration = Duration::from_secs(10 * 60);

/// `?wait=`: a number with `ms`, `s`, `m` or `h` (a bare number is
/// seconds), at most `MAX_WAIT`.
pub fn wait(q: &Query) -> Result<Duration, ApiError> {
    let Some(v) = q.get("wait") else {
        return Ok(DEFAULT_WAIT);
    };
    let d = super::http::duration(v).ok_or_else(|| {
        ApiError::bad_request(format!("?wait= wants e.g. 30s, 500ms or 5m, not {v:?}"))
    })?;
    Ok(d.min(MAX_WAIT))
}

/// Waits until `key` in `ns` (with `prefix`, anything under it) changed
/// after `index`, or `wait` passes. It may return early with nothing
/// changed (`KvState::changed_at`); the caller answers with what it
/// then reads either way.
pub async fn until_changed(
    ctx: &ApiContext,
    (ns, key, prefix): (&str, &str, bool),
    index: u64,
    wait: Duration,
) {
    // Subscribed before the first look, so no change slips between.
    let mut applied = ctx.kv.subscribe();
    let deadline = tokio::time::Instant::now() + wait;
    while ctx.kv.read().changed_at(ns, key, prefix) <= index {
        match tokio::time::timeout_at(deadline, applied.changed()).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Query {
        Query::parse(Some(s)).unwrap()
    }

    #[test]
    fn waits_parse_like_consuls() {
        assert_eq!(wait(&q("")).unwrap(), DEFAULT_WAIT);
        assert_eq!(wait(&q("wait=30s")).unwrap(), Duration::from_secs(30));
        assert_eq!(wait(&q("wait=250ms")).unwrap(), Duration::from_millis(250));
        assert_eq!(wait(&q("wait=2m")).unwrap(), Duration::from_secs(120));
        assert_eq!(wait(&q("wait=7")).unwrap(), Duration::from_secs(7));
        assert_eq!(wait(&q("wait=1h")).unwrap(), MAX_WAIT);
        for bad in ["wait=soon", "wait=5x", "wait=s", "wait=-1s"] {
            assert!(wait(&q(bad)).is_err(), "{bad}");
        }
    }
}
