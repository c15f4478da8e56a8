//! The KV store's snapshot format: a stream of MessagePack records, so a
//! snapshot of any size is written and read without holding its bytes in
//! memory (the state itself is, of course, in memory).
//!
//! `"raftkv-snapshot/3"`, then `Applied`, then every `Lease`, then for
//! each namespace a `Namespace` record followed by its `Key`s in order
//! (a key with a lease or a lock followed by its `Meta`), then every
//! `Session`, then `History` with the watch history's floor and length
//! followed by its `Event`s, then `End` with the number of keys and
//! sessions written (a truncated or spliced file fails to load instead of
//! loading part).
//!
//! Formats 2 (before leases) and 1 (before the watch history too) are
//! still read: a format 1 state has an empty history that starts after
//! the snapshot.

use crate::command::Output;
use crate::history::{Event, History};
use crate::lease::{KeyMeta, LeaseId};
use crate::sessions::Session;
use crate::store::{Key, KvState, Value};
use bytes::Bytes;
use raft_core::Index;
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};

const MAGIC: &str = "raftkv-snapshot/3";
/// Without leases.
const MAGIC_2: &str = "raftkv-snapshot/2";
/// Without leases and the watch history.
const MAGIC_1: &str = "raftkv-snapshot/1";

#[derive(Serialize, Deserialize)]
enum Record {
    Applied(Index),
    Namespace(String),
    Key {
        /// Serialized as a string, as before keys were `Key`.
        key: Key,
        data: Bytes,
        create: Index,
        modify: Index,
    },
    Session {
        client: u64,
        seq: u64,
        output: Output,
        last_index: Index,
    },
    End {
        keys: u64,
        sessions: u64,
    },
    /// The watch history's floor, and how many `Event`s follow.
    History {
        floor: Index,
        events: u64,
    },
    Event(Event),
    Lease {
        id: LeaseId,
        ns: String,
        ttl_ms: u64,
        /// A key's own lease (`Lease::own`); missing before Redis TTLs.
        #[serde(default)]
        own: bool,
    },
    /// The lease and lock of the key just before.
    Meta(KeyMeta),
    /// The last lease id given (after the `Lease`s, when any was given).
    LastLease(LeaseId),
}

fn bad(why: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("KV snapshot: {why}"))
}

/// A decoding error: the reader's own error if reading failed (a damaged
/// snapshot file says so itself, with the file and offset), else what is
/// wrong with the bytes.
fn undecodable(e: rmp_serde::decode::Error, what: &str) -> io::Error {
    use rmp_serde::decode::Error as E;
    match e {
        E::InvalidMarkerRead(io) | E::InvalidDataRead(io)
            if io.kind() != io::ErrorKind::UnexpectedEof =>
        {
            io
        }
        other => bad(format!("{what} ({other})")),
    }
}

fn put(w: &mut dyn Write, r: &Record) -> io::Result<()> {
    rmp_serde::encode::write(w, r).map_err(io::Error::other)
}

/// Streams `state` out.
pub fn write(state: &KvState, w: &mut dyn Write) -> io::Result<()> {
    rmp_serde::encode::write(w, MAGIC).map_err(io::Error::other)?;
    put(w, &Record::Applied(state.applied))?;
    for (id, l) in state.leases.iter() {
        let (ns, ttl_ms, own) = (l.ns.clone(), l.ttl_ms, l.own);
        put(
            w,
            &Record::Lease {
                id,
                ns,
                ttl_ms,
                own,
            },
        )?;
    }
    if state.leases.last_id() > 0 {
        put(w, &Record::LastLease(state.leases.last_id()))?;
    }
    let (mut keys, mut sessions) = (0u64, 0u64);
    for (ns, m) in &state.namespaces {
        put(w, &Record::Namespace(ns.clone()))?;
        for (k, v) in m {
            put(
                w,
                &Record::Key {
                    key: k.clone(),
                    data: v.data.clone(),
                    create: v.create_index,
                    modify: v.modify_index,
                },
            )?;
            if let Some(m) = &v.meta {
                put(w, &Record::Meta(KeyMeta::clone(m)))?;
            }
            keys += 1;
        }
    }
    for (&client, s) in state.sessions.iter() {
        put(
            w,
            &Record::Session {
                client,
                seq: s.seq,
                output: s.output.clone(),
                last_index: s.last_index,
            },
        )?;
        sessions += 1;
    }
    let h = &state.history;
    let events = h.len() as u64;
    put(
        w,
        &Record::History {
            floor: h.floor(),
            events,
        },
    )?;
    for e in h.iter() {
        put(w, &Record::Event(e.clone()))?;
    }
    put(w, &Record::End { keys, sessions })?;
    w.flush()
}

