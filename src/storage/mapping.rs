//! The memory-map boundary: the only place dfcache uses `unsafe`.
//!
//! The file is mapped read-only and shared, so reads of committed data are
//! plain memory reads and a [`MappedSlice`] can hand bytes to a caller
//! without a copy. Writes never go through the map; they go through the
//! backend (`pwrite`), and on Linux the page cache makes them visible in the
//! map.
//!
//! The rules that make this sound (spec/FORMAT.md §9):
//! - a mapping may be longer than the file, but nothing is read past the
//!   file's known length (that would raise SIGBUS);
//! - the writer never changes bytes a reader can still reach: freed space is
//!   reused only after every reader that could see it has unpinned
//!   (see `epoch`), and a mapping is unmapped only after that too;
//! - the file is never truncated below what a pinned reader can reach.

use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::{Mmap, MmapOptions};

use crate::error::{Error, Result};
use crate::header::PAGE;

/// Pages after the first that [`MappedSlice::prefetch`] touches one line
/// of.
#[cfg(target_arch = "x86_64")]
const PREFETCH_PAGES: usize = 32;

/// A read-only shared mapping of the cache file.
pub(crate) struct Mapping {
    map: Mmap,
    /// Per-page "checksum verified" bits, one per 4 KiB page of the mapping.
    verified: Vec<AtomicU64>,
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping")
            .field("len", &self.map.len())
            .finish()
    }
}

impl Mapping {
    /// Maps `len` bytes of `file` (may exceed the file's current length).
    pub(crate) fn new(file: &File, len: u64) -> Result<Mapping> {
        let len_usize = usize::try_from(len)
            .map_err(|_| Error::InvalidArgument(format!("cannot map {len} bytes")))?;
        // SAFETY: the map is read-only and shared. dfcache never writes to the
        // file through it, reads stay below the file's known length (checked
        // by `slice`), and bytes a reader can reach are not modified by this
        // process while it can reach them (epoch protocol, module docs). Other
        // processes writing the file are covered by the spec's sharing rules:
        // read-only handles copy values out and re-validate them.
        let map = unsafe { MmapOptions::new().len(len_usize).map(file) }
            .map_err(|e| Error::io("mapping the file", e))?;
        let pages = len.div_ceil(PAGE);
        let words = pages.div_ceil(64) as usize;
        let mut verified = Vec::with_capacity(words);
        verified.resize_with(words, || AtomicU64::new(0));
        Ok(Mapping { map, verified })
    }

    /// Mapped length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.map.len() as u64
    }

    /// The bytes `offset..offset+len`, if that range lies within both the
    /// mapping and `file_len` (the length the caller knows the file has).
    pub(crate) fn slice(&self, offset: u64, len: u64, file_len: u64) -> Option<&[u8]> {
        let end = offset.checked_add(len)?;
        if end > file_len || end > self.map.len() as u64 {
            return None;
        }
        self.map.get(offset as usize..end as usize)
    }

    /// The file offset of `s`, if it is a slice of this mapping.
    pub(crate) fn offset_of(&self, s: &[u8]) -> Option<u64> {
        let base = self.map.as_ptr() as usize;
        let at = (s.as_ptr() as usize).checked_sub(base)?;
        (at.checked_add(s.len())? <= self.map.len()).then_some(at as u64)
    }

    /// Whether the page at `page` (a multiple of 4096) was checksum-verified.
    pub(crate) fn is_verified(&self, page: u64) -> bool {
        let p = page / PAGE;
        match self.verified.get((p / 64) as usize) {
            Some(w) => w.load(Ordering::Acquire) & (1 << (p % 64)) != 0,
            None => false,
        }
    }

    /// Records that the page at `page` passed its checksum.
    pub(crate) fn set_verified(&self, page: u64) {
        let p = page / PAGE;
        if let Some(w) = self.verified.get((p / 64) as usize) {
            w.fetch_or(1 << (p % 64), Ordering::AcqRel);
        }
    }

    /// Forgets verification of the pages overlapping `offset..offset+len`
    /// (they are about to be rewritten).
    pub(crate) fn clear_verified(&self, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        let first = offset / PAGE;
        let last = (offset + len - 1) / PAGE;
        for p in first..=last {
            if let Some(w) = self.verified.get((p / 64) as usize) {
                if w.load(Ordering::Relaxed) & (1 << (p % 64)) != 0 {
                    w.fetch_and(!(1 << (p % 64)), Ordering::AcqRel);
                }
            }
        }
    }

    /// Forgets every verification (the file was changed by another
    /// process: pages may have been rewritten).
    pub(crate) fn clear_all_verified(&self) {
        for w in &self.verified {
            w.store(0, Ordering::Release);
        }
    }

    /// Copies the verified bits of `other` (a smaller, older mapping).
    pub(crate) fn inherit_verified(&self, other: &Mapping) {
        for (dst, src) in self.verified.iter().zip(&other.verified) {
            dst.store(src.load(Ordering::Acquire), Ordering::Release);
        }
    }

    /// A raw view of `offset..offset+len` that can outlive this borrow. The
    /// caller must keep the mapping alive and the bytes unchanged for as long
    /// as the view is used (epoch pin); see [`MappedSlice`].
    pub(crate) fn raw(&self, offset: u64, len: u64, file_len: u64) -> Option<MappedSlice> {
        let s = self.slice(offset, len, file_len)?;
        Some(MappedSlice {
            ptr: s.as_ptr(),
            len: s.len(),
        })
    }
}

