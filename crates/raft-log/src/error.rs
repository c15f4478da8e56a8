use std::path::PathBuf;

/// What a log store reports. A failed write leaves a durable store
/// refusing writes (`Poisoned`) until it is reopened, because after a
/// failed fsync the file's contents are no longer known.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{path}: not a raftstack log: {reason}")]
    NotALog { path: PathBuf, reason: String },
    #[error("{path}: the log is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("an earlier write failed ({0}); the log refuses writes until reopened")]
    Poisoned(String),
    #[error("invalid write: {0}")]
    InvalidWrite(String),
    #[error("index {index} is outside the stored range {first}..={last}")]
    OutOfRange { index: u64, first: u64, last: u64 },
    #[error("storage error: {0}")]
    Storage(#[from] redb::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
