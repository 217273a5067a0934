//! Streamed values (disk-objectstore's streamed objects): values larger than
//! memory, written from a `Read` and read back through `Read + Seek`, in
//! constant memory.
//!
//! A streamed value is a chunked value (spec §11.3): frames of at most
//! 1 MiB raw bytes, each compressed on its own, so seeking decompresses one
//! frame, never the value from the start. While a value streams in, its
//! frames are written into *reserved* space that stays free on disk: a
//! commit in the middle (eviction, another flush) records nothing of it,
//! and a crash leaks nothing. The entry appears when the stream ends.
//!
//! Frames are read with positional reads, not through the memory map, so
//! reading a value of many GiB does not grow the process's resident set.

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

use crate::btree::TreeId;
use crate::cache::codec;
use crate::cache::overlay::Seen;
use crate::cache::read::{chunk_table, encode_chunk_table, Chunk};
use crate::cache::record::{Body, Codec, Record, Stamp};
use crate::cache::slots::{Counters, Note};
use crate::cache::write::{check_meta_len, inline_meta};
use crate::cache::{check_key, DatasetFileCache, Writer, CHUNK_RAW};
use crate::error::{Error, Result};
use crate::storage::allocator::ExtentKind;
use crate::storage::now_ms;

impl DatasetFileCache {
    /// Stores the bytes `src` yields under `key`, in frames of 1 MiB (each
    /// zstd-compressed when that pays), using constant memory whatever the
    /// length. The entry appears only when `src` is exhausted; other writes
    /// wait until then (readers do not, and see the old value). Room is
    /// made as for [`put`](Self::put): when nothing else is left, the old
    /// value of `key` is evicted, and readers then miss it until the
    /// stream ends. Returns the value's length.
    ///
    /// # Errors
    /// [`Error::Io`] when `src` fails (nothing is stored); as
    /// [`put`](Self::put) otherwise, [`Error::ValueTooLarge`] as soon as the
    /// stream outgrows the cache.
    pub fn put_stream(&self, key: &[u8], src: impl Read) -> Result<u64> {
        self.put_stream_with_meta(key, src, &[])
    }

    /// As [`put_stream`](Self::put_stream), with metadata `meta` (at most
    /// 64 KiB; empty for none) stored in the same change: the entry appears
    /// with its metadata or not at all, which `put_stream` followed by
    /// [`set_meta`](Self::set_meta) does not promise across a crash.
    ///
    /// # Errors
    /// As [`put_stream`](Self::put_stream); [`Error::InvalidArgument`] for
    /// metadata over 64 KiB (before anything is read from `src`).
    pub fn put_stream_with_meta(&self, key: &[u8], mut src: impl Read, meta: &[u8]) -> Result<u64> {
        check_key(key)?;
        check_meta_len(meta)?;
        self.with_writer(|w| {
            (w.protect, w.replacing) = (Some(key.to_vec()), true);
            let mut frames: Vec<Chunk> = Vec::new();
            let r = self.stream_frames(w, &mut src, &mut frames);
            let r = r.and_then(|total| {
                self.install_stream(w, key, &frames, total, meta)
                    .map(|_| total)
            });
            if r.is_err() {
                for f in &frames {
                    self.store.release(&mut w.txn, f.off);
                }
            }
            (w.protect, w.replacing) = (None, false);
            r
        })
    }

    /// Reads `src` into reserved frames; returns the raw length.
    fn stream_frames(
        &self,
        w: &mut Writer,
        src: &mut dyn Read,
        frames: &mut Vec<Chunk>,
    ) -> Result<u64> {
        let max = Self::max_value_bytes(w.txn.alloc.cap);
        let mut buf = vec![0u8; CHUNK_RAW as usize];
        let mut total = 0u64;
        loop {
            let mut n = 0;
            while n < buf.len() {
                match src.read(&mut buf[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::io("reading the value to store", e)),
                }
            }
            if n == 0 {
                return Ok(total);
            }
            total += n as u64;
            if total > max {
                return Err(Error::ValueTooLarge { size: total, max });
            }
            self.write_chunk(w, &buf[..n], frames)?;
            if n < buf.len() {
                return Ok(total);
            }
        }
    }

