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
//! newcomer overwrites an old tag of its bucket, allocated in small
//! segments as they are first used.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Tags per bucket: one 64-byte cache line.
const WAYS: usize = 8;
/// Buckets per segment: 512 × 8 tags = 32 KiB.
const SEG_BUCKETS: usize = 512;
/// Segments: 64 × 32 KiB = 2 MiB in all, each allocated when first used
/// (no allocation is ever larger than a segment).
const SEGMENTS: usize = 64;
/// Buckets in all.
const BUCKETS: usize = SEG_BUCKETS * SEGMENTS;

/// A lossy set of checked (offset, length, crc32) triples.
pub(crate) struct Checked {
    segments: Box<[OnceLock<Box<[AtomicU64]>>]>,
}

impl Default for Checked {
    fn default() -> Self {
        Checked {
            segments: (0..SEGMENTS).map(|_| OnceLock::new()).collect(),
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

    /// The segment and the bucket within it for `tag`.
    fn place(tag: u64) -> (usize, usize) {
        let b = (tag >> 32) as usize % BUCKETS;
        (b / SEG_BUCKETS, (b % SEG_BUCKETS) * WAYS)
    }

    /// Whether the extent `off..off+len` was checked against `crc`.
    pub(crate) fn contains(&self, off: u64, len: u64, crc: u32) -> bool {
        let t = Self::tag(off, len, crc);
        let (s, at) = Self::place(t);
        match self.segments[s].get() {
            Some(seg) => seg[at..at + WAYS]
                .iter()
                .any(|w| w.load(Ordering::Relaxed) == t),
            None => false,
        }
    }

    /// Records that the extent `off..off+len` matched `crc`.
    pub(crate) fn insert(&self, off: u64, len: u64, crc: u32) {
        let t = Self::tag(off, len, crc);
        let (s, at) = Self::place(t);
        let seg = self.segments[s]
            .get_or_init(|| (0..SEG_BUCKETS * WAYS).map(|_| AtomicU64::new(0)).collect());
        let b = &seg[at..at + WAYS];
        let way = b
            .iter()
            .position(|w| w.load(Ordering::Relaxed) == 0)
            .unwrap_or((t >> 1) as usize % WAYS);
        b[way].store(t, Ordering::Relaxed);
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
        for i in 0..(4 * WAYS * BUCKETS) as u64 {
            c.insert(i * 16, 16, i as u32);
        }
        let kept = (0..(4 * WAYS * BUCKETS) as u64)
            .filter(|&i| c.contains(i * 16, 16, i as u32))
            .count();
        assert!(kept > 0 && kept <= WAYS * BUCKETS, "{kept}");
        assert!(!c.contains(16, 16, 0));
    }
}
