//! Keeping a damaged database from taking the process down.
//!
//! redb checks much of what it reads from disk with assertions, and on a
//! damaged file some of them fire (a malformed allocator state, a page
//! freed twice) instead of returning `StorageError::Corrupted`. Every call
//! into redb on stored bytes goes through [`contained`], which turns such a
//! panic into [`Error::Corrupt`] naming the file: the caller then drops the
//! database (at open) or poisons the store (after it), so nothing touches
//! the half-updated state redb unwound from.

use crate::Error;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

/// What an operator does about a damaged database.
pub(crate) const REMEDY: &str = "restore the node's storage from a backup, or rebuild the node \
     from its peers (raft-mock --rebuild --confirm, docs/operations.md)";

/// Runs `f`, a use of the redb database at `path`; a panic inside it, or
/// an error redb reports about what it read (anything but a failed system
/// call), is reported as damage to that file.
pub(crate) fn contained<T>(path: &Path, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    let damaged = |what: String| Error::Corrupt {
        path: path.to_path_buf(),
        reason: format!("the database is damaged (redb: {what}); {REMEDY}"),
    };
    let result = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        Err(damaged(what))
    });
    result.map_err(|e| match e {
        // The file is shorter than its own pages say, or says something
        // that cannot be: damage, not a failing disk.
        Error::Storage(redb::Error::Io(io))
            if matches!(
                io.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
            ) =>
        {
            damaged(io.to_string())
        }
        Error::Storage(redb::Error::Io(io)) => Error::Io(io),
        Error::Storage(
            e @ (redb::Error::DatabaseAlreadyOpen
            | redb::Error::LockPoisoned(_)
            | redb::Error::PreviousIo),
        ) => Error::Storage(e),
        Error::Storage(e) => damaged(e.to_string()),
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_corruption_of_the_named_file() {
        let r: Result<(), Error> =
            contained(Path::new("/x/log.redb"), || panic!("page freed twice"));
        let e = r.expect_err("a panic is an error");
        assert!(matches!(e, Error::Corrupt { .. }));
        let msg = e.to_string();
        assert!(
            msg.contains("/x/log.redb") && msg.contains("page freed twice"),
            "{msg}"
        );
        assert_eq!(contained(Path::new("/x"), || Ok(7)).unwrap(), 7);
    }
}
