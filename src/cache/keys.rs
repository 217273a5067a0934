//! Ordered iteration over keys.

use std::collections::VecDeque;
use std::ops::Bound;

use crate::btree::TreeId;
use crate::cache::read::{info_of, EntryInfo};
use crate::cache::DatasetFileCache;
use crate::error::Result;
use crate::storage::Snapshot;

/// Keys fetched per batch (each batch takes the writer lock briefly).
pub(crate) const BATCH: usize = 256;

/// What [`Keys`], [`Entries`] and [`Scan`](crate::Scan) share: items
/// fetched in batches, each batch starting after the last index key the
/// previous one read.
pub(crate) struct Batched<T> {
    prefix: Vec<u8>,
    /// Where the next batch starts (after this key); `None` before the
    /// first.
    after: Option<Vec<u8>>,
    batch: VecDeque<T>,
    done: bool,
}

/// One batch: its items, and the last index key it read when the index
/// may hold more (`None` at the end). Items may be fewer than the keys
/// read (a scan skips expired and damaged entries), so only the index says
/// whether more follow.
pub(crate) type Batch<T> = (Vec<T>, Option<Vec<u8>>);

impl<T> Batched<T> {
    pub(crate) fn new(prefix: &[u8]) -> Batched<T> {
        Batched {
            prefix: prefix.to_vec(),
            after: None,
            batch: VecDeque::new(),
            done: false,
        }
    }

    /// The next item; `fetch(prefix, after)` reads up to [`BATCH`] more
    /// index entries.
    pub(crate) fn next(
        &mut self,
        mut fetch: impl FnMut(&[u8], Option<&[u8]>) -> Result<Batch<T>>,
    ) -> Option<Result<T>> {
        while self.batch.is_empty() && !self.done {
            match fetch(&self.prefix, self.after.as_deref()) {
                Ok((items, more)) => {
                    self.done = more.is_none();
                    self.after = more;
                    self.batch = items.into();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        self.batch.pop_front().map(Ok)
    }
}

/// The resume key of a batch that read `read` index entries of at most
/// `max`, the last being `last`.
pub(crate) fn resume_after(read: usize, max: usize, last: Option<&[u8]>) -> Option<Vec<u8>> {
    (read >= max).then(|| last.map(<[u8]>::to_vec)).flatten()
}

/// Where a batch after `after` (or the first, for `prefix`) starts.
pub(crate) fn batch_start<'k>(prefix: &'k [u8], after: Option<&'k [u8]>) -> Bound<&'k [u8]> {
    match after {
        Some(k) => Bound::Excluded(k),
        None if prefix.is_empty() => Bound::Unbounded,
        None => Bound::Included(prefix),
    }
}

/// (key, record bytes) pairs copied out of the primary index. Records are
/// short: kept inline, they cost no allocation each.
pub(crate) type RawEntries = Vec<(Vec<u8>, smallvec::SmallVec<[u8; 32]>)>;

/// Up to `max` (key, record) pairs of the primary index read through `rd`
/// whose keys start with `prefix`, after `after` (or from the start).
///
/// With `recheck`, the CRC of every mapped leaf page the records are copied
/// from is checked again (once per page per batch), whether or not it was
/// checked before: for handles that check every read, since an inline
/// value's only checksum is its page's. Records of nodes the writer holds
/// in memory are not on disk and need no check.
pub(crate) fn raw_batch(
    rd: crate::btree::Reader<'_>,
    prefix: &[u8],
    after: Option<&[u8]>,
    max: usize,
    recheck: Option<&Snapshot>,
) -> Result<RawEntries> {
    let mut raw = Vec::with_capacity(max.min(BATCH));
    let mut checked_page = None;
    rd.scan(batch_start(prefix, after), |k, v| {
        if !k.starts_with(prefix) {
            return Ok(false);
        }
        if let Some(snap) = recheck {
            snap.recheck_node_once(v, &mut checked_page)?;
        }
        raw.push((k.to_vec(), smallvec::SmallVec::from_slice(v)));
        Ok(raw.len() < max)
    })?;
    Ok(raw)
}

/// Iterator over the keys of a cache in ascending byte order, from
/// [`DatasetFileCache::keys`].
///
/// It is not a snapshot: it fetches keys in batches, and changes made
/// between batches show up (or not) depending on where they fall relative to
/// its position. Every key present for the whole iteration is returned
/// exactly once.
pub struct Keys<'c> {
    cache: &'c DatasetFileCache,
    inner: Batched<Vec<u8>>,
}

impl Iterator for Keys<'_> {
    type Item = Result<Vec<u8>>;

    fn next(&mut self) -> Option<Result<Vec<u8>>> {
        let c = self.cache;
        self.inner.next(|p, after| c.key_batch(p, after, BATCH))
    }
}

impl DatasetFileCache {
    /// All keys in ascending byte order (negative entries included).
    ///
    /// # Errors
    /// The iterator yields [`Error::Corrupt`](crate::Error::Corrupt) if the
    /// index is damaged.
    pub fn keys(&self) -> Result<Keys<'_>> {
        self.keys_with_prefix(&[])
    }

