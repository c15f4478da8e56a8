//! The simulated clients: each runs one operation at a time against the
//! register store, following leader hints and retrying elsewhere.

use crate::linearizability::{Key, Value};
use raft_core::{Index, NodeId, Term};

/// Keys of the replicated register store; few, so operations collide.
pub const KEYS: u64 = 3;
/// Ticks after which a client gives up on an operation.
pub const OP_TIMEOUT: u64 = 60;

#[derive(Clone, Copy, Debug)]
pub enum OpState {
    /// Not accepted by any node yet; try again at `retry_at`.
    Waiting { retry_at: u64 },
    /// Accepted by `node` as (index, term): done when that node applies it.
    Proposed {
        node: NodeId,
        generation: u64,
        index: Index,
        term: Term,
    },
    /// A ReadIndex request at `node`.
    Reading { node: NodeId, read_id: u64 },
}

impl OpState {
    pub fn node(&self) -> Option<NodeId> {
        match *self {
            OpState::Waiting { .. } => None,
            OpState::Proposed { node, .. } | OpState::Reading { node, .. } => Some(node),
        }
    }
}

#[derive(Debug)]
pub struct Client {
    pub target: NodeId,
    /// Index of the current operation in the history.
    pub op: Option<usize>,
    pub op_id: Option<u64>,
    pub state: Option<OpState>,
    pub started: u64,
    pub healing: bool,
    healed_put: bool,
    healed_get: bool,
}

impl Client {
    pub fn new(target: NodeId) -> Self {
        Client {
            target,
            op: None,
            op_id: None,
            state: None,
            started: 0,
            healing: false,
            healed_put: false,
            healed_get: false,
        }
    }

    pub fn reading(&self, node: NodeId, read: u64) -> bool {
        matches!(self.state, Some(OpState::Reading { node: n, read_id }) if n == node && read_id == read)
    }

    /// Finished a write and a read since the cluster healed.
    pub fn healed(&self) -> bool {
        self.healed_put && self.healed_get
    }

    pub fn finish(&mut self, was_put: bool) {
        if self.healing {
            if was_put {
                self.healed_put = true;
            } else {
                self.healed_get = true;
            }
        }
        self.reset();
    }

    pub fn reset(&mut self) {
        self.op = None;
        self.op_id = None;
        self.state = None;
    }
}

pub fn encode(key: Key, value: Value) -> Vec<u8> {
    let mut v = vec![key];
    v.extend_from_slice(&value.to_le_bytes());
    v
}

pub fn decode(data: &[u8]) -> (Key, Value) {
    let value = u64::from_le_bytes(data[1..9].try_into().expect("9-byte register command"));
    (data[0], value)
}
