//! What the durable store's write-ahead log records say (little-endian
//! throughout; the layout is in docs/storage.md):
//!
//! - a checkpoint starts every segment: the hard state, the purge point,
//!   the configuration, and whether it starts a new log (`reset_to`);
//! - a batch is one `LogStore::write`: hard state and configuration if
//!   they changed, then contiguous entries, replacing any at or above the
//!   first;
//! - a purge moves the purge point up.
//!
//! Every entry in a batch carries a CRC-32 of itself (format 4), so an
//! entry read back later (with one `pread`, not the whole record) is
//! checked too: a node never hands out an entry its disk damaged after the
//! log was opened. Batches format 3 wrote (kind 2) have no such checksum.

use crate::codec;
use bytes::Bytes;
use raft_core::{Entry, HardState, Index, Membership, Payload, Term};

const CHECKPOINT: u8 = 1;
/// A batch as format 3 wrote it: entries without their own checksum.
const BATCH_3: u8 = 2;
const PURGE: u8 = 3;
const BATCH: u8 = 4;

const HAS_HARD_STATE: u8 = 1;
const HAS_MEMBERSHIP: u8 = 2;
const FRESH: u8 = 4;

/// An entry's header inside a batch: term (u64), kind (u8), payload length
/// (u32), CRC-32 of those and the payload (u32), then the payload.
pub(crate) const ENTRY_HEADER: usize = 17;
/// The same in a format 3 batch, without the checksum.
const ENTRY_HEADER_3: usize = 13;

/// Where an entry lies inside a batch body, and its term.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EntrySpan {
    pub term: Term,
    /// Offset of the entry's header from the start of the body.
    pub offset: u32,
    /// Header and payload.
    pub len: u32,
    /// Its header has a checksum of its payload (not a format 3 batch).
    pub checked: bool,
}

#[derive(Debug)]
pub(crate) enum Record {
    Checkpoint {
        fresh: bool,
        hard_state: HardState,
        purged: (Index, Term),
        membership: Option<(Index, Membership)>,
    },
    Batch {
        hard_state: Option<HardState>,
        membership: Option<(Index, Membership)>,
        first: Index,
        entries: Vec<EntrySpan>,
    },
    Purge(Index, Term),
}

fn put_membership(out: &mut Vec<u8>, index: Index, m: &Membership) {
    let bytes = codec::encode_membership(m);
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&bytes);
}

/// Appends a checkpoint body to `out`.
pub(crate) fn checkpoint(
    out: &mut Vec<u8>,
    fresh: bool,
    hs: &HardState,
    purged: (Index, Term),
    membership: Option<(Index, &Membership)>,
) {
    let flags = if fresh { FRESH } else { 0 }
        | if membership.is_some() {
            HAS_MEMBERSHIP
        } else {
            0
        };
    out.extend_from_slice(&[CHECKPOINT, flags]);
    out.extend_from_slice(&codec::encode_hard_state(hs));
    out.extend_from_slice(&codec::encode_pair(purged.0, purged.1));
    if let Some((index, m)) = membership {
        put_membership(out, index, m);
    }
}

