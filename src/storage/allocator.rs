//! Space in the data area: which extents are in use, which are free, and
//! when freed space may be handed out again.
//!
//! Two B-trees, both part of every committed state (spec/FORMAT.md §8):
//! - the **allocations index**, offset → (length, kind), one entry per
//!   extent in use;
//! - the **free-chunks index**, (length, offset) → (), one entry per maximal
//!   free chunk, so that a best fit is one seek.
//!
//! Every byte of `[DATA_START, file_len)` lies in exactly one allocation or
//! one free chunk, and no two free chunks touch: freeing merges with the free
//! neighbours, found through the allocations index.
//!
//! Freed space is *quarantined* (kept out of allocation, though already free
//! in the indexes) until it can no longer be reached: space freed from the
//! committed state stays out until the transaction that frees it has
//! committed (it is the crash fallback until then), and all freed space stays
//! out while a reader that may still see it holds an epoch pin.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::btree::{Cx, Tree};
use crate::error::{Error, Result};
use crate::header::{DATA_START, PAGE};
use crate::varint;

/// Alignment of every extent.
pub(crate) const ALIGN: u64 = 16;

/// What an extent holds (stored in the allocations index).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum ExtentKind {
    /// A B-tree node page.
    Node = 1,
    /// The stored bytes of a value.
    Value = 2,
    /// The chunk table of a value stored in chunks.
    ChunkTable = 3,
    /// Per-entry metadata.
    Meta = 4,
    /// A compression dictionary.
    Dict = 5,
}

impl ExtentKind {
    /// Decodes a kind byte.
    pub(crate) fn from_u8(b: u8) -> Option<ExtentKind> {
        Some(match b {
            1 => ExtentKind::Node,
            2 => ExtentKind::Value,
            3 => ExtentKind::ChunkTable,
            4 => ExtentKind::Meta,
            5 => ExtentKind::Dict,
            _ => return None,
        })
    }
}

/// When freed space may be reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reuse {
    /// At once: nothing ever referenced it.
    Now,
    /// Once no reader pinned at or before this epoch remains.
    AfterEpoch(u64),
    /// Once the current transaction has committed, then as `AfterEpoch`
    /// with the tag given at commit.
    AfterCommit,
    /// Not until released: space reserved for data being written (a value
    /// streamed in), free on disk until claimed.
    Reserved,
}

/// `x` rounded up to a multiple of `a` (a power of two).
pub(crate) fn align_up(x: u64, a: u64) -> u64 {
    (x + a - 1) & !(a - 1)
}

/// Whole `PAGE`-aligned pages inside `[start, start + len)`.
pub(crate) fn pages_in(start: u64, len: u64) -> u64 {
    let a = align_up(start, PAGE);
    let e = start + len;
    if e > a {
        (e - a) / PAGE
    } else {
        0
    }
}

fn free_key(len: u64, off: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&len.to_be_bytes());
    k[8..].copy_from_slice(&off.to_be_bytes());
    k
}

/// An allocations-index value: the kind, then the length as a varint (an
/// extent of a few KiB takes 3 bytes instead of 9).
fn alloc_val(len: u64, kind: ExtentKind) -> Vec<u8> {
    let mut v = vec![kind as u8];
    varint::put(&mut v, len);
    v
}

/// Decodes an allocations-index entry: (offset, length, kind).
pub(crate) fn decode_alloc(k: &[u8], v: &[u8]) -> Result<(u64, u64, ExtentKind)> {
    let bad = || Error::corrupt("allocations index", 0, "malformed entry");
    if k.len() != 8 {
        return Err(bad());
    }
    let off = u64::from_be_bytes(k.try_into().map_err(|_| bad())?);
    let kind = ExtentKind::from_u8(*v.first().ok_or_else(bad)?).ok_or_else(bad)?;
    let mut at = 1;
    let len = varint::get(v, &mut at).ok_or_else(bad)?;
    if at != v.len() {
        return Err(bad());
    }
    Ok((off, len, kind))
}