/// Reads a snapshot `write` made.
pub fn read(r: &mut dyn Read) -> io::Result<KvState> {
    let mut st = KvState::default();
    let mut ns: Option<String> = None;
    let mut last_key: Option<Key> = None;
    let mut floor = None;
    each_record(r, |rec| {
        match rec {
            Record::Applied(i) => st.applied = i,
            Record::History { floor: f, .. } => floor = Some(f),
            Record::Event(e) => {
                let f = floor.expect("each_record: events follow their history record");
                st.history.restore(f, e);
            }
            Record::Namespace(n) => {
                st.namespaces.entry(n.clone()).or_default();
                ns = Some(n);
            }
            Record::Key {
                key,
                data,
                create,
                modify,
            } => {
                let n = ns.as_ref().expect("each_record: keys follow a namespace");
                let v = Value {
                    data,
                    create_index: create,
                    modify_index: modify,
                    meta: None,
                };
                st.namespaces
                    .get_mut(n)
                    .expect("opened")
                    .insert(key.clone(), v);
                last_key = Some(key);
            }
            Record::Lease {
                id,
                ns,
                ttl_ms,
                own,
            } => st.leases.insert_lease(id, &ns, ttl_ms, own),
            Record::LastLease(id) => st.leases.last_id = id,
            Record::Meta(meta) => {
                let (n, key) = (ns.as_ref(), last_key.as_ref());
                let (n, key) = n.zip(key).expect("each_record: meta follows a key");
                for id in [meta.lease, meta.holder].into_iter().flatten() {
                    if !st.leases.contains(id) {
                        return Err(bad(format!(
                            "key {key:?} names lease {id}, which is not here"
                        )));
                    }
                    st.leases.note(id, n, key);
                }
                let v = st.namespaces.get_mut(n).and_then(|m| m.get_mut(key));
                v.expect("inserted").meta = meta.boxed();
            }
            Record::Session {
                client,
                seq,
                output,
                last_index,
            } => st.sessions.insert(
                client,
                Session {
                    seq,
                    output,
                    last_index,
                },
            ),
            Record::End { .. } => {}
        }
        Ok(())
    })?;
    match floor {
        Some(f) if st.history.is_empty() => {
            st.history = History::starting_at(f, st.history.keep());
        }
        Some(_) => {}
        // Format 1: nothing is known of what came before.
        None => st.history = History::starting_at(st.applied + 1, st.history.keep()),
    }
    Ok(st)
}

/// What a snapshot holds, checked record by record without keeping it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// The index the snapshot's state is at.
    pub applied: Index,
    /// Keys in all namespaces.
    pub keys: u64,
    /// Client sessions.
    pub sessions: u64,
}

/// Checks a whole snapshot (format, every record, the end record's counts)
/// in constant memory: for a backup of any size.
pub fn verify(r: &mut dyn Read) -> io::Result<Summary> {
    let mut sum = Summary::default();
    each_record(r, |rec| {
        match rec {
            Record::Applied(i) => sum.applied = i,
            Record::Namespace(_) => {}
            Record::Key { .. } => sum.keys += 1,
            Record::Session { .. } => sum.sessions += 1,
            Record::End { .. }
            | Record::History { .. }
            | Record::Event(_)
            | Record::Lease { .. }
            | Record::LastLease(_)
            | Record::Meta(_) => {}
        }
        Ok(())
    })?;
    Ok(sum)
}

/// Feeds every record after the format name to `visit`, through `End`,
/// whose counts it checks against the records seen; a key before any
/// namespace is refused before `visit` sees it.
fn each_record(
    r: &mut dyn Read,
    mut visit: impl FnMut(Record) -> io::Result<()>,
) -> io::Result<()> {
    let mut r = io::BufReader::with_capacity(256 << 10, r);
    let magic: String =
        rmp_serde::from_read(&mut r).map_err(|e| undecodable(e, "not a raftstack KV snapshot"))?;
    let (with_history, with_leases) = match magic.as_str() {
        MAGIC => (true, true),
        MAGIC_2 => (true, false),
        MAGIC_1 => (false, false),
        _ => return Err(bad(format!("unknown format {magic:?}"))),
    };
    let mut seen = Seen::default();
    loop {
        let rec: Record =
            rmp_serde::from_read(&mut r).map_err(|e| undecodable(e, "a bad record"))?;
        seen.check(&rec, with_history, with_leases)?;
        let end = matches!(rec, Record::End { .. });
        visit(rec)?;
        if end {
            return Ok(());
        }
    }
}

