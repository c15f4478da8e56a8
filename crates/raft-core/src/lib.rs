//! The Raft consensus protocol as a deterministic state machine.
//!
//! [`Raft`] does no I/O, reads no clock and owns no global randomness:
//! time arrives as [`Raft::tick`], messages through [`Raft::step`], client
//! requests through [`Raft::propose`] and [`Raft::read_index`], and every
//! effect comes back in a [`Ready`] for the caller to carry out. Given the
//! same seed and inputs it does exactly the same thing, which is what lets
//! the simulator replay any failure.
//!
//! See `docs/architecture.md` for the design and its invariants.

#![deny(missing_docs)]

mod config;
mod error;
pub mod log;
pub mod membership;
mod message;
#[cfg(feature = "runtime")]
pub mod node;
pub mod progress;
pub mod quorum;
mod raft;
mod ready;
mod rng;
mod storage;
pub mod tracker;
mod types;

pub use config::{Config, InitialState};
pub use error::Error;
pub use membership::{ConfChange, Membership};
pub use message::{Body, Digest, Message, RejectHint, SnapshotMeta};
pub use raft::{PeerStatus, Raft, Replaced, Status};
pub use ready::{ReadState, Ready};
pub use rng::Rng;
pub use storage::{LogStore, SnapshotSink, SnapshotStore, StoredState, WriteBatch};
pub use types::{Entry, HardState, Index, Mode, NodeId, Payload, Role, Term};
