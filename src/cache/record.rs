//! The entry record: what the primary index stores for each key
//! (spec/FORMAT.md §11).
//!
//! ```text
//! u8      flags: bits 0-2 body kind, bits 3-5 codec, bit 6 has metadata
//! u32     extent and chunked only: CRC-32 of the stored bytes (extent) or
//!         of the chunk table (chunked)
//! varint  raw length (bytes the caller put)
//! varint  last-use tick
//! varint  insertion time, Unix milliseconds
//! varint  dictionary id (0 = none)
//! body:   inline: [varint length if metadata follows] bytes
//!         extent: varint offset, varint length
//!         chunked: varint table offset, varint table length | absent: nothing
//! meta:   u8 0 = inline: varint length, bytes
//!           1 = extent: varint offset, varint length, u32 CRC-32
//! ```
//! Varints are unsigned LEB128, at most 10 bytes. The record must end exactly
//! where its last field ends. An inline body has no CRC of its own (the node
//! page's CRC covers it) and, without metadata, no length (it runs to the end
//! of the record): for a small document these five to six bytes are a few
//! percent of what the entry costs.

use crate::error::{Error, Result};

/// How the value's bytes are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Body {
    /// In the record itself, at `start..start + len` of the record bytes.
    Inline {
        /// Offset within the record.
        start: usize,
        /// Length.
        len: usize,
    },
    /// In one extent.
    Extent {
        /// File offset.
        off: u64,
        /// Stored length.
        len: u64,
    },
    /// In chunks listed by a chunk table extent.
    Chunked {
        /// File offset of the table.
        off: u64,
        /// Length of the table.
        len: u64,
    },
    /// A negative entry: the source said this block does not exist.
    Absent,
}

/// How the stored bytes encode the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// Stored as given.
    Raw,
    /// A zstd frame (per chunk for chunked values).
    Zstd,
}

/// Where the metadata is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MetaRef {
    /// In the record at `start..start + len`.
    Inline {
        /// Offset within the record.
        start: usize,
        /// Length.
        len: usize,
    },
    /// In an extent.
    Extent {
        /// File offset.
        off: u64,
        /// Length.
        len: u64,
        /// CRC-32 of the bytes.
        crc: u32,
    },
}

/// When an entry was inserted, as its record holds it: milliseconds from
/// the file's time base (spec §5, §11.1), which may be negative (entries
/// copied from an older file). Only [`Stamp::ms`] turns it into a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp(i64);

impl Stamp {
    /// The stamp of Unix time `ms` in a file whose time base is `base`.
    pub(crate) fn at(ms: u64, base: u64) -> Stamp {
        Stamp((ms as i128 - base as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64)
    }

    /// Unix milliseconds, given the file's time base (0 if before 1970).
    pub(crate) fn ms(self, base: u64) -> u64 {
        (base as i128 + self.0 as i128).clamp(0, u64::MAX as i128) as u64
    }

    /// Zigzag form: small magnitudes of either sign make short varints.
    fn zigzag(self) -> u64 {
        ((self.0 << 1) ^ (self.0 >> 63)) as u64
    }

    fn unzigzag(z: u64) -> Stamp {
        Stamp(((z >> 1) as i64) ^ -((z & 1) as i64))
    }
}

/// A decoded entry record. Inline bytes are referred to by position in the
/// record's bytes (see [`Record::inline`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub body: Body,
    pub codec: Codec,
    /// CRC-32 of an extent body or a chunk table; 0 (not stored) for inline
    /// and absent bodies.
    pub crc: u32,
    pub raw_len: u64,
    pub tick: u64,
    pub inserted: Stamp,
    pub dict: u32,
    pub meta: Option<MetaRef>,
}

const KIND_INLINE: u8 = 0;
const KIND_EXTENT: u8 = 1;
const KIND_CHUNKED: u8 = 2;
const KIND_ABSENT: u8 = 3;
const HAS_META: u8 = 1 << 6;