/// Decodes a free-chunks-index key: (length, offset).
pub(crate) fn decode_free(k: &[u8]) -> Result<(u64, u64)> {
    if k.len() != 16 {
        return Err(Error::corrupt("free-chunks index", 0, "malformed key"));
    }
    let mut a = [0u8; 8];
    let mut b = [0u8; 8];
    a.copy_from_slice(&k[..8]);
    b.copy_from_slice(&k[8..]);
    Ok((u64::from_be_bytes(a), u64::from_be_bytes(b)))
}

/// The pages `start..end` touches: the most whole free pages a quarantined
/// range can withhold (an aligned node page withholds one, not two).
fn pages_touched(start: u64, end: u64) -> u64 {
    (align_up(end, PAGE) - start / PAGE * PAGE) / PAGE
}

/// Freed ranges not yet reusable.
#[derive(Debug, Default)]
pub(crate) struct Quarantine {
    /// The ranges as (start, end) → how many times each is held. Ranges
    /// may overlap, even start at the same offset: clearing the cache
    /// quarantines the whole old file on top of what was quarantined
    /// before, and each range must stay until its own release.
    ranges: BTreeMap<(u64, u64), u32>,
    /// Reservations: start → end (their starts are unique, since a
    /// reservation is placed clear of every quarantined range).
    reserved: BTreeMap<u64, u64>,
    /// Ranges waiting for the current transaction to commit.
    awaiting: Vec<(u64, u64)>,
    /// Epoch tag → ranges waiting for readers to let go.
    tagged: BTreeMap<u64, Vec<(u64, u64)>>,
    /// A conservative count of pages the ranges make unusable.
    pages: u64,
    /// The ranges with touching ones joined (start → end), for searches:
    /// a long transaction frees thousands of adjacent committed pages, and
    /// looking for room past them one range at a time cost each allocation
    /// thousands of lookups.
    joined: BTreeMap<u64, u64>,
    /// Whether two ranges ever overlapped (clearing the cache quarantines
    /// the whole old file on top of what was quarantined before): then a
    /// range that goes may leave bytes another still covers, and `joined`
    /// is rebuilt instead of cut. Reset when the quarantine empties.
    overlapped: bool,
}

/// Adds `[s, e)` to disjoint, non-touching ranges, joining what it touches.
/// Returns whether it overlapped one (more than touching).
fn join_into(m: &mut BTreeMap<u64, u64>, mut s: u64, mut e: u64) -> bool {
    let mut overlapped = false;
    if let Some((&ps, &pe)) = m.range(..=s).next_back() {
        if pe >= s {
            overlapped |= pe > s;
            m.remove(&ps);
            s = ps;
            e = e.max(pe);
        }
    }
    while let Some((&ns, &ne)) = m.range(s..).next() {
        if ns > e {
            break;
        }
        overlapped |= ns < e;
        m.remove(&ns);
        e = e.max(ne);
    }
    m.insert(s, e);
    overlapped
}

impl Quarantine {
    fn add(&mut self, start: u64, end: u64, reuse: Reuse) {
        match reuse {
            Reuse::Now => return,
            Reuse::AfterCommit => self.awaiting.push((start, end)),
            Reuse::AfterEpoch(t) => self.tagged.entry(t).or_default().push((start, end)),
            Reuse::Reserved => {
                if let Some(old) = self.reserved.insert(start, end) {
                    // Cannot happen (see `reserved`): keep the old one, so
                    // that its release stays exact; claiming the new one
                    // then fails with an internal error, not silently.
                    self.reserved.insert(start, old);
                    return;
                }
            }
        }
        self.pages += pages_touched(start, end);
        *self.ranges.entry((start, end)).or_default() += 1;
        self.overlapped |= join_into(&mut self.joined, start, end);
    }

