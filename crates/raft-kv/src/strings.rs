//! Redis-style string writes (the RESP front end's SET with its options,
//! INCR, APPEND, SETRANGE, EXPIRE, PERSIST...): each is one log entry that
//! every replica applies to the value the key holds at that index, so a
//! read-modify-write needs no compare-and-set loop and cannot race.
//!
//! A TTL is a lease of the key's own (`Lease::own`): granted by the write
//! that sets the TTL, ended by the write that replaces or clears it (or
//! deletes the key), and expired by the leader like any lease, which
//! deletes the key. Nothing here reads a clock.

use crate::lease::KeyMeta;
use crate::store::{Key, KvState, Value};
use bytes::{Bytes, BytesMut};
use raft_core::Index;
use serde::{Deserialize, Serialize};

/// The longest value a string write may make (Redis allows 512 MB; a
/// replicated value that large would stall every replica's apply).
pub const MAX_LEN: usize = 8 << 20;

/// The longest TTL a key may have (ten years; Redis has no limit, but the
/// leader's deadlines must stay representable).
pub const MAX_TTL_MS: u64 = 10 * 365 * 86_400_000;

/// One string write on `key` in namespace `ns`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrWrite {
    /// The namespace (a Redis database).
    pub ns: String,
    /// The key.
    pub key: String,
    /// What it does to the value.
    pub edit: Edit,
    /// Whether the key must exist.
    pub when: When,
    /// What becomes of the key's TTL.
    pub ttl: Ttl,
}

/// What the write does to the value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Edit {
    /// Replace it.
    Set(Bytes),
    /// Add to it as a 64-bit signed integer (a missing key is 0).
    IncrBy(i64),
    /// Add to it as a double (the increment as Redis's client wrote it).
    IncrByFloat(String),
    /// Append to it (a missing key is empty).
    Append(Bytes),
    /// Overwrite from `offset`, padding with zero bytes.
    SetRange {
        /// Where the bytes go.
        offset: u64,
        /// The bytes.
        data: Bytes,
    },
    /// Leave it: only the TTL changes (EXPIRE, PERSIST). Not applied to a
    /// missing key.
    Keep,
}

/// When the write applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum When {
    /// Whether the key exists or not.
    Always,
    /// Only if the key does not exist (NX).
    Missing,
    /// Only if it does (XX).
    Present,
}

/// What happens to the key's TTL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ttl {
    /// None after the write (a plain SET; PERSIST).
    Clear,
    /// As it was (KEEPTTL; INCR, APPEND and SETRANGE).
    Keep,
    /// This many milliseconds from when the leader sees the write.
    For(u64),
}

/// What a string write did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrDone {
    /// Whether it applied (NX / XX / a missing key can stop it).
    pub applied: bool,
    /// The value before (SET ... GET, GETSET).
    pub old: Option<Bytes>,
    /// The value after, if it applied.
    pub new: Option<Bytes>,
    /// Whether the key had a TTL before (PERSIST's answer).
    pub had_ttl: bool,
}

/// Why a string write was refused (nothing changed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum StrError {
    /// INCRBY on a value that is not a 64-bit integer.
    #[error("value is not an integer or out of range")]
    NotInteger,
    /// INCRBYFLOAT on a value (or with an increment) that is not a float.
    #[error("value is not a valid float")]
    NotFloat,
    /// The integer result does not fit in 64 bits.
    #[error("increment or decrement would overflow")]
    Overflow,
    /// The float result is not finite.
    #[error("increment would produce NaN or Infinity")]
    NotFinite,
    /// The value would outgrow Redis's limit.
    #[error("string exceeds maximum allowed size ({MAX_LEN} bytes)")]
    TooLong,
    /// A TTL of zero or over [`MAX_TTL_MS`].
    #[error("invalid expire time")]
    BadTtl,
}

/// Applies `w` at `index`.
pub(crate) fn apply(st: &mut KvState, index: Index, w: StrWrite) -> Result<StrDone, StrError> {
    let old = st.get(&w.ns, &w.key).cloned();
    let had_ttl = old.as_ref().and_then(Value::lease).is_some();
    let stopped = match w.when {
        When::Missing => old.is_some(),
        When::Present => old.is_none(),
        When::Always => false,
    } || (w.edit == Edit::Keep && old.is_none());
    let old_data = old.as_ref().map(|v| v.data.clone());
    if stopped {
        return Ok(StrDone {
            applied: false,
            old: old_data,
            new: None,
            had_ttl,
        });
    }
    let data = edited(old_data.as_ref(), w.edit)?;
    if let Ttl::For(ms) = w.ttl
        && !(1..=MAX_TTL_MS).contains(&ms)
    {
        return Err(StrError::BadTtl);
    }
    let old_lease = old.as_ref().and_then(Value::lease);
    let lease = match w.ttl {
        Ttl::Keep => old_lease,
        Ttl::Clear => None,
        Ttl::For(ms) => Some(st.leases.grant_own(index, &w.ns, ms)),
    };
    if let Some(id) = old_lease.filter(|id| Some(*id) != lease) {
        st.leases.end_own(id);
    }
    let mut meta = old
        .as_ref()
        .and_then(|v| v.meta.as_deref().cloned())
        .unwrap_or_default();
    meta.lease = lease;
    let v = Value {
        data: data.clone(),
        create_index: old.as_ref().map_or(index, |v| v.create_index),
        modify_index: index,
        meta: KeyMeta::boxed(meta),
    };
    let m = st.namespaces.entry(w.ns.clone()).or_default();
    m.insert(Key::from(w.key.as_str()), v.clone());
    st.record_put(index, &w.ns, &w.key, &v);
    Ok(StrDone {
        applied: true,
        old: old_data,
        new: Some(data),
        had_ttl,
    })
}

