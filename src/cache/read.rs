//! Lookups: find the entry record (overlay, then committed index), check it,
//! and turn it into a [`Value`].

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::btree::TreeId;
use crate::cache::codec;
use crate::cache::overlay::Seen;
use crate::cache::record::{Body, Codec, Record};
use crate::cache::slots::{Counters, Note, Slot};
use crate::cache::value::Value;
use crate::cache::{check_key, DatasetFileCache, CHUNK_RAW};
use crate::error::{Error, Result};
use crate::storage::{now_ms, Snapshot};

/// Cache lines at the start of a value of several pages that a get loads
/// ahead of the caller, with the first line of each later page.
const GET_PREFETCH_LINES: usize = 8;

/// Notes a slot buffers before its reader moves them to the pending map.
const NOTES_SPILL: usize = 4096;
/// Keys the pending map holds before a reader applies it (if the writer is
/// free). Bounds memory for caches that are read without ever being written.
pub(crate) const PENDING_APPLY: usize = 1 << 20;

/// The result of looking a key up.
pub(crate) enum Lookup<'c> {
    /// A value.
    Hit(Value<'c>),
    /// A negative entry: the key is cached as "does not exist".
    Absent,
    /// Not cached (or expired, or dropped for a failed checksum).
    Miss,
}

/// Chunk table layout (spec/FORMAT.md §11.3).
pub(crate) const CHUNK_TABLE_MAGIC: [u8; 4] = *b"DFCT";
pub(crate) const CHUNK_ENTRY: usize = 24;

/// One chunk of a chunked value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Chunk {
    pub off: u64,
    pub stored: u32,
    pub raw: u32,
    pub crc: u32,
    pub codec: Codec,
}

/// Decodes a chunk table (already checked against its CRC).
pub(crate) fn decode_chunk_table(b: &[u8], at: u64, raw_len: u64) -> Result<Vec<Chunk>> {
    let bad = |d: &str| Error::corrupt("chunk table", at, d.to_string());
    if b.len() < 16 || b[0..4] != CHUNK_TABLE_MAGIC {
        return Err(bad("no chunk table magic"));
    }
    let count = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
    if 16 + count * CHUNK_ENTRY != b.len() {
        return Err(bad("length does not match the chunk count"));
    }
    let total = crate::header::le_u64(b, 8).unwrap_or(0);
    if total != raw_len {
        return Err(bad("total length does not match the entry record"));
    }
    let mut chunks = Vec::with_capacity(count);
    let mut sum = 0u64;
    for i in 0..count {
        let e = &b[16 + i * CHUNK_ENTRY..16 + (i + 1) * CHUNK_ENTRY];
        let c = Chunk {
            off: crate::header::le_u64(e, 0).unwrap_or(0),
            stored: crate::header::le_u32(e, 8).unwrap_or(0),
            raw: crate::header::le_u32(e, 12).unwrap_or(0),
            crc: crate::header::le_u32(e, 16).unwrap_or(0),
            codec: match e[20] {
                0 => Codec::Raw,
                1 => Codec::Zstd,
                _ => return Err(bad("unknown chunk codec")),
            },
        };
        if c.raw as u64 > CHUNK_RAW
            || c.stored == 0
            || !c.off.is_multiple_of(16)
            || e[21..24] != [0, 0, 0]
            || (c.codec == Codec::Raw && c.stored != c.raw)
        {
            return Err(bad("malformed chunk entry"));
        }
        sum += c.raw as u64;
        chunks.push(c);
    }
    if sum != raw_len {
        return Err(bad("chunk lengths do not add up"));
    }
    Ok(chunks)
}

/// Encodes a chunk table.
pub(crate) fn encode_chunk_table(chunks: &[Chunk], raw_len: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(16 + chunks.len() * CHUNK_ENTRY);
    b.extend_from_slice(&CHUNK_TABLE_MAGIC);
    b.extend_from_slice(&(chunks.len() as u32).to_le_bytes());
    b.extend_from_slice(&raw_len.to_le_bytes());
    for c in chunks {
        b.extend_from_slice(&c.off.to_le_bytes());
        b.extend_from_slice(&c.stored.to_le_bytes());
        b.extend_from_slice(&c.raw.to_le_bytes());
        b.extend_from_slice(&c.crc.to_le_bytes());
        b.push(match c.codec {
            Codec::Raw => 0,
            Codec::Zstd => 1,
        });
        b.extend_from_slice(&[0, 0, 0]);
    }
    b
}

