//! Ordered iteration over keys.

use std::collections::VecDeque;
use std::ops::Bound;

use crate::btree::TreeId;
use crate::cache::read::{info_of, EntryInfo};
use crate::cache::DatasetFileCache;
use crate::error::Result;

/// Keys fetched per batch (each batch takes the writer lock briefly).
const BATCH: usize = 256;

/// Iterator over the keys of a cache in ascending byte order, from
/// [`DatasetFileCache::keys`].
///
/// It is not a snapshot: it fetches keys in batches, and changes made
/// between batches show up (or not) depending on where they fall relative to
/// its position. Every key present for the whole iteration is returned
/// exactly once.
pub struct Keys<'c> {
    cache: &'c DatasetFileCache,
    prefix: Vec<u8>,
    last: Option<Vec<u8>>,
    batch: VecDeque<Vec<u8>>,
    done: bool,
}

impl Iterator for Keys<'_> {
    type Item = Result<Vec<u8>>;

    fn next(&mut self) -> Option<Result<Vec<u8>>> {
        if self.batch.is_empty() && !self.done {
            match self
                .cache
                .key_batch(&self.prefix, self.last.as_deref(), BATCH)
            {
                Ok(b) => {
                    if b.len() < BATCH {
                        self.done = true;
                    }
                    self.batch = b.into();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        let k = self.batch.pop_front()?;
        self.last = Some(k.clone());
        Some(Ok(k))
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
            prefix: prefix.to_vec(),
            last: None,
            batch: VecDeque::new(),
            done: false,
        })
    }

    /// Up to `max` keys with `prefix` after `after` (or from the start).
    pub(crate) fn key_batch(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        max: usize,
    ) -> Result<Vec<Vec<u8>>> {
        let start = match after {
            Some(k) => Bound::Excluded(k),
            None if prefix.is_empty() => Bound::Unbounded,
            None => Bound::Included(prefix),
        };
        let mut out = Vec::new();
        let mut collect = |k: &[u8], _: &[u8]| {
            if !k.starts_with(prefix) {
                return Ok(false);
            }
            out.push(k.to_vec());
            Ok(out.len() < max)
        };
        let g = self.writer.lock();
        match g.as_ref() {
            Some(w) => w.txn.reader(TreeId::PRIMARY).scan(start, &mut collect)?,
            None => {
                drop(g);
                let _pin = self.readers.pin();
                let view = self.view.load();
                view.snap
                    .reader(TreeId::PRIMARY)
                    .scan(start, &mut collect)?;
            }
        }
        Ok(out)
    }
}

/// Iterator over (key, [`EntryInfo`]) in ascending key order, from
/// [`DatasetFileCache::entries`]. Like [`Keys`], not a snapshot.
pub struct Entries<'c> {
    cache: &'c DatasetFileCache,
    prefix: Vec<u8>,
    last: Option<Vec<u8>>,
    batch: VecDeque<(Vec<u8>, EntryInfo)>,
    done: bool,
}

impl Iterator for Entries<'_> {
    type Item = Result<(Vec<u8>, EntryInfo)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.batch.is_empty() && !self.done {
            match self
                .cache
                .entry_batch(&self.prefix, self.last.as_deref(), BATCH)
            {
                Ok(b) => {
                    if b.len() < BATCH {
                        self.done = true;
                    }
                    self.batch = b.into();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        let e = self.batch.pop_front()?;
        self.last = Some(e.0.clone());
        Some(Ok(e))
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
            prefix: prefix.to_vec(),
            last: None,
            batch: VecDeque::new(),
            done: false,
        })
    }

    fn entry_batch(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        max: usize,
    ) -> Result<Vec<(Vec<u8>, EntryInfo)>> {
        let start = match after {
            Some(k) => Bound::Excluded(k),
            None if prefix.is_empty() => Bound::Unbounded,
            None => Bound::Included(prefix),
        };
        let mut raw: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut collect = |k: &[u8], v: &[u8]| {
            if !k.starts_with(prefix) {
                return Ok(false);
            }
            raw.push((k.to_vec(), v.to_vec()));
            Ok(raw.len() < max)
        };
        let _pin = self.readers.pin();
        let (snap, limit) = {
            let g = self.writer.lock();
            match g.as_ref() {
                Some(w) => {
                    w.txn.reader(TreeId::PRIMARY).scan(start, &mut collect)?;
                    (w.txn.base.clone(), w.txn.base.mapping.len())
                }
                None => {
                    drop(g);
                    let view = self.view.load();
                    view.snap
                        .reader(TreeId::PRIMARY)
                        .scan(start, &mut collect)?;
                    (view.snap.clone(), view.snap.record.file_len)
                }
            }
        };
        raw.into_iter()
            .map(|(k, v)| Ok((k, info_of(&snap, limit, &v)?)))
            .collect()
    }
}
