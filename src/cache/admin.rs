//! Settings and statistics: the maximum file size (changed in place; lowering
//! it evicts, moves what lies past the new size and truncates), the maximum
//! age, removal by key prefix, and [`CacheStats`].

use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::btree::TreeId;
use crate::cache::read::{chunk_table, encode_chunk_table};
use crate::cache::record::{Body, MetaRef, Record};
use crate::cache::write::Why;
use crate::cache::{DatasetFileCache, Writer};
use crate::error::{Error, Result};
use crate::header::{DATA_START, PAGE};
use crate::storage::allocator::ExtentKind;
use crate::storage::open::check_max_size;

/// What a cache holds and what it has done.
///
/// Sizes describe the file (including changes not yet flushed); counters
/// count what this handle has done since it was opened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Entries (negative entries included).
    pub entries: u64,
    /// Sum of the values' raw lengths.
    pub raw_bytes: u64,
    /// Bytes the values take in the file (after compression).
    pub stored_bytes: u64,
    /// Bytes of per-entry metadata.
    pub meta_bytes: u64,
    /// Length of the file on disk.
    pub file_size: u64,
    /// The maximum file size, 0 = unlimited.
    pub maximum_file_size: u64,
    /// The maximum entry age, if any.
    pub maximum_age: Option<Duration>,
    /// Lookups that found a value or negative entry.
    pub hits: u64,
    /// Lookups that found nothing (expired and dropped entries included).
    pub misses: u64,
    /// Entries stored.
    pub inserts: u64,
    /// Entries evicted to make room.
    pub evictions: u64,
    /// Lookups that found an entry past the maximum age.
    pub expirations: u64,
    /// Raw bytes of the evicted entries.
    pub bytes_evicted: u64,
    /// Values dropped because they failed their checksum.
    pub corrupt_drops: u64,
}

impl DatasetFileCache {
    /// Entry counts, sizes and this handle's counters.
    ///
    /// # Errors
    /// I/O errors reading the file length.
    pub fn stats(&self) -> Result<CacheStats> {
        let mut s = CacheStats::default();
        for slot in self.readers.all_slot_data() {
            let c = &slot.counters;
            s.hits += c.hits.load(Ordering::Relaxed);
            s.misses += c.misses.load(Ordering::Relaxed);
            s.expirations += c.expirations.load(Ordering::Relaxed);
            s.corrupt_drops += c.corrupt_drops.load(Ordering::Relaxed);
        }
        {
            let g = self.writer.lock();
            match g.as_ref() {
                Some(w) => {
                    let m = &w.txn.meta;
                    s.entries = m.entries;
                    s.raw_bytes = m.raw_bytes;
                    s.stored_bytes = m.stored_bytes;
                    s.meta_bytes = m.meta_bytes;
                    s.inserts = w.inserts;
                    s.evictions = w.evictions;
                    s.bytes_evicted = w.bytes_evicted;
                }
                None => {
                    let r = self.read_view(|view| Ok(view.snap.record.clone()))?;
                    s.entries = r.entries;
                    s.raw_bytes = r.raw_bytes;
                    s.stored_bytes = r.stored_bytes;
                    s.meta_bytes = r.meta_bytes;
                }
            }
        }
        s.file_size = self
            .store
            .backend
            .len()
            .map_err(|e| Error::io("reading the file length", e))?;
        s.maximum_file_size = self.maximum_file_size();
        s.maximum_age = self.maximum_age();
        Ok(s)
    }

    /// The maximum entry age, if one is set.
    pub fn maximum_age(&self) -> Option<Duration> {
        match self.max_age_ms.load(Ordering::Acquire) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// Sets (or clears, with `None`) the maximum entry age, stored in the
    /// file. Entries inserted longer ago than `age` count as misses and are
    /// dropped. Ages are kept in milliseconds (at least 1). Commits.
    ///
    /// # Errors
    /// [`Error::ReadOnly`]; I/O errors.
    pub fn set_maximum_age(&self, age: Option<Duration>) -> Result<()> {
        let ms = match age {
            None => 0,
            Some(d) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1),
        };
        self.with_writer(|w| {
            self.max_age_ms.store(ms, Ordering::Release);
            w.txn.meta.max_age_ms = ms;
            self.commit_locked(w, false)
        })
    }

    /// Removes every entry whose key starts with `prefix`; returns how many.
    ///
    /// # Errors
    /// [`Error::ReadOnly`]; I/O errors.
    pub fn remove_prefix(&self, prefix: &[u8]) -> Result<u64> {
        self.with_writer(|w| {
            let mut n = 0;
            loop {
                let mut keys = Vec::new();
                let start = if prefix.is_empty() {
                    Bound::Unbounded
                } else {
                    Bound::Included(prefix)
                };
                w.txn.reader(TreeId::PRIMARY).scan(start, |k, _| {
                    if !crate::cache::keys::has_prefix(k, prefix) {
                        return Ok(false);
                    }
                    keys.push(k.to_vec());
                    Ok(keys.len() < 1024)
                })?;
                if keys.is_empty() {
                    return Ok(n);
                }
                for k in keys {
                    self.headroom(w)?;
                    if self.remove_locked(w, &k, Why::Removed)?.is_some() {
                        n += 1;
                    }
                    self.bound_txn(w)?;
                }
            }
        })
    }