/// The value `edit` makes of `old`.
fn edited(had: Option<&Bytes>, edit: Edit) -> Result<Bytes, StrError> {
    let empty = Bytes::new();
    let old = had.unwrap_or(&empty);
    let out = match edit {
        Edit::Set(v) => v,
        Edit::Keep => old.clone(),
        Edit::IncrBy(by) => {
            let n = match had {
                None => 0,
                Some(v) => parse_int(v).ok_or(StrError::NotInteger)?,
            };
            let sum = n.checked_add(by).ok_or(StrError::Overflow)?;
            Bytes::from(sum.to_string())
        }
        Edit::IncrByFloat(by) => {
            let by = parse_float(by.as_bytes()).ok_or(StrError::NotFloat)?;
            let n = match had {
                None => 0.0,
                Some(v) => parse_float(v).ok_or(StrError::NotFloat)?,
            };
            let sum = n + by;
            if !sum.is_finite() {
                return Err(StrError::NotFinite);
            }
            Bytes::from(format_float(sum))
        }
        Edit::Append(tail) => {
            if old.len() + tail.len() > MAX_LEN {
                return Err(StrError::TooLong);
            }
            let mut b = BytesMut::with_capacity(old.len() + tail.len());
            b.extend_from_slice(old);
            b.extend_from_slice(&tail);
            b.freeze()
        }
        Edit::SetRange { offset, data } => set_range(old, offset, &data)?,
    };
    if out.len() > MAX_LEN {
        return Err(StrError::TooLong);
    }
    Ok(out)
}

fn set_range(old: &Bytes, offset: u64, data: &[u8]) -> Result<Bytes, StrError> {
    if data.is_empty() {
        return Ok(old.clone());
    }
    let end = usize::try_from(offset)
        .ok()
        .and_then(|o| o.checked_add(data.len()))
        .filter(|e| *e <= MAX_LEN)
        .ok_or(StrError::TooLong)?;
    let start = end - data.len();
    let mut b = BytesMut::from(&old[..]);
    if b.len() < end {
        b.resize(end, 0);
    }
    b[start..end].copy_from_slice(data);
    Ok(b.freeze())
}

/// A 64-bit integer as Redis reads one: optional `-`, digits, no leading
/// zeros or spaces.
pub fn parse_int(s: &[u8]) -> Option<i64> {
    let t = std::str::from_utf8(s).ok()?;
    let digits = t.strip_prefix('-').unwrap_or(t);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && t != "-0";
    if !canonical {
        return None;
    }
    t.parse().ok()
}

