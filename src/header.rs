//! The fixed file header: bytes 0..64 (the Tinman `DatasetFileCache` header)
//! and bytes 64..96 (the embedded block storage's `BST` header).
//!
//! This module owns the file's layout constants and the encoding of the two
//! headers. The header is a *mirror*: the authoritative state lives in the
//! commit records (see `storage::commit_record` and spec/FORMAT.md §4).

use crate::error::Error;

/// Size of the unit the file is laid out in: header page, commit slots and
/// B-tree nodes are each one page.
pub(crate) const PAGE: u64 = 4096;
/// Byte offset of commit slot 0.
pub(crate) const SLOT_OFFSETS: [u64; 2] = [PAGE, 2 * PAGE];
/// First byte of the data area managed by the block storage allocator.
pub(crate) const DATA_START: u64 = 3 * PAGE;

/// Magic of a dataset file cache (bytes 0..8).
pub(crate) const MAGIC: [u8; 8] = [0x89, 0x48, 0x47, 0x43, 0x0D, 0x0A, 0x1A, 0x0A];
/// Magic of the embedded block storage (bytes 64..72).
pub(crate) const BST_MAGIC: [u8; 8] = [0x89, 0x42, 0x53, 0x54, 0x0D, 0x0A, 0x1A, 0x0A];
/// The format version this build reads and writes (bytes 8..10).
/// Version 2 (4-byte leaf slots, leaner entry records) replaced version 1.
pub(crate) const VERSION: i16 = 3;
/// The block storage format version (bytes 72..74).
pub(crate) const BST_VERSION: i16 = 1;
/// Bytes of the two headers together.
pub(crate) const HEADERS_LEN: usize = 96;

/// The decoded headers (file header + block storage header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Headers {
    /// Maximum file size in bytes, 0 = unlimited (offset 10).
    pub max_file_size: u64,
    /// Block ID (file offset) of the primary index root, 0 = empty (offset 40).
    pub primary_root: u64,
    /// Block ID of the LastUsed index root, 0 = empty (offset 56).
    pub last_used_root: u64,
    /// Block ID of the allocations index root (offset 74).
    pub alloc_root: u64,
    /// Block ID of the free-chunks index root (offset 82).
    pub free_root: u64,
}

/// Why the first 96 bytes are not a valid header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderProblem {
    /// Fewer than 96 bytes.
    TooShort(usize),
    /// Bytes 0..8 are not the dfcache magic.
    BadMagic,
    /// The version field is not one this build reads.
    Version(i16),
    /// Bytes 64..72 are not the block storage magic, or its version is wrong.
    BadBlockStorage(String),
    /// A reserved byte is not zero, or a field is out of range.
    Field(String),
}

impl Headers {
    /// Encodes both headers into their 96 bytes.
    pub(crate) fn encode(&self) -> [u8; HEADERS_LEN] {
        let mut b = [0u8; HEADERS_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&VERSION.to_le_bytes());
        b[10..18].copy_from_slice(&(self.max_file_size as i64).to_le_bytes());
        // 18..40 reserved zero
        b[40..48].copy_from_slice(&(self.primary_root as i64).to_le_bytes());
        // 48..56 reserved zero
        b[56..64].copy_from_slice(&(self.last_used_root as i64).to_le_bytes());
        b[64..72].copy_from_slice(&BST_MAGIC);
        b[72..74].copy_from_slice(&BST_VERSION.to_le_bytes());
        b[74..82].copy_from_slice(&(self.alloc_root as i64).to_le_bytes());
        b[82..90].copy_from_slice(&(self.free_root as i64).to_le_bytes());
        // 90..96 reserved zero
        b
    }

