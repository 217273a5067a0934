//! [`CachedDataset`]: a dataset read through a local cache, then shared
//! read-only caches, then its source — with one source read per block no
//! matter how many threads miss it at once.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::cache::read::Lookup;
use crate::cache::DatasetFileCache;
use crate::dataset::{Dataset, DatasetId};
use crate::error::{Error, Result};

/// What [`CachedDataset::warm`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WarmReport {
    /// Blocks read (from a shared cache or the source) and stored.
    pub fetched: u64,
    /// Blocks the cache already held.
    pub already_cached: u64,
    /// Blocks the source said do not exist (stored as negative entries).
    pub absent: u64,
    /// Raw bytes written to the cache.
    pub bytes_written: u64,
    /// Blocks read but not stored (too large for the cache).
    pub not_stored: u64,
}

/// The outcome of one fetch, shared by every thread waiting for it.
enum Outcome {
    /// The block (`None`: it does not exist).
    Value(Option<Arc<Vec<u8>>>),
    /// The source failed.
    SourceError(Arc<dyn std::error::Error + Send + Sync>),
    /// The fetch failed for another reason: fetch again.
    Retry,
}

/// A block being fetched: the leader fills `done`, waiters wait for it.
#[derive(Default)]
struct Flight {
    done: Mutex<Option<Outcome>>,
    cv: Condvar,
}

/// A source error, shared by the threads that waited for one fetch.
#[derive(Debug, Clone)]
struct SharedError(Arc<dyn std::error::Error + Send + Sync>);

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// A [`Dataset`] read through caches.
///
/// Lookup order: the local cache, then each shared read-only cache in order,
/// then the source. A block found in a shared cache, or read from the
/// source, is stored in the local cache unless that is read-only; "block
/// does not exist" is stored too (a negative entry) and answered without
/// asking the source again. Concurrent misses of one block make one source
/// read; the other threads wait for it.
pub struct CachedDataset<D: Dataset> {
    source: D,
    cache: Arc<DatasetFileCache>,
    shared: Vec<Arc<DatasetFileCache>>,
    inflight: Mutex<HashMap<(DatasetId, u64), Arc<Flight>>>,
    source_reads: AtomicU64,
    shared_hits: AtomicU64,
    store_failures: AtomicU64,
}

impl<D: Dataset> fmt::Debug for CachedDataset<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedDataset")
            .field("id", &self.source.id())
            .field("cache", &self.cache)
            .field("shared", &self.shared.len())
            .finish()
    }
}

impl<D: Dataset> CachedDataset<D> {
    /// Reads `source` through `cache`.
    pub fn new(source: D, cache: Arc<DatasetFileCache>) -> Self {
        CachedDataset {
            source,
            cache,
            shared: Vec::new(),
            inflight: Mutex::new(HashMap::new()),
            source_reads: AtomicU64::new(0),
            shared_hits: AtomicU64::new(0),
            store_failures: AtomicU64::new(0),
        }
    }

    /// Read-only warmed caches consulted after `cache`, before the source.
    /// They are only read (open them with `read_only = true`).
    pub fn with_shared(mut self, shared: Vec<Arc<DatasetFileCache>>) -> Self {
        self.shared = shared;
        self
    }

    /// The source.
    pub fn source(&self) -> &D {
        &self.source
    }

    /// The local cache.
    pub fn cache(&self) -> &Arc<DatasetFileCache> {
        &self.cache
    }

    /// Blocks read from the source so far.
    pub fn source_reads(&self) -> u64 {
        self.source_reads.load(Ordering::Relaxed)
    }

    /// Blocks found in a shared cache so far.
    pub fn shared_hits(&self) -> u64 {
        self.shared_hits.load(Ordering::Relaxed)
    }

    /// Blocks that could not be stored in the local cache (I/O error or a
    /// poisoned handle) but were still returned.
    pub fn store_failures(&self) -> u64 {
        self.store_failures.load(Ordering::Relaxed)
    }

    /// Fills the local cache with the given blocks (the pre-processing step
    /// before a cache is shared read-only).
    ///
    /// # Errors
    /// [`Error::ReadOnly`] when the local cache is read-only; source errors
    /// ([`Error::Source`]); cache I/O errors.
    pub fn warm(&self, indices: impl IntoIterator<Item = u64>) -> Result<WarmReport> {
        if self.cache.is_read_only() {
            return Err(Error::ReadOnly);
        }
        let mut r = WarmReport::default();
        for index in indices {
            let id = self.source.id();
            let key = id.block_key(index);
            if self.cache.contains_key(&key)? {
                r.already_cached += 1;
                continue;
            }
            let (value, stored) = self.fetch(id, index)?;
            match value {
                None => r.absent += 1,
                Some(v) => {
                    r.fetched += 1;
                    if stored {
                        r.bytes_written += v.len() as u64;
                    } else {
                        r.not_stored += 1;
                    }
                }
            }
        }
        Ok(r)
    }

