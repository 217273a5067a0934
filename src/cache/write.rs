//! Writes: put, remove, clear, flush; applying readers' LRU notes; eviction
//! under the size cap.
//!
//! Space rule: a commit must always be possible, because a commit is what
//! turns freed space into reusable space (copy-on-write keeps the last
//! committed state intact until then). So values may only take space while
//! enough stays free for committing the current changes plus a reserve for
//! evicting; when that runs out the writer evicts least-recently-used
//! entries and commits.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::btree::TreeId;
use crate::cache::codec;
use crate::cache::overlay::Overlay;
use crate::cache::read::{chunk_table, encode_chunk_table, Chunk};
use crate::cache::record::{Body, Codec, MetaRef, Record, Stamp};
use crate::cache::slots::{Note, PendingKey};
use crate::cache::{check_key, DatasetFileCache, View, Writer, CHUNK_RAW, INLINE_MAX};
use crate::error::{Error, Result};
use crate::header::{DATA_START, PAGE};
use crate::storage::allocator::{align_up, ExtentKind, ALIGN};
use crate::storage::now_ms;

/// Longest metadata an entry may carry.
pub const MAX_META_LEN: usize = 64 << 10;
/// Metadata up to this length lives in the entry record.
pub(crate) const META_INLINE_MAX: usize = 128;

/// Refuses metadata over [`MAX_META_LEN`] with [`Error::InvalidArgument`].
pub(crate) fn check_meta_len(meta: &[u8]) -> Result<()> {
    if meta.len() > MAX_META_LEN {
        return Err(Error::InvalidArgument(format!(
            "metadata of {} bytes exceeds the limit of {MAX_META_LEN}",
            meta.len()
        )));
    }
    Ok(())
}

/// The bytes a record carries inline for metadata `meta` stored as `r`.
pub(crate) fn inline_meta(r: Option<MetaRef>, meta: &[u8]) -> &[u8] {
    match r {
        Some(MetaRef::Inline { .. }) => meta,
        _ => &[],
    }
}

/// Extents reserved for an entry not installed yet: (offset, length, kind).
pub(crate) type Held = Vec<(u64, u64, ExtentKind)>;

/// Uncommitted keys allowed per page of `max_dirty_pages` before a long
/// run of writes commits (about 150 bytes of memory each).
pub(crate) const OVERLAY_PER_PAGE: usize = 32;
/// Pages one entry change may dirty across the four trees it touches.
const OP_DIRTY_PAGES: u64 = 24;
/// Uses applied between two checks of the decoded nodes' count: a use
/// dirties at most two paths, so memory stays near `max_dirty_pages`.
const TOUCH_CHUNK: usize = 256;

/// How a value is stored: body, codec, CRC, raw length, inline bytes and
/// bytes stored (what an entry record and the counters need).
type StoredForm<'v> = (Body, Codec, u32, u64, &'v [u8], u64);

/// A value or chunk that finds no room in one piece is split into chunks
/// down to this many raw bytes (see [`DatasetFileCache::write_chunk`]).
const MIN_SPLIT: usize = 64 << 10;

/// Why an entry is removed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    Removed,
    Evicted,
    Expired,
    Corrupt,
}

/// What a put stores.
pub(crate) enum Payload<'a> {
    /// These bytes.
    Bytes(&'a [u8]),
    /// A negative entry.
    Absent,
}

