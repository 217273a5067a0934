//! The crate's error type.
//!
//! Every fallible operation returns [`Result`]. Variants name what went wrong
//! and, where it applies, where: a file path, a key, or a byte offset in the
//! file. Nothing in the library panics on bad input or bad bytes on disk; they
//! become one of these variants.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// `Result` with [`Error`] as the error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in dfcache.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O call failed.
    #[error("I/O error while {op}{}: {source}", path_suffix(.path))]
    Io {
        /// What dfcache was doing ("reading", "syncing", ...).
        op: &'static str,
        /// The file involved, when known.
        path: Option<PathBuf>,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The file exists but is not a dfcache file (wrong magic, empty, or too
    /// short to hold a header). dfcache never writes to such a file.
    #[error("not a dfcache file: {reason}{}", path_suffix(.path))]
    NotACache {
        /// The file.
        path: Option<PathBuf>,
        /// Why it was not recognised.
        reason: String,
    },

    /// The file was written by a newer dfcache whose format this build cannot
    /// read.
    #[error("unsupported format version {found} (this build reads version {supported}){}", path_suffix(.path))]
    UnsupportedVersion {
        /// The file.
        path: Option<PathBuf>,
        /// The version found in the file.
        found: i64,
        /// The version this build reads and writes.
        supported: i64,
    },

    /// Bytes on disk failed a check: a checksum, a bound, a structural
    /// invariant. `what` names the structure and `offset` the byte offset in
    /// the file where it lives.
    #[error("corrupt {what} at offset {offset}: {detail}")]
    Corrupt {
        /// The structure that failed ("B-tree node", "commit record", "value").
        what: &'static str,
        /// Byte offset of that structure in the file.
        offset: u64,
        /// What exactly was wrong.
        detail: String,
    },

    /// Another handle (in this or another process) has the file open for
    /// writing. dfcache allows one writer per file.
    #[error("cache file is locked by another writer{}", path_suffix(.path))]
    Locked {
        /// The file.
        path: Option<PathBuf>,
    },

    /// A write was attempted on a cache opened read-only.
    #[error("cache is open read-only")]
    ReadOnly,

    /// An earlier write or sync failed; the handle refuses further writes
    /// because the state of the file on disk is unknown. Reopen the file: it
    /// holds the state of the last completed flush.
    #[error("cache handle is poisoned by an earlier I/O failure ({cause}); reopen the file")]
    Poisoned {
        /// The failure that poisoned the handle.
        cause: String,
    },

    /// A key is empty or longer than [`MAX_KEY_LEN`](crate::MAX_KEY_LEN).
    #[error("invalid key of {len} bytes: keys are 1 to {max} bytes")]
    InvalidKey {
        /// The key's length.
        len: usize,
        /// The maximum key length.
        max: usize,
    },

    /// The value (with its bookkeeping) could never fit in the cache, even
    /// empty, under its maximum file size.
    #[error(
        "value of {size} bytes can never fit under the maximum file size (at most {max} bytes fit)"
    )]
    ValueTooLarge {
        /// Stored size of the value.
        size: u64,
        /// The largest value that fits in this cache.
        max: u64,
    },

    /// There is no room for a write and nothing more can be evicted: the free
    /// space is held by [`Value`](crate::Value)s that are still alive (space
    /// they point into cannot be reused until they are dropped).
    #[error("no space left under the maximum file size ({detail})")]
    NoSpace {
        /// What held the space.
        detail: String,
    },

    /// An entry read in parts (a streamed value) was replaced or removed
    /// between two parts; nothing of the new value was mixed in.
    #[error("the entry changed while it was being read: {}", crate::cache::verify::show_key(.key))]
    Changed {
        /// The key of the entry.
        key: Vec<u8>,
    },

    /// An argument is out of its documented range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A dataset source failed while a block was read through the cache.
    #[error("dataset source failed: {0}")]
    Source(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

fn path_suffix(path: &Option<PathBuf>) -> PathSuffix<'_> {
    PathSuffix(path)
}

struct PathSuffix<'a>(&'a Option<PathBuf>);

impl fmt::Display for PathSuffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(p) => write!(f, ": {}", p.display()),
            None => Ok(()),
        }
    }
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub(crate) fn io(op: &'static str, source: io::Error) -> Error {
        Error::Io {
            op,
            path: None,
            source,
        }
    }

    /// A corruption error.
    pub(crate) fn corrupt(what: &'static str, offset: u64, detail: impl Into<String>) -> Error {
        Error::Corrupt {
            what,
            offset,
            detail: detail.into(),
        }
    }

    /// Attaches a path to errors that carry one and have none yet.
    pub(crate) fn with_path(mut self, p: &std::path::Path) -> Error {
        match &mut self {
            Error::Io { path, .. }
            | Error::NotACache { path, .. }
            | Error::UnsupportedVersion { path, .. }
            | Error::Locked { path }
                if path.is_none() =>
            {
                *path = Some(p.to_path_buf());
            }
            _ => {}
        }
        self
    }

    /// True for [`Error::Corrupt`].
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Error::Corrupt { .. })
    }
}