    /// Claims the frames and puts the entry.
    fn install_stream(
        &self,
        w: &mut Writer,
        key: &[u8],
        frames: &[Chunk],
        total: u64,
        meta: &[u8],
    ) -> Result<()> {
        let tick = self.clock.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let mut rec = Record {
            body: Body::Inline { start: 0, len: 0 },
            codec: Codec::Raw,
            crc: 0,
            raw_len: total,
            tick,
            inserted: Stamp::at(now_ms(), self.time_base()),
            dict: 0,
            meta: None,
        };
        // The table and the metadata go to reserved space, and the frames
        // stay reserved, until the entry is installed: a commit made to find
        // room for them must not record extents no entry owns.
        self.with_held(w, |w, held| {
            if total == 0 {
                rec.meta = self.store_meta(w, meta, held)?;
                let bytes = rec.encode(&[], inline_meta(rec.meta, meta));
                self.claim_held(w, held)?;
                return self.install(w, key, &rec, bytes, 0);
            }
            let table = encode_chunk_table(frames, total);
            let (off, crc) = self.write_reserved(w, &[&table], ExtentKind::ChunkTable, held)?;
            rec.crc = crc;
            rec.body = Body::Chunked {
                off,
                len: table.len() as u64,
            };
            let stored: u64 =
                table.len() as u64 + frames.iter().map(|f| f.stored as u64).sum::<u64>();
            rec.meta = self.store_meta(w, meta, held)?;
            let bytes = rec.encode(&[], inline_meta(rec.meta, meta));
            for f in frames {
                self.store
                    .claim(&mut w.txn, f.off, f.stored as u64, ExtentKind::Value)?;
            }
            self.claim_held(w, held)?;
            self.install(w, key, &rec, bytes, stored)?;
            w.inserts += 1;
            Ok(())
        })
    }

    /// A reader over the value of `key` (`None` when not cached), reading
    /// one frame at a time. Counts as a use of the entry.
    ///
    /// # Errors
    /// [`Error::InvalidKey`]; [`Error::Corrupt`] for a damaged index or
    /// chunk table. Reads from the returned reader fail with an I/O error
    /// of kind `InvalidData` when a frame fails its checksum, and of kind
    /// `Other` wrapping [`Error::Changed`] when the entry is replaced or
    /// removed while it is read.
    pub fn get_stream(&self, key: &[u8]) -> Result<Option<ValueReader<'_>>> {
        check_key(key)?;
        let pin = self.readers.pin();
        let found = self.read_view(|view| {
            let rec: Vec<u8> = match view.overlay.get(key) {
                Seen::Removed => return Ok(None),
                Seen::Put(a) => a.to_vec(),
                Seen::Unchanged => match view.snap.reader(TreeId::PRIMARY).get(key)? {
                    Some(b) => {
                        // An inline value is checked by its page's CRC
                        // (again, on a handle that checks every read).
                        if self.checked.is_none() {
                            view.snap.recheck_node_of(b)?;
                        }
                        b.to_vec()
                    }
                    None => return Ok(None),
                },
            };
            let r = Record::decode(&rec)?;
            if self.expired(&r) {
                return Ok(None);
            }
            let limit = match view.overlay.get(key) {
                Seen::Put(_) => view.snap.mapping.len(),
                _ => view.snap.record.file_len,
            };
            let frames = match r.body {
                Body::Chunked { off, len } => chunk_table(&view.snap, &r, off, len, limit)?,
                _ => Vec::new(),
            };
            Ok(Some((rec, r, frames)))
        })?;
        let slot = pin.data();
        let Some((rec, r, frames)) = found else {
            Counters::add(&slot.counters.misses, 1);
            return Ok(None);
        };
        if matches!(r.body, Body::Absent) {
            Counters::add(&slot.counters.hits, 1);
            return Ok(None);
        }
        Counters::add(&slot.counters.hits, 1);
        if !self.store.read_only {
            let tick = self.clock.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            self.note(slot, key, Note::Hit(tick));
        }
        drop(pin);
        let mut starts = Vec::with_capacity(frames.len());
        let mut at = 0u64;
        for f in &frames {
            starts.push(at);
            at += f.raw as u64;
        }
        Ok(Some(ValueReader {
            cache: self,
            key: key.to_vec(),
            body: r.body,
            crc: r.crc,
            rec: Arc::from(rec),
            len: r.raw_len,
            frames,
            starts,
            pos: 0,
            buf: Vec::new(),
            buf_frame: None,
        }))
    }
}

/// Reads one value frame by frame: `Read + Seek`, from
/// [`DatasetFileCache::get_stream`].
///
/// Holds one decompressed frame (at most 1 MiB) at a time. Each frame is
/// checked against its CRC, and before reading it the reader checks that the
/// entry is still the one it opened (a replaced or removed value is an
/// error, never a mix of two values).
pub struct ValueReader<'c> {
    cache: &'c DatasetFileCache,
    key: Vec<u8>,
    body: Body,
    crc: u32,
    /// The entry record when opened (inline values read from it).
    rec: Arc<[u8]>,
    len: u64,
    frames: Vec<Chunk>,
    /// Raw offset where each frame starts.
    starts: Vec<u64>,
    pos: u64,
    buf: Vec<u8>,
    /// The frame in `buf` (`usize::MAX` for a whole non-chunked value).
    buf_frame: Option<usize>,
}