/// Entry record bytes found for a key.
pub(crate) enum Found<'v> {
    Overlay(Arc<[u8]>),
    Committed(&'v [u8]),
}

impl Found<'_> {
    /// The record bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Found::Overlay(a) => a,
            Found::Committed(b) => b,
        }
    }
}

impl DatasetFileCache {
    /// The value stored under `key`, or `None`.
    ///
    /// A raw value is returned without a copy (see [`Value`]). Counts a hit
    /// or a miss and records the use for LRU order. A value whose checksum
    /// fails is dropped and reported as a miss on a read-write cache, and as
    /// [`Error::Corrupt`] on a read-only one. A negative entry (see
    /// [`CachedDataset`](crate::CachedDataset)) has no value: `None`.
    ///
    /// # Errors
    /// [`Error::InvalidKey`]; [`Error::Corrupt`] when the index itself is
    /// damaged.
    pub fn get(&self, key: &[u8]) -> Result<Option<Value<'_>>> {
        Ok(match self.lookup(key, true)? {
            Lookup::Hit(v) => Some(v),
            Lookup::Absent | Lookup::Miss => None,
        })
    }

    /// Whether `key` is cached (a negative entry counts). Does not count as
    /// a use.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn contains_key(&self, key: &[u8]) -> Result<bool> {
        check_key(key)?;
        let _pin = self.readers.pin();
        self.read_view(|view| {
            let found = match view.overlay.get(key) {
                Seen::Removed => return Ok(false),
                Seen::Put(a) => Found::Overlay(a),
                Seen::Unchanged => match view.snap.reader(TreeId::PRIMARY).get(key)? {
                    Some(b) => Found::Committed(b),
                    None => return Ok(false),
                },
            };
            let bytes: &[u8] = match &found {
                Found::Overlay(a) => a,
                Found::Committed(b) => b,
            };
            let r = Record::decode(bytes)?;
            Ok(!self.expired(&r))
        })
    }

    /// The file's time base, for [`Stamp`]s.
    pub(crate) fn time_base(&self) -> u64 {
        self.time_base_ms.load(Ordering::Acquire)
    }

    pub(crate) fn expired(&self, r: &Record) -> bool {
        let max = self.max_age_ms.load(Ordering::Acquire);
        max != 0 && now_ms().saturating_sub(r.inserted.ms(self.time_base())) > max
    }

    /// Looks `key` up; `use_it` records the use (LRU) and counts hit/miss.
    pub(crate) fn lookup(&self, key: &[u8], use_it: bool) -> Result<Lookup<'_>> {
        check_key(key)?;
        if self.store.read_only {
            return self.lookup_read_only(key, use_it);
        }
        let pin = self.readers.pin();
        let view = self.view.load();
        let found = match view.overlay.get(key) {
            Seen::Removed => None,
            Seen::Put(a) => Some(Found::Overlay(a)),
            Seen::Unchanged => view
                .snap
                .reader(TreeId::PRIMARY)
                .get(key)?
                .map(Found::Committed),
        };
        let slot = pin.data();
        let Some(found) = found else {
            if use_it {
                Counters::add(&slot.counters.misses, 1);
            }
            return Ok(Lookup::Miss);
        };
        let (bytes, in_overlay): (&[u8], bool) = match &found {
            Found::Overlay(a) => (a, true),
            Found::Committed(b) => (b, false),
        };
        let r = Record::decode(bytes)?;
        if self.expired(&r) {
            if use_it {
                Counters::add(&slot.counters.expirations, 1);
                Counters::add(&slot.counters.misses, 1);
            }
            if !self.store.read_only {
                self.note(slot, key, Note::Expired(r.inserted));
            }
            return Ok(Lookup::Miss);
        }
        // Values put since the last commit may lie past the committed length.
        let limit = if in_overlay {
            view.snap.mapping.len()
        } else {
            view.snap.record.file_len
        };
        let result = self.value_of(&view.snap, &r, bytes, &found, limit);
        let value = match result {
            Ok(v) => v,
            Err(e @ Error::Corrupt { .. }) => {
                if self.store.read_only {
                    return Err(e);
                }
                Counters::add(&slot.counters.corrupt_drops, 1);
                if use_it {
                    Counters::add(&slot.counters.misses, 1);
                }
                self.note(slot, key, Note::Corrupt(r.inserted));
                return Ok(Lookup::Miss);
            }
            Err(e) => return Err(e),
        };
        // The caller reads the value next: a value of several pages waits
        // for memory once, not once per page. Its first page's lines are
        // loaded too when later pages are (64 KiB gets: 4 % faster); a
        // one-page value gained nothing from it, the caller asks for them
        // right away.
        if let Some(ValueSrc::Mapped(m)) = &value {
            m.prefetch(if m.longer_than_page() {
                GET_PREFETCH_LINES
            } else {
                0
            });
        }
        if use_it {
            Counters::add(&slot.counters.hits, 1);
            if !self.store.read_only {
                let tick = self.clock.fetch_add(1, Ordering::AcqRel);
                self.note(slot, key, Note::Hit(tick));
            }
        }
        Ok(match value {
            None => Lookup::Absent,
            Some(ValueSrc::Owned(v)) => Lookup::Hit(Value::owned(v)),
            Some(ValueSrc::Shared(start, len)) => match found {
                Found::Overlay(a) => Lookup::Hit(Value::shared(a, start, len)),
                Found::Committed(_) => {
                    return Err(crate::internal!("shared value of a committed record"))
                }
            },
            Some(ValueSrc::Mapped(off_ptr)) => {
                if self.store.read_only {
                    // Another process may write this file later: hand out a
                    // copy, never a view that could change.
                    Lookup::Hit(Value::owned(off_ptr.as_slice().to_vec()))
                } else {
                    drop(view);
                    Lookup::Hit(Value::mapped(off_ptr, pin))
                }
            }
        })
    }

    /// `lookup` for read-only handles: copies the value out inside a
    /// seqlock section (another process may be writing the file), then
    /// counts.
    fn lookup_read_only(&self, key: &[u8], use_it: bool) -> Result<Lookup<'_>> {
        enum Out {
            Miss,
            Expired,
            Absent,
            Hit(Vec<u8>),
        }
        let pin = self.readers.pin();
        let out = self.read_view(|view| {
            let Some(bytes) = view.snap.reader(TreeId::PRIMARY).get(key)? else {
                return Ok(Out::Miss);
            };
            let r = Record::decode(bytes)?;
            if self.expired(&r) {
                return Ok(Out::Expired);
            }
            let found = Found::Committed(bytes);
            Ok(
                match self.value_of(&view.snap, &r, bytes, &found, view.snap.record.file_len)? {
                    None => Out::Absent,
                    Some(ValueSrc::Owned(v)) => Out::Hit(v),
                    Some(ValueSrc::Mapped(m)) => Out::Hit(m.as_slice().to_vec()),
                    Some(ValueSrc::Shared(..)) => {
                        return Err(crate::internal!("overlay value on a read-only handle"))
                    }
                },
            )
        })?;
        if use_it {
            let c = &pin.data().counters;
            match out {
                Out::Miss => Counters::add(&c.misses, 1),
                Out::Expired => {
                    Counters::add(&c.expirations, 1);
                    Counters::add(&c.misses, 1);
                }
                Out::Absent | Out::Hit(_) => Counters::add(&c.hits, 1),
            }
        }
        Ok(match out {
            Out::Miss | Out::Expired => Lookup::Miss,
            Out::Absent => Lookup::Absent,
            Out::Hit(v) => Lookup::Hit(Value::owned(v)),
        })
    }

    /// Leaves a note for the writer in this thread's slot.
    pub(crate) fn note(&self, slot: &Slot, key: &[u8], n: Note) {
        let len = {
            let mut notes = slot.notes.lock();
            notes.push(key, n);
            notes.len()
        };
        if len == 1 {
            self.notes_pending.store(true, Ordering::Release);
        }
        if len >= NOTES_SPILL {
            let big = {
                let mut p = self.pending.lock();
                let mut notes = slot.notes.lock();
                p.absorb(&notes);
                notes.clear();
                p.len() >= PENDING_APPLY
            };
            if big {
                // Apply them now if the writer is free; never wait for it.
                if let Some(mut g) = self.writer.try_lock() {
                    if let Some(w) = g.as_mut() {
                        let _ = self.apply_notes(w);
                    }
                }
            }
        }
    }

    /// The value an entry record describes: `None` for negative entries.
    pub(crate) fn value_of(
        &self,
        snap: &Snapshot,
        r: &Record,
        rec: &[u8],
        found: &Found<'_>,
        limit: u64,
    ) -> Result<Option<ValueSrc>> {
        let bad = |at: u64, d: &str| Error::corrupt("value", at, d.to_string());
        match r.body {
            Body::Absent => Ok(None),
            Body::Inline { start, len } => {
                // The node page's CRC, checked when the page was first
                // read, covers inline bytes; a handle that checks every
                // read checks the page again.
                if let (None, Found::Committed(b)) = (&self.checked, found) {
                    snap.recheck_node_of(b)?;
                }
                let s = r.inline(rec);
                if r.codec == Codec::Zstd {
                    let d = self.dict(snap, r.dict)?;
                    return Ok(Some(ValueSrc::Owned(codec::decompress_with(
                        s,
                        r.raw_len,
                        CHUNK_RAW,
                        0,
                        d.as_deref(),
                    )?)));
                }
                Ok(Some(match found {
                    Found::Overlay(_) => ValueSrc::Shared(start, len),
                    Found::Committed(_) => ValueSrc::Mapped(
                        snap.mapping
                            .raw_of(s)
                            .ok_or_else(|| crate::internal!("inline value outside the mapping"))?,
                    ),
                }))
            }
            Body::Extent { off, len } => {
                let s = snap
                    .bytes(off, len, limit)
                    .ok_or_else(|| bad(off, "extent lies past the end of the file"))?;
                match &self.checked {
                    Some(c) if c.contains(snap, off, len, r.crc) => {}
                    checked => {
                        if crc32fast::hash(s) != r.crc {
                            return Err(bad(off, "value fails its checksum"));
                        }
                        if let Some(c) = checked {
                            c.insert(snap, off, len, r.crc);
                        }
                    }
                }
                match r.codec {
                    Codec::Raw => Ok(Some(ValueSrc::Mapped(
                        snap.mapping
                            .raw(off, len, limit)
                            .ok_or_else(|| bad(off, "extent outside the mapping"))?,
                    ))),
                    Codec::Zstd => {
                        let d = self.dict(snap, r.dict)?;
                        Ok(Some(ValueSrc::Owned(codec::decompress_with(
                            s,
                            r.raw_len,
                            CHUNK_RAW,
                            off,
                            d.as_deref(),
                        )?)))
                    }
                }
            }
            Body::Chunked { off, len } => Ok(Some(ValueSrc::Owned(read_chunked(
                snap, r, off, len, limit,
            )?))),
        }
    }
}