use crate::varint::put as put_varint;

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn bad(&self, what: &str) -> Error {
        Error::corrupt("entry record", 0, format!("{what} at byte {}", self.at))
    }

    fn u8(&mut self) -> Result<u8> {
        let v = *self.b.get(self.at).ok_or_else(|| self.bad("truncated"))?;
        self.at += 1;
        Ok(v)
    }

    fn u32(&mut self) -> Result<u32> {
        let s = self
            .b
            .get(self.at..self.at + 4)
            .ok_or_else(|| self.bad("truncated"))?;
        self.at += 4;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn varint(&mut self) -> Result<u64> {
        let mut at = self.at;
        let v = crate::varint::get(self.b, &mut at).ok_or_else(|| self.bad("bad varint"))?;
        self.at = at;
        Ok(v)
    }

    fn bytes(&mut self, len: u64) -> Result<(usize, usize)> {
        let len = usize::try_from(len).map_err(|_| self.bad("length"))?;
        let end = self.at.checked_add(len).ok_or_else(|| self.bad("length"))?;
        if end > self.b.len() {
            return Err(self.bad("inline bytes past the end"));
        }
        let start = self.at;
        self.at = end;
        Ok((start, len))
    }
}

impl Record {
    /// Decodes a record.
    pub(crate) fn decode(b: &[u8]) -> Result<Record> {
        let mut c = Cursor { b, at: 0 };
        let flags = c.u8()?;
        if flags & 0x80 != 0 {
            return Err(c.bad("reserved flag set"));
        }
        let kind = flags & 7;
        let codec = match (flags >> 3) & 7 {
            0 => Codec::Raw,
            1 => Codec::Zstd,
            x => return Err(c.bad(&format!("unknown codec {x}"))),
        };
        let crc = if matches!(kind, KIND_EXTENT | KIND_CHUNKED) {
            c.u32()?
        } else {
            0
        };
        let raw_len = c.varint()?;
        let tick = c.varint()?;
        let inserted = Stamp::unzigzag(c.varint()?);
        let dict = u32::try_from(c.varint()?).map_err(|_| c.bad("dictionary id"))?;
        let body = match kind {
            KIND_INLINE => {
                let n = if flags & HAS_META != 0 {
                    c.varint()?
                } else {
                    b.len().saturating_sub(c.at) as u64
                };
                let (start, len) = c.bytes(n)?;
                Body::Inline { start, len }
            }
            KIND_EXTENT | KIND_CHUNKED => {
                let off = c.varint()?;
                let len = c.varint()?;
                if !off.is_multiple_of(16) || len == 0 {
                    return Err(c.bad("misaligned or empty extent"));
                }
                if kind == KIND_EXTENT {
                    Body::Extent { off, len }
                } else {
                    Body::Chunked { off, len }
                }
            }
            KIND_ABSENT => Body::Absent,
            x => return Err(c.bad(&format!("unknown body kind {x}"))),
        };
        if dict != 0
            && (codec != Codec::Zstd || !matches!(body, Body::Inline { .. } | Body::Extent { .. }))
        {
            return Err(c.bad("a dictionary on a value that is not one zstd frame"));
        }
        if codec == Codec::Raw && matches!(body, Body::Inline { .. } | Body::Extent { .. }) {
            let stored = match body {
                Body::Inline { len, .. } => len as u64,
                Body::Extent { len, .. } => len,
                _ => 0,
            };
            if stored != raw_len {
                return Err(c.bad("raw value whose stored and raw lengths differ"));
            }
        }
        let meta = if flags & HAS_META != 0 {
            Some(match c.u8()? {
                0 => {
                    let n = c.varint()?;
                    let (start, len) = c.bytes(n)?;
                    MetaRef::Inline { start, len }
                }
                1 => {
                    let off = c.varint()?;
                    let len = c.varint()?;
                    let crc = c.u32()?;
                    if !off.is_multiple_of(16) || len == 0 {
                        return Err(c.bad("misaligned metadata extent"));
                    }
                    MetaRef::Extent { off, len, crc }
                }
                x => return Err(c.bad(&format!("unknown metadata kind {x}"))),
            })
        } else {
            None
        };
        if c.at != b.len() {
            return Err(c.bad("trailing bytes"));
        }
        Ok(Record {
            body,
            codec,
            crc,
            raw_len,
            tick,
            inserted,
            dict,
            meta,
        })
    }

