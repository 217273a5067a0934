//! Reader pins: when may the writer reuse space a reader might still see?
//!
//! Readers of the committed state (and holders of [`Value`](crate::Value)s)
//! *pin* the current epoch in a slot of their own. Whatever the writer makes
//! unreachable (freed extents, old mappings) is tagged with the epoch current
//! at that moment; the epoch is then advanced. A tagged item may be reused
//! once every pinned slot shows an epoch greater than its tag.
//!
//! Each thread uses its own cache-line-sized slot, so readers on different
//! threads never write to the same memory: pinning costs a compare-exchange on
//! a line the thread already owns. Slots may be shared by threads (more
//! threads than slots); sharing is safe, only less precise: a slot keeps the
//! oldest epoch of the pins it holds.
//!
//! Each slot also carries a payload `T` the layers above use for per-thread
//! state (hit buffers and counters), for the same reason.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Number of reader slots per table.
pub(crate) const SLOTS: usize = 64;
const COUNT_BITS: u32 = 20;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static THREAD_SLOT: usize = NEXT_THREAD.fetch_add(1, Ordering::Relaxed) % SLOTS;
}

/// The slot index the calling thread prefers.
pub(crate) fn thread_slot() -> usize {
    THREAD_SLOT.with(|s| *s)
}

#[repr(align(128))]
struct Slot<T> {
    /// epoch << COUNT_BITS | number of pins held in this slot.
    word: AtomicU64,
    data: T,
}

/// The table of reader slots and the global epoch.
pub(crate) struct ReaderTable<T> {
    epoch: AtomicU64,
    slots: Box<[Slot<T>]>,
}

/// A held pin. Unpins when dropped, on any thread.
pub(crate) struct Pin<'a, T> {
    table: &'a ReaderTable<T>,
    slot: usize,
}

impl<T: Default> ReaderTable<T> {
    /// A table with every slot unpinned, at epoch 1.
    pub(crate) fn new() -> ReaderTable<T> {
        let slots = (0..SLOTS)
            .map(|_| Slot {
                word: AtomicU64::new(0),
                data: T::default(),
            })
            .collect();
        ReaderTable {
            epoch: AtomicU64::new(1),
            slots,
        }
    }
}

impl<T> ReaderTable<T> {
    /// Pins the current epoch in the calling thread's slot.
    pub(crate) fn pin(&self) -> Pin<'_, T> {
        let mut i = thread_slot();
        loop {
            let slot = &self.slots[i];
            let w = slot.word.load(Ordering::Acquire);
            let count = w & COUNT_MASK;
            let new = if count == 0 {
                // SeqCst with the writer's `advance` + `min_pinned`: if the
                // writer's scan missed this pin, this thread's later loads of
                // shared state observe everything retired before that scan.
                let e = self.epoch.load(Ordering::SeqCst);
                (e << COUNT_BITS) | 1
            } else if count < COUNT_MASK {
                w + 1
            } else {
                i = (i + 1) % SLOTS;
                continue;
            };
            if slot
                .word
                .compare_exchange_weak(w, new, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            {
                return Pin {
                    table: self,
                    slot: i,
                };
            }
        }
    }

    /// Tags retirement: returns the epoch to tag items made unreachable
    /// *before* this call with, and advances the epoch so that later pins are
    /// greater than the tag.
    pub(crate) fn advance(&self) -> u64 {
        self.epoch.fetch_add(1, Ordering::SeqCst)
    }

    /// The smallest epoch any slot has pinned, or `u64::MAX` when nothing is
    /// pinned. Items tagged below the result are unreachable by readers.
    pub(crate) fn min_pinned(&self) -> u64 {
        let mut min = u64::MAX;
        for s in self.slots.iter() {
            let w = s.word.load(Ordering::SeqCst);
            if w & COUNT_MASK != 0 {
                min = min.min(w >> COUNT_BITS);
            }
        }
        min
    }

    /// Whether an item retired with `tag` can no longer be reached.
    #[cfg(test)]
    pub(crate) fn is_reclaimable(&self, tag: u64) -> bool {
        self.min_pinned() > tag
    }

    /// Every slot's payload.
    pub(crate) fn all_slot_data(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().map(|s| &s.data)
    }
}

impl<T> Pin<'_, T> {
    /// The payload of the slot this pin is held in.
    pub(crate) fn data(&self) -> &T {
        &self.table.slots[self.slot].data
    }
}

impl<T> Drop for Pin<'_, T> {
    fn drop(&mut self) {
        self.table.slots[self.slot]
            .word
            .fetch_sub(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_hold_back_reclamation() {
        let t: ReaderTable<()> = ReaderTable::new();
        assert_eq!(t.min_pinned(), u64::MAX);
        let p = t.pin();
        let tag = t.advance();
        assert!(
            !t.is_reclaimable(tag),
            "a pin taken before the tag blocks it"
        );
        let q = t.pin(); // nested pin in the same slot keeps the old epoch
        drop(p);
        assert!(!t.is_reclaimable(tag));
        drop(q);
        assert!(t.is_reclaimable(tag));
        let _r = t.pin();
        assert!(t.is_reclaimable(tag), "a pin taken after the tag does not");
    }

    #[test]
    fn pins_from_many_threads() {
        let t: std::sync::Arc<ReaderTable<()>> = std::sync::Arc::new(ReaderTable::new());
        let hs: Vec<_> = (0..8)
            .map(|_| {
                let t = t.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        let _p = t.pin();
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(t.min_pinned(), u64::MAX);
    }
}