    /// Drops one hold of `[s, e)`.
    fn remove(&mut self, s: u64, e: u64) {
        let Some(n) = self.ranges.get_mut(&(s, e)) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            self.ranges.remove(&(s, e));
        }
        self.pages -= pages_touched(s, e);
        self.unjoin(s, e);
    }

    /// Removes range `[s, e)`, one of whose holds just went, from `joined`.
    fn unjoin(&mut self, s: u64, e: u64) {
        if self.ranges.is_empty() {
            self.joined.clear();
            self.overlapped = false;
            return;
        }
        if self.overlapped {
            self.joined.clear();
            for &(rs, re) in self.ranges.keys() {
                join_into(&mut self.joined, rs, re);
            }
            return;
        }
        if let Some((&js, &je)) = self.joined.range(..=s).next_back() {
            if je >= e {
                self.joined.remove(&js);
                if js < s {
                    self.joined.insert(js, s);
                }
                if e < je {
                    self.joined.insert(e, je);
                }
            }
        }
    }

    /// Ends the reservation starting at `start`; returns its end.
    fn release(&mut self, start: u64) -> Option<u64> {
        let e = self.reserved.remove(&start)?;
        self.remove(start, e);
        Some(e)
    }

    /// The current transaction committed: its ranges now wait for readers.
    pub(crate) fn committed(&mut self, tag: u64) {
        if !self.awaiting.is_empty() {
            let v = std::mem::take(&mut self.awaiting);
            self.tagged.entry(tag).or_default().extend(v);
        }
    }

    /// Releases every range tagged below `min_pinned`.
    pub(crate) fn reclaim(&mut self, min_pinned: u64) {
        while let Some((&tag, _)) = self.tagged.first_key_value() {
            if tag >= min_pinned {
                break;
            }
            if let Some((_, ranges)) = self.tagged.pop_first() {
                for (s, e) in ranges {
                    self.remove(s, e);
                }
            }
        }
    }

    /// Whether there is anything tagged (waiting for readers only).
    pub(crate) fn has_tagged(&self) -> bool {
        !self.tagged.is_empty()
    }

    /// Whether nothing is quarantined.
    pub(crate) fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Bytes quarantined.
    pub(crate) fn bytes(&self) -> u64 {
        self.ranges
            .iter()
            .map(|(&(s, e), &n)| (e - s) * u64::from(n))
            .sum()
    }

    /// The highest end of any range (0 when empty).
    pub(crate) fn max_end(&self) -> u64 {
        self.ranges.keys().map(|&(_, e)| e).max().unwrap_or(0)
    }

    /// If `[a, a + len)` overlaps a quarantined range, the end of that
    /// range and of any touching it.
    fn overlap(&self, a: u64, len: u64) -> Option<u64> {
        let (_, &e) = self.joined.range(..a + len).next_back()?;
        (e > a).then_some(e)
    }

    /// The first `align`-aligned offset in chunk `[s, s + l)` where `len`
    /// bytes fit without touching a quarantined range.
    fn place(&self, s: u64, l: u64, len: u64, align: u64) -> Option<u64> {
        let mut a = align_up(s, align);
        loop {
            if a + len > s + l {
                return None;
            }
            match self.overlap(a, len) {
                Some(e) => a = align_up(e, align),
                None => return Some(a),
            }
        }
    }
}

/// The allocator's state in a write transaction.
#[derive(Debug)]
pub(crate) struct Allocator {
    /// The allocations index.
    pub alloc: Tree,
    /// The free-chunks index.
    pub free: Tree,
    /// Length of the data the state covers (the file may be longer).
    pub file_len: u64,
    /// Maximum file size, 0 = unlimited.
    pub cap: u64,
    /// A tighter bound on where new extents may go, 0 = none (used while
    /// the maximum file size is being lowered).
    pub limit: u64,
    /// Grow the file by exactly what is allocated, without the step that
    /// keeps later commits one-phase (while trimming).
    pub exact_growth: bool,
    /// Bytes in free chunks.
    pub free_bytes: u64,
    /// Whole aligned pages inside free chunks.
    pub free_pages: u64,
    /// Freed space not yet reusable.
    pub quarantine: Quarantine,
}