    /// Encodes a record; `inline` and `meta_inline` supply the bytes of
    /// inline bodies and metadata (their positions in `self` are ignored).
    pub(crate) fn encode(&self, inline: &[u8], meta_inline: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + inline.len() + meta_inline.len());
        let kind = match self.body {
            Body::Inline { .. } => KIND_INLINE,
            Body::Extent { .. } => KIND_EXTENT,
            Body::Chunked { .. } => KIND_CHUNKED,
            Body::Absent => KIND_ABSENT,
        };
        let codec = match self.codec {
            Codec::Raw => 0,
            Codec::Zstd => 1,
        };
        let meta_flag = if self.meta.is_some() { HAS_META } else { 0 };
        out.push(kind | (codec << 3) | meta_flag);
        if matches!(self.body, Body::Extent { .. } | Body::Chunked { .. }) {
            out.extend_from_slice(&self.crc.to_le_bytes());
        }
        put_varint(&mut out, self.raw_len);
        put_varint(&mut out, self.tick);
        put_varint(&mut out, self.inserted.zigzag());
        put_varint(&mut out, self.dict as u64);
        match self.body {
            Body::Inline { .. } => {
                if self.meta.is_some() {
                    put_varint(&mut out, inline.len() as u64);
                }
                out.extend_from_slice(inline);
            }
            Body::Extent { off, len } | Body::Chunked { off, len } => {
                put_varint(&mut out, off);
                put_varint(&mut out, len);
            }
            Body::Absent => {}
        }
        match self.meta {
            None => {}
            Some(MetaRef::Inline { .. }) => {
                out.push(0);
                put_varint(&mut out, meta_inline.len() as u64);
                out.extend_from_slice(meta_inline);
            }
            Some(MetaRef::Extent { off, len, crc }) => {
                out.push(1);
                put_varint(&mut out, off);
                put_varint(&mut out, len);
                out.extend_from_slice(&crc.to_le_bytes());
            }
        }
        out
    }

    /// The inline value bytes inside `rec` (the bytes this record was
    /// decoded from).
    pub(crate) fn inline<'a>(&self, rec: &'a [u8]) -> &'a [u8] {
        match self.body {
            Body::Inline { start, len } => rec.get(start..start + len).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// The inline metadata inside `rec`.
    pub(crate) fn meta_inline<'a>(&self, rec: &'a [u8]) -> Option<&'a [u8]> {
        match self.meta {
            Some(MetaRef::Inline { start, len }) => rec.get(start..start + len),
            _ => None,
        }
    }

    /// Bytes of storage the value takes (inline bytes count too).
    pub(crate) fn stored_len(&self) -> u64 {
        match self.body {
            Body::Inline { len, .. } => len as u64,
            Body::Extent { len, .. } | Body::Chunked { len, .. } => len,
            Body::Absent => 0,
        }
    }

    /// Length of the metadata.
    pub(crate) fn meta_len(&self) -> u64 {
        match self.meta {
            None => 0,
            Some(MetaRef::Inline { len, .. }) => len as u64,
            Some(MetaRef::Extent { len, .. }) => len,
        }
    }

    /// Copy with another last-use tick, re-encoded from `rec`.
    pub(crate) fn with_tick(&self, rec: &[u8], tick: u64) -> Vec<u8> {
        let r = Record { tick, ..*self };
        r.encode(self.inline(rec), self.meta_inline(rec).unwrap_or(&[]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_all_kinds() {
        let base = Record {
            body: Body::Absent,
            codec: Codec::Raw,
            crc: 0xabcd,
            raw_len: 0,
            tick: 1 << 40,
            inserted: Stamp::at(1_700_000_000_000, 1_699_999_000_000),
            dict: 0,
            meta: None,
        };
        let cases = [
            (
                Record {
                    body: Body::Inline { start: 0, len: 3 },
                    raw_len: 3,
                    ..base
                },
                &b"abc"[..],
                &b""[..],
            ),
            (
                Record {
                    body: Body::Extent {
                        off: 4096,
                        len: 9000,
                    },
                    raw_len: 9000,
                    ..base
                },
                &b""[..],
                &b""[..],
            ),
            (
                Record {
                    body: Body::Chunked { off: 8192, len: 40 },
                    raw_len: 5 << 30,
                    ..base
                },
                &b""[..],
                &b"meta!"[..],
            ),
            // Inline with metadata: the body has an explicit length.
            (
                Record {
                    body: Body::Inline { start: 0, len: 4 },
                    raw_len: 4,
                    ..base
                },
                &b"abcd"[..],
                &b"m"[..],
            ),
            (base, &b""[..], &b""[..]),
        ];
        for (mut r, inline, meta) in cases {
            if !meta.is_empty() {
                r.meta = Some(MetaRef::Inline {
                    start: 0,
                    len: meta.len(),
                });
            }
            let b = r.encode(inline, meta);
            let d = Record::decode(&b).unwrap();
            assert_eq!(d.inline(&b), inline);
            assert_eq!(d.meta_inline(&b).unwrap_or(b""), meta);
            assert_eq!(d.raw_len, r.raw_len);
            assert_eq!(d.tick, r.tick);
            assert_eq!(d.inserted, r.inserted);
            assert_eq!(d.body.clone_kind(), r.body.clone_kind());
            assert_eq!(Record::decode(&d.with_tick(&b, 5)).unwrap().tick, 5);
            // A dictionary is only allowed on one zstd frame.
            if matches!(r.body, Body::Chunked { .. }) {
                let bad = Record {
                    dict: 3,
                    codec: Codec::Zstd,
                    ..d
                };
                assert!(Record::decode(&bad.encode(inline, meta)).is_err());
            }
            // Every truncation and bit flip decodes to an error or a record,
            // never a panic.
            for i in 0..b.len() {
                let _ = Record::decode(&b[..i]);
                let mut c = b.clone();
                c[i] ^= 0xff;
                let _ = Record::decode(&c);
            }
        }
    }

    #[test]
    fn stamps_count_from_the_base_in_either_direction() {
        let base = 1_790_000_000_000u64;
        for (ms, bytes) in [
            (base, 1),
            (base + 1, 1),
            (base - 1, 1),
            (base + 60_000, 3),
            (base - 60_000, 3),
            (base + 86_400_000, 4),
            (0, 6),
        ] {
            let s = Stamp::at(ms, base);
            assert_eq!(Stamp::unzigzag(s.zigzag()), s);
            let mut v = Vec::new();
            put_varint(&mut v, s.zigzag());
            assert_eq!(v.len(), bytes, "{ms}");
            assert_eq!(s.ms(base), ms);
        }
        // Far past the end of the signed range, times clamp, never wrap.
        assert_eq!(Stamp::at(u64::MAX, 0).ms(0), i64::MAX as u64);
        assert_eq!(Stamp(i64::MIN).ms(5), 0);
        for z in [0, 1, 2, u64::MAX, u64::MAX - 1] {
            assert_eq!(Stamp::unzigzag(z).zigzag(), z);
        }
    }

    impl Body {
        fn clone_kind(&self) -> u8 {
            match self {
                Body::Inline { .. } => 0,
                Body::Extent { .. } => 1,
                Body::Chunked { .. } => 2,
                Body::Absent => 3,
            }
        }
    }
}
