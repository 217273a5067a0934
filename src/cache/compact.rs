//! Compaction: a fresh, minimal copy of a cache.
//!
//! Entries are copied in key order with their last-use ticks, insertion
//! times and metadata, so the copy is the same cache, laid out sequentially
//! with full index pages and no free space. Dictionaries keep their ids and
//! groups come along. By default stored bytes are copied as they are; with
//! [`CompactOptions::recompress`] values are re-encoded with the current
//! default dictionary for their key.

use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::Ordering;

use crate::btree::TreeId;
use crate::cache::codec;
use crate::cache::dict::decode_desc;
use crate::cache::read::{chunk_table, encode_chunk_table, Chunk};
use crate::cache::record::{Body, Codec, MetaRef, Record};
use crate::cache::verify::{Progress, PROGRESS_EVERY};
use crate::cache::{DatasetFileCache, Flushable, OpenOptions, Writer, CHUNK_RAW, INLINE_MAX};
use crate::error::{Error, Result};
use crate::storage::allocator::ExtentKind;
use crate::storage::Snapshot;

/// What [`DatasetFileCache::compact_to_with`] does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactOptions {
    /// Re-encode every value with the current default dictionary for its key
    /// (after training a new one), at the handle's compression level.
    /// Otherwise stored bytes are copied as they are.
    pub recompress: bool,
}

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
    /// order, same settings, dictionaries and groups, minimal size. A
    /// read-write handle flushes first. Compacting in place is done by
    /// writing the copy beside the file and renaming it over the original
    /// (the `dfcache compact` command does that), so a crash in the middle
    /// leaves the original intact. Compact a file no other process is
    /// writing.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the cache is damaged (verify it first);
    /// I/O errors; errors creating `dest` (see
    /// [`DatasetFileCache::create`]).
    pub fn compact_to(&self, dest: impl AsRef<Path>) -> Result<CompactReport> {
        self.compact_to_with(dest, CompactOptions::default())
    }

    /// [`compact_to`](Self::compact_to) with options.
    ///
    /// # Errors
    /// As [`compact_to`](Self::compact_to).
    pub fn compact_to_with(
        &self,
        dest: impl AsRef<Path>,
        opts: CompactOptions,
    ) -> Result<CompactReport> {
        self.compact_to_with_progress(dest, opts, &mut |_| {})
    }

    /// [`compact_to_with`](Self::compact_to_with), calling `progress` as
    /// entries are copied.
    ///
    /// # Errors
    /// As [`compact_to`](Self::compact_to).
    pub fn compact_to_with_progress(
        &self,
        dest: impl AsRef<Path>,
        opts: CompactOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<CompactReport> {
        // Writing over the file being read would truncate it under its own
        // mapping.
        if let Ok(d) = std::fs::metadata(dest.as_ref()) {
            use std::os::unix::fs::MetadataExt;
            let me = self
                .store
                .backend
                .file()
                .metadata()
                .map_err(|e| Error::io("reading the file's metadata", e))?;
            if d.dev() == me.dev() && d.ino() == me.ino() {
                return Err(Error::InvalidArgument(
                    "cannot compact a cache onto its own file: write to another file and rename it"
                        .into(),
                ));
            }
        }
        if !self.is_read_only() {
            self.flush()?;
        }
        let _pin = self.readers.pin();
        let snap = self.view.load().snap.clone();
        let rec = &snap.record;
        let limit = rec.file_len;
        let level = if opts.recompress {
            self.compression_level
        } else {
            None
        };
        let out = OpenOptions::new()
            .compression_level(level)
            .sync(self.store.opts.sync)
            // Uncapped while copying: eviction needs the LastUsed index,
            // which is copied last. The cap is set at the end.
            .create(dest.as_ref(), 0)?;
        let mut report = CompactReport {
            bytes_before: self
                .store
                .backend
                .len()
                .map_err(|e| Error::io("reading the file length", e))?,
            ..Default::default()
        };
        // Records are copied as they are, so their insertion times must
        // count from the same base.
        out.with_writer(|w| {
            w.txn.meta.time_base_ms = rec.time_base_ms;
            out.time_base_ms.store(rec.time_base_ms, Ordering::Release);
            Ok(())
        })?;
        // Dictionaries first, with their ids (values refer to them), then
        // groups: both copy entry for entry.
        for id in [TreeId::DICTS, TreeId::GROUPS] {
            let mut err = None;
            snap.reader(id).scan(Bound::Unbounded, |k, v| {
                if let Err(e) = copy_index_entry(&out, &snap, limit, id, k, v) {
                    err = Some(e);
                    return Ok(false);
                }
                Ok(true)
            })?;
            if let Some(e) = err {
                return Err(e);
            }
        }
        out.dicts.invalidate();
        let mut err = None;
        let mut p = Progress {
            entries_total: rec.entries,
            bytes_total: rec.stored_bytes,
            ..Default::default()
        };
        snap.reader(TreeId::PRIMARY)
            .scan(Bound::Unbounded, |key, val| {
                p.entries += 1;
                if let Ok(r) = Record::decode(val) {
                    p.bytes += r.stored_len();
                }
                if p.entries.is_multiple_of(PROGRESS_EVERY) {
                    progress(p);
                }
                let r = match opts.recompress {
                    true => self.copy_recompressed(&out, &snap, limit, key, val),
                    false => copy_entry(&out, &snap, limit, key, val),
                };
                if let Err(e) = r {
                    err = Some(e);
                    return Ok(false);
                }
                report.entries += 1;
                Ok(true)
            })?;
        if let Some(e) = err {
            return Err(e);
        }
        // A last report with everything copied, so a bar reaches its end.
        progress(p);
        copy_last_used(&out, &snap, report.entries)?;
        out.with_writer(|w| {
            w.txn.meta.max_age_ms = rec.max_age_ms;
            out.max_age_ms.store(rec.max_age_ms, Ordering::Release);
            out.clock.store(
                rec.clock.max(out.clock.load(Ordering::Acquire)),
                Ordering::Release,
            );
            out.commit_locked(w, true)
        })?;
        if rec.max_file_size != 0 {
            // Re-encoding can make the copy larger than the cap: then the
            // least recently used entries go, as in any cache at its cap.
            out.set_maximum_file_size(rec.max_file_size)?;
            report.entries = out.len();
        }
        report.bytes_after = out
            .store
            .backend
            .len()
            .map_err(|e| Error::io("reading the file length", e))?;
        Ok(report)
    }

    /// Copies one entry, its value decoded and encoded again for `out`.
    fn copy_recompressed(
        &self,
        out: &DatasetFileCache,
        snap: &Snapshot,
        limit: u64,
        key: &[u8],
        val: &[u8],
    ) -> Result<()> {
        let r = Record::decode(val)?;
        let raw = match r.body {
            Body::Inline { .. } => {
                let s = r.inline(val);
                match r.codec {
                    Codec::Raw => s.to_vec(),
                    Codec::Zstd => {
                        let d = self.dict(snap, r.dict)?;
                        codec::decompress_with(s, r.raw_len, CHUNK_RAW, 0, d.as_deref())?
                    }
                }
            }
            Body::Extent { off, len } => {
                let s = snap.bytes(off, len, limit).ok_or_else(|| {
                    Error::corrupt("value", off, "extent past the end of the file")
                })?;
                if crc32fast::hash(s) != r.crc {
                    return Err(Error::corrupt("value", off, "fails its checksum"));
                }
                match r.codec {
                    Codec::Raw => s.to_vec(),
                    Codec::Zstd => {
                        let d = self.dict(snap, r.dict)?;
                        codec::decompress_with(s, r.raw_len, CHUNK_RAW, off, d.as_deref())?
                    }
                }
            }
            // Chunked values and negative entries are copied as they are.
            Body::Chunked { .. } | Body::Absent => return copy_entry(out, snap, limit, key, val),
        };
        let dict = out.default_dict(key)?;
        let (c, enc) =
            codec::compress_with(&raw, out.compression_level, &out.backoff, dict.as_deref())?;
        let stored = enc.as_deref().unwrap_or(&raw);
        out.with_writer(|w| {
            let mut n = r;
            n.codec = c;
            n.crc = crc32fast::hash(stored);
            n.dict = match (c, &dict) {
                (Codec::Zstd, Some(d)) => d.id,
                _ => 0,
            };
            n.body = if stored.len() <= INLINE_MAX {
                Body::Inline {
                    start: 0,
                    len: stored.len(),
                }
            } else {
                Body::Extent {
                    off: out.write_extent(w, &[stored], ExtentKind::Value)?.0,
                    len: stored.len() as u64,
                }
            };
            let inline: &[u8] = if matches!(n.body, Body::Inline { .. }) {
                stored
            } else {
                &[]
            };
            copy_meta(out, w, snap, limit, &mut n)?;
            let bytes = n.encode(inline, r.meta_inline(val).unwrap_or(&[]));
            out.install_with(w, key, &n, bytes, stored.len() as u64, false)?;
            out.bound_txn(w)
        })
    }
}

