//! The file's header bytes and commit records as stored, for `info`
//! (spec/FORMAT.md §3-§5).
//!
//! The library validates all of this when it opens the file but does not
//! expose the raw fields, so `info` reads them here, after a successful
//! read-only open: bytes 0..96 are shown as stored (they are a mirror of the
//! newest commit), and the newest commit record whose magic, length and
//! CRC check out is decoded.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::Serialize;

use super::keys::to_hex;

/// Bytes 0..96: the file header and the block storage header.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Bytes 0..8, hex.
    pub magic: String,
    /// Bytes 8..10.
    pub format_version: i16,
    /// Bytes 10..18 (mirror): 0 = unlimited.
    pub maximum_file_size: i64,
    /// Bytes 40..48 (mirror).
    pub primary_root: i64,
    /// Bytes 56..64 (mirror).
    pub last_used_root: i64,
    /// Bytes 64..72, hex.
    pub block_storage_magic: String,
    /// Bytes 72..74.
    pub block_storage_version: i16,
    /// Bytes 74..82 (mirror).
    pub allocations_root: i64,
    /// Bytes 82..90 (mirror).
    pub free_chunks_root: i64,
}

/// The newest valid commit record.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Its sequence number.
    pub sequence: u64,
    /// "two-phase" or "one-phase".
    pub kind: &'static str,
    /// Bytes of the file the committed state uses.
    pub file_len: u64,
    /// Bytes in free chunks.
    pub free_bytes: u64,
    /// Commit time, RFC 3339 UTC.
    pub committed_at: String,
    /// Commit time, Unix milliseconds.
    pub committed_at_unix_ms: u64,
}

const PAGE: usize = 4096;
const RECORD_MAGIC: [u8; 8] = [0x89, 0x44, 0x46, 0x43, 0x52, 0x45, 0x43, 0x0A];

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn i64_at(b: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn i16_at(b: &[u8], at: usize) -> Option<i16> {
    Some(i16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Reads the first three pages of `path` (fewer if the file is shorter).
///
/// # Errors
/// I/O errors.
pub fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(3 * PAGE);
    File::open(path)?
        .take(3 * PAGE as u64)
        .read_to_end(&mut head)?;
    Ok(head)
}

/// Decodes bytes 0..96; `None` if the file is shorter.
pub fn header(head: &[u8]) -> Option<Header> {
    Some(Header {
        magic: to_hex(head.get(0..8)?),
        format_version: i16_at(head, 8)?,
        maximum_file_size: i64_at(head, 10)?,
        primary_root: i64_at(head, 40)?,
        last_used_root: i64_at(head, 56)?,
        block_storage_magic: to_hex(head.get(64..72)?),
        block_storage_version: i16_at(head, 72)?,
        allocations_root: i64_at(head, 74)?,
        free_chunks_root: i64_at(head, 82)?,
    })
}

/// Decodes one commit slot if it holds a record that checks out.
fn record(slot: &[u8]) -> Option<Commit> {
    if slot.get(0..8)? != RECORD_MAGIC {
        return None;
    }
    let len = u32_at(slot, 12)? as usize;
    if !(124..=PAGE).contains(&len) || len > slot.len() {
        return None;
    }
    if crc32fast::hash(&slot[..len - 4]) != u32_at(slot, len - 4)? {
        return None;
    }
    let ms = u64_at(slot, 88)?;
    Some(Commit {
        sequence: u64_at(slot, 16)?,
        kind: if slot[10] == 0 {
            "two-phase"
        } else {
            "one-phase"
        },
        file_len: u64_at(slot, 24)?,
        free_bytes: u64_at(slot, 96)?,
        committed_at: super::time::rfc3339_ms(ms),
        committed_at_unix_ms: ms,
    })
}

/// The newest valid commit record among the two slots.
pub fn newest_commit(head: &[u8]) -> Option<Commit> {
    [PAGE, 2 * PAGE]
        .into_iter()
        .filter_map(|at| record(head.get(at..(at + PAGE).min(head.len()))?))
        .max_by_key(|c| c.sequence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_fresh_cache() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("h.dfc");
        drop(dfcache::DatasetFileCache::create(&p, 64 << 20)?);
        let head = read_head(&p)?;
        let h = header(&head).ok_or("no header")?;
        assert_eq!(h.magic, "894847430d0a1a0a");
        assert_eq!(h.block_storage_magic, "894253540d0a1a0a");
        assert_eq!((h.format_version, h.block_storage_version), (3, 1));
        assert_eq!(h.maximum_file_size, 64 << 20);
        let c = newest_commit(&head).ok_or("no commit")?;
        assert!(c.sequence >= 1);
        assert_eq!(c.file_len, 12288);
        assert!(header(&head[..50]).is_none());
        let mut bad = head.clone();
        bad[PAGE + 20] ^= 1;
        bad[2 * PAGE + 20] ^= 1;
        assert!(newest_commit(&bad).is_none(), "CRC is checked");
        Ok(())
    }
}
