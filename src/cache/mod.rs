//! The cache: [`DatasetFileCache`], its entries, LRU order and codecs.
//!
//! - `record`: the entry record each key maps to in the primary index;
//! - `codec`: compression;
//! - `overlay`: uncommitted changes as readers see them;
//! - `value`: the [`Value`] guard `get` returns;
//! - `slots`: per-thread hit buffers and counters;
//! - `read`: lookups; `write`: puts, removes, eviction, commit;
//! - `keys`: ordered iteration.
//!
//! Two trees belong to this layer: the primary index (key → entry record)
//! and the LastUsed index (tick → key), whose roots the file header mirrors
//! at offsets 40 and 56.

pub(crate) mod admin;
pub(crate) mod bulk;
pub(crate) mod checked;
pub(crate) mod codec;
pub(crate) mod compact;
pub(crate) mod dict;
pub(crate) mod follow;
pub(crate) mod groups;
pub(crate) mod keys;
pub(crate) mod meta;
pub(crate) mod overlay;
pub(crate) mod read;
pub(crate) mod record;
pub(crate) mod scan;
pub(crate) mod slots;
pub(crate) mod stream;
pub(crate) mod tee;
pub(crate) mod value;
pub(crate) mod verify;
pub(crate) mod write;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::storage::backend::StorageBackend;
use crate::storage::epoch::ReaderTable;
use crate::storage::open::{self, Opened};
use crate::storage::{Pins, Snapshot, Store, StoreOptions, WriteTxn};
use overlay::Overlay;
use slots::Slot;

pub use admin::CacheStats;
pub use compact::{CompactOptions, CompactReport};
pub use dict::{DictionaryId, DictionaryInfo, MAX_DICTIONARY_SIZE};
pub use groups::{GroupStream, MAX_GROUP_NAME};
pub use keys::{Entries, Keys};
pub use read::EntryInfo;
pub use record::Codec;
pub use scan::Scan;
pub use stream::ValueReader;
pub use tee::{Tee, DEFAULT_TEE_BATCH};
pub use value::Value;
pub use verify::{IndexUsage, Problem, Progress, VerifyReport};
pub use write::MAX_META_LEN;

/// Values whose stored form is at most this many bytes live inside the
/// primary index's leaf instead of an extent of their own.
pub(crate) const INLINE_MAX: usize = 256;
/// Values longer than this are stored in chunks of this many raw bytes.
pub(crate) const CHUNK_RAW: u64 = 1 << 20;

/// Changes become durable through this interface (Tinman's `IFlushable`).
pub trait Flushable {
    /// Makes every change made so far durable: after it returns, a crash
    /// (process kill or power loss) leaves the file holding them.
    ///
    /// # Errors
    /// I/O errors; afterwards the handle refuses writes
    /// ([`Error::Poisoned`]). Does nothing on a read-only cache.
    fn flush(&self) -> Result<()>;
}

/// How to open or create a cache. The plain constructors on
/// [`DatasetFileCache`] use the defaults.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    read_only: bool,
    compression_level: Option<i32>,
    sync: bool,
    pub(crate) max_dirty_pages: usize,
    check_every_read: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            read_only: false,
            compression_level: Some(3),
            sync: true,
            max_dirty_pages: 4096,
            check_every_read: false,
        }
    }
}

impl OpenOptions {
    /// Defaults: read-write, zstd level 3, fsync on every commit.
    pub fn new() -> OpenOptions {
        OpenOptions::default()
    }

    /// Open without writing a byte (only for [`open`](Self::open)).
    pub fn read_only(mut self, yes: bool) -> OpenOptions {
        self.read_only = yes;
        self
    }

    /// zstd level for new values (1-22), or `None` to store values raw.
    /// A value is stored compressed only when that saves at least 10 %.
    pub fn compression_level(mut self, level: Option<i32>) -> OpenOptions {
        self.compression_level = level;
        self
    }

    /// Whether commits fsync (default `true`). Without it a flushed state
    /// survives a process crash but not a power loss; the file is never
    /// left unreadable either way.
    pub fn sync(mut self, yes: bool) -> OpenOptions {
        self.sync = yes;
        self
    }