/// Where a found value's bytes are.
pub(crate) enum ValueSrc {
    Owned(Vec<u8>),
    /// Inline in an overlay record: (start, len).
    Shared(usize, usize),
    Mapped(crate::storage::mapping::MappedSlice),
}

/// Reads, checks and assembles a chunked value.
pub(crate) fn read_chunked(
    snap: &Snapshot,
    r: &Record,
    off: u64,
    len: u64,
    limit: u64,
) -> Result<Vec<u8>> {
    let chunks = chunk_table(snap, r, off, len, limit)?;
    let cap = usize::try_from(r.raw_len)
        .map_err(|_| Error::corrupt("value", off, "too large for memory"))?;
    let mut out = Vec::with_capacity(cap);
    for c in &chunks {
        out.extend_from_slice(&read_chunk(snap, c, limit)?);
    }
    Ok(out)
}

/// The checked chunk table of a chunked value.
pub(crate) fn chunk_table(
    snap: &Snapshot,
    r: &Record,
    off: u64,
    len: u64,
    limit: u64,
) -> Result<Vec<Chunk>> {
    let t = snap
        .bytes(off, len, limit)
        .ok_or_else(|| Error::corrupt("chunk table", off, "past the end of the file"))?;
    if crc32fast::hash(t) != r.crc {
        return Err(Error::corrupt("chunk table", off, "fails its checksum"));
    }
    decode_chunk_table(t, off, r.raw_len)
}

