//! Commit records: the two alternating, checksummed slots that say which
//! state of the file is the committed one.
//!
//! Record `n` is written to slot `n % 2` (slot 0 at byte 4096, slot 1 at
//! byte 8192). On open the valid record with the highest sequence number wins.
//! A *one-phase* record also lists every byte range its transaction wrote,
//! with a CRC each; it only counts as valid if all those ranges check out.
//! See spec/FORMAT.md §5 and §7.

use crate::error::{Error, Result};
use crate::header::{le_u16, le_u32, le_u64, DATA_START, PAGE};

/// Magic of a commit record.
pub(crate) const RECORD_MAGIC: [u8; 8] = *b"\x89DFCREC\n";
/// Record format version: the file format version, so that a record of a
/// file of another version is not valid here and the header's version
/// decides the error (spec/FORMAT.md §5).
pub(crate) const RECORD_VERSION: u16 = crate::header::VERSION as u16;
/// Bytes before the tree table.
const FIXED_LEN: usize = 128;
/// Bytes of one tree table entry.
const TREE_ENTRY_LEN: usize = 24;
/// Bytes of one check-list entry.
const CHECK_ENTRY_LEN: usize = 16;
/// Most trees a record may name.
pub(crate) const MAX_TREES: usize = 16;
/// Most check-list entries a one-phase record may carry.
pub(crate) const MAX_CHECKS: usize =
    (PAGE as usize - FIXED_LEN - MAX_TREES * TREE_ENTRY_LEN - 4) / CHECK_ENTRY_LEN;
/// Tallest B-tree a record may name; a taller one is corrupt (2^32 entries
/// need fewer than 8 levels).
pub(crate) const MAX_HEIGHT: u8 = 12;

/// The root of one B-tree as a commit record names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct TreeRoot {
    /// Block ID (file offset) of the root node, 0 when the tree is empty.
    pub page: u64,
    /// CRC-32 of the root node (its bytes 8..4096).
    pub crc: u32,
    /// Number of levels; 0 when empty, 1 when the root is a leaf.
    pub height: u8,
}

/// A byte range written by a one-phase transaction, with its CRC-32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CheckRange {
    /// File offset.
    pub offset: u64,
    /// Length in bytes.
    pub len: u32,
    /// CRC-32 of the range's bytes.
    pub crc: u32,
}

/// A decoded commit record.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) struct CommitRecord {
    /// Sequence number, 1 for the record written at creation.
    pub seq: u64,
    /// Length of the file this state needs; bytes past it are not part of it.
    pub file_len: u64,
    /// Maximum file size, 0 = unlimited. Authoritative (the header mirrors it).
    pub max_file_size: u64,
    /// Maximum entry age in milliseconds, 0 = none.
    pub max_age_ms: u64,
    /// The next LRU tick to hand out; never goes backwards.
    pub clock: u64,
    /// Number of entries in the primary index.
    pub entries: u64,
    /// Sum of the raw (uncompressed) lengths of all values.
    pub raw_bytes: u64,
    /// Sum of the stored lengths of all values (after compression).
    pub stored_bytes: u64,
    /// Sum of the lengths of all per-entry metadata.
    pub meta_bytes: u64,
    /// Wall-clock time of the commit, Unix milliseconds.
    pub committed_at_ms: u64,
    /// Bytes in free chunks of the data area.
    pub free_bytes: u64,
    /// Whole 4096-aligned pages inside free chunks.
    pub free_pages: u64,
    /// The time entry records count insertion times from (spec §11.1),
    /// Unix milliseconds: set when the file is created, kept by every
    /// commit and by compaction.
    pub time_base_ms: u64,
    /// Roots by tree id (index = id); absent trees are empty.
    pub trees: [TreeRoot; MAX_TREES],
    /// Present for one-phase records: the ranges to check on open.
    pub checks: Option<Vec<CheckRange>>,
}

