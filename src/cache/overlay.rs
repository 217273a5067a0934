//! Changes since the last commit, as readers see them.
//!
//! Readers look up the committed primary index through the memory map. A
//! `put` or `remove` must be visible to `get` at once, before it is
//! committed, so the writer also records each changed key here: the new
//! entry record, or `None` for a removal. The commit replaces the overlay
//! with an empty one together with the new committed state.
//!
//! The map is sharded so that readers of different keys rarely touch the
//! same lock, and a small bit filter lets most lookups of unchanged keys skip
//! the locks entirely.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

const SHARDS: usize = 64;
const FILTER_BITS: usize = 1 << 16;

/// A small, fast hash for byte keys (FxHash's multiply-rotate).
#[derive(Default, Clone, Copy)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            h = (h.rotate_left(5) ^ b as u64).wrapping_mul(K);
        }
        self.0 = h;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Hash of a key, used for sharding and the filter.
pub(crate) fn key_hash(key: &[u8]) -> u64 {
    let mut h = KeyHasher::default();
    h.write(key);
    // Mix so that shard and filter bits are independent.
    let x = h.finish();
    x ^ (x >> 29) ^ (x >> 47)
}

type Shard = HashMap<Box<[u8]>, Option<Arc<[u8]>>, BuildHasherDefault<KeyHasher>>;

/// What the overlay says about a key.
pub(crate) enum Seen {
    /// Unchanged since the last commit: ask the committed index.
    Unchanged,
    /// Removed since the last commit.
    Removed,
    /// Put since the last commit: its encoded entry record.
    Put(Arc<[u8]>),
}

/// The uncommitted changes.
pub(crate) struct Overlay {
    shards: Box<[RwLock<Shard>]>,
    filter: Box<[AtomicU64]>,
    len: AtomicUsize,
}

impl Default for Overlay {
    fn default() -> Self {
        Overlay {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            filter: (0..FILTER_BITS / 64).map(|_| AtomicU64::new(0)).collect(),
            len: AtomicUsize::new(0),
        }
    }
}

impl Overlay {
    fn bit(h: u64) -> (usize, u64) {
        let b = (h as usize) % FILTER_BITS;
        (b / 64, 1 << (b % 64))
    }

    /// What the overlay says about `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Seen {
        if self.len.load(Ordering::Acquire) == 0 {
            return Seen::Unchanged;
        }
        let h = key_hash(key);
        let (w, m) = Self::bit(h);
        if self.filter[w].load(Ordering::Acquire) & m == 0 {
            return Seen::Unchanged;
        }
        let shard = self.shards[(h >> 48) as usize % SHARDS].read();
        match shard.get(key) {
            None => Seen::Unchanged,
            Some(None) => Seen::Removed,
            Some(Some(r)) => Seen::Put(r.clone()),
        }
    }

    /// Number of keys changed.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Records a put (`Some(record)`) or a removal (`None`) of `key`.
    pub(crate) fn set(&self, key: &[u8], rec: Option<Arc<[u8]>>) {
        let h = key_hash(key);
        let (w, m) = Self::bit(h);
        // The filter bit goes first so a reader that finds the entry also
        // finds the bit.
        self.filter[w].fetch_or(m, Ordering::AcqRel);
        let mut shard = self.shards[(h >> 48) as usize % SHARDS].write();
        if shard.insert(key.into(), rec).is_none() {
            self.len.fetch_add(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_remove_unchanged() {
        let o = Overlay::default();
        assert!(matches!(o.get(b"a"), Seen::Unchanged));
        o.set(b"a", Some(Arc::from(&b"rec"[..])));
        o.set(b"b", None);
        assert!(matches!(o.get(b"a"), Seen::Put(r) if &r[..] == b"rec"));
        assert!(matches!(o.get(b"b"), Seen::Removed));
        assert!(matches!(o.get(b"c"), Seen::Unchanged));
    }
}
