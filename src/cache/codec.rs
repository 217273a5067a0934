//! Value compression: whether to compress, and zstd in and out.
//!
//! A value is stored zstd-compressed when that saves at least 10 %;
//! otherwise raw. Trying costs microseconds on data that does not compress,
//! so after a run of failures only one value in 16 is tried, until one
//! compresses again (the way file systems' compression heuristics back off).
//!
//! Frames are written lean (spec §11.1): magicless, without content size,
//! dictionary id or checksum. The record already holds the raw length, the
//! dictionary and a CRC-32 of the stored bytes, so those fields would only
//! repeat it, at 6 to 14 bytes a value: a fifth of the index's share for a
//! small JSON document.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::cache::dict::LoadedDict;
use crate::cache::record::Codec;
use crate::error::{Error, Result};

/// Values shorter than this are never compressed...
const MIN_COMPRESS: usize = 64;
/// ...unless a dictionary is used: it lets short values shrink too.
const MIN_COMPRESS_DICT: usize = 16;
/// Failures in a row after which most values are not tried.
const BACKOFF_AFTER: u32 = 8;
/// While backing off, one value in this many is tried.
const BACKOFF_TRY_ONE_IN: u32 = 16;

/// zstd contexts with a dictionary loaded are kept per thread for this many
/// dictionaries (loading one costs far more than a small value's work).
const DICT_CONTEXTS: usize = 8;

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
    /// Keyed by (dictionary serial, level).
    static DICT_COMPRESSORS: RefCell<Vec<((u64, i32), zstd::bulk::Compressor<'static>)>> = const { RefCell::new(Vec::new()) };
    /// Keyed by dictionary serial.
    static DICT_DECOMPRESSORS: RefCell<Vec<(u64, zstd::bulk::Decompressor<'static>)>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with the context cached under `key` in `cache`, creating it
/// with `make` (and dropping the oldest beyond `DICT_CONTEXTS`).
fn with_cached<K: PartialEq + Copy, C, R>(
    cache: &RefCell<Vec<(K, C)>>,
    key: K,
    make: impl FnOnce() -> Result<C>,
    f: impl FnOnce(&mut C) -> Result<R>,
) -> Result<R> {
    let mut v = cache.borrow_mut();
    let i = match v.iter().position(|(k, _)| *k == key) {
        Some(i) => i,
        None => {
            if v.len() >= DICT_CONTEXTS {
                v.remove(0);
            }
            v.push((key, make()?));
            v.len() - 1
        }
    };
    f(&mut v[i].1)
}

/// Whether recent values compressed, shared by a cache's writers.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    failures: AtomicU32,
    skipped: AtomicU32,
}

impl Backoff {
    fn should_try(&self) -> bool {
        if self.failures.load(Ordering::Relaxed) < BACKOFF_AFTER {
            return true;
        }
        self.skipped
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(BACKOFF_TRY_ONE_IN)
    }

    /// Starts over (a new dictionary may make values compress again).
    pub(crate) fn reset(&self) {
        self.failures.store(0, Ordering::Relaxed);
    }

    fn record(&self, compressed: bool) {
        if compressed {
            self.failures.store(0, Ordering::Relaxed);
        } else {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Encodes `v` at zstd `level` (None = never compress). Returns the codec
/// and the compressed bytes when compression won.
pub(crate) fn compress(
    v: &[u8],
    level: Option<i32>,
    backoff: &Backoff,
) -> Result<(Codec, Option<Vec<u8>>)> {
    compress_with(v, level, backoff, None)
}

/// As [`compress`], with a dictionary.
pub(crate) fn compress_with(
    v: &[u8],
    level: Option<i32>,
    backoff: &Backoff,
    dict: Option<&LoadedDict>,
) -> Result<(Codec, Option<Vec<u8>>)> {
    let Some(level) = level else {
        return Ok((Codec::Raw, None));
    };
    let min = if dict.is_some() {
        MIN_COMPRESS_DICT
    } else {
        MIN_COMPRESS
    };
    if v.len() < min || !backoff.should_try() {
        return Ok((Codec::Raw, None));
    }
    let out = match dict {
        Some(d) => DICT_COMPRESSORS.with(|cache| {
            with_cached(
                cache,
                (d.serial, level),
                || {
                    zstd::bulk::Compressor::with_dictionary(level, &d.bytes)
                        .and_then(lean)
                        .map_err(|e| {
                            Error::InvalidArgument(format!("zstd dictionary {}: {e}", d.id))
                        })
                },
                |c| c.compress(v).map_err(|e| Error::io("compressing", e)),
            )
        })?,
        None => plain_compress(v, level)?,
    };
    let won = out.len() * 10 <= v.len() * 9;
    backoff.record(won);
    if won {
        Ok((Codec::Zstd, Some(out)))
    } else {
        Ok((Codec::Raw, None))
    }
}

/// Sets the frame format of spec §11.2 on a new compressor.
fn lean(
    mut c: zstd::bulk::Compressor<'static>,
) -> std::io::Result<zstd::bulk::Compressor<'static>> {
    use zstd::stream::raw::CParameter;
    c.set_parameter(CParameter::Format(zstd::zstd_safe::FrameFormat::Magicless))?;
    c.set_parameter(CParameter::ContentSizeFlag(false))?;
    c.set_parameter(CParameter::DictIdFlag(false))?;
    c.set_parameter(CParameter::ChecksumFlag(false))?;
    Ok(c)
}

/// A decompressor for the frame format of spec §11.2.
fn lean_decompressor(dict: Option<&[u8]>) -> std::io::Result<zstd::bulk::Decompressor<'static>> {
    let mut d = match dict {
        Some(b) => zstd::bulk::Decompressor::with_dictionary(b)?,
        None => zstd::bulk::Decompressor::new()?,
    };
    d.set_parameter(zstd::stream::raw::DParameter::Format(
        zstd::zstd_safe::FrameFormat::Magicless,
    ))?;
    Ok(d)
}

fn plain_compress(v: &[u8], level: i32) -> Result<Vec<u8>> {
    COMPRESSOR.with(|c| -> Result<Vec<u8>> {
        let mut c = c.borrow_mut();
        if c.as_ref().map(|(l, _)| *l) != Some(level) {
            let comp = zstd::bulk::Compressor::new(level)
                .and_then(lean)
                .map_err(|e| Error::InvalidArgument(format!("zstd level {level}: {e}")))?;
            *c = Some((level, comp));
        }
        let Some((_, comp)) = c.as_mut() else {
            return Err(crate::internal!("no compressor"));
        };
        comp.compress(v).map_err(|e| Error::io("compressing", e))
    })
}

/// Decompresses `stored` into exactly `raw_len` bytes, which must not exceed
/// `limit` (the length comes from disk: it is checked before allocating).
/// `offset` names the stored bytes in errors.
pub(crate) fn decompress(stored: &[u8], raw_len: u64, limit: u64, offset: u64) -> Result<Vec<u8>> {
    decompress_with(stored, raw_len, limit, offset, None)
}

/// As [`decompress`], with the dictionary the value was compressed with.
pub(crate) fn decompress_with(
    stored: &[u8],
    raw_len: u64,
    limit: u64,
    offset: u64,
    dict: Option<&LoadedDict>,
) -> Result<Vec<u8>> {
    if raw_len > limit {
        return Err(Error::corrupt(
            "value",
            offset,
            format!("raw length {raw_len} exceeds the limit of {limit} for one frame"),
        ));
    }
    let cap = usize::try_from(raw_len)
        .map_err(|_| Error::corrupt("value", offset, "raw length too large"))?;
    let mut out = Vec::with_capacity(cap);
    let bad = |e: std::io::Error| Error::corrupt("value", offset, format!("zstd: {e}"));
    let n = if let Some(dict) = dict {
        DICT_DECOMPRESSORS.with(|cache| {
            with_cached(
                cache,
                dict.serial,
                || {
                    lean_decompressor(Some(&dict.bytes)).map_err(|e| {
                        Error::corrupt("dictionary", 0, format!("dictionary {}: {e}", dict.id))
                    })
                },
                |d| d.decompress_to_buffer(stored, &mut out).map_err(bad),
            )
        })?
    } else {
        DECOMPRESSOR.with(|d| -> Result<usize> {
            let mut d = d.borrow_mut();
            if d.is_none() {
                *d = Some(
                    lean_decompressor(None).map_err(|e| Error::io("creating a decompressor", e))?,
                );
            }
            let Some(d) = d.as_mut() else {
                return Err(crate::internal!("no decompressor"));
            };
            d.decompress_to_buffer(stored, &mut out).map_err(bad)
        })?
    };
    if n as u64 != raw_len {
        return Err(Error::corrupt(
            "value",
            offset,
            format!("decompressed to {n} bytes, record says {raw_len}"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_compresses_random_does_not() {
        let text: Vec<u8> = b"{\"id\": 17, \"name\": \"tile\", \"x\": 12.5}, ".repeat(100);
        let b = Backoff::default();
        let (c, out) = compress(&text, Some(3), &b).unwrap();
        assert_eq!(c, Codec::Zstd);
        let out = out.unwrap();
        assert_eq!(
            decompress(&out, text.len() as u64, 1 << 20, 0).unwrap(),
            text
        );
        let mut x = 99u64;
        let random: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert_eq!(compress(&random, Some(3), &b).unwrap().0, Codec::Raw);
        assert_eq!(compress(&text, None, &b).unwrap().0, Codec::Raw);
        // A repeating pattern with every byte value equally common.
        let pattern: Vec<u8> = (0..4096u32).map(|j| (j ^ 5) as u8).collect();
        assert_eq!(compress(&pattern, Some(3), &b).unwrap().0, Codec::Zstd);
        // Backing off after failures, trying again now and then.
        for _ in 0..BACKOFF_AFTER {
            assert_eq!(compress(&random, Some(3), &b).unwrap().0, Codec::Raw);
        }
        let tried = (0..32)
            .filter(|_| compress(&text, Some(3), &b).unwrap().0 == Codec::Zstd)
            .count();
        assert!(tried >= 1, "text is tried again while backing off");
        assert_eq!(
            compress(&text, Some(3), &b).unwrap().0,
            Codec::Zstd,
            "a success ends the back-off"
        );
        assert!(decompress(&out[..out.len() / 2], text.len() as u64, 1 << 20, 0).is_err());
        assert!(decompress(&out, 5, 1 << 20, 0).is_err());
    }
}
