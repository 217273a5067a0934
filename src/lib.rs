//! dfcache: a persistent, size-capped, crash-safe cache that lives in one file.

#![warn(missing_docs)]

pub(crate) mod btree;
pub(crate) mod cache;
pub mod dataset;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod header;
pub mod storage;
pub(crate) mod varint;

pub use cache::{
    CacheStats, Codec, CompactOptions, CompactReport, DatasetFileCache, DictionaryId,
    DictionaryInfo, Entries, EntryInfo, Flushable, GroupStream, IndexUsage, Keys, OpenOptions,
    Problem, Progress, Scan, Tee, Value, ValueReader, VerifyReport, DEFAULT_TEE_BATCH,
    MAX_DICTIONARY_SIZE, MAX_GROUP_NAME, MAX_META_LEN,
};
pub use dataset::{CachedDataset, Dataset, DatasetId, WarmReport};
pub use error::{Error, Result};
pub use storage::backend::{FileBackend, StorageBackend};

/// The longest key dfcache accepts, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// The file format version this build reads and writes (spec/FORMAT.md
/// §3). Opening a file of another version fails with
/// [`Error::UnsupportedVersion`].
pub const FORMAT_VERSION: i16 = header::VERSION;

/// An error for a broken internal invariant (a dfcache bug), reported as
/// corruption of in-memory state rather than a panic.
#[macro_export]
#[doc(hidden)]
macro_rules! internal {
    ($($arg:tt)*) => {
        $crate::error::Error::corrupt("in-memory state", 0, format!($($arg)*))
    };
}