/// A double as Redis reads one (no spaces, finite, `inf` refused).
pub fn parse_float(s: &[u8]) -> Option<f64> {
    let t = std::str::from_utf8(s).ok()?;
    if t.is_empty() || t.trim() != t {
        return None;
    }
    t.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// A double as INCRBYFLOAT answers it: the shortest form that reads back
/// the same, no exponent for ordinary magnitudes, no trailing `.0`.
pub fn format_float(f: f64) -> String {
    let s = format!("{f}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(key: &str, edit: Edit, when: When, ttl: Ttl) -> StrWrite {
        StrWrite {
            ns: "db0".into(),
            key: key.into(),
            edit,
            when,
            ttl,
        }
    }

    fn set(key: &str, v: &str) -> StrWrite {
        w(
            key,
            Edit::Set(Bytes::from(v.to_string())),
            When::Always,
            Ttl::Clear,
        )
    }

    #[test]
    fn incr_reads_redis_integers_only() {
        let mut st = KvState::default();
        let incr = |by| w("n", Edit::IncrBy(by), When::Always, Ttl::Keep);
        let r = apply(&mut st, 1, incr(5)).unwrap();
        assert_eq!(r.new.as_deref(), Some(&b"5"[..]));
        apply(&mut st, 2, incr(-7)).unwrap();
        assert_eq!(st.get("db0", "n").unwrap().data, "-2");
        for bad in ["", " 1", "01", "1.0", "-0", "x", "99999999999999999999"] {
            apply(&mut st, 3, set("b", bad)).unwrap();
            let e = apply(&mut st, 4, w("b", Edit::IncrBy(1), When::Always, Ttl::Keep));
            assert_eq!(e, Err(StrError::NotInteger), "{bad:?}");
        }
        apply(&mut st, 5, set("m", &i64::MAX.to_string())).unwrap();
        let e = apply(&mut st, 6, w("m", Edit::IncrBy(1), When::Always, Ttl::Keep));
        assert_eq!(e, Err(StrError::Overflow));
        assert_eq!(st.get("db0", "m").unwrap().modify_index, 5, "unchanged");
    }

    #[test]
    fn floats_append_and_ranges() {
        let mut st = KvState::default();
        let f = |by: &str| w("f", Edit::IncrByFloat(by.into()), When::Always, Ttl::Keep);
        apply(&mut st, 1, f("10.5")).unwrap();
        let r = apply(&mut st, 2, f("0.1")).unwrap();
        assert_eq!(r.new.as_deref(), Some(&b"10.6"[..]));
        apply(&mut st, 3, f("-10.6")).unwrap();
        assert_eq!(st.get("db0", "f").unwrap().data, "0");
        assert_eq!(apply(&mut st, 4, f("1e400")), Err(StrError::NotFloat));
        let app = |s: &'static str| w("a", Edit::Append(Bytes::from(s)), When::Always, Ttl::Keep);
        apply(&mut st, 5, app("Hello ")).unwrap();
        apply(&mut st, 6, app("World")).unwrap();
        let r = w(
            "a",
            Edit::SetRange {
                offset: 6,
                data: Bytes::from("Redis"),
            },
            When::Always,
            Ttl::Keep,
        );
        apply(&mut st, 7, r).unwrap();
        assert_eq!(st.get("db0", "a").unwrap().data, "Hello Redis");
        let pad = w(
            "p",
            Edit::SetRange {
                offset: 3,
                data: Bytes::from("x"),
            },
            When::Always,
            Ttl::Keep,
        );
        apply(&mut st, 8, pad).unwrap();
        assert_eq!(st.get("db0", "p").unwrap().data, &b"\0\0\0x"[..]);
        let huge = w(
            "p",
            Edit::SetRange {
                offset: u64::MAX,
                data: Bytes::from("x"),
            },
            When::Always,
            Ttl::Keep,
        );
        assert_eq!(apply(&mut st, 9, huge), Err(StrError::TooLong));
    }

    #[test]
    fn nx_xx_and_the_old_value() {
        let mut st = KvState::default();
        let v = |s: &'static str| Edit::Set(Bytes::from(s));
        let r = apply(&mut st, 1, w("k", v("a"), When::Present, Ttl::Clear)).unwrap();
        assert!(!r.applied && r.old.is_none());
        assert!(
            apply(&mut st, 2, w("k", v("a"), When::Missing, Ttl::Clear))
                .unwrap()
                .applied
        );
        let r = apply(&mut st, 3, w("k", v("b"), When::Missing, Ttl::Clear)).unwrap();
        assert!(!r.applied && r.old.as_deref() == Some(&b"a"[..]));
        let r = apply(&mut st, 4, w("k", v("c"), When::Present, Ttl::Clear)).unwrap();
        assert!(r.applied && r.old.as_deref() == Some(&b"a"[..]));
        let v = st.get("db0", "k").unwrap();
        assert_eq!((v.create_index, v.modify_index), (2, 4));
        let r = apply(&mut st, 5, w("gone", Edit::Keep, When::Always, Ttl::For(5))).unwrap();
        assert!(!r.applied, "EXPIRE of a missing key");
    }

    #[test]
    fn a_ttl_is_the_keys_own_lease_and_ends_with_it() {
        let mut st = KvState::default();
        let ex = |ms| w("k", Edit::Set(Bytes::from("v")), When::Always, Ttl::For(ms));
        apply(&mut st, 1, ex(5_000)).unwrap();
        let first = st.get("db0", "k").unwrap().lease().unwrap();
        assert!(st.leases().get(first).unwrap().own);
        apply(&mut st, 2, ex(7_000)).unwrap();
        let second = st.get("db0", "k").unwrap().lease().unwrap();
        assert!(!st.leases().contains(first), "replaced: the old one ended");
        let keep = w("k", Edit::Append(Bytes::from("w")), When::Always, Ttl::Keep);
        apply(&mut st, 3, keep).unwrap();
        assert_eq!(st.get("db0", "k").unwrap().lease(), Some(second));
        let r = apply(&mut st, 4, w("k", Edit::Keep, When::Always, Ttl::Clear)).unwrap();
        assert!(r.had_ttl && st.leases().is_empty(), "PERSIST");
        apply(&mut st, 5, ex(1_000)).unwrap();
        let del = crate::command::Request {
            session: None,
            op: crate::command::Op::Delete {
                ns: "db0".into(),
                key: "k".into(),
                prefix: false,
                cas: None,
            },
        };
        st.apply(6, &crate::command::encode(&del));
        assert!(st.leases().is_empty(), "deleted: its lease with it");
        assert_eq!(apply(&mut st, 7, ex(0)), Err(StrError::BadTtl));
    }
}