    /// Changes the maximum file size (0 = unlimited), in place. Raising it
    /// just records it. Lowering it evicts least recently used entries
    /// until the rest fits with the headroom later commits need (even when
    /// the file is already shorter than the new size: a file filled to
    /// just under it could not commit the removal an eviction makes),
    /// moves what lies past the new size below it (evicting an entry that
    /// no free range below the new size is long enough to take), and
    /// truncates the file; what still fits stays. Commits.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a size below 1 MiB; [`Error::ReadOnly`];
    /// [`Error::NoSpace`] when live [`Value`](crate::Value)s hold space past
    /// the new size (nothing is lost; the maximum stays as it was); I/O
    /// errors.
    pub fn set_maximum_file_size(&self, max: u64) -> Result<()> {
        check_max_size(max)?;
        self.with_writer(|w| {
            let old = w.txn.alloc.cap;
            if max == 0 || (old != 0 && max >= old) {
                return self.set_cap(w, max);
            }
            let r = self.shrink_to(w, max);
            w.txn.alloc.limit = 0;
            r?;
            self.set_cap(w, max)
        })
    }

    fn set_cap(&self, w: &mut Writer, max: u64) -> Result<()> {
        w.txn.alloc.cap = max;
        self.max_file_size.store(max, Ordering::Release);
        w.header_stale = true;
        self.commit_locked(w, false)
    }

    /// Bytes held by extents (live data and indexes). Space freed but not
    /// yet committed counts as free here, though it is not reusable yet.
    fn used_bytes(w: &Writer) -> u64 {
        let a = &w.txn.alloc;
        a.file_len.saturating_sub(DATA_START + a.free_bytes)
    }

    /// Makes everything fit below `max`: evict, then (with the allocator
    /// bounded by `max`) move entries and index nodes, commit, trim.
    fn shrink_to(&self, w: &mut Writer, max: u64) -> Result<()> {
        let headroom = DATA_START
            + (Self::reserve_pages(max) + crate::storage::COMMIT_SLACK_PAGES + 64) * PAGE
            + (max / 64).clamp(64 << 10, 32 << 20);
        let target = max.saturating_sub(headroom);
        loop {
            let used = Self::used_bytes(w);
            if used <= target {
                break;
            }
            let n = self.evict(w, 0, used - target)?;
            if !self.store.is_clean(&w.txn) {
                self.commit_locked(w, false)?;
            }
            if n == 0 {
                return Err(Error::NoSpace {
                    detail: format!("{used} bytes in use cannot be made to fit in {max}"),
                });
            }
        }
        // Space this transaction freed (a replaced value, say) counts as
        // free in `used_bytes` but stays quarantined until a commit: commit
        // now, while the whole file is still usable, so that the moves and
        // the commit below find it below `max`.
        if !w.txn.alloc.quarantine.is_empty() {
            self.commit_locked(w, false)?;
            self.store.wait_for_readers(&mut w.txn);
        }
        // From here on nothing may be placed past `max` (the evictions
        // above could still use the whole file).
        w.txn.alloc.limit = max;
        self.relocate_entries(w, max)?;
        self.relocate_dicts(w, max)?;
        for id in TreeId::ALL {
            self.store
                .with_tree(&mut w.txn, id, |t, cx| t.relocate_from(cx, max))?;
        }
        self.commit_locked(w, false)?;
        // What lay past `max` is free now; readers may still see it briefly.
        for i in 0..200 {
            self.store.reclaim(&mut w.txn);
            if w.txn.alloc.quarantine.max_end() <= max {
                break;
            }
            std::thread::sleep(Duration::from_millis(if i < 20 { 0 } else { 5 }));
        }
        self.commit_locked(w, true)?;
        if w.txn.alloc.file_len > max {
            return Err(Error::NoSpace {
                detail: format!(
                    "space past {max} is still referenced by live Values; the maximum file size stays {}",
                    w.txn.alloc.cap
                ),
            });
        }
        Ok(())
    }