/// Copies the LastUsed index in tick order, after the entries: appending
/// fills its pages, where inserting ticks in key order would leave them a
/// third empty. Each entry is checked against the record it names, so a
/// damaged source is refused rather than copied.
fn copy_last_used(out: &DatasetFileCache, snap: &Snapshot, entries: u64) -> Result<()> {
    let primary = snap.reader(TreeId::PRIMARY);
    let mut copied = 0u64;
    let mut err = None;
    snap.reader(TreeId::LAST_USED)
        .scan(Bound::Unbounded, |tick, key| {
            let r = match primary.get(key)? {
                Some(v) => Record::decode(v)?,
                None => {
                    err = Some(Error::corrupt(
                        "LastUsed index",
                        0,
                        "names a key the primary index does not hold",
                    ));
                    return Ok(false);
                }
            };
            if tick != r.tick.to_be_bytes() {
                err = Some(Error::corrupt(
                    "LastUsed index",
                    0,
                    "tick differs from the entry record's",
                ));
                return Ok(false);
            }
            let res = out.with_writer(|w| {
                out.store
                    .with_tree(&mut w.txn, TreeId::LAST_USED, |t, cx| {
                        t.insert(cx, tick, key)
                    })?;
                out.bound_txn(w)
            });
            if let Err(e) = res {
                err = Some(e);
                return Ok(false);
            }
            copied += 1;
            Ok(true)
        })?;
    if let Some(e) = err {
        return Err(e);
    }
    if copied != entries {
        return Err(Error::corrupt(
            "LastUsed index",
            0,
            format!("holds {copied} entries for {entries} records"),
        ));
    }
    Ok(())
}

