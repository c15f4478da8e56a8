//! The replicated key-value store of raftstack: namespaces, get / put /
//! delete / compare-and-set / prefix listing, client sessions for
//! exactly-once retries, leases, the watch history and transactions: the
//! state machine alone, with no network in it. The HTTPS/JSON command port
//! that serves it is the `raft-http` crate (endpoints in `docs/api.md`).

#![deny(missing_docs)]

pub mod command;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod history;
pub mod lease;
pub mod multi;
mod sessions;
pub mod snapshot;
mod store;
pub mod strings;
pub mod txn;

pub use command::{Op, Output, Request};
pub use store::{DEFAULT_NAMESPACE, KvState, KvStore, Value};