    /// Moves values and metadata lying past `max` below it.
    fn relocate_entries(&self, w: &mut Writer, max: u64) -> Result<()> {
        let base = w.txn.base.clone();
        let limit = base.mapping.len();
        let mut moves = Vec::new();
        w.txn
            .reader(TreeId::PRIMARY)
            .scan(Bound::Unbounded, |k, v| {
                let r = Record::decode(v)?;
                let past = |off: u64, len: u64| off + len > max;
                let mut m = match r.body {
                    Body::Extent { off, len } | Body::Chunked { off, len } => past(off, len),
                    _ => false,
                };
                if let Body::Chunked { off, len } = r.body {
                    m |= chunk_table(&base, &r, off, len, limit)?
                        .iter()
                        .any(|c| past(c.off, c.stored as u64));
                }
                if let Some(MetaRef::Extent { off, len, .. }) = r.meta {
                    m |= past(off, len);
                }
                if m {
                    moves.push((k.to_vec(), v.to_vec()));
                }
                Ok(true)
            })?;
        for (k, v) in moves {
            let mut fresh = Vec::new();
            match self.move_entry(w, &k, &v, max, &mut fresh) {
                Ok(()) => {}
                // No free range below `max` is long enough (free space
                // there is in pieces): give back what the move took and
                // evict the entry instead.
                Err(Error::NoSpace { .. }) => {
                    for (off, len) in fresh {
                        self.store.free(&mut w.txn, off, len)?;
                    }
                    self.remove_locked(w, &k, Why::Evicted)?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Moves dictionaries lying past `max` below it.
    fn relocate_dicts(&self, w: &mut Writer, max: u64) -> Result<()> {
        let mut moves = Vec::new();
        w.txn
            .reader(TreeId::DICTS)
            .scan(Bound::Included(&[1]), |k, v| {
                if k.first() != Some(&1) {
                    return Ok(false);
                }
                let (off, len, _) = crate::cache::dict::decode_desc(v)?;
                if off + len > max {
                    moves.push((k.to_vec(), v.to_vec(), off, len));
                }
                Ok(true)
            })?;
        for (k, mut v, off, len) in moves {
            let mut frees = Vec::new();
            let n = self.copy_extent(w, off, len, ExtentKind::Dict, &mut frees)?;
            v[..8].copy_from_slice(&n.to_le_bytes());
            self.store
                .with_tree(&mut w.txn, TreeId::DICTS, |t, cx| t.insert(cx, &k, &v))?;
            for (o, l) in frees {
                self.store.free(&mut w.txn, o, l)?;
            }
        }
        Ok(())
    }

    /// Copies the extent `off..off+len` to a new place (never evicting).
    fn copy_extent(
        &self,
        w: &mut Writer,
        off: u64,
        len: u64,
        kind: ExtentKind,
        frees: &mut Vec<(u64, u64)>,
    ) -> Result<u64> {
        let base = w.txn.base.clone();
        let bytes = base
            .bytes(off, len, base.mapping.len())
            .ok_or_else(|| Error::corrupt("value", off, "extent past the end of the file"))?
            .to_vec();
        let n = self.store.alloc(&mut w.txn, len, kind)?;
        if self.store.write(&mut w.txn, n, &[&bytes])?.0 {
            self.publish(w);
        }
        frees.push((off, len));
        Ok(n)
    }

    /// Moves the parts of the entry `key` (record `rec`) lying past `max`
    /// below it. `fresh` collects the extents it allocated, for the caller
    /// to free if it fails part-way (nothing else has changed then).
    fn move_entry(
        &self,
        w: &mut Writer,
        key: &[u8],
        rec: &[u8],
        max: u64,
        fresh: &mut Vec<(u64, u64)>,
    ) -> Result<()> {
        let mut r = Record::decode(rec)?;
        let mut frees = Vec::new();
        match r.body {
            Body::Extent { off, len } if off + len > max => {
                let n = self.copy_extent(w, off, len, ExtentKind::Value, &mut frees)?;
                fresh.push((n, len));
                r.body = Body::Extent { off: n, len };
            }
            Body::Chunked { off, len } => {
                let base = w.txn.base.clone();
                let mut chunks = chunk_table(&base, &r, off, len, base.mapping.len())?;
                let mut changed = off + len > max;
                for c in chunks.iter_mut() {
                    if c.off + c.stored as u64 > max {
                        c.off = self.copy_extent(
                            w,
                            c.off,
                            c.stored as u64,
                            ExtentKind::Value,
                            &mut frees,
                        )?;
                        fresh.push((c.off, c.stored as u64));
                        changed = true;
                    }
                }
                if changed {
                    let table = encode_chunk_table(&chunks, r.raw_len);
                    let n =
                        self.store
                            .alloc(&mut w.txn, table.len() as u64, ExtentKind::ChunkTable)?;
                    fresh.push((n, table.len() as u64));
                    let (remapped, crc) = self.store.write(&mut w.txn, n, &[&table])?;
                    if remapped {
                        self.publish(w);
                    }
                    frees.push((off, len));
                    r.crc = crc;
                    r.body = Body::Chunked {
                        off: n,
                        len: table.len() as u64,
                    };
                }
            }
            _ => {}
        }
        if let Some(MetaRef::Extent { off, len, crc }) = r.meta {
            if off + len > max {
                let n = self.copy_extent(w, off, len, ExtentKind::Meta, &mut frees)?;
                fresh.push((n, len));
                r.meta = Some(MetaRef::Extent { off: n, len, crc });
            }
        }
        let old = Record::decode(rec)?;
        let bytes = r.encode(old.inline(rec), old.meta_inline(rec).unwrap_or(&[]));
        self.store.with_tree(&mut w.txn, TreeId::PRIMARY, |t, cx| {
            t.insert(cx, key, &bytes)
        })?;
        w.overlay.set(key, Some(Arc::from(bytes)));
        for (off, len) in frees {
            self.store.free(&mut w.txn, off, len)?;
        }
        Ok(())
    }
}