impl CommitRecord {
    /// Encodes the record into the bytes written to its slot.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let trees: Vec<(usize, &TreeRoot)> = self
            .trees
            .iter()
            .enumerate()
            .filter(|(id, _)| *id != 0)
            .collect();
        let checks = self.checks.as_deref().unwrap_or(&[]);
        let len = FIXED_LEN + trees.len() * TREE_ENTRY_LEN + checks.len() * CHECK_ENTRY_LEN + 4;
        let mut b = vec![0u8; len];
        b[0..8].copy_from_slice(&RECORD_MAGIC);
        b[8..10].copy_from_slice(&RECORD_VERSION.to_le_bytes());
        b[10] = u8::from(self.checks.is_some());
        b[12..16].copy_from_slice(&(len as u32).to_le_bytes());
        let fields = [
            self.seq,
            self.file_len,
            self.max_file_size,
            self.max_age_ms,
            self.clock,
            self.entries,
            self.raw_bytes,
            self.stored_bytes,
            self.meta_bytes,
            self.committed_at_ms,
            self.free_bytes,
            self.free_pages,
            self.time_base_ms,
        ];
        for (i, v) in fields.iter().enumerate() {
            b[16 + i * 8..24 + i * 8].copy_from_slice(&v.to_le_bytes());
        }
        b[120..124].copy_from_slice(&(trees.len() as u32).to_le_bytes());
        b[124..128].copy_from_slice(&(checks.len() as u32).to_le_bytes());
        let mut at = FIXED_LEN;
        for (id, t) in trees {
            b[at..at + 4].copy_from_slice(&(id as u32).to_le_bytes());
            b[at + 4] = t.height;
            b[at + 8..at + 16].copy_from_slice(&t.page.to_le_bytes());
            b[at + 16..at + 20].copy_from_slice(&t.crc.to_le_bytes());
            at += TREE_ENTRY_LEN;
        }
        for c in checks {
            b[at..at + 8].copy_from_slice(&c.offset.to_le_bytes());
            b[at + 8..at + 12].copy_from_slice(&c.len.to_le_bytes());
            b[at + 12..at + 16].copy_from_slice(&c.crc.to_le_bytes());
            at += CHECK_ENTRY_LEN;
        }
        let crc = crc32fast::hash(&b[..at]);
        b[at..at + 4].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks the record in a slot page. `slot_offset` is only
    /// used for error messages.
    pub(crate) fn decode(b: &[u8], slot_offset: u64) -> Result<CommitRecord> {
        let bad = |d: String| Error::corrupt("commit record", slot_offset, d);
        if b.len() < FIXED_LEN || b[0..8] != RECORD_MAGIC {
            return Err(bad("no commit record magic".into()));
        }
        let version = le_u16(b, 8).unwrap_or(0);
        if version != RECORD_VERSION {
            return Err(bad(format!("unsupported record version {version}")));
        }
        let kind = b[10];
        if kind > 1 || b[11] != 0 {
            return Err(bad(format!("unknown commit kind {kind}")));
        }
        let len = le_u32(b, 12).unwrap_or(0) as usize;
        if !(FIXED_LEN + 4..=PAGE as usize).contains(&len) || len > b.len() {
            return Err(bad(format!("record length {len} out of range")));
        }
        let stored_crc = le_u32(b, len - 4).unwrap_or(0);
        if crc32fast::hash(&b[..len - 4]) != stored_crc {
            return Err(bad("checksum mismatch".into()));
        }
        let f = |i: usize| le_u64(b, 16 + i * 8).unwrap_or(0);
        let mut r = CommitRecord {
            seq: f(0),
            file_len: f(1),
            max_file_size: f(2),
            max_age_ms: f(3),
            clock: f(4),
            entries: f(5),
            raw_bytes: f(6),
            stored_bytes: f(7),
            meta_bytes: f(8),
            committed_at_ms: f(9),
            free_bytes: f(10),
            free_pages: f(11),
            time_base_ms: f(12),
            trees: Default::default(),
            checks: None,
        };
        let ntrees = le_u32(b, 120).unwrap_or(u32::MAX) as usize;
        let nchecks = le_u32(b, 124).unwrap_or(u32::MAX) as usize;
        if ntrees >= MAX_TREES || nchecks > MAX_CHECKS {
            return Err(bad(format!(
                "{ntrees} trees / {nchecks} checks out of range"
            )));
        }
        if FIXED_LEN + ntrees * TREE_ENTRY_LEN + nchecks * CHECK_ENTRY_LEN + 4 != len {
            return Err(bad("record length does not match its tables".into()));
        }
        if kind == 0 && nchecks != 0 {
            return Err(bad("two-phase record with a check list".into()));
        }
        if r.seq == 0 {
            return Err(bad("sequence number 0".into()));
        }
        if r.file_len < DATA_START || !r.file_len.is_multiple_of(16) {
            return Err(bad(format!("file length {} invalid", r.file_len)));
        }
        if r.max_file_size != 0 && r.file_len > r.max_file_size {
            return Err(bad(format!(
                "file length {} exceeds the maximum file size {}",
                r.file_len, r.max_file_size
            )));
        }
        let mut at = FIXED_LEN;
        for _ in 0..ntrees {
            let id = le_u32(b, at).unwrap_or(0) as usize;
            let height = b[at + 4];
            let page = le_u64(b, at + 8).unwrap_or(0);
            let crc = le_u32(b, at + 16).unwrap_or(0);
            if id == 0 || id >= MAX_TREES || r.trees[id] != TreeRoot::default() {
                return Err(bad(format!("tree id {id} invalid or repeated")));
            }
            if b[at + 5..at + 8]
                .iter()
                .chain(&b[at + 20..at + 24])
                .any(|&x| x != 0)
            {
                return Err(bad(format!("reserved bytes of tree {id} not zero")));
            }
            if height > MAX_HEIGHT || (height == 0) != (page == 0) {
                return Err(bad(format!("tree {id}: height {height} with root {page}")));
            }
            if page != 0
                && (!page.is_multiple_of(PAGE) || page < DATA_START || page + PAGE > r.file_len)
            {
                return Err(bad(format!("tree {id}: root {page} outside the file")));
            }
            r.trees[id] = TreeRoot { page, crc, height };
            at += TREE_ENTRY_LEN;
        }
        if kind == 1 {
            let mut checks = Vec::with_capacity(nchecks);
            for _ in 0..nchecks {
                let c = CheckRange {
                    offset: le_u64(b, at).unwrap_or(0),
                    len: le_u32(b, at + 8).unwrap_or(0),
                    crc: le_u32(b, at + 12).unwrap_or(0),
                };
                if c.offset < DATA_START || c.offset.saturating_add(c.len as u64) > r.file_len {
                    return Err(bad(format!(
                        "check range {}+{} outside the file",
                        c.offset, c.len
                    )));
                }
                checks.push(c);
                at += CHECK_ENTRY_LEN;
            }
            r.checks = Some(checks);
        }
        Ok(r)
    }