impl DatasetFileCache {
    /// Stores `value` under `key`, replacing any earlier value. Visible to
    /// `get` at once; durable after [`flush`](crate::Flushable::flush).
    ///
    /// On a cache with a maximum file size, least recently used entries are
    /// evicted to make room. When nothing else is left, the old entry of
    /// `key` goes too (the put replaces it anyway): a value that fits the
    /// cache alone but not beside its old version is stored; should the
    /// put still fail, `key` is then absent.
    ///
    /// # Errors
    /// [`Error::InvalidKey`]; [`Error::ReadOnly`]; [`Error::ValueTooLarge`]
    /// when the value could never fit under the maximum file size;
    /// [`Error::NoSpace`] when live [`Value`](crate::Value)s hold the space
    /// needed; I/O errors (which poison the handle).
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.put_entry(key, Payload::Bytes(value), None)
    }

    /// Stores a negative entry: `key` is known not to exist at the source.
    pub(crate) fn put_absent(&self, key: &[u8]) -> Result<()> {
        self.put_entry(key, Payload::Absent, None)
    }

    /// Removes `key`; returns whether it was present.
    ///
    /// # Errors
    /// [`Error::InvalidKey`]; [`Error::ReadOnly`]; I/O errors.
    pub fn remove(&self, key: &[u8]) -> Result<bool> {
        check_key(key)?;
        self.with_writer(|w| {
            self.headroom(w)?;
            let removed = self.remove_locked(w, key, Why::Removed)?.is_some();
            self.bound_txn(w)?;
            Ok(removed)
        })
    }

    /// Drops every entry (and group and dictionary), commits, and shrinks
    /// the file to its minimum. The maximum file size and maximum age stay.
    ///
    /// # Errors
    /// [`Error::ReadOnly`]; I/O errors.
    pub fn clear(&self) -> Result<()> {
        self.with_writer(|w| {
            self.discard_notes();
            for id in [
                TreeId::PRIMARY,
                TreeId::LAST_USED,
                TreeId::GROUPS,
                TreeId::DICTS,
            ] {
                self.store.with_tree(&mut w.txn, id, |t, cx| {
                    t.drop_all(cx);
                    Ok(())
                })?;
            }
            self.store.reset_space(&mut w.txn)?;
            self.dicts.invalidate();
            let m = &mut w.txn.meta;
            m.entries = 0;
            m.raw_bytes = 0;
            m.stored_bytes = 0;
            m.meta_bytes = 0;
            self.entries.store(0, Ordering::Release);
            self.commit_locked(w, true)
        })
    }

    /// Stores an entry (value or negative entry) with optional metadata.
    pub(crate) fn put_entry(
        &self,
        key: &[u8],
        payload: Payload<'_>,
        meta: Option<&[u8]>,
    ) -> Result<()> {
        check_key(key)?;
        if let Some(m) = meta {
            check_meta_len(m)?;
        }
        // Compress outside the writer lock, with the key's default
        // dictionary if it has one.
        let encoded = match payload {
            Payload::Bytes(v) if v.len() as u64 <= CHUNK_RAW => {
                let dict = self.default_dict(key)?;
                let (c, out) = codec::compress_with(
                    v,
                    self.compression_level,
                    &self.backoff,
                    dict.as_deref(),
                )?;
                let id = match (c, &dict) {
                    (Codec::Zstd, Some(d)) => d.id,
                    _ => 0,
                };
                Some((c, out, id))
            }
            _ => None,
        };
        self.with_writer(|w| {
            (w.protect, w.replacing) = (Some(key.to_vec()), true);
            // The entry's extents are reserved until it is installed (a
            // commit for room in between must not record them unowned).
            let r = self.headroom(w).and_then(|()| {
                self.with_held(w, |w, held| {
                    self.put_parts(w, key, payload, meta, encoded, held)
                })
            });
            (w.protect, w.replacing) = (None, false);
            r
        })
    }

    fn put_parts(
        &self,
        w: &mut Writer,
        key: &[u8],
        payload: Payload<'_>,
        meta: Option<&[u8]>,
        encoded: Option<(Codec, Option<Vec<u8>>, u32)>,
        held: &mut Held,
    ) -> Result<()> {
        {
            let (body, codec, crc, raw_len, inline, stored_total) = match payload {
                Payload::Absent => (Body::Absent, Codec::Raw, 0, 0, &[][..], 0),
                Payload::Bytes(v) if v.len() as u64 > CHUNK_RAW => {
                    self.write_chunked(w, v, held)?
                }
                Payload::Bytes(v) => {
                    let (codec, out) = encoded
                        .as_ref()
                        .map(|(c, o, _)| (*c, o.as_deref()))
                        .unwrap_or((Codec::Raw, None));
                    let stored = out.unwrap_or(v);
                    if stored.len() <= INLINE_MAX {
                        (
                            Body::Inline {
                                start: 0,
                                len: stored.len(),
                            },
                            codec,
                            0,
                            v.len() as u64,
                            stored,
                            stored.len() as u64,
                        )
                    } else {
                        match self.write_reserved(w, &[stored], ExtentKind::Value, held) {
                            Ok((off, crc)) => {
                                let len = stored.len() as u64;
                                (
                                    Body::Extent { off, len },
                                    codec,
                                    crc,
                                    v.len() as u64,
                                    &[][..],
                                    len,
                                )
                            }
                            // No room in one piece even with everything
                            // evictable gone: the free space lies between
                            // index pages. Chunks can use the pieces.
                            Err(Error::NoSpace { .. }) if v.len() > MIN_SPLIT => {
                                self.write_chunked(w, v, held)?
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
            };
            let m = meta.unwrap_or(&[]);
            let meta_ref = self.store_meta(w, m, held)?;
            let meta_inline = inline_meta(meta_ref, m);
            let tick = self.clock.fetch_add(1, Ordering::AcqRel);
            let rec = Record {
                body,
                codec,
                crc,
                raw_len,
                tick,
                inserted: Stamp::at(now_ms(), self.time_base()),
                dict: if codec == Codec::Zstd {
                    encoded.as_ref().map_or(0, |e| e.2)
                } else {
                    0
                },
                meta: meta_ref,
            };
            let bytes = rec.encode(inline, meta_inline);
            self.claim_held(w, held)?;
            self.install(w, key, &rec, bytes, stored_total)?;
            w.inserts += 1;
            if self.pending.lock().len() >= crate::cache::read::PENDING_APPLY {
                self.apply_notes(w)?;
            }
            self.bound_txn(w)
        }
    }

    /// Keeps a long run of writes without a flush in bounded memory: past
    /// `max_dirty_pages` decoded nodes they are written out without a
    /// commit ([`Store::spill`](crate::storage::Store::spill)); past
    /// [`OVERLAY_PER_PAGE`] times that many uncommitted keys (each kept in
    /// memory for readers), the changes are committed.
    pub(crate) fn bound_txn(&self, w: &mut Writer) -> Result<()> {
        if w.overlay.len() > self.max_dirty_pages.saturating_mul(OVERLAY_PER_PAGE) {
            return self.commit_locked(w, false);
        }
        self.spill_if_over(w)
    }

    /// Writes the dirty nodes out without a commit once there are more than
    /// `max_dirty_pages` of them (spec §7.2). Safe between any two tree
    /// changes: readers see the committed state and the overlay, not the
    /// working trees.
    pub(crate) fn spill_if_over(&self, w: &mut Writer) -> Result<()> {
        if w.txn.dirty_nodes() > self.max_dirty_pages
            && self.store.spill(&mut w.txn, self.max_dirty_pages)?
        {
            self.publish(w);
        }
        Ok(())
    }

    /// Puts the encoded record `bytes` (describing `rec`) under `key` and
    /// releases what the entry it replaces held.
    pub(crate) fn install(
        &self,
        w: &mut Writer,
        key: &[u8],
        rec: &Record,
        bytes: Vec<u8>,
        stored_total: u64,
    ) -> Result<()> {
        self.install_with(w, key, rec, bytes, stored_total, true)
    }

    /// As [`install`](Self::install); without `last_used` the LastUsed
    /// entry is left for the caller to add (compaction adds them in tick
    /// order afterwards, which fills their pages).
    pub(crate) fn install_with(
        &self,
        w: &mut Writer,
        key: &[u8],
        rec: &Record,
        bytes: Vec<u8>,
        stored_total: u64,
        last_used: bool,
    ) -> Result<()> {
        let st = &self.store;
        let old = st.with_tree(&mut w.txn, TreeId::PRIMARY, |t, cx| {
            t.insert(cx, key, &bytes)
        })?;
        if last_used {
            st.with_tree(&mut w.txn, TreeId::LAST_USED, |t, cx| {
                t.insert(cx, &rec.tick.to_be_bytes(), key)
            })?;
        }
        let old = match old {
            Some(b) => {
                let r = Record::decode(&b)?;
                st.with_tree(&mut w.txn, TreeId::LAST_USED, |t, cx| {
                    t.remove(cx, &r.tick.to_be_bytes())
                })?;
                Some((r, b))
            }
            None => None,
        };
        w.overlay.set(key, Some(Arc::from(bytes)));
        let m = &mut w.txn.meta;
        m.raw_bytes += rec.raw_len;
        m.stored_bytes += stored_total;
        m.meta_bytes += rec.meta_len();
        match old {
            Some((r, b)) => {
                let freed = self.free_entry_space(w, &r, &b)?;
                let m = &mut w.txn.meta;
                m.raw_bytes = m.raw_bytes.saturating_sub(r.raw_len);
                m.stored_bytes = m.stored_bytes.saturating_sub(freed);
                m.meta_bytes = m.meta_bytes.saturating_sub(r.meta_len());
            }
            None => w.txn.meta.entries += 1,
        }
        self.entries.store(w.txn.meta.entries, Ordering::Release);
        Ok(())
    }

    /// Allocates and writes one extent holding the parts of `data`;
    /// returns its offset and the CRC-32 of its bytes.
    pub(crate) fn write_extent(
        &self,
        w: &mut Writer,
        data: &[&[u8]],
        kind: ExtentKind,
    ) -> Result<(u64, u32)> {
        self.write_into(w, data, Some(kind))
    }

    /// Takes room (allocated as `kind`, or reserved for `None`) and writes
    /// `data` there; returns its offset and CRC-32.
    fn write_into(
        &self,
        w: &mut Writer,
        data: &[&[u8]],
        kind: Option<ExtentKind>,
    ) -> Result<(u64, u32)> {
        let len: u64 = data.iter().map(|d| d.len() as u64).sum();
        let off = self.take_with_room(w, len.max(1), kind)?;
        let (remapped, crc) = self.store.write(&mut w.txn, off, data)?;
        if remapped {
            // The file outgrew the mapping: readers need the new one before
            // any record points past the old one.
            self.publish(w);
        }
        Ok((off, crc))
    }

    /// As [`write_extent`](Self::write_extent), into reserved space: records
    /// `(offset, length, kind)` in `held` for [`claim_held`](Self::claim_held)
    /// (or [`release_held`](Self::release_held) on failure).
    pub(crate) fn write_reserved(
        &self,
        w: &mut Writer,
        data: &[&[u8]],
        kind: ExtentKind,
        held: &mut Held,
    ) -> Result<(u64, u32)> {
        let (off, crc) = self.write_into(w, data, None)?;
        let len: u64 = data.iter().map(|d| d.len() as u64).sum();
        held.push((off, len.max(1), kind));
        Ok((off, crc))
    }

    /// Runs `f` with a list for the extents it reserves; gives them back
    /// if it fails.
    pub(crate) fn with_held<T>(
        &self,
        w: &mut Writer,
        f: impl FnOnce(&mut Writer, &mut Held) -> Result<T>,
    ) -> Result<T> {
        let mut held = Vec::new();
        let r = f(w, &mut held);
        if r.is_err() {
            self.release_held(w, &mut held);
        }
        r
    }

    /// Claims the reserved extents of an entry about to be installed (no
    /// commit can come between this and the install).
    pub(crate) fn claim_held(&self, w: &mut Writer, held: &mut Held) -> Result<()> {
        for (off, len, kind) in held.drain(..) {
            self.store.claim(&mut w.txn, off, len, kind)?;
        }
        Ok(())
    }

    /// Gives back reserved extents of an entry that is not installed.
    pub(crate) fn release_held(&self, w: &mut Writer, held: &mut Held) {
        for (off, _, _) in held.drain(..) {
            self.store.release(&mut w.txn, off);
        }
    }

    /// Stores `v` in chunks; returns what `put_parts` records of it: the
    /// chunked body, codec (raw: each chunk has its own), the table's CRC,
    /// the raw length, no inline bytes, and the bytes stored.
    fn write_chunked<'v>(
        &self,
        w: &mut Writer,
        v: &'v [u8],
        held: &mut Held,
    ) -> Result<StoredForm<'v>> {
        self.check_fits(w, v.len() as u64)?;
        let mut chunks = Vec::with_capacity(v.len().div_ceil(CHUNK_RAW as usize));
        let mut r = Ok(());
        for part in v.chunks(CHUNK_RAW as usize) {
            r = self.write_chunk(w, part, &mut chunks);
            if r.is_err() {
                break;
            }
        }
        // Reserved chunks are released with the rest if anything fails.
        held.extend(
            chunks
                .iter()
                .map(|c| (c.off, u64::from(c.stored), ExtentKind::Value)),
        );
        r?;
        let total: u64 = chunks.iter().map(|c| u64::from(c.stored)).sum();
        let table = encode_chunk_table(&chunks, v.len() as u64);
        let (off, crc) = self.write_reserved(w, &[&table], ExtentKind::ChunkTable, held)?;
        let len = table.len() as u64;
        Ok((
            Body::Chunked { off, len },
            Codec::Raw,
            crc,
            v.len() as u64,
            &[],
            total + len,
        ))
    }

    /// Compresses `part` and writes it into reserved space as one chunk,
    /// appended to `chunks` (the caller claims or releases them). When no
    /// room for it in one piece can be made (everything evictable is gone
    /// and the free space lies between index pages), it is stored as two
    /// chunks of half its raw bytes each, and so on down to [`MIN_SPLIT`]:
    /// chunks may have any raw length up to 1 MiB (spec §11.3). Errors as
    /// the allocation ([`Error::NoSpace`]) or the compression.
    pub(crate) fn write_chunk(
        &self,
        w: &mut Writer,
        part: &[u8],
        chunks: &mut Vec<Chunk>,
    ) -> Result<()> {
        let (codec, out) = codec::compress(part, self.compression_level, &self.backoff)?;
        let stored = out.as_deref().unwrap_or(part);
        match self.write_into(w, &[stored], None) {
            Ok((off, crc)) => {
                chunks.push(Chunk {
                    off,
                    stored: stored.len() as u32,
                    raw: part.len() as u32,
                    crc,
                    codec,
                });
                Ok(())
            }
            Err(Error::NoSpace { .. }) if part.len() > MIN_SPLIT => {
                let (a, b) = part.split_at(part.len() / 2);
                self.write_chunk(w, a, chunks)?;
                self.write_chunk(w, b, chunks)
            }
            Err(e) => Err(e),
        }
    }

    /// Removes `key` with the writer lock held; returns its record.
    pub(crate) fn remove_locked(
        &self,
        w: &mut Writer,
        key: &[u8],
        why: Why,
    ) -> Result<Option<Record>> {
        let st = &self.store;
        let Some(old) = st.with_tree(&mut w.txn, TreeId::PRIMARY, |t, cx| t.remove(cx, key))?
        else {
            return Ok(None);
        };
        let r = Record::decode(&old)?;
        st.with_tree(&mut w.txn, TreeId::LAST_USED, |t, cx| {
            t.remove(cx, &r.tick.to_be_bytes())
        })?;
        w.overlay.set(key, None);
        let freed = self.free_entry_space(w, &r, &old)?;
        let m = &mut w.txn.meta;
        m.entries = m.entries.saturating_sub(1);
        m.raw_bytes = m.raw_bytes.saturating_sub(r.raw_len);
        m.stored_bytes = m.stored_bytes.saturating_sub(freed);
        m.meta_bytes = m.meta_bytes.saturating_sub(r.meta_len());
        self.entries.store(m.entries, Ordering::Release);
        match why {
            Why::Evicted => {
                w.evictions += 1;
                w.bytes_evicted += r.raw_len;
            }
            Why::Removed | Why::Expired | Why::Corrupt => {}
        }
        Ok(Some(r))
    }

    /// Frees the extents an entry record refers to; returns the value bytes
    /// freed. A damaged chunk table leaks its chunks (verify reports them)
    /// rather than blocking the removal.
    fn free_entry_space(&self, w: &mut Writer, r: &Record, _rec: &[u8]) -> Result<u64> {
        let st = &self.store;
        let mut total = 0;
        match r.body {
            Body::Extent { off, len } => {
                st.free(&mut w.txn, off, len)?;
                total += len;
            }
            Body::Chunked { off, len } => {
                let base = w.txn.base.clone();
                if let Ok(chunks) = chunk_table(&base, r, off, len, base.mapping.len()) {
                    for c in chunks {
                        st.free(&mut w.txn, c.off, c.stored as u64)?;
                        total += c.stored as u64;
                    }
                }
                st.free(&mut w.txn, off, len)?;
                total += len;
            }
            Body::Inline { len, .. } => total += len as u64,
            Body::Absent => {}
        }
        if let Some(MetaRef::Extent { off, len, .. }) = r.meta {
            st.free(&mut w.txn, off, len)?;
        }
        Ok(total)
    }

    /// Makes the writer's state visible to readers.
    pub(crate) fn publish(&self, w: &mut Writer) {
        self.view.store(Arc::new(View {
            snap: w.txn.base.clone(),
            overlay: w.overlay.clone(),
            slot_seqs: [0; 4],
        }));
        self.store.published(&mut w.txn);
    }

    /// Commits with the writer lock held (flush, clear, eviction, size).
    pub(crate) fn commit_locked(&self, w: &mut Writer, trim: bool) -> Result<()> {
        // Applying readers' notes dirties LastUsed pages; when pages are
        // short, commit the changes so far first so that theirs free up.
        let need = self.store.commit_pages_needed(&w.txn) + OP_DIRTY_PAGES;
        if w.txn.alloc.available_pages() < need && !self.store.is_clean(&w.txn) {
            self.stamp_meta(w);
            self.commit_and_publish(w, false)?;
        }
        self.apply_notes(w)?;
        self.stamp_meta(w);
        if !trim && !w.header_stale && self.store.is_clean(&w.txn) {
            return Ok(());
        }
        self.commit_and_publish(w, trim)
    }

    /// Copies the LRU clock and the maximum age into the state to commit.
    fn stamp_meta(&self, w: &mut Writer) {
        w.txn.meta.clock = self.clock.load(Ordering::Acquire);
        w.txn.meta.max_age_ms = self.max_age_ms.load(Ordering::Acquire);
    }

    fn commit_and_publish(&self, w: &mut Writer, trim: bool) -> Result<()> {
        self.store.commit(&mut w.txn, trim)?;
        w.header_stale = false;
        w.overlay = Arc::new(Overlay::default());
        self.publish(w);
        Ok(())
    }

    /// Stores metadata for a record about to be written: none when `meta` is
    /// empty, in the record up to [`META_INLINE_MAX`] bytes, else in an
    /// extent of its own, written here into reserved space recorded in
    /// `held` (see [`write_reserved`](Self::write_reserved)).
    pub(crate) fn store_meta(
        &self,
        w: &mut Writer,
        meta: &[u8],
        held: &mut Held,
    ) -> Result<Option<MetaRef>> {
        Ok(match meta.len() {
            0 => None,
            n if n <= META_INLINE_MAX => Some(MetaRef::Inline { start: 0, len: n }),
            n => {
                let (off, crc) = self.write_reserved(w, &[meta], ExtentKind::Meta, held)?;
                Some(MetaRef::Extent {
                    off,
                    len: n as u64,
                    crc,
                })
            }
        })
    }

    /// Applies the notes readers left: LRU uses, expired and corrupt
    /// entries. Called before eviction and at commit (the LRU order is then
    /// exact), and when many notes wait.
    pub(crate) fn apply_notes(&self, w: &mut Writer) -> Result<()> {
        if !self.notes_pending.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let pending = {
            let mut p = self.pending.lock();
            for slot in self.readers.all_slot_data() {
                let mut notes = slot.notes.lock();
                p.absorb(&notes);
                notes.clear();
            }
            std::mem::take(&mut *p)
        };
        let mut hits: Vec<(PendingKey, u64)> = pending.hits.into_iter().collect();
        hits.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut rest = &hits[..];
        while !rest.is_empty() {
            self.keep_committable(w)?;
            let (batch, tail) = rest.split_at(self.touch_batch_len(w).min(rest.len()));
            self.touch_batch(w, batch)?;
            rest = tail;
        }
        for (k, n) in pending.drops {
            self.keep_committable(w)?;
            let (at, why) = match n {
                Note::Expired(at) => (at, Why::Expired),
                Note::Corrupt(at) => (at, Why::Corrupt),
                Note::Hit(_) => continue,
            };
            let cur = w.txn.reader(TreeId::PRIMARY).get(&k)?.map(|b| b.to_vec());
            if let Some(b) = cur {
                if Record::decode(&b).map(|r| r.inserted == at).unwrap_or(true) {
                    self.remove_locked(w, &k, why)?;
                }
            }
        }
        Ok(())
    }

    /// Inside a run of changes no caller bounds (applying a backlog of
    /// notes dirties two index paths per note): commits when the pages the
    /// commit needs run short under the cap (the commit releases what the
    /// changes replaced), and spills when the decoded nodes pass
    /// `max_dirty_pages`.
    fn keep_committable(&self, w: &mut Writer) -> Result<()> {
        let need = self.store.commit_pages_needed(&w.txn) + OP_DIRTY_PAGES;
        if w.txn.alloc.cap != 0 && w.txn.alloc.available_pages() < need {
            self.stamp_meta(w);
            self.commit_and_publish(w, false)
        } else {
            self.spill_if_over(w)
        }
    }

    /// Drops notes without applying them (the entries are gone).
    fn discard_notes(&self) {
        self.notes_pending.store(false, Ordering::Release);
        let mut p = self.pending.lock();
        for slot in self.readers.all_slot_data() {
            slot.notes.lock().clear();
        }
        *p = Default::default();
    }

    /// How many uses one batch of [`touch_batch`](Self::touch_batch) may
    /// apply: a commit may only come between batches (within one, the two
    /// indexes disagree), so under a cap a batch must fit the free pages
    /// (a use changes at most about a dozen pages). Without a cap the whole
    /// backlog is one batch: spills inside it bound memory, and LastUsed is
    /// then walked once in order (a backlog split in batches by key spread
    /// every batch's removals and insertions over the whole index).
    fn touch_batch_len(&self, w: &Writer) -> usize {
        if w.txn.alloc.cap == 0 {
            return usize::MAX;
        }
        let most = (self.max_dirty_pages / 2).max(1);
        let need = self.store.commit_pages_needed(&w.txn) + OP_DIRTY_PAGES;
        let spare = w.txn.alloc.available_pages().saturating_sub(need);
        usize::try_from(spare / 12)
            .unwrap_or(usize::MAX)
            .clamp(1, most)
    }

    /// Moves each key of `uses` (ascending) to its LRU position if that is
    /// newer than its own: the entry records in key order, then the
    /// LastUsed index's removals in the old ticks' order and its insertions
    /// in the new ticks' order (appends, mostly), so that consecutive
    /// changes share pages. A backlog of 100,000 uses took half a second
    /// one use at a time.
    fn touch_batch(&self, w: &mut Writer, uses: &[(PendingKey, u64)]) -> Result<()> {
        let st = &self.store;
        let mut moved: Vec<(u64, u64, &[u8])> = Vec::with_capacity(uses.len());
        for chunk in uses.chunks(TOUCH_CHUNK) {
            st.with_tree(&mut w.txn, TreeId::PRIMARY, |t, cx| {
                for (key, tick) in chunk {
                    let mut old_tick = None;
                    // Read keys are present, unless removed since.
                    t.update_existing(cx, key, |b| {
                        let r = Record::decode(b)?;
                        if r.tick >= *tick {
                            return Ok(b.to_vec());
                        }
                        old_tick = Some(r.tick);
                        Ok(r.with_tick(b, *tick))
                    })?;
                    if let Some(old) = old_tick {
                        moved.push((old, *tick, key));
                    }
                }
                Ok(())
            })?;
            self.spill_if_over(w)?;
        }
        moved.sort_unstable_by_key(|m| m.0);
        for chunk in moved.chunks(TOUCH_CHUNK) {
            st.with_tree(&mut w.txn, TreeId::LAST_USED, |t, cx| {
                for (old, _, _) in chunk {
                    t.remove_existing(cx, &old.to_be_bytes())?;
                }
                Ok(())
            })?;
            self.spill_if_over(w)?;
        }
        moved.sort_unstable_by_key(|m| m.1);
        for chunk in moved.chunks(TOUCH_CHUNK) {
            st.with_tree(&mut w.txn, TreeId::LAST_USED, |t, cx| {
                for (_, new, key) in chunk {
                    t.insert(cx, &new.to_be_bytes(), key)?;
                }
                Ok(())
            })?;
            self.spill_if_over(w)?;
        }
        Ok(())
    }

    /// Pages kept free beyond what a commit needs, so that entries can
    /// always be evicted (evicting dirties pages too).
    pub(crate) fn reserve_pages(cap: u64) -> u64 {
        (cap / PAGE / 32).clamp(16, 1024)
    }

    /// The largest stored value that fits in an empty cache of `cap` bytes.
    pub(crate) fn max_value_bytes(cap: u64) -> u64 {
        if cap == 0 {
            return u64::MAX;
        }
        let fixed = DATA_START
            + (crate::storage::COMMIT_SLACK_PAGES + 16 + OP_DIRTY_PAGES + Self::reserve_pages(cap))
                * PAGE;
        cap.saturating_sub(fixed)
    }

    fn check_fits(&self, w: &Writer, bytes: u64) -> Result<()> {
        let max = Self::max_value_bytes(w.txn.alloc.cap);
        if bytes > max {
            return Err(Error::ValueTooLarge { size: bytes, max });
        }
        Ok(())
    }

    /// The last resort of a write that finds no room: evicts the old entry
    /// of the key being written (which eviction otherwise spares, since the
    /// write replaces it anyway) and commits. Without this, a value that
    /// fits the cache alone but not beside its old version would fail with
    /// nothing else left to evict. Returns whether there was such an entry.
    pub(crate) fn evict_replaced(&self, w: &mut Writer) -> Result<bool> {
        if !w.replacing {
            return Ok(false);
        }
        let Some(key) = w.protect.take() else {
            return Ok(false);
        };
        if self.remove_locked(w, &key, Why::Evicted)?.is_none() {
            return Ok(false);
        }
        self.commit_locked(w, false)?;
        Ok(true)
    }

    /// Allocates `len` bytes as `kind`, evicting and committing as needed;
    /// with `kind` `None` reserves them instead: a commit made meanwhile (to
    /// find room for a later part of the same entry) does not record them,
    /// so the committed state never holds an extent no entry owns. The
    /// caller then claims them just before installing the entry, or
    /// releases them.
    fn take_with_room(&self, w: &mut Writer, len: u64, kind: Option<ExtentKind>) -> Result<u64> {
        self.check_fits(w, len)?;
        let len16 = align_up(len, ALIGN);
        self.make_room(w, len16)?;
        let mut extra = len16.max(64 << 10);
        let mut idle = false;
        loop {
            match self.store.reserve(&mut w.txn, len) {
                // Under a cap the room must leave what the next commit
                // needs: when nothing was evictable, make_room left the
                // decision to the allocation, and a value that took those
                // pages made the commit after it impossible (the handle
                // was poisoned, "no page for a dirty node at commit").
                Ok(off)
                    if w.txn.alloc.cap != 0 && !self.store.has_room(&w.txn, 0, OP_DIRTY_PAGES) =>
                {
                    self.store.release(&mut w.txn, off);
                }
                Ok(off) => {
                    if let Some(k) = kind {
                        self.store.claim(&mut w.txn, off, len, k)?;
                    }
                    return Ok(off);
                }
                Err(Error::NoSpace { .. }) => {}
                Err(e) => return Err(e),
            }
            // Space freed but still visible to readers.
            if self.store.wait_for_readers(&mut w.txn) {
                continue;
            }
            // Enough bytes may be free but not in one piece: evict more,
            // so that neighbours merge, and commit to make it reusable.
            let evicted = self.evict(w, 0, extra)?;
            if !self.store.is_clean(&w.txn) {
                self.commit_locked(w, false)?;
            }
            // A round without eviction may still help once (its commit
            // releases what this transaction freed before); a second one
            // cannot (readers' hits alone keep dirtying the transaction).
            if evicted == 0 && std::mem::replace(&mut idle, true) {
                if self.evict_replaced(w)? {
                    idle = false;
                    continue;
                }
                return Err(Error::NoSpace {
                    detail: if w.txn.alloc.quarantine.is_empty() {
                        format!("no room for {len} bytes and nothing left to evict")
                    } else {
                        format!(
                            "{} bytes of freed space are still referenced by live Values",
                            w.txn.alloc.quarantine.bytes()
                        )
                    },
                });
            }
            if evicted > 0 {
                idle = false;
            }
            extra = extra.saturating_mul(2);
        }
    }

    /// Makes sure one more change (a put, a removal, a group member) can
    /// be committed under the cap: an inline value or a removal takes no
    /// extent, but dirties index pages, and the removed entry's space
    /// stays quarantined until the commit. Without this a long run of
    /// such changes on a full cache used up the pages its commit (or a
    /// spill) needs. Evicts and commits as [`make_room`](Self::make_room).
    pub(crate) fn headroom(&self, w: &mut Writer) -> Result<()> {
        self.make_room(w, 0)
    }

    /// Makes sure `bytes` more can be stored while a commit stays possible,
    /// evicting least-recently-used entries and committing as needed.
    pub(crate) fn make_room(&self, w: &mut Writer, bytes: u64) -> Result<()> {
        let cap = w.txn.alloc.cap;
        if cap == 0 {
            return Ok(());
        }
        let reserve = Self::reserve_pages(cap);
        let room = |w: &Writer, st: &crate::storage::Store| {
            st.has_room(&w.txn, bytes, OP_DIRTY_PAGES + reserve)
        };
        if room(w, &self.store) {
            return Ok(());
        }
        let slack = (cap / 64).clamp(64 << 10, 32 << 20);
        let want = |w: &Writer, st: &crate::storage::Store| {
            bytes + (st.commit_pages_needed(&w.txn) + reserve + OP_DIRTY_PAGES) * PAGE + slack
        };
        // Room with `slack` to spare, counted in whole pages (index nodes
        // need them; free space can be plentiful in bytes yet fragmented).
        let ample = |w: &Writer, st: &crate::storage::Store| {
            st.has_room(&w.txn, bytes + slack, OP_DIRTY_PAGES + reserve)
        };
        // Committing releases what this transaction freed.
        if !self.store.is_clean(&w.txn) {
            self.commit_locked(w, false)?;
        }
        loop {
            if room(w, &self.store) {
                // Only just: evict `slack` ahead now (its space comes free
                // at the next commit), or every later change would commit
                // again.
                if !ample(w, &self.store) {
                    self.evict(w, want(w, &self.store), slack)?;
                }
                return Ok(());
            }
            // At least `slack` each round: when the bytes are there but
            // not in whole pages, freeing more lets neighbours merge.
            if self.evict(w, want(w, &self.store), slack)? == 0 {
                // Nothing evictable; what remains is pinned by readers or
                // bookkeeping, or the old version of the key being written.
                // Let the allocation decide (take_with_room keeps it from
                // taking the pages a commit needs).
                return Ok(());
            }
            self.commit_locked(w, false)?;
        }
    }

    /// Evicts least-recently-used entries until about `want` bytes are
    /// available after the next commit and at least `min_freed` bytes were
    /// freed, or until evicting more would make that commit impossible.
    /// Returns how many were evicted.
    pub(crate) fn evict(&self, w: &mut Writer, want: u64, min_freed: u64) -> Result<u64> {
        // The LRU order must include every use so far.
        self.apply_notes(w)?;
        let mut n = 0;
        let mut uncommitted = 0;
        let mut freed = 0u64;
        loop {
            if w.txn.alloc.available_bytes() + freed >= want && freed >= min_freed {
                break;
            }
            let need = self.store.commit_pages_needed(&w.txn) + OP_DIRTY_PAGES;
            if w.txn.alloc.available_pages() < need {
                // Short of pages for the next commit. Commit the evictions
                // so far (their pages and extents become reusable once
                // readers let go), then go on one entry per commit while
                // the exact cost of one removal fits.
                if uncommitted > 0 || !self.store.is_clean(&w.txn) {
                    self.commit_locked(w, false)?;
                    uncommitted = 0;
                    continue;
                }
                if w.txn.alloc.available_pages() < self.store.one_removal_pages(&w.txn)
                    && !self.store.wait_for_readers(&mut w.txn)
                {
                    break;
                }
            }
            let mut lru = None;
            w.txn
                .reader(TreeId::LAST_USED)
                .scan(std::ops::Bound::Unbounded, |t, k| {
                    if w.protect.as_deref() == Some(k) {
                        return Ok(true);
                    }
                    lru = Some((t.to_vec(), k.to_vec()));
                    Ok(false)
                })?;
            let Some((tk, key)) = lru else {
                break;
            };
            match self.remove_locked(w, &key, Why::Evicted)? {
                Some(r) => {
                    freed += align_up(r.stored_len().max(1), ALIGN) + r.meta_len();
                    n += 1;
                    uncommitted += 1;
                }
                None => {
                    // A LastUsed entry without its entry: drop it.
                    self.store
                        .with_tree(&mut w.txn, TreeId::LAST_USED, |t, cx| t.remove(cx, &tk))?;
                }
            }
        }
        Ok(n)
    }
}