    /// How many changed index pages the cache keeps decoded in memory
    /// during a long run of writes without [`flush`](Flushable::flush);
    /// default 4096, at least 64. Past it, the changed pages are written to
    /// free space in the file without a commit (no fsync; a crash still
    /// leaves the last commit), and a later commit takes them in; until
    /// then, decoded copies of the pages written out stay in memory while
    /// they and the changed pages number at most this limit, so that
    /// changing them again needs no decoding. Past 32
    /// uncommitted keys per page of this limit (131,072 by default) the
    /// cache commits on its own, since readers see uncommitted entries
    /// through memory. A bulk load's memory beyond the page cache stays
    /// under about 20 KiB per page of this limit.
    pub fn max_dirty_pages(mut self, pages: usize) -> OpenOptions {
        self.max_dirty_pages = pages.max(64);
        self
    }

    /// Whether a read-write handle checks a value's crc32 on every read
    /// (default `false`: once per handle and value, then it trusts the
    /// mapped bytes, as it does for index pages). A value small enough to
    /// be stored in its index page is covered by that page's CRC, which is
    /// then checked again on each read of it. Turn it on when the
    /// medium may change bytes under a running process and the page cache
    /// may drop and re-read them. Read-only handles always check, since
    /// another process may be writing the file.
    pub fn check_every_read(mut self, yes: bool) -> OpenOptions {
        self.check_every_read = yes;
        self
    }

    fn store_options(&self) -> StoreOptions {
        StoreOptions {
            sync: self.sync,
            ..StoreOptions::default()
        }
    }

    /// Opens an existing cache file.
    ///
    /// # Errors
    /// [`Error::NotACache`], [`Error::UnsupportedVersion`],
    /// [`Error::Corrupt`] for files it cannot read (left untouched);
    /// [`Error::Locked`] when another handle writes the file; I/O errors.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<DatasetFileCache> {
        let readers = Arc::new(ReaderTable::new());
        let o = open::open(
            path.as_ref(),
            self.read_only,
            self.store_options(),
            readers.clone(),
        )?;
        DatasetFileCache::from_opened(o, readers, self)
    }

    /// Creates a cache file, overwriting an existing cache file (never a file
    /// that is not a cache). `maximum_file_size` 0 means unlimited.
    ///
    /// # Errors
    /// [`Error::NotACache`] when `path` holds something else;
    /// [`Error::Locked`]; [`Error::InvalidArgument`] for a maximum size
    /// below 1 MiB; I/O errors.
    pub fn create(
        &self,
        path: impl AsRef<Path>,
        maximum_file_size: u64,
    ) -> Result<DatasetFileCache> {
        let readers = Arc::new(ReaderTable::new());
        let o = open::create(
            path.as_ref(),
            maximum_file_size,
            self.store_options(),
            readers.clone(),
        )?;
        DatasetFileCache::from_opened(o, readers, self)
    }

    /// Opens the cache at `path` if it exists with this maximum size;
    /// otherwise creates it (replacing a cache with another maximum size or
    /// a damaged one).
    ///
    /// # Errors
    /// As [`create`](Self::create); a file written by a newer version is
    /// [`Error::UnsupportedVersion`] and is left alone.
    pub fn create_or_open(
        &self,
        path: impl AsRef<Path>,
        maximum_file_size: u64,
    ) -> Result<DatasetFileCache> {
        let path = path.as_ref();
        open::check_max_size(maximum_file_size)?;
        let exists = std::fs::metadata(path)
            .map(|m| m.len() > 0)
            .unwrap_or(false);
        if exists {
            match self.clone().read_only(false).open(path) {
                Ok(c) if c.maximum_file_size() == maximum_file_size => return Ok(c),
                Ok(c) => drop(c),
                Err(
                    e @ (Error::NotACache { .. }
                    | Error::UnsupportedVersion { .. }
                    | Error::Locked { .. }
                    | Error::Io { .. }),
                ) => return Err(e),
                Err(_) => {} // damaged: recreate
            }
        }
        self.clone()
            .read_only(false)
            .create(path, maximum_file_size)
    }

    /// Opens the cache held by a custom [`StorageBackend`] (fault injection,
    /// crash simulation).
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_backend(&self, backend: Box<dyn StorageBackend>) -> Result<DatasetFileCache> {
        let readers = Arc::new(ReaderTable::new());
        let o = open::open_backend(
            backend,
            None,
            self.read_only,
            self.store_options(),
            readers.clone(),
        )?;
        DatasetFileCache::from_opened(o, readers, self)
    }

    /// Creates a cache in a custom [`StorageBackend`] (which must be empty
    /// or hold a cache).
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub fn create_backend(
        &self,
        backend: Box<dyn StorageBackend>,
        maximum_file_size: u64,
    ) -> Result<DatasetFileCache> {
        let readers = Arc::new(ReaderTable::new());
        let o = open::create_backend(
            backend,
            None,
            maximum_file_size,
            self.store_options(),
            readers.clone(),
        )?;
        DatasetFileCache::from_opened(o, readers, self)
    }
}