impl Mapping {
    /// A raw view of `s`, which must be a slice of this mapping (checked).
    pub(crate) fn raw_of(&self, s: &[u8]) -> Option<MappedSlice> {
        self.offset_of(s)?;
        Some(MappedSlice {
            ptr: s.as_ptr(),
            len: s.len(),
        })
    }
}

/// Bytes inside a [`Mapping`], detached from the borrow of the mapping.
///
/// Used by [`Value`](crate::Value) to give out stored bytes without a copy.
/// Whoever holds one must also hold an epoch pin taken before the bytes were
/// located: the pin keeps both the mapping and the bytes alive (the writer
/// neither unmaps nor reuses space a pinned reader may reach).
#[derive(Clone, Copy)]
pub(crate) struct MappedSlice {
    ptr: *const u8,
    len: usize,
}

impl MappedSlice {
    /// Asks the CPU to start loading the bytes: their first `lines` cache
    /// lines and the first line of each later page (up to
    /// [`PREFETCH_PAGES`]). The CPU's own prefetcher follows a stream only
    /// within a page, and each page of a mapping costs a TLB miss of its
    /// own: this makes a reader of a long value wait for memory once, not
    /// once per page. A hint: it reads nothing and cannot fault.
    #[inline]
    pub(crate) fn prefetch(&self, lines: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            let page = PAGE as usize;
            let lines = (0..lines).map(|i| i * 64);
            // The next page boundary after the first byte.
            let next_page = page - (self.ptr as usize % page);
            let pages = (0..PREFETCH_PAGES).map(|i| next_page + i * page);
            for at in lines.chain(pages).take_while(|&at| at < self.len) {
                // SAFETY: `prefetcht0` is part of SSE, which every x86_64
                // CPU has; it dereferences nothing and never faults, and
                // the address lies inside the slice (see `as_slice`).
                unsafe {
                    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                    _mm_prefetch::<_MM_HINT_T0>(self.ptr.add(at) as *const i8);
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = lines;
    }

    /// Whether the bytes are longer than a page of the file.
    pub(crate) fn longer_than_page(&self) -> bool {
        self.len as u64 > PAGE
    }

    /// The bytes.
    ///
    /// Callers hold an epoch pin covering the bytes (type docs).
    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr..ptr+len` lay inside a live mapping and below the
        // file's length when the slice was made (`Mapping::raw`). The holder's
        // epoch pin keeps the mapping mapped (retired mappings are dropped only
        // after every older pin is released) and the bytes unchanged (freed
        // space is reused under the same rule), so the memory stays valid and
        // immutable for the lifetime of the borrow of `self`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

// SAFETY: a MappedSlice is a read-only view of shared, process-wide memory
// (a file mapping); nothing about it is tied to the creating thread. Its
// validity is governed by the epoch pin that travels with it.
unsafe impl Send for MappedSlice {}
// SAFETY: as above; shared read-only access from several threads is fine.
unsafe impl Sync for MappedSlice {}
