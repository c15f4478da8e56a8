//! Byte layouts shared by the write-ahead log's records and format 2's
//! redb tables (see docs/storage.md).

use bytes::Bytes;
use raft_core::{Entry, HardState, Index, Membership, Payload};

pub(crate) const NOOP: u8 = 0;
pub(crate) const NORMAL: u8 = 1;
pub(crate) const CONFIG: u8 = 2;

/// Format 2's entry value: term (u64 LE), kind (u8), then the payload
/// bytes (written only by tests now: logs are migrated from it).
#[cfg(test)]
pub fn encode_entry(e: &Entry, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&e.term.to_le_bytes());
    match &e.payload {
        Payload::Noop => out.push(NOOP),
        Payload::Normal(b) => {
            out.push(NORMAL);
            out.extend_from_slice(b);
        }
        Payload::Config(m) => {
            out.push(CONFIG);
            out.extend_from_slice(&encode_membership(m));
        }
    }
}

pub fn decode_entry(index: Index, v: &[u8]) -> Result<Entry, String> {
    if v.len() < 9 {
        return Err(format!("entry {index}: {} bytes, need at least 9", v.len()));
    }
    let term = u64::from_le_bytes(v[..8].try_into().expect("8 bytes"));
    let payload = match v[8] {
        NOOP if v.len() == 9 => Payload::Noop,
        NORMAL => Payload::Normal(Bytes::copy_from_slice(&v[9..])),
        CONFIG => {
            let m = decode_membership(&v[9..]).map_err(|e| format!("entry {index}: {e}"))?;
            Payload::Config(Box::new(m))
        }
        kind => return Err(format!("entry {index}: unknown kind {kind}")),
    };
    Ok(Entry {
        term,
        index,
        payload,
    })
}

/// Hard state: term, vote (0 for none), commit; u64 LE each.
pub fn encode_hard_state(hs: &HardState) -> [u8; 24] {
    let mut b = [0u8; 24];
    b[..8].copy_from_slice(&hs.term.to_le_bytes());
    b[8..16].copy_from_slice(&hs.vote.unwrap_or(0).to_le_bytes());
    b[16..].copy_from_slice(&hs.commit.to_le_bytes());
    b
}

pub fn decode_hard_state(v: &[u8]) -> Result<HardState, String> {
    let w = words(v, 3).ok_or("hard state: expected 24 bytes")?;
    Ok(HardState {
        term: w[0],
        vote: (w[1] != 0).then_some(w[1]),
        commit: w[2],
    })
}

/// A pair of u64 LE (the purged index and term).
pub fn encode_pair(a: u64, b: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&a.to_le_bytes());
    out[8..].copy_from_slice(&b.to_le_bytes());
    out
}

pub fn decode_pair(v: &[u8]) -> Result<(u64, u64), String> {
    let w = words(v, 2).ok_or("expected 16 bytes")?;
    Ok((w[0], w[1]))
}

/// The write-ahead log's floor: first segment kept, then the purge point;
/// u64 LE each.
pub fn encode_floor(segment: u32, purged: (u64, u64)) -> [u8; 24] {
    let mut out = [0u8; 24];
    out[..8].copy_from_slice(&u64::from(segment).to_le_bytes());
    out[8..].copy_from_slice(&encode_pair(purged.0, purged.1));
    out
}

pub fn decode_floor(v: &[u8]) -> Result<(u32, (u64, u64)), String> {
    let w = words(v, 3).ok_or("expected 24 bytes")?;
    let seg = u32::try_from(w[0]).map_err(|_| format!("segment {} out of range", w[0]))?;
    Ok((seg, (w[1], w[2])))
}

/// Membership: MessagePack of `raft_core::Membership` (sets as arrays,
/// addresses as a map), so fields can be added compatibly.
pub fn encode_membership(m: &Membership) -> Vec<u8> {
    rmp_serde::to_vec(m).expect("a membership always encodes")
}

/// Format 2's stored configuration: the index it is in force as of (u64
/// LE), then the membership.
#[cfg(test)]
pub fn encode_stored_membership(index: Index, m: &Membership) -> Vec<u8> {
    let mut out = index.to_le_bytes().to_vec();
    out.extend_from_slice(&encode_membership(m));
    out
}

pub fn decode_stored_membership(v: &[u8]) -> Result<(Index, Membership), String> {
    let index = v.get(..8).ok_or("membership: truncated")?;
    let index = u64::from_le_bytes(index.try_into().expect("8 bytes"));
    Ok((index, decode_membership(&v[8..])?))
}

pub fn decode_membership(v: &[u8]) -> Result<Membership, String> {
    let m: Membership =
        rmp_serde::from_slice(v).map_err(|e| format!("membership: malformed ({e})"))?;
    Ok(m)
}

fn words(v: &[u8], n: usize) -> Option<Vec<u64>> {
    (v.len() == 8 * n).then(|| {
        v.chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut buf = Vec::new();
        for e in [
            Entry {
                term: 3,
                index: 9,
                payload: Payload::Noop,
            },
            Entry {
                term: 4,
                index: 10,
                payload: Payload::Normal(Bytes::from_static(b"xyz")),
            },
            Entry {
                term: 4,
                index: 11,
                payload: Payload::Normal(Bytes::new()),
            },
        ] {
            encode_entry(&e, &mut buf);
            assert_eq!(decode_entry(e.index, &buf).unwrap(), e);
        }
        let hs = HardState {
            term: 7,
            vote: Some(2),
            commit: 5,
        };
        assert_eq!(decode_hard_state(&encode_hard_state(&hs)).unwrap(), hs);
        let mut m = Membership::new([1, 2, 3]);
        m.learners.insert(9);
        m.addresses.insert(9, "localhost:7009".into());
        assert_eq!(decode_membership(&encode_membership(&m)).unwrap(), m);
        let conf = Entry {
            term: 5,
            index: 12,
            payload: Payload::Config(Box::new(m.leave_joint())),
        };
        encode_entry(&conf, &mut buf);
        assert_eq!(decode_entry(12, &buf).unwrap(), conf);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_entry(1, b"short").is_err());
        assert!(decode_entry(1, &[0, 0, 0, 0, 0, 0, 0, 0, 7]).is_err());
        assert!(decode_hard_state(b"nope").is_err());
        assert!(decode_membership(&[255; 8]).is_err());
        assert!(decode_membership(&[1, 0, 0]).is_err());
    }
}
