//! Per-reader-slot state: the hit buffer and the counters.
//!
//! Each thread reads through its own slot of the reader table, so recording
//! a hit or counting a miss writes only memory that thread already owns. The
//! writer drains the hit buffers and sums the counters when it needs them.

use crate::cache::record::Stamp;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::cache::overlay::KeyHasher;

/// A note a reader leaves for the writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Note {
    /// The key was read at this LRU tick.
    Hit(u64),
    /// The entry inserted at this time was found expired.
    Expired(Stamp),
    /// The entry inserted at this time failed its checksum.
    Corrupt(Stamp),
}

/// Notes buffered by one slot, keys packed in one buffer.
#[derive(Default)]
pub(crate) struct Notes {
    keys: Vec<u8>,
    items: Vec<(u32, u16, Note)>,
}

impl Notes {
    /// Adds a note about `key`.
    pub(crate) fn push(&mut self, key: &[u8], note: Note) {
        self.items
            .push((self.keys.len() as u32, key.len() as u16, note));
        self.keys.extend_from_slice(key);
    }

    /// Number of notes.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Forgets all notes, keeping the buffers.
    pub(crate) fn clear(&mut self) {
        self.keys.clear();
        self.items.clear();
    }

    /// The notes in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], Note)> {
        self.items
            .iter()
            .map(|&(o, l, n)| (&self.keys[o as usize..o as usize + l as usize], n))
    }
}

/// A key in [`Pending`]: keys of up to 32 bytes (a dataset block's is 28)
/// live in the table's bucket. A boxed key cost a second cache miss per
/// lookup, and a get absorbs one note (13 % of a 4 KiB get's time with
/// 100,000 keys pending).
pub(crate) type PendingKey = smallvec::SmallVec<[u8; 32]>;

/// Notes gathered from the slots, deduplicated, waiting for the writer:
/// the newest tick per key, and the entries to drop.
#[derive(Default)]
pub(crate) struct Pending {
    pub hits: HashMap<PendingKey, u64, BuildHasherDefault<KeyHasher>>,
    pub drops: Vec<(Box<[u8]>, Note)>,
}

impl Pending {
    /// Takes in a slot's notes.
    pub(crate) fn absorb(&mut self, notes: &Notes) {
        for (k, n) in notes.iter() {
            match n {
                Note::Hit(t) => match self.hits.get_mut(k) {
                    Some(old) => *old = (*old).max(t),
                    None => {
                        self.hits.insert(PendingKey::from_slice(k), t);
                    }
                },
                Note::Expired(_) | Note::Corrupt(_) => self.drops.push((k.into(), n)),
            }
        }
    }

    /// Number of keys waiting.
    pub(crate) fn len(&self) -> usize {
        self.hits.len() + self.drops.len()
    }
}

/// Counters kept per slot and summed for [`stats`](crate::DatasetFileCache::stats).
#[derive(Default)]
pub(crate) struct Counters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub expirations: AtomicU64,
    pub corrupt_drops: AtomicU64,
}

impl Counters {
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// One slot's payload.
#[derive(Default)]
pub(crate) struct Slot {
    pub notes: Mutex<Notes>,
    pub counters: Counters,
}
