//! Keyspace notifications over SUBSCRIBE / PSUBSCRIBE, fed by the KV's
//! watch history (`raft_kv::history`): a change to `key` in namespace
//! `db<n>` is published on `__keyspace@<n>__:<key>` (the message: `set`,
//! `del` or `expired`) and on `__keyevent@<n>__:<event>` (the message:
//! the key); a namespace with another name is `@<name>`. Every node
//! publishes the changes it applies, in log order, so any node serves a
//! subscriber. As in Redis, delivery is at most once: a subscriber that
//! falls behind the history is disconnected.

use crate::frame::Frame;
use crate::glob;
use bytes::Bytes;
use raft_kv::KvState;
use raft_kv::history::{Change, Event};
use std::collections::BTreeSet;

/// The most messages sent in one pass (the rest wait for the next).
const PASS: usize = 4096;

/// What a connection is subscribed to, and where in the log it is.
#[derive(Default)]
pub struct Subscriptions {
    pub channels: BTreeSet<Bytes>,
    pub patterns: BTreeSet<Bytes>,
    /// The index of the next change to publish.
    pub next: u64,
}

impl Subscriptions {
    /// Subscribed to anything.
    pub fn active(&self) -> bool {
        !self.channels.is_empty() || !self.patterns.is_empty()
    }

    /// Channels and patterns together (Redis's subscription count).
    pub fn count(&self) -> i64 {
        (self.channels.len() + self.patterns.len()) as i64
    }

    /// The messages for changes applied since the last pass; `Err` when
    /// the history no longer holds them (the subscriber fell behind).
    pub fn pass(&mut self, kv: &KvState) -> Result<Vec<Frame>, ()> {
        let mut out = Vec::new();
        let events = kv.history().since(self.next).map_err(|_| ())?;
        let mut last = None;
        for e in events.take(PASS) {
            self.publish(e, &mut out);
            last = Some(e.index);
        }
        self.next = match last {
            Some(i) => i + 1,
            None => kv.applied() + 1,
        };
        Ok(out)
    }

    fn publish(&self, e: &Event, out: &mut Vec<Frame>) {
        let db =
            e.ns.strip_prefix("db")
                .filter(|n| n.parse::<u64>().is_ok())
                .unwrap_or(&e.ns);
        let event = match e.change {
            Change::Put => "set",
            Change::Delete => "del",
            Change::Expire => "expired",
        };
        let space = Bytes::from(format!("__keyspace@{db}__:{}", e.key));
        let kind = Bytes::from(format!("__keyevent@{db}__:{event}"));
        let key = Bytes::copy_from_slice(e.key.as_bytes());
        for (channel, payload) in [(space, Bytes::from(event)), (kind, key)] {
            if self.channels.contains(&channel) {
                out.push(message(&channel, &payload));
            }
            for p in self.patterns.iter().filter(|p| glob::matches(p, &channel)) {
                out.push(Frame::Push(vec![
                    Frame::bulk("pmessage"),
                    Frame::Bulk(p.clone()),
                    Frame::Bulk(channel.clone()),
                    Frame::Bulk(payload.clone()),
                ]));
            }
        }
    }
}

fn message(channel: &Bytes, payload: &Bytes) -> Frame {
    Frame::Push(vec![
        Frame::bulk("message"),
        Frame::Bulk(channel.clone()),
        Frame::Bulk(payload.clone()),
    ])
}

/// The reply to (P)SUBSCRIBE or (P)UNSUBSCRIBE of one channel.
pub fn confirm(kind: &str, channel: Option<Bytes>, count: i64) -> Frame {
    Frame::Push(vec![
        Frame::bulk(kind.to_string()),
        Frame::maybe(channel),
        Frame::Integer(count),
    ])
}
