//! Bounds on the command port's connections, so that clients (slow,
//! half-open or hostile, authenticated or not) cannot take the file
//! descriptors and memory the peer port and the write-ahead log need.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How many connections the command port holds, and how long a client may
/// take over each part of a request.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections open at once, across all clients; more are closed on
    /// accept.
    pub max_connections: usize,
    /// Connections open at once from one IP address.
    pub max_per_client: usize,
    /// Time allowed for the TLS handshake.
    pub handshake: Duration,
    /// Time allowed for a request's head, from its first byte.
    pub header_read: Duration,
    /// Time allowed for a request's body, once its head is read.
    pub body_read: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 512,
            max_per_client: 128,
            handshake: Duration::from_secs(5),
            header_read: Duration::from_secs(10),
            body_read: Duration::from_secs(10),
        }
    }
}

/// Connections open now, in all and per client address.
#[derive(Default)]
pub struct Open {
    counts: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One admitted connection; dropping it frees its place.
pub struct Slot {
    open: Arc<Open>,
    ip: IpAddr,
}

/// Why a connection was not admitted (the bound that was full).
#[derive(Debug, PartialEq, Eq)]
pub enum Full {
    /// The node's bound on all connections (its value).
    All(usize),
    /// The bound on one client's connections (its value).
    Client(usize),
}

impl Open {
    /// A place for a connection from `ip`, if both bounds allow one.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, limits: &Limits) -> Result<Slot, Full> {
        let mut g = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let (all, per) = &mut *g;
        if *all >= limits.max_connections {
            return Err(Full::All(limits.max_connections));
        }
        let mine = per.entry(ip).or_insert(0);
        if *mine >= limits.max_per_client {
            return Err(Full::Client(limits.max_per_client));
        }
        *mine += 1;
        *all += 1;
        Ok(Slot {
            open: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut g = self.open.counts.lock().unwrap_or_else(|p| p.into_inner());
        let (all, per) = &mut *g;
        *all -= 1;
        if let Some(n) = per.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_bounds_hold_and_places_come_back() {
        let limits = Limits {
            max_connections: 3,
            max_per_client: 2,
            ..Limits::default()
        };
        let open = Arc::new(Open::default());
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        let a1 = open.admit(a, &limits).unwrap();
        let _a2 = open.admit(a, &limits).unwrap();
        assert_eq!(open.admit(a, &limits).err(), Some(Full::Client(2)));
        let _b1 = open.admit(b, &limits).unwrap();
        assert_eq!(open.admit(b, &limits).err(), Some(Full::All(3)));
        drop(a1);
        assert!(open.admit(b, &limits).is_ok());
    }
}