/// Reads and checks one chunk, decompressed.
pub(crate) fn read_chunk<'s>(
    snap: &'s Snapshot,
    c: &Chunk,
    limit: u64,
) -> Result<std::borrow::Cow<'s, [u8]>> {
    let s = snap
        .bytes(c.off, c.stored as u64, limit)
        .ok_or_else(|| Error::corrupt("value chunk", c.off, "past the end of the file"))?;
    if crc32fast::hash(s) != c.crc {
        return Err(Error::corrupt("value chunk", c.off, "fails its checksum"));
    }
    Ok(match c.codec {
        Codec::Raw => std::borrow::Cow::Borrowed(s),
        Codec::Zstd => {
            std::borrow::Cow::Owned(codec::decompress(s, c.raw as u64, CHUNK_RAW, c.off)?)
        }
    })
}

/// What a cache knows about one entry, without reading its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryInfo {
    /// Length of the value as put.
    pub raw_len: u64,
    /// Bytes the value takes in the file (compressed size; for chunked
    /// values the chunks plus their table).
    pub stored_len: u64,
    /// How the stored bytes encode the value.
    pub codec: Codec,
    /// Compression dictionary id, 0 = none.
    pub dictionary: u32,
    /// The entry's last-use tick: larger is more recent (LRU order).
    pub last_use: u64,
    /// When the entry was inserted.
    pub inserted: std::time::SystemTime,
    /// Length of its metadata (0 when it has none).
    pub meta_len: u64,
    /// Whether it is a negative entry ("block does not exist").
    pub absent: bool,
    /// Whether the value is stored in chunks.
    pub chunked: bool,
}

