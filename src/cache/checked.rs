//! Values whose checksum this handle has already checked.
//!
//! Checking the crc32 of a 4 KiB value costs about as much as the rest of
//! a `get` together, so a read-write handle remembers the extents it has
//! checked and does not check them again (spec §9, "Checking checksums once").
//! An entry is a 64-bit tag of (offset, stored length, crc32): extents are
//! never rewritten in place, and a new extent at a reused offset either
//! carries its own crc (another tag) or the very bytes that crc was
//! computed over, so the table never needs invalidating. A lost entry only
//! costs a re-check: the table is a fixed set-associative array where a
//! newcomer overwrites an old tag of its bucket.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

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

    /// Whether the extent `off..off+len` was checked against `crc`.
    pub(crate) fn contains(&self, off: u64, len: u64, crc: u32) -> bool {
        self.table(off, len).contains(Self::tag(off, len, crc))
    }

    /// Records that the extent `off..off+len` matched `crc`.
    pub(crate) fn insert(&self, off: u64, len: u64, crc: u32) {
        self.table(off, len).insert(Self::tag(off, len, crc));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_what_was_inserted_and_nothing_else() {
        let c = Checked::default();
        assert!(!c.contains(4096, 4096, 7));
        c.insert(4096, 4096, 7);
        assert!(c.contains(4096, 4096, 7));
        assert!(!c.contains(4096, 4096, 8));
        assert!(!c.contains(4096, 4080, 7));
        assert!(!c.contains(4112, 4096, 7));
    }

    #[test]
    fn a_full_bucket_forgets_but_never_invents() {
        let c = Checked::default();
        // 64 Ki extents in the first 16 MiB: the small table (4,096 tags)
        // keeps some, and nothing it was not given.
        let n = 1u64 << 16;
        for i in 0..n {
            c.insert(i * 16, 16, i as u32);
        }
        let kept = (0..n).filter(|&i| c.contains(i * 16, 16, i as u32)).count();
        assert!(kept > 0 && kept <= 512 * WAYS, "{kept}");
        assert!(!c.contains(16, 16, 0));
        assert!(
            c.large.tags.get().is_none(),
            "a small file needs no large table"
        );
        c.insert(SMALL_SPAN, 4096, 1);
        assert!(c.contains(SMALL_SPAN, 4096, 1));
        assert!(!c.contains(SMALL_SPAN, 4096, 2));
    }
}
