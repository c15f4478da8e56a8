use std::path::PathBuf;

/// What a log store reports. A failed write leaves a durable store
/// refusing writes (`Poisoned`) until it is reopened, because after a
/// failed fsync the file's contents are no longer known.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file is not a raftstack log (another program's, or a newer
    /// format); nothing was changed.
    #[error("{path}: not a raftstack log: {reason}")]
    NotALog {
        /// The file.
        path: PathBuf,
        /// What gave it away.
        reason: String,
    },
    /// The log's files fail a check (a damaged database, a missing or
    /// unreadable write-ahead log); the node must not serve from them.
    #[error("{path}: the log is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What check failed.
        reason: String,
    },
    /// A write failed earlier; the store takes no more until reopened.
    #[error("an earlier write failed ({0}); the log refuses writes until reopened")]
    Poisoned(String),
    /// The write breaks the log's rules (entries not contiguous, a gap,
    /// below the purge point); nothing was written.
    #[error("invalid write: {0}")]
    InvalidWrite(String),
    /// A read asked for an index the store does not hold.
    #[error("index {index} is outside the stored range {first}..={last}")]
    OutOfRange {
        /// The index asked for.
        index: u64,
        /// The first index held.
        first: u64,
        /// The last index held.
        last: u64,
    },
    /// redb failed (an I/O error, a full disk, a damaged page).
    #[error("storage error: {0}")]
    Storage(#[from] redb::Error),
    /// The file system failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
