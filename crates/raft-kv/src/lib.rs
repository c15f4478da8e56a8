//! The replicated key-value store of raftstack: namespaces, get / put /
//! delete / compare-and-set / prefix listing, client sessions for
//! exactly-once retries; and the HTTPS/JSON command port (`api`) that
//! serves it, the node's status and the consensus log to any HTTP client.
//! The endpoints are documented in `docs/api.md`.

pub mod api;
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