impl Allocator {
    /// The offset no extent may reach past, 0 = unbounded.
    pub(crate) fn bound(&self) -> u64 {
        match (self.cap, self.limit) {
            (0, l) => l,
            (c, 0) => c,
            (c, l) => c.min(l),
        }
    }

    /// Pages available for new node pages and page-sized values, a lower
    /// bound: growth room under the cap plus free pages, minus quarantine.
    pub(crate) fn available_pages(&self) -> u64 {
        let tail = match self.bound() {
            0 => u64::MAX / 4,
            b => b.saturating_sub(align_up(self.file_len, PAGE)) / PAGE,
        };
        (tail + self.free_pages).saturating_sub(self.quarantine.pages)
    }

    /// Bytes that could be allocated before hitting the cap, ignoring
    /// fragmentation (free bytes minus quarantine, plus growth room).
    pub(crate) fn available_bytes(&self) -> u64 {
        let tail = match self.bound() {
            0 => u64::MAX / 4,
            b => b.saturating_sub(self.file_len),
        };
        (tail + self.free_bytes).saturating_sub(self.quarantine.bytes())
    }

    /// Pages the quarantine is counted as holding.
    pub(crate) fn quarantine_pages(&self) -> u64 {
        self.quarantine.pages
    }

    fn insert_free(&mut self, cx: &mut Cx<'_>, len: u64, off: u64) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        self.free.insert(cx, &free_key(len, off), &[])?;
        self.free_bytes += len;
        self.free_pages += pages_in(off, len);
        Ok(())
    }

    fn remove_free(&mut self, cx: &mut Cx<'_>, len: u64, off: u64) -> Result<()> {
        if self.free.remove(cx, &free_key(len, off))?.is_none() {
            return Err(Error::corrupt(
                "free-chunks index",
                off,
                format!("free chunk of {len} bytes missing"),
            ));
        }
        self.free_bytes -= len;
        self.free_pages -= pages_in(off, len);
        Ok(())
    }

    /// Allocates `len` bytes (a multiple of 16) aligned to `align`, reusing
    /// free space before growing the file. Fails with [`Error::NoSpace`] when
    /// the cap leaves no room.
    pub(crate) fn alloc(
        &mut self,
        cx: &mut Cx<'_>,
        len: u64,
        align: u64,
        kind: ExtentKind,
    ) -> Result<u64> {
        if len == 0 || !len.is_multiple_of(ALIGN) {
            return Err(crate::internal!("allocation of {len} bytes"));
        }
        let off = match self.best_fit(cx, len, align)? {
            Some(fit) => self.take_fit(cx, fit, len)?,
            None => self.grow(cx, len, align)?,
        };
        self.alloc
            .insert(cx, &off.to_be_bytes(), &alloc_val(len, kind))?;
        Ok(off)
    }

    /// Allocates `n` pages that lie side by side, each its own extent of
    /// `kind`, in the smallest free chunk that holds them all, or with
    /// `grow` at the end of the file. `None` (and nothing changed) when
    /// there is no such chunk, or no room under the cap to grow.
    pub(crate) fn alloc_run(
        &mut self,
        cx: &mut Cx<'_>,
        n: u64,
        grow: bool,
        kind: ExtentKind,
    ) -> Result<Option<Vec<u64>>> {
        let len = n * PAGE;
        let a = match self.best_fit(cx, len, PAGE)? {
            Some(fit) => self.take_fit(cx, fit, len)?,
            None if grow => match self.grow(cx, len, PAGE) {
                Ok(a) => a,
                Err(Error::NoSpace { .. }) => return Ok(None),
                Err(e) => return Err(e),
            },
            None => return Ok(None),
        };
        let pages: Vec<u64> = (0..n).map(|k| a + k * PAGE).collect();
        for p in &pages {
            self.alloc
                .insert(cx, &p.to_be_bytes(), &alloc_val(PAGE, kind))?;
        }
        Ok(Some(pages))
    }

