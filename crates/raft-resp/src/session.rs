//! What one connection remembers between commands.

use crate::cmd::Queued;
use raft_http::access::Principal;
use raft_kv::multi::Watched;
use std::net::SocketAddr;

/// One client connection's state.
pub struct Session {
    /// Redis's client id (CLIENT ID), unique on this node.
    pub id: u64,
    pub addr: SocketAddr,
    /// Who the TLS client certificate says is asking.
    pub who: Principal,
    /// The namespace commands act on: `db<n>` after `SELECT n` (`db0` at
    /// first), or one named with `SELECT <name>`.
    pub ns: String,
    /// The database number, when the namespace is `db<n>`.
    pub db: Option<u64>,
    /// CLIENT SETNAME.
    pub name: Option<String>,
    /// READONLY: reads are served from this node's state without a read
    /// barrier (may be stale).
    pub readonly: bool,
    /// Replies in RESP3 (HELLO 3).
    pub resp3: bool,
    /// Inside MULTI: the commands queued, and whether queueing one failed
    /// (EXEC then aborts).
    pub multi: Option<(Vec<Queued>, bool)>,
    /// WATCHed keys as they were seen.
    pub watched: Vec<Watched>,
    /// The index of this connection's latest write (WAIT's).
    pub last_write: u64,
    /// SCAN's cursors.
    pub cursors: Cursors,
    /// Keyspace notification subscriptions.
    pub subs: crate::pubsub::Subscriptions,
}

impl Session {
    /// A new connection's session.
    pub fn new(id: u64, addr: SocketAddr, who: Principal) -> Self {
        Session {
            id,
            addr,
            who,
            ns: "db0".into(),
            db: Some(0),
            name: None,
            readonly: false,
            resp3: false,
            multi: None,
            watched: Vec::new(),
            last_write: 0,
            cursors: Cursors::default(),
            subs: Default::default(),
        }
    }

    /// The key SCAN cursor `n` stands for.
    pub fn cursor(&self, n: u64) -> Option<String> {
        self.cursors.get(n)
    }

    /// RESET: as new, but the same connection (and id).
    pub fn reset(&mut self) {
        let fresh = Session::new(self.id, self.addr, self.who.clone());
        *self = fresh;
    }
}

/// The SCAN cursors a connection was given: each a number standing for
/// the key a scan stopped at. The latest `KEEP` are kept.
#[derive(Clone, Default)]
pub struct Cursors(std::sync::Arc<std::sync::Mutex<Given>>);

/// The last cursor number given, and the cursors kept.
#[derive(Default)]
pub struct Given(u64, std::collections::VecDeque<(u64, String)>);

impl Cursors {
    const KEEP: usize = 256;

    /// A new cursor for `key`.
    pub fn give(&self, key: String) -> u64 {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.0 += 1;
        let n = g.0;
        g.1.push_back((n, key));
        if g.1.len() > Self::KEEP {
            g.1.pop_front();
        }
        n
    }

    /// The key cursor `n` stands for.
    pub fn get(&self, n: u64) -> Option<String> {
        let g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.1.iter().find(|(c, _)| *c == n).map(|(_, k)| k.clone())
    }
}