    /// Looks in the local cache: `Some(answer)` on a hit or negative entry.
    fn local(&self, key: &[u8], count: bool) -> Result<Option<Option<Vec<u8>>>> {
        match self.cache.lookup(key, count) {
            Ok(Lookup::Hit(v)) => Ok(Some(Some(v.to_vec()))),
            Ok(Lookup::Absent) => Ok(Some(None)),
            Ok(Lookup::Miss) => Ok(None),
            // A damaged value in a read-only cache: read around it.
            Err(e) if e.is_corrupt() && self.cache.is_read_only() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Fetches a block the local cache does not have, once across threads.
    /// Returns the block and whether it was stored in the local cache.
    fn fetch(&self, id: DatasetId, index: u64) -> Result<(Option<Vec<u8>>, bool)> {
        loop {
            let (flight, leader) = {
                let mut m = self.inflight.lock();
                match m.get(&(id, index)) {
                    Some(f) => (f.clone(), false),
                    None => {
                        let f = Arc::new(Flight::default());
                        m.insert((id, index), f.clone());
                        (f, true)
                    }
                }
            };
            if !leader {
                let mut done = flight.done.lock();
                while done.is_none() {
                    flight.cv.wait(&mut done);
                }
                match done.as_ref() {
                    Some(Outcome::Value(v)) => return Ok((v.as_ref().map(|v| v.to_vec()), false)),
                    Some(Outcome::SourceError(e)) => {
                        return Err(Error::Source(Box::new(SharedError(e.clone()))))
                    }
                    Some(Outcome::Retry) | None => continue,
                }
            }
            let result = self.fetch_as_leader(id, index);
            let (outcome, result) = match result {
                Ok((v, stored)) => (Outcome::Value(v.clone().map(Arc::new)), Ok((v, stored))),
                Err(Error::Source(inner)) => {
                    let e: Arc<dyn std::error::Error + Send + Sync> = Arc::from(inner);
                    (
                        Outcome::SourceError(e.clone()),
                        Err(Error::Source(Box::new(SharedError(e)))),
                    )
                }
                Err(e) => (Outcome::Retry, Err(e)),
            };
            *flight.done.lock() = Some(outcome);
            flight.cv.notify_all();
            self.inflight.lock().remove(&(id, index));
            return result;
        }
    }

    fn fetch_as_leader(&self, id: DatasetId, index: u64) -> Result<(Option<Vec<u8>>, bool)> {
        let key = id.block_key(index);
        // Another leader may have stored it between our miss and now.
        if let Some(v) = self.local(&key, false)? {
            return Ok((v, false));
        }
        let mut found = None;
        for s in &self.shared {
            match s.lookup(&key, true) {
                Ok(Lookup::Hit(v)) => {
                    found = Some(Some(v.to_vec()));
                    break;
                }
                Ok(Lookup::Absent) => {
                    found = Some(None);
                    break;
                }
                // A shared cache that cannot answer is skipped.
                Ok(Lookup::Miss) | Err(_) => {}
            }
        }
        let value = match found {
            Some(v) => {
                self.shared_hits.fetch_add(1, Ordering::Relaxed);
                v
            }
            None => {
                self.source_reads.fetch_add(1, Ordering::Relaxed);
                self.source.read_block(index).map_err(|e| match e {
                    e @ Error::Source(_) => e,
                    e => Error::Source(Box::new(e)),
                })?
            }
        };
        if self.cache.is_read_only() {
            return Ok((value, false));
        }
        let stored = match &value {
            Some(v) => self.cache.put(&key, v),
            None => self.cache.put_absent(&key),
        };
        match stored {
            Ok(()) => Ok((value, true)),
            // Too large for this cache, or its space is pinned: serve it
            // uncached.
            Err(Error::ValueTooLarge { .. } | Error::NoSpace { .. }) => Ok((value, false)),
            Err(_) => {
                self.store_failures.fetch_add(1, Ordering::Relaxed);
                Ok((value, false))
            }
        }
    }
}

impl<D: Dataset> Dataset for CachedDataset<D> {
    fn id(&self) -> DatasetId {
        self.source.id()
    }

    /// The block: from the local cache, a shared cache, or the source
    /// (stored locally on the way).
    ///
    /// # Errors
    /// [`Error::Source`] when the source fails (nothing is cached then);
    /// errors of a damaged local read-write cache.
    fn read_block(&self, index: u64) -> Result<Option<Vec<u8>>> {
        let id = self.source.id();
        if let Some(v) = self.local(&id.block_key(index), true)? {
            return Ok(v);
        }
        Ok(self.fetch(id, index)?.0)
    }
}
