//! Compaction: a fresh, minimal copy of a cache.
//!
//! Entries are copied in key order with their stored bytes as they are (no
//! recompression), their last-use ticks, insertion times and metadata, so
//! the copy is the same cache, laid out sequentially with full index pages
//! and no free space.

use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::Ordering;

use crate::btree::TreeId;
use crate::cache::read::{chunk_table, encode_chunk_table, Chunk};
use crate::cache::record::{Body, MetaRef, Record};
use crate::cache::{DatasetFileCache, Flushable, OpenOptions};
use crate::error::{Error, Result};
use crate::storage::allocator::ExtentKind;

/// What [`DatasetFileCache::compact_to`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// Entries copied.
    pub entries: u64,
    /// Length of the original file.
    pub bytes_before: u64,
    /// Length of the compacted file.
    pub bytes_after: u64,
}

impl DatasetFileCache {
    /// Writes a compacted copy of this cache to `dest` (a new file, or an
    /// existing cache file, which is replaced): same entries, same LRU
    /// order, same settings, minimal size. A read-write handle flushes
    /// first. Compacting in place is done by writing the copy beside the
    /// file and renaming it over the original (the `dfcache compact`
    /// command does that), so a crash in the middle leaves the original
    /// intact.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the cache is damaged (verify it first);
    /// I/O errors; errors creating `dest` (see
    /// [`DatasetFileCache::create`]).
    pub fn compact_to(&self, dest: impl AsRef<Path>) -> Result<CompactReport> {
        if !self.is_read_only() {
            self.flush()?;
        }
        let _pin = self.readers.pin();
        let snap = self.view.load().snap.clone();
        let rec = &snap.record;
        let limit = rec.file_len;
        let out = OpenOptions::new()
            .compression_level(None)
            .sync(self.store.opts.sync)
            .create(dest.as_ref(), rec.max_file_size)?;
        let mut report = CompactReport {
            bytes_before: self
                .store
                .backend
                .len()
                .map_err(|e| Error::io("reading the file length", e))?,
            ..Default::default()
        };
        let mut err = None;
        snap.reader(TreeId::PRIMARY)
            .scan(Bound::Unbounded, |key, val| {
                if let Err(e) = copy_entry(&out, &snap, limit, key, val) {
                    err = Some(e);
                    return Ok(false);
                }
                report.entries += 1;
                Ok(true)
            })?;
        if let Some(e) = err {
            return Err(e);
        }
        // Groups hold no extents: their entries copy as they are.
        snap.reader(TreeId::GROUPS).scan(Bound::Unbounded, |k, v| {
            out.with_writer(|w| {
                out.store
                    .with_tree(&mut w.txn, TreeId::GROUPS, |t, cx| t.insert(cx, k, v))?;
                if w.txn.dirty_nodes() > out.max_dirty_pages {
                    out.commit_locked(w, false)?;
                }
                Ok(())
            })?;
            Ok(true)
        })?;
        out.with_writer(|w| {
            w.txn.meta.max_age_ms = rec.max_age_ms;
            out.max_age_ms.store(rec.max_age_ms, Ordering::Release);
            out.clock.store(
                rec.clock.max(out.clock.load(Ordering::Acquire)),
                Ordering::Release,
            );
            out.commit_locked(w, true)
        })?;
        report.bytes_after = out
            .store
            .backend
            .len()
            .map_err(|e| Error::io("reading the file length", e))?;
        Ok(report)
    }
}

/// Copies one entry (record fields kept, extents rewritten) into `out`.
fn copy_entry(
    out: &DatasetFileCache,
    snap: &crate::storage::Snapshot,
    limit: u64,
    key: &[u8],
    val: &[u8],
) -> Result<()> {
    let r = Record::decode(val)?;
    let bytes_at = |off: u64, len: u64| {
        snap.bytes(off, len, limit)
            .ok_or_else(|| Error::corrupt("value", off, "extent past the end of the file"))
    };
    out.with_writer(|w| {
        let mut n = r;
        let mut stored_total = r.stored_len();
        match r.body {
            Body::Extent { off, len } => {
                let b = bytes_at(off, len)?;
                n.body = Body::Extent {
                    off: out.write_extent(w, &[b], ExtentKind::Value)?,
                    len,
                };
            }
            Body::Chunked { off, len } => {
                let chunks = chunk_table(snap, &r, off, len, limit)?;
                let mut copied: Vec<Chunk> = Vec::with_capacity(chunks.len());
                for c in chunks {
                    let b = bytes_at(c.off, c.stored as u64)?;
                    stored_total += c.stored as u64;
                    copied.push(Chunk {
                        off: out.write_extent(w, &[b], ExtentKind::Value)?,
                        ..c
                    });
                }
                let table = encode_chunk_table(&copied, r.raw_len);
                n.crc = crc32fast::hash(&table);
                n.body = Body::Chunked {
                    off: out.write_extent(w, &[&table], ExtentKind::ChunkTable)?,
                    len: table.len() as u64,
                };
            }
            Body::Inline { .. } | Body::Absent => {}
        }
        if let Some(MetaRef::Extent { off, len, crc }) = r.meta {
            let b = bytes_at(off, len)?;
            n.meta = Some(MetaRef::Extent {
                off: out.write_extent(w, &[b], ExtentKind::Meta)?,
                len,
                crc,
            });
        }
        let bytes = n.encode(r.inline(val), r.meta_inline(val).unwrap_or(&[]));
        out.install(w, key, &n, bytes, stored_total)?;
        if w.txn.dirty_nodes() > out.max_dirty_pages {
            out.commit_locked(w, false)?;
        }
        Ok(())
    })
}