    /// Decodes and checks both headers.
    pub(crate) fn decode(b: &[u8]) -> std::result::Result<Headers, HeaderProblem> {
        if b.len() < 8 || b[0..8] != MAGIC {
            return Err(if b.len() < 8 && MAGIC.starts_with(b) {
                HeaderProblem::TooShort(b.len())
            } else {
                HeaderProblem::BadMagic
            });
        }
        if b.len() < HEADERS_LEN {
            return Err(HeaderProblem::TooShort(b.len()));
        }
        let version = i16::from_le_bytes([b[8], b[9]]);
        if version != VERSION {
            return Err(HeaderProblem::Version(version));
        }
        if b[64..72] != BST_MAGIC {
            return Err(HeaderProblem::BadBlockStorage("bad magic".into()));
        }
        let bst_version = i16::from_le_bytes([b[72], b[73]]);
        if bst_version != BST_VERSION {
            return Err(HeaderProblem::BadBlockStorage(format!(
                "unsupported block storage version {bst_version}"
            )));
        }
        let reserved = [(18usize, 40usize), (48, 56), (90, 96)];
        for (s, e) in reserved {
            if b[s..e].iter().any(|&x| x != 0) {
                return Err(HeaderProblem::Field(format!(
                    "reserved bytes {s}..{e} are not zero"
                )));
            }
        }
        let field = |at: usize, name: &str| -> std::result::Result<u64, HeaderProblem> {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[at..at + 8]);
            let v = i64::from_le_bytes(w);
            if v < 0 {
                return Err(HeaderProblem::Field(format!("{name} is negative ({v})")));
            }
            Ok(v as u64)
        };
        Ok(Headers {
            max_file_size: field(10, "maximum file size")?,
            primary_root: field(40, "primary index root")?,
            last_used_root: field(56, "LastUsed index root")?,
            alloc_root: field(74, "allocations index root")?,
            free_root: field(82, "free-chunks index root")?,
        })
    }
}

impl HeaderProblem {
    /// Converts the problem to the error `open` reports when no commit record
    /// vouches for the file either.
    pub(crate) fn into_error(self) -> Error {
        match self {
            HeaderProblem::TooShort(n) => Error::NotACache {
                path: None,
                reason: if n == 0 {
                    "the file is empty".into()
                } else {
                    format!("the file is {n} bytes, too short for a header")
                },
            },
            HeaderProblem::BadMagic => Error::NotACache {
                path: None,
                reason: "the first 8 bytes are not the dfcache magic".into(),
            },
            HeaderProblem::Version(v) => Error::UnsupportedVersion {
                path: None,
                found: v as i64,
                supported: VERSION as i64,
            },
            HeaderProblem::BadBlockStorage(d) => Error::corrupt("block storage header", 64, d),
            HeaderProblem::Field(d) => Error::corrupt("file header", 0, d),
        }
    }
}

/// Reads a little-endian u64 at `at`, or `None` when out of bounds.
pub(crate) fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    let mut w = [0u8; 8];
    w.copy_from_slice(s);
    Some(u64::from_le_bytes(w))
}

/// Reads a little-endian u32 at `at`, or `None` when out of bounds.
pub(crate) fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    let mut w = [0u8; 4];
    w.copy_from_slice(s);
    Some(u32::from_le_bytes(w))
}

/// Reads a little-endian u16 at `at`, or `None` when out of bounds.
pub(crate) fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let h = Headers {
            max_file_size: 1 << 30,
            primary_root: 4096 * 7,
            last_used_root: 4096 * 9,
            alloc_root: 4096 * 11,
            free_root: 0,
        };
        let b = h.encode();
        assert_eq!(Headers::decode(&b), Ok(h));
    }

    #[test]
    fn rejects_text_and_newer_versions() {
        assert_eq!(
            Headers::decode(b"hello world, this is text"),
            Err(HeaderProblem::BadMagic)
        );
        let mut b = Headers::default().encode();
        for v in [1, 2, VERSION as u8 + 1] {
            b[8] = v;
            assert_eq!(Headers::decode(&b), Err(HeaderProblem::Version(v as i16)));
        }
        let mut b = Headers::default().encode();
        b[20] = 1;
        assert!(matches!(Headers::decode(&b), Err(HeaderProblem::Field(_))));
        assert_eq!(
            Headers::decode(&MAGIC[..5]),
            Err(HeaderProblem::TooShort(5))
        );
    }
}