impl DatasetFileCache {
    /// Describes the entry under `key` without reading its value.
    ///
    /// # Errors
    /// [`Error::InvalidKey`]; [`Error::Corrupt`] for a damaged index.
    pub fn entry_info(&self, key: &[u8]) -> Result<Option<EntryInfo>> {
        check_key(key)?;
        let from_writer = {
            let mut g = self.writer.lock();
            match g.as_mut() {
                Some(w) => {
                    // Make the last-use tick exact (a poisoned handle still
                    // answers from what it has).
                    if self.store.writable(&w.txn).is_ok() {
                        self.apply_notes(w)?;
                    }
                    let b = w.txn.reader(TreeId::PRIMARY).get(key)?.map(|b| b.to_vec());
                    let snap = w.txn.base.clone();
                    let limit = snap.mapping.len();
                    Some((b, snap, limit))
                }
                None => None,
            }
        };
        let (bytes, snap, limit) = match from_writer {
            Some(x) => x,
            None => {
                let _pin = self.readers.pin();
                return self.read_view(|view| {
                    match view.snap.reader(TreeId::PRIMARY).get(key)? {
                        None => Ok(None),
                        Some(b) => Ok(Some(info_of(&view.snap, view.snap.record.file_len, b)?)),
                    }
                });
            }
        };
        match bytes {
            None => Ok(None),
            Some(b) => Ok(Some(info_of(&snap, limit, &b)?)),
        }
    }
}

/// Describes an entry from its record bytes.
pub(crate) fn info_of(snap: &Snapshot, limit: u64, b: &[u8]) -> Result<EntryInfo> {
    let r = Record::decode(b)?;
    let (stored_len, chunked) = match r.body {
        Body::Chunked { off, len } => {
            let chunks = chunk_table(snap, &r, off, len, limit)?;
            (
                len + chunks.iter().map(|c| c.stored as u64).sum::<u64>(),
                true,
            )
        }
        _ => (r.stored_len(), false),
    };
    Ok(EntryInfo {
        raw_len: r.raw_len,
        stored_len,
        codec: r.codec,
        dictionary: r.dict,
        last_use: r.tick,
        inserted: std::time::UNIX_EPOCH
            + std::time::Duration::from_millis(r.inserted.ms(snap.record.time_base_ms)),
        meta_len: r.meta_len(),
        absent: matches!(r.body, Body::Absent),
        chunked,
    })
}