/// Copies an entry of the dictionaries or groups index; a dictionary's
/// bytes get a new extent.
fn copy_index_entry(
    out: &DatasetFileCache,
    snap: &Snapshot,
    limit: u64,
    id: TreeId,
    k: &[u8],
    v: &[u8],
) -> Result<()> {
    out.with_writer(|w| {
        let mut v = v.to_vec();
        if id == TreeId::DICTS && k.first() == Some(&1) {
            // Same bytes in a new place: the checksum stays.
            let (off, len, _) = decode_desc(&v)?;
            let b = snap
                .bytes(off, len, limit)
                .ok_or_else(|| Error::corrupt("dictionary", off, "past the end of the file"))?;
            let n = out.write_extent(w, &[b], ExtentKind::Dict)?.0;
            v[..8].copy_from_slice(&n.to_le_bytes());
        }
        out.store
            .with_tree(&mut w.txn, id, |t, cx| t.insert(cx, k, &v))?;
        out.bound_txn(w)
    })
}

/// Gives a record's metadata extent (if any) a copy in `out`.
fn copy_meta(
    out: &DatasetFileCache,
    w: &mut Writer,
    snap: &Snapshot,
    limit: u64,
    n: &mut Record,
) -> Result<()> {
    if let Some(MetaRef::Extent { off, len, crc }) = n.meta {
        let b = snap
            .bytes(off, len, limit)
            .ok_or_else(|| Error::corrupt("metadata", off, "past the end of the file"))?;
        n.meta = Some(MetaRef::Extent {
            off: out.write_extent(w, &[b], ExtentKind::Meta)?.0,
            len,
            crc,
        });
    }
    Ok(())
}

/// Copies one entry (record fields kept, extents rewritten) into `out`.
fn copy_entry(
    out: &DatasetFileCache,
    snap: &Snapshot,
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
                    off: out.write_extent(w, &[b], ExtentKind::Value)?.0,
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
                        off: out.write_extent(w, &[b], ExtentKind::Value)?.0,
                        ..c
                    });
                }
                let table = encode_chunk_table(&copied, r.raw_len);
                let (off, crc) = out.write_extent(w, &[&table], ExtentKind::ChunkTable)?;
                n.crc = crc;
                n.body = Body::Chunked {
                    off,
                    len: table.len() as u64,
                };
            }
            Body::Inline { .. } | Body::Absent => {}
        }
        copy_meta(out, w, snap, limit, &mut n)?;
        let bytes = n.encode(r.inline(val), r.meta_inline(val).unwrap_or(&[]));
        out.install_with(w, key, &n, bytes, stored_total, false)?;
        out.bound_txn(w)
    })
}
