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
use crate::header::{le_u64, DATA_START, PAGE, SLOT_OFFSETS};
use crate::storage::mapping::Mapping;
use crate::storage::{mapping_len, open, Snapshot};

/// How often a read is retried while the file keeps changing under it.
const MAX_RETRIES: usize = 1000;

/// How many times `refresh` waits for a newer record that is not yet
/// valid to become so (a writer in the middle of writing it) before taking
/// the older one (the writer died while writing it).
const INCOMPLETE_WAITS: usize = 200;

/// A fingerprint of the two commit slots as the map shows them now: per
/// slot its sequence number and a stamp made of the commit time and the
/// record's CRC. A record rewritten with the same sequence number (a writer
/// committing again after a crash left a record incomplete) changes the
/// stamp.
pub(crate) fn slot_seqs(snap: &Snapshot) -> [u64; 4] {
    let field = |off: u64, len: u64| {
        snap.mapping
            .slice(off, len, DATA_START)
            .map(|b| b.iter().rev().fold(0u64, |a, &x| (a << 8) | x as u64))
            .unwrap_or(0)
    };
    let mut out = [0; 4];
    for (i, off) in SLOT_OFFSETS.iter().enumerate() {
        let seq = snap
            .mapping
            .slice(off + 16, 8, DATA_START)
            .and_then(|b| le_u64(b, 0))
            .unwrap_or(0);
        let len = field(off + 12, 4).clamp(8, PAGE);
        out[2 * i] = seq;
        out[2 * i + 1] = field(off + 88, 8) ^ (field(off + len - 4, 4) << 32);
    }
    out
}

/// The highest sequence number either slot's field shows.
fn newest_seq(f: &[u64; 4]) -> u64 {
    f[0].max(f[2])
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
        let mut seqs = seqs;
        let mut incomplete = 0;
        for _ in 0..MAX_RETRIES {
            let before = slot_seqs(&cur.snap);
            let r = open::reload(&*self.store.backend);
            fence(Ordering::Acquire);
            if slot_seqs(&cur.snap) != before {
                std::thread::yield_now();
                continue;
            }
            // A slot shows a newer sequence number than the record chosen:
            // that record is being written (the writer reuses the older
            // state's space as soon as it is complete, without changing
            // the fields again), or a crash left it incomplete. Wait for
            // the first; after a while assume the second.
            if let Ok(r) = &r {
                if newest_seq(&before) > r.seq && incomplete < INCOMPLETE_WAITS {
                    incomplete += 1;
                    std::thread::sleep(std::time::Duration::from_micros(100));
                    continue;
                }
            }
            seqs = before;
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
            self.time_base_ms.store(rec.time_base_ms, Ordering::Release);
            self.max_file_size
                .store(rec.max_file_size, Ordering::Release);
            Arc::new(Snapshot::new(rec, mapping))
        };
        self.view.store(Arc::new(View {
            snap,
            overlay: cur.overlay.clone(),
            slot_seqs: seqs,
        }));
        Ok(())
    }
}
