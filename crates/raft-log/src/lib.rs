//! Raft log stores implementing [`raft_core::LogStore`]:
//! [`RedbLogStore`], durable: a redb database per node for the log's
//! identity and a write-ahead log of segment files beside it for the
//! entries, one write and one fsync per batch (group commit); and
//! [`MemLogStore`], the same semantics in memory (for nodes run without a
//! storage file, and tests).
//!
//! The durability contract is in `docs/storage.md`.

#![deny(missing_docs)]

mod codec;
pub mod conformance;
mod contain;
mod error;
mod fault;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod mem;
mod meta;
mod migrate;
mod record;
mod redb_store;
mod snapshots;
mod wal;

pub use error::Error;
pub use fault::FaultSwitch;
pub use mem::MemLogStore;
pub use redb_store::{RedbLogStore, remove, wal_dir};
pub use snapshots::{FileSnapshots, MemSnapshots};

use raft_core::{Index, WriteBatch};

/// Checks that `index` lies in the stored range (`purged`, `last`].
pub(crate) fn check_in_range(index: Index, purged: Index, last: Index) -> Result<(), Error> {
    if index <= purged || index > last {
        return Err(Error::OutOfRange {
            index,
            first: purged + 1,
            last,
        });
    }
    Ok(())
}

/// Checks a batch against the stored range (`purged`, `last`]: entries
/// must be contiguous, start after what is purged and no later than one
/// past the last index. Shared by both stores so they refuse alike.
pub(crate) fn check_batch(batch: &WriteBatch<'_>, purged: Index, last: Index) -> Result<(), Error> {
    let Some(first) = batch.entries.first() else {
        return Ok(());
    };
    if first.index <= purged {
        return Err(Error::InvalidWrite(format!(
            "entry {} is at or below the purged index {purged}",
            first.index
        )));
    }
    if first.index > last + 1 {
        return Err(Error::InvalidWrite(format!(
            "entry {} leaves a gap after the last index {last}",
            first.index
        )));
    }
    for (i, e) in batch.entries.iter().enumerate() {
        if e.index != first.index + i as Index {
            return Err(Error::InvalidWrite(format!(
                "entries not contiguous at {}",
                e.index
            )));
        }
    }
    Ok(())
}