/// What `each_record` has read so far, to refuse records out of place.
#[derive(Default)]
struct Seen {
    keys: u64,
    sessions: u64,
    in_namespace: bool,
    /// Events announced by the history record, and how many came.
    history: Option<(u64, u64)>,
    applied: Index,
    /// The history's floor, then the last event's index.
    last_event: Index,
    /// Whether the record before was a key (a `Meta` must follow one).
    after_key: bool,
    /// The highest lease id seen, and the counter record's.
    max_lease: LeaseId,
    last_lease: Option<LeaseId>,
}

impl Seen {
    fn check(&mut self, rec: &Record, with_history: bool, with_leases: bool) -> io::Result<()> {
        let after_key = std::mem::replace(&mut self.after_key, false);
        match rec {
            Record::Lease { .. }
                if !with_leases
                    || self.in_namespace
                    || self.applied == 0
                    || self.last_lease.is_some() =>
            {
                return Err(bad("a lease record out of place"));
            }
            &Record::Lease { id, .. } => self.max_lease = self.max_lease.max(id),
            Record::LastLease(_) if !with_leases || self.in_namespace => {
                return Err(bad("a lease counter out of place"));
            }
            &Record::LastLease(id) => self.last_lease = Some(id),
            Record::Meta(_) if !with_leases || !after_key => {
                return Err(bad("a key's meta out of place"));
            }
            Record::Meta(_) => {}
            Record::Namespace(_) => self.in_namespace = true,
            Record::Key { .. } if !self.in_namespace => {
                return Err(bad("a key before any namespace"));
            }
            Record::Key { .. } => {
                self.keys += 1;
                self.after_key = true;
            }
            Record::Session { .. } => self.sessions += 1,
            Record::History { .. } if !with_history || self.history.is_some() => {
                return Err(bad("a history record out of place"));
            }
            &Record::History { events, floor } => {
                if floor > self.applied + 1 {
                    return Err(bad(format!(
                        "a history from {floor}, past the applied index {}",
                        self.applied
                    )));
                }
                self.history = Some((events, 0));
                self.last_event = floor;
            }
            Record::Event(e) => {
                match &mut self.history {
                    Some((announced, seen)) if *seen < *announced => *seen += 1,
                    _ => return Err(bad("an event outside the history")),
                }
                // The history's invariant: in index order, from its floor,
                // none past what was applied.
                if e.index < self.last_event || e.index > self.applied {
                    return Err(bad(format!(
                        "a history event at {} out of order (after {}, applied {})",
                        e.index, self.last_event, self.applied
                    )));
                }
                self.last_event = e.index;
            }
            &Record::End { keys, sessions } => {
                if (keys, sessions) != (self.keys, self.sessions) {
                    return Err(bad(format!(
                        "{} keys and {} sessions read, {keys} and {sessions} written",
                        self.keys, self.sessions
                    )));
                }
                if let Some((announced, seen)) = self.history
                    && announced != seen
                {
                    return Err(bad(format!("{seen} history events of {announced}")));
                }
                if with_history && self.history.is_none() {
                    return Err(bad("no history record"));
                }
                if self.max_lease > self.last_lease.unwrap_or(0) {
                    return Err(bad(format!(
                        "lease {} is past the last lease id given ({:?})",
                        self.max_lease, self.last_lease
                    )));
                }
            }
            &Record::Applied(i) => self.applied = i,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_before_any_namespace_is_refused() {
        let mut buf = Vec::new();
        put(&mut buf, &Record::Applied(1)).unwrap();
        let mut bytes = rmp_serde::to_vec(&MAGIC).unwrap();
        bytes.extend(buf);
        for r in [
            Record::Key {
                key: Key::from("k"),
                data: Bytes::from_static(b"v"),
                create: 1,
                modify: 1,
            },
            Record::End {
                keys: 1,
                sessions: 0,
            },
        ] {
            put(&mut bytes, &r).unwrap();
        }
        assert!(read(&mut bytes.as_slice()).is_err());
        assert!(verify(&mut bytes.as_slice()).is_err());
    }

    /// A snapshot of these records (after `Applied(9)`), ending well.
    fn with_leases(recs: Vec<Record>) -> Vec<u8> {
        let mut bytes = rmp_serde::to_vec(&MAGIC).unwrap();
        let keys = recs
            .iter()
            .filter(|r| matches!(r, Record::Key { .. }))
            .count();
        let end = [
            Record::History {
                floor: 10,
                events: 0,
            },
            Record::End {
                keys: keys as u64,
                sessions: 0,
            },
        ];
        for r in [Record::Applied(9)].into_iter().chain(recs).chain(end) {
            put(&mut bytes, &r).unwrap();
        }
        bytes
    }

    #[test]
    fn leases_out_of_place_or_missing_are_refused() {
        let lease = |id| Record::Lease {
            id,
            ns: "n".into(),
            ttl_ms: 1_000,
            own: false,
        };
        let key = || Record::Key {
            key: Key::from("k"),
            data: Bytes::new(),
            create: 1,
            modify: 1,
        };
        let held_by = |id| {
            Record::Meta(KeyMeta {
                lease: None,
                holder: Some(id),
                lock_index: 1,
            })
        };
        let ns = || Record::Namespace("n".into());
        let good = vec![lease(3), Record::LastLease(5), ns(), key(), held_by(3)];
        let st = read(&mut with_leases(good).as_slice()).unwrap();
        assert_eq!(st.get("n", "k").unwrap().holder(), Some(3));
        assert_eq!(st.leases().last_id(), 5);
        for (why, recs) in [
            (
                "a key held by a lease not there",
                vec![lease(3), Record::LastLease(3), ns(), key(), held_by(4)],
            ),
            (
                "a lease past the counter",
                vec![lease(3), Record::LastLease(2)],
            ),
            ("no counter", vec![lease(3)]),
            (
                "a lease after the keys",
                vec![Record::LastLease(3), ns(), lease(3)],
            ),
            (
                "meta without a key",
                vec![lease(3), Record::LastLease(3), ns(), held_by(3)],
            ),
        ] {
            assert!(read(&mut with_leases(recs).as_slice()).is_err(), "{why}");
        }
    }

    #[test]
    fn a_history_out_of_order_is_refused() {
        let event = |index| {
            Record::Event(Event {
                index,
                change: crate::history::Change::Delete,
                ns: Key::from("n"),
                key: Key::from("k"),
                value: None,
                create_index: 0,
                encoded: Default::default(),
            })
        };
        let snapshot = |floor, events: &[Index]| {
            let mut bytes = rmp_serde::to_vec(&MAGIC).unwrap();
            let mut recs = vec![
                Record::Applied(9),
                Record::History {
                    floor,
                    events: events.len() as u64,
                },
            ];
            recs.extend(events.iter().map(|&i| event(i)));
            recs.push(Record::End {
                keys: 0,
                sessions: 0,
            });
            for r in recs {
                put(&mut bytes, &r).unwrap();
            }
            bytes
        };
        let good = snapshot(3, &[3, 5, 5, 9]);
        assert_eq!(read(&mut good.as_slice()).unwrap().history.len(), 4);
        for (floor, events) in [(3, &[5, 4][..]), (3, &[2]), (3, &[10]), (11, &[])] {
            let b = snapshot(floor, events);
            assert!(read(&mut b.as_slice()).is_err(), "{floor} {events:?}");
            assert!(verify(&mut b.as_slice()).is_err(), "{floor} {events:?}");
        }
    }

    #[test]
    fn format_1_reads_with_a_history_from_after_it() {
        let mut bytes = rmp_serde::to_vec(&MAGIC_1).unwrap();
        for r in [
            Record::Applied(7),
            Record::Namespace("n".into()),
            Record::Key {
                key: Key::from("k"),
                data: Bytes::from_static(b"v"),
                create: 3,
                modify: 7,
            },
            Record::End {
                keys: 1,
                sessions: 0,
            },
        ] {
            put(&mut bytes, &r).unwrap();
        }
        let st = read(&mut bytes.as_slice()).unwrap();
        assert_eq!(st.get("n", "k").unwrap().modify_index, 7);
        assert_eq!((st.history.floor(), st.history.len()), (8, 0));
        // A format 2 snapshot must carry its history record.
        let mut two = rmp_serde::to_vec(&MAGIC).unwrap();
        two.extend_from_slice(&bytes[rmp_serde::to_vec(&MAGIC_1).unwrap().len()..]);
        assert!(read(&mut two.as_slice()).is_err());
    }

    #[test]
    fn keys_encode_as_the_strings_they_were_before() {
        // Snapshots written when keys were `String` read the same.
        for k in ["", "k", "a/b/c", &"long".repeat(20)] {
            let now = rmp_serde::to_vec(&Key::from(k)).unwrap();
            assert_eq!(now, rmp_serde::to_vec(&k.to_string()).unwrap());
            let back: Key = rmp_serde::from_slice(&now).unwrap();
            assert_eq!(back, k);
        }
    }
}
