//! Read-only handles following a writer in another process (spec §9.1).
//!
//! A writer may reuse the space of commit `n` as soon as commit `n + 1` is
//! durable. A read-only handle therefore treats every read as a seqlock
//! section: it notes the sequence fields of both commit slots (read through
//! the map, where another process's writes appear), reads, and checks the
//! fields again. If they changed, the bytes it read may have been reused:
//! it re-reads the commit records, moves to the newest committed state and
//! reads again. Values are copied out before the check, so what it returns
//! was consistent when it was read.

use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use crate::cache::{DatasetFileCache, View};
use crate::error::{Error, Result};
use crate::header::{le_u64, DATA_START, SLOT_OFFSETS};
use crate::storage::mapping::Mapping;
use crate::storage::{mapping_len, open, Snapshot};

/// How often a read is retried while the file keeps changing under it.
const MAX_RETRIES: usize = 1000;

/// The raw sequence-number fields of the two commit slots, as the map shows
/// them now.
pub(crate) fn slot_seqs(snap: &Snapshot) -> [u64; 2] {
    SLOT_OFFSETS.map(|off| {
        snap.mapping
            .slice(off + 16, 8, DATA_START)
            .and_then(|b| le_u64(b, 0))
            .unwrap_or(0)
    })
}

impl DatasetFileCache {
    /// Runs `f` on the current view. On a read-only handle, `f` runs as a
    /// seqlock section against commits made by other processes: its result
    /// is used only if no commit happened meanwhile; otherwise the handle
    /// moves to the newest commit and runs `f` again.
    pub(crate) fn read_view<R>(&self, mut f: impl FnMut(&View) -> Result<R>) -> Result<R> {
        if !self.store.read_only {
            let view = self.view.load();
            return f(&view);
        }
        for _ in 0..MAX_RETRIES {
            let view = self.view.load();
            let before = slot_seqs(&view.snap);
            if before != view.slot_seqs {
                self.refresh()?;
                continue;
            }
            let r = f(&view);
            fence(Ordering::Acquire);
            if slot_seqs(&view.snap) == before {
                return r;
            }
            self.refresh()?;
        }
        Err(Error::corrupt(
            "commit record",
            SLOT_OFFSETS[0],
            "another process commits faster than this handle can read",
        ))
    }

    /// Moves a read-only handle to the newest committed state.
    pub(crate) fn refresh(&self) -> Result<()> {
        let _g = self.refresh_lock.lock();
        let cur = self.view.load_full();
        let seqs = slot_seqs(&cur.snap);
        if seqs == cur.slot_seqs {
            return Ok(()); // another thread refreshed already
        }
        // Choosing the record is itself a seqlock section: a slow reader can
        // find the ranges of the record it read already reused by two later
        // commits; then it starts again.
        let mut rec = None;
        for _ in 0..MAX_RETRIES {
            let before = slot_seqs(&cur.snap);
            let r = open::reload(&*self.store.backend);
            fence(Ordering::Acquire);
            if slot_seqs(&cur.snap) != before {
                std::thread::yield_now();
                continue;
            }
            rec = Some(r?);
            break;
        }
        let rec = rec.ok_or_else(|| {
            Error::corrupt(
                "commit record",
                SLOT_OFFSETS[0],
                "another process commits faster than this handle can follow",
            )
        })?;
        let snap = if rec.seq <= cur.snap.record.seq {
            cur.snap.clone()
        } else {
            let mapping = if rec.file_len > cur.snap.mapping.len() {
                Arc::new(Mapping::new(
                    self.store.backend.file(),
                    mapping_len(rec.file_len, 0),
                )?)
            } else {
                // Pages checked for the old state may hold new content now.
                cur.snap.mapping.clear_all_verified();
                cur.snap.mapping.clone()
            };
            self.dicts.invalidate();
            self.entries.store(rec.entries, Ordering::Release);
            self.max_age_ms.store(rec.max_age_ms, Ordering::Release);
            self.max_file_size
                .store(rec.max_file_size, Ordering::Release);
            Arc::new(Snapshot {
                record: rec,
                mapping,
            })
        };
        self.view.store(Arc::new(View {
            snap,
            overlay: cur.overlay.clone(),
            slot_seqs: seqs,
        }));
        Ok(())
    }
}