    /// Takes `len` bytes at `a` out of the free chunk of `l` bytes at `s`
    /// that [`best_fit`](Self::best_fit) found, keeping what is left
    /// around them free; returns `a`.
    fn take_fit(&mut self, cx: &mut Cx<'_>, (l, s, a): (u64, u64, u64), len: u64) -> Result<u64> {
        self.remove_free(cx, l, s)?;
        self.insert_free(cx, a - s, s)?;
        self.insert_free(cx, s + l - (a + len), a + len)?;
        Ok(a)
    }

    fn best_fit(&self, cx: &Cx<'_>, len: u64, align: u64) -> Result<Option<(u64, u64, u64)>> {
        if self.free.root.is_none() {
            return Ok(None);
        }
        let rd = self.free.reader(cx.arena, cx.src);
        let bound = self.bound();
        let place = |s: u64, l: u64| {
            let l = if bound != 0 {
                l.min(bound.saturating_sub(s))
            } else {
                l
            };
            self.quarantine.place(s, l, len, align)
        };
        let mut found = None;
        // First the smallest chunks that might fit; when alignment makes
        // those fail, chunks big enough for any alignment.
        for from in [len, len + align - ALIGN] {
            let mut tried = 0;
            let k = free_key(from, 0);
            rd.scan(Bound::Included(&k), |k, _| {
                let (l, s) = decode_free(k)?;
                if let Some(a) = place(s, l) {
                    found = Some((l, s, a));
                    return Ok(false);
                }
                tried += 1;
                Ok(tried < 64)
            })?;
            if found.is_some() || align == ALIGN && self.quarantine.is_empty() && bound == 0 {
                return Ok(found);
            }
        }
        // Many small chunks pinned by readers or misaligned: the largest
        // chunks hold room around any quarantined piece.
        let mut key: Option<Vec<u8>> = None;
        for _ in 0..64 {
            let Some((k, _)) = rd.floor(key.as_deref(), false)? else {
                break;
            };
            let (l, s) = decode_free(&k)?;
            if l < len {
                break;
            }
            if let Some(a) = place(s, l) {
                return Ok(Some((l, s, a)));
            }
            key = Some(k);
        }
        Ok(None)
    }

    fn grow(&mut self, cx: &mut Cx<'_>, len: u64, align: u64) -> Result<u64> {
        self.grow_as(cx, len, align, false)
    }

    /// Grows the file for `len` bytes at an `align`ed offset; with `free`,
    /// the new range stays part of the free tail chunk (a reservation).
    fn grow_as(&mut self, cx: &mut Cx<'_>, len: u64, align: u64, free: bool) -> Result<u64> {
        // Start in the free space at the end, not after it: what is left of
        // the last growth step is used, not stranded.
        let tail = self.tail_chunk_start(cx)?;
        let mut a = align_up(tail, align);
        while let Some(e) = self.quarantine.overlap(a, len) {
            a = align_up(e, align);
        }
        let end = a + len;
        let bound = self.bound();
        if bound != 0 && end > bound {
            return Err(Error::NoSpace {
                detail: format!(
                    "{len} more bytes would take the file to {end}, past its maximum of {bound}"
                ),
            });
        }
        // Grow a step beyond the extent, so that the next small commits
        // find room inside the file's durable length (one-phase commits
        // never grow the file; spec §7). The step stays under the cap.
        let step = if self.exact_growth {
            0
        } else {
            (end / 128).clamp(64 << 10, 4 << 20)
        };
        let mut new_len = if self.exact_growth {
            end
        } else {
            align_up(end + step, PAGE)
        };
        if bound != 0 {
            new_len = new_len.min(bound);
        }
        new_len = new_len.max(self.file_len);
        // The free space at the tail is rebuilt around the new extent.
        if tail < self.file_len {
            self.remove_free(cx, self.file_len - tail, tail)?;
        }
        let s = tail.min(self.file_len);
        if free {
            self.insert_free(cx, new_len - s, s)?;
        } else {
            self.insert_free(cx, a - s, s)?;
            self.insert_free(cx, new_len - end, end)?;
        }
        self.file_len = new_len;
        Ok(a)
    }

