//! Ordered iteration over keys.

use std::ops::Bound;

use crate::btree::TreeId;
use crate::cache::read::{info_of, EntryInfo};
use crate::cache::DatasetFileCache;
use crate::error::Result;
use crate::storage::Snapshot;

/// Keys fetched per batch (each batch takes the writer lock briefly).
pub(crate) const BATCH: usize = 256;

/// Whether `k` starts with `prefix`, answering an empty prefix without a
/// comparison. An empty slice's pointer is dangling (0x1); glibc's AVX-512
/// `memcmp` still issues a fully masked load from it, and on the benchmark
/// machine's CPU (an Intel Xeon, as its VM reports it) a masked load whose
/// masked-off bytes would fault takes a slow assist: 10 % of a full scan's
/// time in perf, for a comparison of nothing.
pub(crate) fn has_prefix(k: &[u8], prefix: &[u8]) -> bool {
    prefix.is_empty() || k.starts_with(prefix)
}

/// What [`Keys`], [`Entries`] and [`Scan`](crate::Scan) share: items
/// fetched in batches, each batch starting after the last index key the
/// previous one read. The batch buffers are kept from one batch to the
/// next (a fresh allocation of some 16 KiB per batch cost the allocator
/// more than the entries' own work).
pub(crate) struct Batched<T> {
    prefix: Vec<u8>,
    /// Where the next batch starts (after this key); `None` before the
    /// first.
    after: Option<Vec<u8>>,
    /// The items of the batch not yet returned, last first.
    items: Vec<T>,
    raw: RawEntries,
    done: bool,
}

/// What a batch fetch gets: where to start, and the buffers to fill.
pub(crate) struct Fetch<'b, T> {
    pub(crate) prefix: &'b [u8],
    pub(crate) after: Option<&'b [u8]>,
    /// Scratch for the index entries read (emptied by [`raw_batch`]).
    pub(crate) raw: &'b mut RawEntries,
    /// The items, in key order (empty on entry).
    pub(crate) out: &'b mut Vec<T>,
}

impl<T> Batched<T> {
    pub(crate) fn new(prefix: &[u8]) -> Batched<T> {
        Batched {
            prefix: prefix.to_vec(),
            after: None,
            items: Vec::new(),
            raw: Vec::new(),
            done: false,
        }
    }

    /// The next item; `fetch` reads up to [`BATCH`] more index entries
    /// into its `out` and returns the last index key it read when the
    /// index may hold more (`None` at the end). Items may be fewer than
    /// the entries read (a scan skips expired and damaged entries), so
    /// only the index says whether more follow.
    pub(crate) fn next(
        &mut self,
        mut fetch: impl FnMut(Fetch<'_, T>) -> Result<Option<Vec<u8>>>,
    ) -> Option<Result<T>> {
        while self.items.is_empty() && !self.done {
            let f = Fetch {
                prefix: &self.prefix,
                after: self.after.as_deref(),
                raw: &mut self.raw,
                out: &mut self.items,
            };
            match fetch(f) {
                Ok(more) => {
                    self.done = more.is_none();
                    self.after = more;
                    self.items.reverse();
                }
                Err(e) => {
                    self.items.clear();
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        self.items.pop().map(Ok)
    }

    /// The item the `n + 1`-th call of `next` from now returns, if it was
    /// fetched already (`peek(0)` is the next one).
    pub(crate) fn peek(&self, n: usize) -> Option<&T> {
        self.items.len().checked_sub(n + 1).map(|i| &self.items[i])
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

/// Fills `raw` with up to `max` (key, record) pairs of the primary index
/// read through `rd` whose keys start with `prefix`, after `after` (or from
/// the start).
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
    raw: &mut RawEntries,
) -> Result<()> {
    raw.clear();
    let mut checked_page = None;
    rd.scan(batch_start(prefix, after), |k, v| {
        if !has_prefix(k, prefix) {
            return Ok(false);
        }
        if let Some(snap) = recheck {
            snap.recheck_node_once(v, &mut checked_page)?;
        }
        raw.push((k.to_vec(), smallvec::SmallVec::from_slice(v)));
        Ok(raw.len() < max)
    })
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
        self.inner
            .next(|f| c.key_batch(f.prefix, f.after, BATCH, f.out))
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

    /// Appends up to `max` keys with `prefix` after `after` (or from the
    /// start) to `out`; returns the resume key (see [`Batched::next`]).
    pub(crate) fn key_batch(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        max: usize,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>> {
        let start = batch_start(prefix, after);
        let mut collect = |rd: crate::btree::Reader<'_>| -> Result<()> {
            out.clear();
            rd.scan(start, |k, _| {
                if !has_prefix(k, prefix) {
                    return Ok(false);
                }
                out.push(k.to_vec());
                Ok(out.len() < max)
            })
        };
        let g = self.writer.lock();
        match g.as_ref() {
            Some(w) => collect(w.txn.reader(TreeId::PRIMARY))?,
            None => {
                drop(g);
                let _pin = self.readers.pin();
                self.read_view(|view| collect(view.snap.reader(TreeId::PRIMARY)))?
            }
        }
        Ok(resume_after(out.len(), max, out.last().map(Vec::as_slice)))
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
        self.inner.next(|f| c.entry_batch(f, BATCH))
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
        f: Fetch<'_, (Vec<u8>, EntryInfo)>,
        max: usize,
    ) -> Result<Option<Vec<u8>>> {
        let Fetch {
            prefix,
            after,
            raw,
            out,
        } = f;
        let _pin = self.readers.pin();
        let g = self.writer.lock();
        if let Some(w) = g.as_ref() {
            raw_batch(w.txn.reader(TreeId::PRIMARY), prefix, after, max, None, raw)?;
            let (snap, limit) = (w.txn.base.clone(), w.txn.base.mapping.len());
            drop(g);
            for (k, v) in raw.drain(..) {
                let info = info_of(&snap, limit, &v)?;
                out.push((k, info));
            }
        } else {
            drop(g);
            self.read_view(|view| {
                raw_batch(
                    view.snap.reader(TreeId::PRIMARY),
                    prefix,
                    after,
                    max,
                    None,
                    raw,
                )?;
                let (snap, limit) = (&view.snap, view.snap.record.file_len);
                out.clear();
                for (k, v) in raw.drain(..) {
                    let info = info_of(snap, limit, &v)?;
                    out.push((k, info));
                }
                Ok(())
            })?
        }
        // Every entry read becomes an item.
        Ok(resume_after(
            out.len(),
            max,
            out.last().map(|e| e.0.as_slice()),
        ))
    }
}