    /// The slot (0 or 1) this record belongs in.
    pub(crate) fn slot(&self) -> usize {
        (self.seq % 2) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CommitRecord {
        let mut r = CommitRecord {
            seq: 7,
            file_len: 5 * PAGE,
            max_file_size: 1 << 20,
            clock: 99,
            entries: 3,
            ..Default::default()
        };
        r.trees[1] = TreeRoot {
            page: DATA_START,
            crc: 0xdead_beef,
            height: 1,
        };
        r
    }

    #[test]
    fn roundtrip_two_and_one_phase() {
        let r = sample();
        assert_eq!(CommitRecord::decode(&r.encode(), 0).unwrap(), r);
        let mut r1 = sample();
        r1.checks = Some(vec![CheckRange {
            offset: DATA_START,
            len: 100,
            crc: 5,
        }]);
        assert_eq!(CommitRecord::decode(&r1.encode(), 0).unwrap(), r1);
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let b = sample().encode();
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x40;
            assert!(CommitRecord::decode(&c, 0).is_err(), "byte {i}");
        }
    }

    #[test]
    fn max_checks_fit_in_a_page() {
        let mut r = sample();
        r.checks = Some(vec![
            CheckRange {
                offset: DATA_START,
                len: 1,
                crc: 0
            };
            MAX_CHECKS
        ]);
        for id in 1..MAX_TREES {
            r.trees[id] = TreeRoot::default();
        }
        assert!(r.encode().len() <= PAGE as usize);
    }
}