    /// Start of the free space at the end of the data area (= `file_len`
    /// when the last byte is allocated).
    fn tail_chunk_start(&self, cx: &Cx<'_>) -> Result<u64> {
        match self.alloc.reader(cx.arena, cx.src).floor(None, false)? {
            Some((k, v)) => {
                let (off, len, _) = decode_alloc(&k, &v)?;
                Ok(off + len)
            }
            None => Ok(DATA_START),
        }
    }

    /// Finds room for `len` bytes (a multiple of 16) and reserves it: it
    /// stays free in the indexes (a commit in the meantime leaks nothing)
    /// but is not handed out until [`claim`](Self::claim)ed or
    /// [`release`](Self::release)d.
    pub(crate) fn reserve(&mut self, cx: &mut Cx<'_>, len: u64, align: u64) -> Result<u64> {
        if len == 0 || !len.is_multiple_of(ALIGN) {
            return Err(crate::internal!("reservation of {len} bytes"));
        }
        let off = match self.best_fit(cx, len, align)? {
            Some((_, _, a)) => a,
            None => self.grow_as(cx, len, align, true)?,
        };
        self.quarantine.add(off, off + len, Reuse::Reserved);
        Ok(off)
    }

    /// Gives up a reservation (the space is free again).
    pub(crate) fn release(&mut self, off: u64) {
        self.quarantine.release(off);
    }

    /// Turns the reservation at `off` into an allocation of `kind`.
    pub(crate) fn claim(
        &mut self,
        cx: &mut Cx<'_>,
        off: u64,
        len: u64,
        kind: ExtentKind,
    ) -> Result<()> {
        if self.quarantine.release(off) != Some(off + len) {
            return Err(crate::internal!(
                "claiming {len} bytes at {off} that were not reserved"
            ));
        }
        let rd = self.alloc.reader(cx.arena, cx.src);
        let s = match rd.floor(Some(&off.to_be_bytes()), false)? {
            Some((k, v)) => {
                let (o, l, _) = decode_alloc(&k, &v)?;
                o + l
            }
            None => DATA_START,
        };
        let e = match rd.ceiling(&off.to_be_bytes(), true)? {
            Some((k, _)) => {
                let mut a = [0u8; 8];
                a.copy_from_slice(&k);
                u64::from_be_bytes(a)
            }
            None => self.file_len,
        };
        if s > off || e < off + len {
            return Err(Error::corrupt(
                "allocations index",
                off,
                "reserved space was allocated",
            ));
        }
        self.remove_free(cx, e - s, s)?;
        self.insert_free(cx, off - s, s)?;
        self.insert_free(cx, e - (off + len), off + len)?;
        self.alloc
            .insert(cx, &off.to_be_bytes(), &alloc_val(len, kind))?;
        Ok(())
    }

    /// Frees the extent `[off, off + len)`, merging it with free neighbours.
    pub(crate) fn free(&mut self, cx: &mut Cx<'_>, off: u64, len: u64, reuse: Reuse) -> Result<()> {
        let Some(v) = self.alloc.remove(cx, &off.to_be_bytes())? else {
            return Err(Error::corrupt(
                "allocations index",
                off,
                "freeing an extent that is not allocated",
            ));
        };
        let (_, have, _) = decode_alloc(&off.to_be_bytes(), &v)?;
        if have != len {
            return Err(Error::corrupt(
                "allocations index",
                off,
                format!("extent is {have} bytes, not {len}"),
            ));
        }
        let rd = self.alloc.reader(cx.arena, cx.src);
        let prev_end = match rd.floor(Some(&off.to_be_bytes()), false)? {
            Some((k, v)) => {
                let (o, l, _) = decode_alloc(&k, &v)?;
                o + l
            }
            None => DATA_START,
        };
        let next_start = match rd.ceiling(&off.to_be_bytes(), true)? {
            Some((k, _)) => {
                let mut a = [0u8; 8];
                a.copy_from_slice(&k);
                u64::from_be_bytes(a)
            }
            None => self.file_len,
        };
        if prev_end > off || next_start < off + len {
            return Err(Error::corrupt(
                "allocations index",
                off,
                "extent overlaps its neighbours",
            ));
        }
        if prev_end < off {
            self.remove_free(cx, off - prev_end, prev_end)?;
        }
        if next_start > off + len {
            self.remove_free(cx, next_start - (off + len), off + len)?;
        }
        self.insert_free(cx, next_start - prev_end, prev_end)?;
        self.quarantine.add(off, off + len, reuse);
        Ok(())
    }