    /// The keys that start with `prefix`, in ascending byte order.
    ///
    /// # Errors
    /// As [`keys`](Self::keys).
    pub fn keys_with_prefix(&self, prefix: &[u8]) -> Result<Keys<'_>> {
        Ok(Keys {
            cache: self,
            inner: Batched::new(prefix),
        })
    }

    /// Up to `max` keys with `prefix` after `after` (or from the start).
    pub(crate) fn key_batch(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        max: usize,
    ) -> Result<Batch<Vec<u8>>> {
        let start = batch_start(prefix, after);
        let collect = |rd: crate::btree::Reader<'_>| -> Result<Vec<Vec<u8>>> {
            let mut out = Vec::new();
            rd.scan(start, |k, _| {
                if !k.starts_with(prefix) {
                    return Ok(false);
                }
                out.push(k.to_vec());
                Ok(out.len() < max)
            })?;
            Ok(out)
        };
        let g = self.writer.lock();
        let out = match g.as_ref() {
            Some(w) => collect(w.txn.reader(TreeId::PRIMARY))?,
            None => {
                drop(g);
                let _pin = self.readers.pin();
                self.read_view(|view| collect(view.snap.reader(TreeId::PRIMARY)))?
            }
        };
        let more = resume_after(out.len(), max, out.last().map(Vec::as_slice));
        Ok((out, more))
    }
}

/// Iterator over (key, [`EntryInfo`]) in ascending key order, from
/// [`DatasetFileCache::entries`]. Like [`Keys`], not a snapshot.
pub struct Entries<'c> {
    cache: &'c DatasetFileCache,
    inner: Batched<(Vec<u8>, EntryInfo)>,
}

impl Iterator for Entries<'_> {
    type Item = Result<(Vec<u8>, EntryInfo)>;

    fn next(&mut self) -> Option<Self::Item> {
        let c = self.cache;
        self.inner.next(|p, after| c.entry_batch(p, after, BATCH))
    }
}

impl DatasetFileCache {
    /// Every entry with its [`EntryInfo`], in ascending key order, without
    /// reading values. Uses not yet applied may leave `last_use` slightly
    /// behind ([`entry_info`](Self::entry_info) is exact).
    ///
    /// # Errors
    /// The iterator yields [`Error::Corrupt`](crate::Error::Corrupt) for a
    /// damaged index.
    pub fn entries(&self, prefix: &[u8]) -> Result<Entries<'_>> {
        Ok(Entries {
            cache: self,
            inner: Batched::new(prefix),
        })
    }

    fn entry_batch(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        max: usize,
    ) -> Result<Batch<(Vec<u8>, EntryInfo)>> {
        let _pin = self.readers.pin();
        let g = self.writer.lock();
        let items: Vec<(Vec<u8>, EntryInfo)> = if let Some(w) = g.as_ref() {
            let raw = raw_batch(w.txn.reader(TreeId::PRIMARY), prefix, after, max, None)?;
            let (snap, limit) = (w.txn.base.clone(), w.txn.base.mapping.len());
            drop(g);
            raw.into_iter()
                .map(|(k, v)| Ok((k, info_of(&snap, limit, &v)?)))
                .collect::<Result<_>>()?
        } else {
            drop(g);
            self.read_view(|view| {
                let raw = raw_batch(view.snap.reader(TreeId::PRIMARY), prefix, after, max, None)?;
                let (snap, limit) = (&view.snap, view.snap.record.file_len);
                raw.into_iter()
                    .map(|(k, v)| Ok((k, info_of(snap, limit, &v)?)))
                    .collect()
            })?
        };
        // Every entry read becomes an item.
        let more = resume_after(items.len(), max, items.last().map(|e| e.0.as_slice()));
        Ok((items, more))
    }
}