impl ValueReader<'_> {
    /// The value's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Loads the bytes covering `self.pos` into `buf`.
    fn load(&mut self) -> Result<()> {
        let want = match self.body {
            Body::Chunked { .. } => self
                .starts
                .partition_point(|&s| s <= self.pos)
                .saturating_sub(1),
            _ => usize::MAX,
        };
        if self.buf_frame == Some(want) {
            return Ok(());
        }
        let cache = self.cache;
        let key = self.key.clone();
        let (body, crc) = (self.body, self.crc);
        let frame = self.frames.get(want).copied();
        let rec = self.rec.clone();
        let _pin = cache.readers.pin();
        let bytes = cache.read_view(|view| {
            // The entry must still be the one this reader opened.
            let cur: Option<Vec<u8>> = match view.overlay.get(&key) {
                Seen::Removed => None,
                Seen::Put(a) => Some(a.to_vec()),
                Seen::Unchanged => view
                    .snap
                    .reader(TreeId::PRIMARY)
                    .get(&key)?
                    .map(|b| b.to_vec()),
            };
            let r = Record::decode(&rec)?;
            let same = match cur {
                Some(c) => {
                    let now = Record::decode(&c)?;
                    match (now.body, body) {
                        // An inline body has no CRC; compare the bytes.
                        (Body::Inline { .. }, Body::Inline { .. }) => {
                            now.inline(&c) == r.inline(&rec)
                        }
                        _ => now.body == body && now.crc == crc,
                    }
                }
                None => false,
            };
            if !same {
                return Err(Error::Changed { key: key.clone() });
            }
            match (body, frame) {
                (Body::Inline { .. }, _) => {
                    let s = r.inline(&rec);
                    match r.codec {
                        Codec::Raw => Ok(s.to_vec()),
                        Codec::Zstd => {
                            let d = cache.dict(&view.snap, r.dict)?;
                            codec::decompress_with(s, r.raw_len, CHUNK_RAW, 0, d.as_deref())
                        }
                    }
                }
                (Body::Extent { off, len }, _) => {
                    let s = pread(cache, off, len)?;
                    if crc32fast::hash(&s) != crc {
                        return Err(Error::corrupt("value", off, "fails its checksum"));
                    }
                    match r.codec {
                        Codec::Raw => Ok(s),
                        Codec::Zstd => {
                            let d = cache.dict(&view.snap, r.dict)?;
                            codec::decompress_with(&s, r.raw_len, CHUNK_RAW, off, d.as_deref())
                        }
                    }
                }
                (Body::Chunked { .. }, Some(f)) => {
                    let s = pread(cache, f.off, f.stored as u64)?;
                    if crc32fast::hash(&s) != f.crc {
                        return Err(Error::corrupt("value chunk", f.off, "fails its checksum"));
                    }
                    match f.codec {
                        Codec::Raw => Ok(s),
                        Codec::Zstd => codec::decompress(&s, f.raw as u64, CHUNK_RAW, f.off),
                    }
                }
                _ => Err(crate::internal!("no frame at position")),
            }
        })?;
        self.buf = bytes;
        self.buf_frame = Some(want);
        Ok(())
    }
}

/// Reads `len` bytes at `off` with a positional read (not through the map).
fn pread(cache: &DatasetFileCache, off: u64, len: u64) -> Result<Vec<u8>> {
    let n = usize::try_from(len).map_err(|_| Error::corrupt("value", off, "too long"))?;
    if len > CHUNK_RAW * 2 {
        return Err(Error::corrupt("value", off, format!("{len}-byte frame")));
    }
    let mut b = vec![0u8; n];
    cache
        .store
        .backend
        .read_at(&mut b, off)
        .map_err(|e| Error::io("reading a value", e))?;
    Ok(b)
}

fn to_io(e: Error) -> io::Error {
    let kind = match e {
        Error::Corrupt { .. } => io::ErrorKind::InvalidData,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}

impl Read for ValueReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || out.is_empty() {
            return Ok(0);
        }
        self.load().map_err(to_io)?;
        let start = match self.buf_frame {
            Some(usize::MAX) | None => 0,
            Some(i) => self.starts.get(i).copied().unwrap_or(0),
        };
        let at = (self.pos - start) as usize;
        let avail = self.buf.get(at..).unwrap_or(&[]);
        if avail.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "value shorter than its record says",
            ));
        }
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for ValueReader<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let new = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the value",
            )),
        }
    }
}