    /// Drops every allocation: the whole data area becomes unused and the
    /// state's length shrinks to `DATA_START`. Space of the committed state
    /// stays quarantined until the commit (`clear`).
    pub(crate) fn reset(&mut self, cx: &mut Cx<'_>, committed_len: u64) {
        self.alloc.drop_all(cx);
        self.free.drop_all(cx);
        if committed_len > DATA_START {
            self.quarantine.add(
                DATA_START,
                committed_len.max(self.file_len),
                Reuse::AfterCommit,
            );
        }
        self.file_len = DATA_START;
        self.free_bytes = 0;
        self.free_pages = 0;
    }

    /// The free chunk at the end of the data area, if it can be cut off
    /// (nothing quarantined in it): returns its start.
    pub(crate) fn trimmable_tail(&self, cx: &Cx<'_>) -> Result<Option<u64>> {
        let t = self.tail_chunk_start(cx)?;
        if t >= self.file_len || self.quarantine.overlap(t, self.file_len - t).is_some() {
            return Ok(None);
        }
        Ok(Some(t))
    }

    /// Cuts the free tail chunk starting at `t` off the data area.
    pub(crate) fn trim_to(&mut self, cx: &mut Cx<'_>, t: u64) -> Result<()> {
        if t < self.file_len {
            self.remove_free(cx, self.file_len - t, t)?;
            self.file_len = t;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarantine_searches_past_touching_ranges_and_what_overlaps() {
        let mut q = Quarantine::default();
        for s in [0u64, 10, 20] {
            q.add(s, s + 10, Reuse::Reserved);
        }
        // Touching ranges are passed in one step.
        assert_eq!(q.overlap(5, 1), Some(30));
        assert_eq!(q.overlap(30, 5), None);
        q.release(10);
        assert_eq!(q.overlap(5, 1), Some(10));
        assert_eq!(q.overlap(12, 1), None);
        assert_eq!(q.overlap(12, 10), Some(30));
        // A range on top of others (clear quarantines the whole old file):
        // one of them going must not uncover what the big one holds.
        q.add(0, 100, Reuse::AfterCommit);
        assert_eq!(q.overlap(12, 1), Some(100));
        q.release(20);
        assert_eq!(q.overlap(25, 1), Some(100));
        assert_eq!(q.overlap(100, 1), None);
        q.release(0);
        q.committed(1);
        assert_eq!(q.overlap(5, 1), Some(100));
        q.reclaim(2);
        assert!(q.is_empty());
        assert_eq!((q.overlap(5, 1), q.pages, q.bytes()), (None, 0, 0));
    }

    #[test]
    fn quarantine_keeps_ranges_that_start_at_the_same_offset() {
        // A freed extent at the start of the data area waits for a reader;
        // then the cache is cleared, which quarantines the whole old file
        // from the same offset until its own commit and readers. The first
        // range going must leave the second in place.
        let mut q = Quarantine::default();
        q.add(64, 64 + 4096, Reuse::AfterEpoch(3));
        q.add(64, 1 << 20, Reuse::AfterCommit);
        q.reclaim(4);
        assert_eq!(q.overlap(64, 1), Some(1 << 20), "the clear's range stays");
        assert_eq!(q.overlap(8192, 1), Some(1 << 20));
        assert_eq!(q.bytes(), (1 << 20) - 64);
        q.committed(7);
        q.reclaim(7);
        assert_eq!(q.overlap(8192, 1), Some(1 << 20), "until its readers go");
        q.reclaim(8);
        assert!(q.is_empty());
        assert_eq!((q.overlap(64, 1), q.pages), (None, 0));
    }
}