/// What readers see: the committed state and the changes since.
pub(crate) struct View {
    pub snap: Arc<Snapshot>,
    pub overlay: Arc<Overlay>,
    /// Read-only handles: the raw sequence fields of the two commit slots
    /// when this view was made (a change means another process committed).
    pub slot_seqs: [u64; 4],
}

/// The writer's state: the storage transaction plus the cache's counters.
pub(crate) struct Writer {
    pub txn: WriteTxn,
    pub overlay: Arc<Overlay>,
    pub inserts: u64,
    pub evictions: u64,
    pub bytes_evicted: u64,
    /// The header should be rewritten at the next commit.
    pub header_stale: bool,
    /// The key a put is replacing: eviction skips it (the replacement
    /// releases its space; evicting it would count a replacement as an
    /// eviction).
    pub protect: Option<Vec<u8>>,
    /// Whether the write under way replaces the whole entry of `protect`
    /// (a put, not `set_meta`): then, as a last resort, that entry may be
    /// evicted ([`DatasetFileCache::evict_replaced`]).
    pub replacing: bool,
}

/// A persistent, size-capped cache in one file.
///
/// `Send + Sync`: share it between threads behind an `Arc`; every method
/// takes `&self`. Reads never block each other; writes are serialised.
pub struct DatasetFileCache {
    pub(crate) store: Store,
    pub(crate) readers: Arc<ReaderTable<Slot>>,
    pub(crate) view: ArcSwap<View>,
    pub(crate) writer: Mutex<Option<Writer>>,
    /// LRU clock: the next tick.
    pub(crate) clock: AtomicU64,
    /// Entries, mirrored for `len` without the writer lock.
    pub(crate) entries: AtomicU64,
    pub(crate) max_age_ms: AtomicU64,
    /// The file's time base (spec §5): entry records count insertion
    /// times from it. Fixed for a file; compaction copies it.
    pub(crate) time_base_ms: AtomicU64,
    pub(crate) max_file_size: AtomicU64,
    /// Readers left notes the writer has not applied yet.
    pub(crate) notes_pending: AtomicBool,
    /// Notes moved out of full slot buffers, deduplicated.
    pub(crate) pending: Mutex<slots::Pending>,
    /// Serialises refreshes of read-only handles.
    pub(crate) refresh_lock: Mutex<()>,
    pub(crate) compression_level: Option<i32>,
    /// Whether recent values compressed.
    pub(crate) backoff: codec::Backoff,
    /// Dictionaries loaded from the file and the defaults.
    pub(crate) dicts: dict::Dicts,
    pub(crate) max_dirty_pages: usize,
    /// Value extents whose checksum this handle checked (None: check
    /// every read).
    pub(crate) checked: Option<checked::Checked>,
}

impl std::fmt::Debug for DatasetFileCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatasetFileCache")
            .field("path", &self.store.path)
            .field("read_only", &self.store.read_only)
            .field("entries", &self.len())
            .finish()
    }
}

