//! `tee` (dscache): pass a stream of (key, value) through while writing it
//! to the cache in batches.

use crate::cache::{DatasetFileCache, Flushable};
use crate::error::{Error, Result};

/// Items written between commits unless [`Tee::batch`] says otherwise.
pub const DEFAULT_TEE_BATCH: usize = 1000;

/// An iterator that yields the items of another while storing each in a
/// cache, committing every `batch` items, from [`DatasetFileCache::tee`].
///
/// If the consumer stops early, what was written is committed when the
/// `Tee` is dropped (call [`finish`](Tee::finish) to see errors); no lock is
/// held between items. Items are passed through even when storing one
/// fails: the first error is kept for `finish`.
pub struct Tee<'c, I> {
    cache: &'c DatasetFileCache,
    inner: I,
    batch: usize,
    since_commit: usize,
    written: u64,
    error: Option<Error>,
}

impl<'c, I> Tee<'c, I> {
    /// Commits every `n` items (at least 1).
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// Items stored so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Commits what was written and returns how many items were stored.
    ///
    /// # Errors
    /// The first error storing an item, or the commit's error.
    pub fn finish(mut self) -> Result<u64> {
        let flushed = self.commit();
        match self.error.take() {
            Some(e) => Err(e),
            None => flushed.map(|_| self.written),
        }
    }

    fn commit(&mut self) -> Result<()> {
        self.since_commit = 0;
        if self.cache.is_read_only() {
            return Ok(());
        }
        self.cache.flush()
    }
}

impl<I, K, V> Iterator for Tee<'_, I>
where
    I: Iterator<Item = (K, V)>,
    K: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    type Item = (K, V);

    fn next(&mut self) -> Option<(K, V)> {
        let item = self.inner.next()?;
        if self.error.is_none() {
            match self.cache.put(item.0.as_ref(), item.1.as_ref()) {
                Ok(()) => {
                    self.written += 1;
                    self.since_commit += 1;
                    if self.since_commit >= self.batch {
                        if let Err(e) = self.commit() {
                            self.error = Some(e);
                        }
                    }
                }
                Err(e) => self.error = Some(e),
            }
        }
        Some(item)
    }
}

impl<I> Drop for Tee<'_, I> {
    fn drop(&mut self) {
        if self.since_commit > 0 {
            // Best effort: `finish` reports errors.
            let _ = self.commit();
        }
    }
}

impl DatasetFileCache {
    /// Wraps `items`: iterating the result yields them unchanged and stores
    /// each in the cache, committing every 1000 items (see [`Tee::batch`])
    /// and when the `Tee` is dropped or finished.
    pub fn tee<I>(&self, items: I) -> Tee<'_, I::IntoIter>
    where
        I: IntoIterator,
    {
        Tee {
            cache: self,
            inner: items.into_iter(),
            batch: DEFAULT_TEE_BATCH,
            since_commit: 0,
            written: 0,
            error: None,
        }
    }
}
