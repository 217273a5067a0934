//! Values whose checksum this handle has already checked.
//!
//! Checking the crc32 of a 4 KiB value costs about as much as the rest of
//! a `get` together, so a read-write handle remembers the extents it has
//! checked and does not check them again (spec §9, "Checking checksums once").
//!
//! An extent that starts on a page boundary (every value whose stored
//! length rounds to whole pages, so all 4 KiB and larger raw values) is
//! remembered by one bit per page, kept with the mapping: a few KiB for a
//! file of a GiB, so the lookup stays in the CPU's cache, where a table of
//! tags for the same extents would cost a cache miss per `get`. The storage
//! layer forgets a page's bit whenever it writes into that page.
//!
//! Other extents are remembered by a 64-bit tag of (offset, stored length,
//! crc32): extents are never rewritten in place, and a new extent at a
//! reused offset either carries its own crc (another tag) or the very bytes
//! that crc was computed over, so those tags never need forgetting. A lost
//! tag only costs a re-check: the table is a fixed set-associative array
//! where a newcomer overwrites an old tag of its bucket.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::header::PAGE;
use crate::storage::Snapshot;

/// Tags per bucket: one 64-byte cache line.
const WAYS: usize = 8;
/// Extents ending within this many bytes of the file's start go to the
/// small table; the large one is only allocated for files larger than it,
/// so no allocation exceeds what a small file could justify.
const SMALL_SPAN: u64 = 16 << 20;

/// One set-associative table, allocated at its first insert.
struct Table {
    buckets: usize,
    tags: OnceLock<Box<[AtomicU64]>>,
}

impl Table {
    const fn new(buckets: usize) -> Table {
        Table {
            buckets,
            tags: OnceLock::new(),
        }
    }

    fn bucket<'t>(&self, tags: &'t [AtomicU64], tag: u64) -> &'t [AtomicU64] {
        let b = (tag >> 32) as usize % self.buckets;
        &tags[b * WAYS..(b + 1) * WAYS]
    }

    fn contains(&self, tag: u64) -> bool {
        match self.tags.get() {
            Some(tags) => self
                .bucket(tags, tag)
                .iter()
                .any(|w| w.load(Ordering::Relaxed) == tag),
            None => false,
        }
    }

    fn insert(&self, tag: u64) {
        let tags = self.tags.get_or_init(|| {
            (0..self.buckets * WAYS)
                .map(|_| AtomicU64::new(0))
                .collect()
        });
        let b = self.bucket(tags, tag);
        let way = b
            .iter()
            .position(|w| w.load(Ordering::Relaxed) == 0)
            .unwrap_or((tag >> 1) as usize % WAYS);
        b[way].store(tag, Ordering::Relaxed);
    }
}

/// A lossy set of checked (offset, length, crc32) triples.
pub(crate) struct Checked {
    /// 512 buckets: 32 KiB.
    small: Table,
    /// 32,768 buckets: 2 MiB.
    large: Table,
}

impl Default for Checked {
    fn default() -> Self {
        Checked {
            small: Table::new(512),
            large: Table::new(1 << 15),
        }
    }
}

impl std::fmt::Debug for Checked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Checked")
    }
}

impl Checked {
    /// The tag of an extent: a 64-bit mix of its triple, never 0 (0 marks
    /// an empty way).
    fn tag(off: u64, len: u64, crc: u32) -> u64 {
        let mut x = off ^ len.rotate_left(40) ^ (u64::from(crc) << 17);
        // splitmix64's finaliser.
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        x | 1
    }

    fn table(&self, off: u64, len: u64) -> &Table {
        if off.saturating_add(len) <= SMALL_SPAN {
            &self.small
        } else {
            &self.large
        }
    }

    /// Whether the extent `off..off+len` of `snap` was checked against
    /// `crc`.
    pub(crate) fn contains(&self, snap: &Snapshot, off: u64, len: u64, crc: u32) -> bool {
        if off.is_multiple_of(PAGE) {
            return snap.extent_checked(off);
        }
        self.table(off, len).contains(Self::tag(off, len, crc))
    }

    /// Records that the extent `off..off+len` of `snap` matched `crc`.
    pub(crate) fn insert(&self, snap: &Snapshot, off: u64, len: u64, crc: u32) {
        if off.is_multiple_of(PAGE) {
            snap.set_extent_checked(off);
        } else {
            self.table(off, len).insert(Self::tag(off, len, crc));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Page-aligned extents use the mapping's bits (tested through the
    // library in tests/file.rs); these tests cover the table of tags.
    impl Checked {
        fn has(&self, off: u64, len: u64, crc: u32) -> bool {
            self.table(off, len).contains(Self::tag(off, len, crc))
        }
        fn add(&self, off: u64, len: u64, crc: u32) {
            self.table(off, len).insert(Self::tag(off, len, crc));
        }
    }

    #[test]
    fn remembers_what_was_inserted_and_nothing_else() {
        let c = Checked::default();
        assert!(!c.has(4096, 4096, 7));
        c.add(4096, 4096, 7);
        assert!(c.has(4096, 4096, 7));
        assert!(!c.has(4096, 4096, 8));
        assert!(!c.has(4096, 4080, 7));
        assert!(!c.has(4112, 4096, 7));
    }

    #[test]
    fn a_full_bucket_forgets_but_never_invents() {
        let c = Checked::default();
        // 64 Ki extents in the first 16 MiB: the small table (4,096 tags)
        // keeps some, and nothing it was not given.
        let n = 1u64 << 16;
        for i in 0..n {
            c.add(i * 16, 16, i as u32);
        }
        let kept = (0..n).filter(|&i| c.has(i * 16, 16, i as u32)).count();
        assert!(kept > 0 && kept <= 512 * WAYS, "{kept}");
        assert!(!c.has(16, 16, 0));
        assert!(
            c.large.tags.get().is_none(),
            "a small file needs no large table"
        );
        c.add(SMALL_SPAN, 4096, 1);
        assert!(c.has(SMALL_SPAN, 4096, 1));
        assert!(!c.has(SMALL_SPAN, 4096, 2));
    }
}
