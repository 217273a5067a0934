//! Ordered iteration over entries with their values.
//!
//! A scan walks the primary index's leaves a batch at a time instead of
//! descending from the root once per key, and it is not a use: it leaves
//! the LRU order and the hit and miss counters alone, so exporting or
//! checking a cache does not make every entry look recently used.

use std::sync::Arc;

use crate::btree::TreeId;
use crate::cache::keys::{raw_batch, resume_after, Batched, Fetch, RawEntries, BATCH};
use crate::cache::read::{Found, ValueSrc};
use crate::cache::record::{Body, Record};
use crate::cache::slots::{Counters, Note};
use crate::cache::value::Value;
use crate::cache::DatasetFileCache;
use crate::error::{Error, Result};

/// While the caller reads one value, a later one is loaded ahead of it
/// (`Batched::peek` of this: the one after the next): values lie
/// scattered over the file, and the wait for a value's first bytes (a TLB
/// and cache miss) was a third of a scan's time, since nothing else
/// overlapped with it. Loading the next one instead measured the same.
const PREFETCH_AHEAD: usize = 1;
/// Cache lines at the start of that value loaded ahead (the CPU's own
/// prefetcher follows the rest of the page once the caller streams).
const PREFETCH_LINES: usize = 8;

/// Iterator over (key, [`Value`]) in ascending key order, from
/// [`DatasetFileCache::scan`]. Like [`Keys`](crate::Keys), not a snapshot:
/// every entry present for the whole scan is returned exactly once.
pub struct Scan<'c> {
    cache: &'c DatasetFileCache,
    inner: Batched<(Vec<u8>, Value<'c>)>,
}

impl<'c> Iterator for Scan<'c> {
    type Item = Result<(Vec<u8>, Value<'c>)>;

    fn next(&mut self) -> Option<Self::Item> {
        let c = self.cache;
        let item = self.inner.next(|f| c.value_batch(f, BATCH));
        if let Some((_, v)) = self.inner.peek(PREFETCH_AHEAD) {
            v.prefetch(PREFETCH_LINES);
        }
        item
    }
}

impl DatasetFileCache {
    /// Every entry whose key starts with `prefix`, with its value, in
    /// ascending key order. Negative entries and expired entries are
    /// skipped. A scan is not a use: it changes neither the LRU order nor
    /// the hit and miss counters. Raw values are not copied (each
    /// [`Value`] pins its bytes like one from [`get`](Self::get); the
    /// iterator holds up to 256 of them ahead of the caller).
    ///
    /// # Errors
    /// The iterator yields [`Error::Corrupt`] for a damaged index. A value
    /// failing its checksum is dropped like on `get` (read-write handle) or
    /// yielded as [`Error::Corrupt`] (read-only handle). Handles that check
    /// every read (read-only ones, and those opened with
    /// [`check_every_read`](crate::OpenOptions::check_every_read)) check
    /// each index page the entries come from again, since it holds the only
    /// checksum of an inline value: a page that fails is a damaged index.
    pub fn scan(&self, prefix: &[u8]) -> Result<Scan<'_>> {
        Ok(Scan {
            cache: self,
            inner: Batched::new(prefix),
        })
    }

    /// The entries with their values among the next `max` index entries
    /// with `prefix` after `after`.
    fn value_batch<'c>(
        &'c self,
        f: Fetch<'_, (Vec<u8>, Value<'c>)>,
        max: usize,
    ) -> Result<Option<Vec<u8>>> {
        let Fetch {
            prefix,
            after,
            raw,
            out,
        } = f;
        // Pinned before the records are read: the extents they name stay
        // valid while this pin (and each Value's, taken inside it) lives.
        let pin = self.readers.pin();
        let g = self.writer.lock();
        let Some(w) = g.as_ref() else {
            drop(g);
            return self.value_batch_read_only(prefix, after, max, raw, out);
        };
        let snap = w.txn.base.clone();
        let recheck = self.checked.is_none().then_some(&*snap);
        raw_batch(
            w.txn.reader(TreeId::PRIMARY),
            prefix,
            after,
            max,
            recheck,
            raw,
        )?;
        drop(g);
        let more = resume_after(raw.len(), max, raw.last().map(|e| e.0.as_slice()));
        // Uncommitted values may lie past the committed length.
        let limit = snap.mapping.len();
        for (k, rec) in raw.drain(..) {
            let r = Record::decode(&rec)?;
            if self.expired(&r) {
                continue;
            }
            // The record is a copy: an inline value is handed out as a
            // range of it (shared), others point into the map.
            let found = match r.body {
                Body::Inline { .. } => Found::Overlay(Arc::from(&rec[..])),
                _ => Found::Committed(&rec),
            };
            let v = match self.value_of(&snap, &r, &rec, &found, limit) {
                Ok(None) => continue,
                Ok(Some(ValueSrc::Mapped(m))) => Value::mapped(m, self.readers.pin()),
                Ok(Some(ValueSrc::Owned(v))) => Value::owned(v),
                Ok(Some(ValueSrc::Shared(s, l))) => match found {
                    Found::Overlay(a) => Value::shared(a, s, l),
                    Found::Committed(_) => {
                        return Err(crate::internal!("shared value of a copied record"))
                    }
                },
                Err(Error::Corrupt { .. }) => {
                    let slot = pin.data();
                    Counters::add(&slot.counters.corrupt_drops, 1);
                    self.note(slot, &k, Note::Corrupt(r.inserted));
                    continue;
                }
                Err(e) => return Err(e),
            };
            out.push((k, v));
        }
        Ok(more)
    }

    /// `value_batch` for read-only handles: copies the values inside a
    /// seqlock section (another process may be writing the file).
    fn value_batch_read_only(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        max: usize,
        raw: &mut RawEntries,
        items: &mut Vec<(Vec<u8>, Value<'_>)>,
    ) -> Result<Option<Vec<u8>>> {
        let (out, more) = self.read_view(|view| {
            // A read-only handle checks every read.
            let snap = Some(&*view.snap);
            raw_batch(
                view.snap.reader(TreeId::PRIMARY),
                prefix,
                after,
                max,
                snap,
                raw,
            )?;
            let more = resume_after(raw.len(), max, raw.last().map(|e| e.0.as_slice()));
            let mut out = Vec::with_capacity(raw.len());
            for (k, rec) in raw.drain(..) {
                let r = Record::decode(&rec)?;
                if self.expired(&r) {
                    continue;
                }
                // The record is a copy: inline values come back as ranges
                // of it.
                let rec: Arc<[u8]> = Arc::from(&rec[..]);
                let found = Found::Overlay(rec.clone());
                let limit = view.snap.record.file_len;
                let v = match self.value_of(&view.snap, &r, &rec, &found, limit)? {
                    None => continue,
                    Some(ValueSrc::Mapped(m)) => m.as_slice().to_vec(),
                    Some(ValueSrc::Owned(v)) => v,
                    Some(ValueSrc::Shared(s, l)) => rec
                        .get(s..s + l)
                        .ok_or_else(|| crate::internal!("inline value outside its record"))?
                        .to_vec(),
                };
                out.push((k, v));
            }
            Ok((out, more))
        })?;
        items.extend(out.into_iter().map(|(k, v)| (k, Value::owned(v))));
        Ok(more)
    }
}