impl DatasetFileCache {
    fn from_opened(
        o: Opened,
        readers: Arc<ReaderTable<Slot>>,
        opts: &OpenOptions,
    ) -> Result<DatasetFileCache> {
        let Opened {
            store,
            snap,
            phys_len,
            header_stale,
        } = o;
        let rec = snap.record.clone();
        let read_only = store.read_only;
        // A read-only handle checks at its first read that no commit
        // happened since the record was chosen (spec §9.1).
        let slot_seqs = if store.read_only {
            [u64::MAX; 4]
        } else {
            follow::slot_seqs(&snap)
        };
        let overlay = Arc::new(Overlay::default());
        let writer = if store.read_only {
            None
        } else {
            Some(Writer {
                txn: store.begin(snap.clone(), phys_len),
                overlay: overlay.clone(),
                inserts: 0,
                evictions: 0,
                bytes_evicted: 0,
                header_stale,
                protect: None,
                replacing: false,
            })
        };
        Ok(DatasetFileCache {
            store,
            readers,
            view: ArcSwap::from_pointee(View {
                // A read-only handle checks at its first read that no
                // commit happened since the record was chosen (spec §9.1).
                slot_seqs,
                snap,
                overlay,
            }),
            refresh_lock: Mutex::new(()),
            writer: Mutex::new(writer),
            clock: AtomicU64::new(rec.clock),
            entries: AtomicU64::new(rec.entries),
            max_age_ms: AtomicU64::new(rec.max_age_ms),
            time_base_ms: AtomicU64::new(rec.time_base_ms),
            max_file_size: AtomicU64::new(rec.max_file_size),
            notes_pending: AtomicBool::new(false),
            pending: Mutex::new(slots::Pending::default()),
            compression_level: opts.compression_level,
            backoff: codec::Backoff::default(),
            dicts: dict::Dicts::default(),
            max_dirty_pages: opts.max_dirty_pages,
            // Another process may write the file under a read-only handle:
            // it copies values out and checks them every time.
            checked: (!read_only && !opts.check_every_read).then(checked::Checked::default),
        })
    }

    /// Creates a new cache file at `path` with the given maximum size
    /// (0 = unlimited), overwriting an existing cache file.
    ///
    /// # Errors
    /// See [`OpenOptions::create`].
    pub fn create(path: impl AsRef<Path>, maximum_file_size: u64) -> Result<DatasetFileCache> {
        OpenOptions::new().create(path, maximum_file_size)
    }

    /// Opens the cache at `path` if its maximum file size matches, else
    /// creates one there.
    ///
    /// # Errors
    /// See [`OpenOptions::create_or_open`].
    pub fn create_or_open(
        path: impl AsRef<Path>,
        maximum_file_size: u64,
    ) -> Result<DatasetFileCache> {
        OpenOptions::new().create_or_open(path, maximum_file_size)
    }

    /// Opens an existing cache; `read_only` never writes a byte.
    ///
    /// # Errors
    /// See [`OpenOptions::open`].
    pub fn open(path: impl AsRef<Path>, read_only: bool) -> Result<DatasetFileCache> {
        OpenOptions::new().read_only(read_only).open(path)
    }

    /// Whether the cache was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.store.read_only
    }

    /// The maximum file size in bytes (0 = unlimited).
    pub fn maximum_file_size(&self) -> u64 {
        self.max_file_size.load(Ordering::Acquire)
    }

    /// Number of entries (negative entries included).
    pub fn len(&self) -> u64 {
        self.entries.load(Ordering::Acquire)
    }

    /// Whether the cache holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The file's path, when opened from a path.
    pub fn path(&self) -> Option<&Path> {
        self.store.path.as_deref()
    }

    /// Runs `f` with the writer state, or fails for read-only handles.
    pub(crate) fn with_writer<R>(&self, f: impl FnOnce(&mut Writer) -> Result<R>) -> Result<R> {
        let mut g = self.writer.lock();
        let w = g.as_mut().ok_or(Error::ReadOnly)?;
        self.store.writable(&w.txn)?;
        f(w)
    }
}

impl Flushable for DatasetFileCache {
    fn flush(&self) -> Result<()> {
        if self.store.read_only {
            return Ok(());
        }
        self.with_writer(|w| self.commit_locked(w, false))
    }
}

impl Drop for DatasetFileCache {
    fn drop(&mut self) {
        // Best effort: errors cannot be reported from drop; call `flush`
        // to see them.
        if !self.store.read_only {
            let _ = self.flush();
        }
    }
}

/// Checks a user key.
pub(crate) fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() || key.len() > crate::MAX_KEY_LEN {
        return Err(Error::InvalidKey {
            len: key.len(),
            max: crate::MAX_KEY_LEN,
        });
    }
    Ok(())
}

// The pin table is shared with the storage layer as `dyn Pins`.
const _: fn() = || {
    fn assert_pins<T: Pins>() {}
    assert_pins::<ReaderTable<Slot>>();
};