/// Appends a batch body to `out` (which may already hold a frame header:
/// spans are relative to where the body starts, `out.len()` on entry).
pub(crate) fn batch(
    out: &mut Vec<u8>,
    hs: Option<&HardState>,
    membership: Option<(Index, &Membership)>,
    entries: &[Entry],
    spans: &mut Vec<EntrySpan>,
) {
    let base = out.len();
    let flags = if hs.is_some() { HAS_HARD_STATE } else { 0 }
        | if membership.is_some() {
            HAS_MEMBERSHIP
        } else {
            0
        };
    out.extend_from_slice(&[BATCH, flags]);
    if let Some(hs) = hs {
        out.extend_from_slice(&codec::encode_hard_state(hs));
    }
    if let Some((index, m)) = membership {
        put_membership(out, index, m);
    }
    let first = entries.first().map_or(0, |e| e.index);
    out.extend_from_slice(&first.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    spans.clear();
    for e in entries {
        let start = out.len();
        let (kind, config);
        let payload: &[u8] = match &e.payload {
            Payload::Noop => {
                kind = codec::NOOP;
                &[]
            }
            Payload::Normal(b) => {
                kind = codec::NORMAL;
                b
            }
            Payload::Config(m) => {
                kind = codec::CONFIG;
                config = codec::encode_membership(m);
                &config
            }
        };
        out.extend_from_slice(&e.term.to_le_bytes());
        out.push(kind);
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        let crc = entry_crc(&out[start..], payload);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(payload);
        spans.push(EntrySpan {
            term: e.term,
            offset: (start - base) as u32,
            len: (out.len() - start) as u32,
            checked: true,
        });
    }
}

pub(crate) fn purge(out: &mut Vec<u8>, index: Index, term: Term) {
    out.push(PURGE);
    out.extend_from_slice(&codec::encode_pair(index, term));
}

/// The checksum of an entry: of its term, kind and length, and its payload.
fn entry_crc(head: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(head);
    h.update(payload);
    h.finalize()
}

/// Reads a body; the error says what is wrong with it.
pub(crate) fn decode(body: &[u8]) -> Result<Record, String> {
    let mut r = Reader { b: body, at: 0 };
    let record = match r.u8()? {
        CHECKPOINT => {
            let flags = r.u8()?;
            let hard_state = codec::decode_hard_state(r.take(24)?)?;
            let purged = (r.u64()?, r.u64()?);
            let membership = r.membership(flags)?;
            Record::Checkpoint {
                fresh: flags & FRESH != 0,
                hard_state,
                purged,
                membership,
            }
        }
        kind @ (BATCH | BATCH_3) => {
            let checked = kind == BATCH;
            let header = if checked {
                ENTRY_HEADER
            } else {
                ENTRY_HEADER_3
            };
            let flags = r.u8()?;
            let hard_state = if flags & HAS_HARD_STATE != 0 {
                Some(codec::decode_hard_state(r.take(24)?)?)
            } else {
                None
            };
            let membership = r.membership(flags)?;
            let first = r.u64()?;
            let count = r.u32()? as usize;
            let mut entries = Vec::with_capacity(count.min(body.len() / header));
            for _ in 0..count {
                let offset = r.at;
                let term = r.u64()?;
                r.u8()?;
                let len = r.u32()? as usize;
                if checked {
                    r.u32()?;
                }
                r.take(len)?;
                entries.push(EntrySpan {
                    term,
                    offset: offset as u32,
                    len: (header + len) as u32,
                    checked,
                });
            }
            Record::Batch {
                hard_state,
                membership,
                first,
                entries,
            }
        }
        PURGE => Record::Purge(r.u64()?, r.u64()?),
        kind => return Err(format!("unknown record kind {kind}")),
    };
    if r.at != body.len() {
        return Err(format!("{} bytes after the record", body.len() - r.at));
    }
    Ok(record)
}

/// Decodes one entry from its header and payload (`bytes`, as located by
/// an `EntrySpan`; `checked` as the span says), checking the payload's
/// checksum; the payload is a slice of `bytes`, not a copy.
pub(crate) fn decode_entry(index: Index, bytes: Bytes, checked: bool) -> Result<Entry, String> {
    let header = if checked {
        ENTRY_HEADER
    } else {
        ENTRY_HEADER_3
    };
    if bytes.len() < header {
        return Err(format!("entry {index}: truncated"));
    }
    let term = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    let kind = bytes[8];
    let len = u32::from_le_bytes(bytes[9..13].try_into().expect("4 bytes")) as usize;
    if bytes.len() != header + len {
        return Err(format!("entry {index}: length {len} does not match"));
    }
    let data = &bytes[header..];
    if checked && bytes[13..17] != entry_crc(&bytes[..13], data).to_le_bytes() {
        return Err(format!(
            "entry {index}: its checksum does not match (damaged on disk since the log was opened)"
        ));
    }
    let payload = match kind {
        codec::NOOP if len == 0 => Payload::Noop,
        codec::NORMAL => Payload::Normal(bytes.slice(header..)),
        codec::CONFIG => Payload::Config(Box::new(
            codec::decode_membership(data).map_err(|e| format!("entry {index}: {e}"))?,
        )),
        kind => return Err(format!("entry {index}: unknown kind {kind}")),
    };
    Ok(Entry {
        term,
        index,
        payload,
    })
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        let end = end.ok_or_else(|| format!("truncated at byte {}", self.at))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn membership(&mut self, flags: u8) -> Result<Option<(Index, Membership)>, String> {
        if flags & HAS_MEMBERSHIP == 0 {
            return Ok(None);
        }
        let index = self.u64()?;
        let len = self.u32()? as usize;
        Ok(Some((index, codec::decode_membership(self.take(len)?)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<Entry> {
        let mut m = Membership::new([1, 2, 3]);
        m.addresses.insert(1, "localhost:7001".into());
        vec![
            Entry {
                term: 2,
                index: 5,
                payload: Payload::Noop,
            },
            Entry {
                term: 2,
                index: 6,
                payload: Payload::Normal(Bytes::from_static(b"hello")),
            },
            Entry {
                term: 3,
                index: 7,
                payload: Payload::Config(Box::new(m)),
            },
        ]
    }

    #[test]
    fn batches_round_trip_and_spans_locate_entries() {
        let hs = HardState {
            term: 3,
            vote: Some(2),
            commit: 6,
        };
        let m = Membership::new([1, 2]);
        let es = entries();
        let mut out = vec![0xEE; 8];
        let mut spans = Vec::new();
        batch(&mut out, Some(&hs), Some((4, &m)), &es, &mut spans);
        let body = Bytes::from(out.split_off(8));
        let Record::Batch {
            hard_state,
            membership,
            first,
            entries: decoded,
        } = decode(&body).unwrap()
        else {
            panic!("not a batch")
        };
        assert_eq!((hard_state, membership, first), (Some(hs), Some((4, m)), 5));
        for ((span, e), again) in spans.iter().zip(&es).zip(&decoded) {
            assert_eq!(
                (span.offset, span.len, span.term),
                (again.offset, again.len, again.term)
            );
            let at = span.offset as usize;
            let bytes = body.slice(at..at + span.len as usize);
            assert_eq!(&decode_entry(e.index, bytes.clone(), true).unwrap(), e);
            // A flipped byte anywhere in the entry is caught on its own.
            for k in 0..bytes.len() {
                let mut b = bytes.to_vec();
                b[k] ^= 0x04;
                let got = decode_entry(e.index, Bytes::from(b), true);
                assert!(got.is_err(), "byte {k}: {got:?}");
            }
        }
    }

    #[test]
    fn checkpoints_and_purges_round_trip() {
        let hs = HardState {
            term: 9,
            vote: None,
            commit: 1,
        };
        let mut out = Vec::new();
        checkpoint(&mut out, true, &hs, (40, 8), None);
        assert!(matches!(
            decode(&out).unwrap(),
            Record::Checkpoint { fresh: true, hard_state, purged: (40, 8), membership: None } if hard_state == hs
        ));
        out.clear();
        purge(&mut out, 12, 3);
        assert!(matches!(decode(&out).unwrap(), Record::Purge(12, 3)));
    }

    #[test]
    fn any_truncation_or_garbage_is_an_error_not_a_panic() {
        let mut out = Vec::new();
        let mut spans = Vec::new();
        batch(&mut out, None, None, &entries(), &mut spans);
        for cut in 0..out.len() {
            assert!(decode(&out[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = out.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
        assert!(decode(&[9, 9, 9]).is_err());
        assert!(decode_entry(1, Bytes::from_static(b"short"), true).is_err());
    }
}
