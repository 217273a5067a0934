//! Datasets: what is cached, how its blocks are keyed, and reading through
//! the cache ([`CachedDataset`]).
//!
//! A dataset is identified by a GUID and a revision that increases with
//! every persistent change; its blocks are addressed by index. The cache key
//! of a block is (GUID, revision, index), encoded so that one dataset's
//! blocks are contiguous and ordered (spec/FORMAT.md §12): a new revision
//! never sees the old one's blocks, which LRU eviction then removes.

mod cached;

use std::sync::Arc;

use crate::cache::DatasetFileCache;
use crate::error::Result;

pub use cached::{CachedDataset, WarmReport};

/// Bytes of a block key.
pub const BLOCK_KEY_LEN: usize = 28;

/// The identity of a dataset: a GUID and a revision that increases with
/// every persistent change of the dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DatasetId {
    /// Which dataset.
    pub guid: uuid::Uuid,
    /// Which state of it.
    pub revision: i32,
}

impl DatasetId {
    /// A dataset id.
    pub fn new(guid: uuid::Uuid, revision: i32) -> DatasetId {
        DatasetId { guid, revision }
    }

    /// The 16-byte key prefix shared by every revision of the dataset: the
    /// GUID's bytes in RFC 4122 order.
    pub fn dataset_prefix(&self) -> [u8; 16] {
        *self.guid.as_bytes()
    }

    /// The 20-byte key prefix of this revision: the dataset prefix, then the
    /// revision as a big-endian u32 with its sign bit flipped (so that
    /// revisions sort numerically, negative ones first).
    pub fn revision_prefix(&self) -> [u8; 20] {
        let mut k = [0u8; 20];
        k[..16].copy_from_slice(self.guid.as_bytes());
        k[16..].copy_from_slice(&((self.revision as u32) ^ 0x8000_0000).to_be_bytes());
        k
    }

    /// The 28-byte cache key of block `index`: the revision prefix, then the
    /// index as a big-endian u64.
    pub fn block_key(&self, index: u64) -> [u8; BLOCK_KEY_LEN] {
        let mut k = [0u8; BLOCK_KEY_LEN];
        k[..20].copy_from_slice(&self.revision_prefix());
        k[20..].copy_from_slice(&index.to_be_bytes());
        k
    }

    /// Decodes a block key into (dataset, block index); `None` if `key` is
    /// not 28 bytes.
    pub fn from_block_key(key: &[u8]) -> Option<(DatasetId, u64)> {
        if key.len() != BLOCK_KEY_LEN {
            return None;
        }
        let guid = uuid::Uuid::from_slice(&key[..16]).ok()?;
        let rev = u32::from_be_bytes(key[16..20].try_into().ok()?) ^ 0x8000_0000;
        let index = u64::from_be_bytes(key[20..28].try_into().ok()?);
        Some((DatasetId::new(guid, rev as i32), index))
    }
}

impl std::fmt::Display for DatasetId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.guid, self.revision)
    }
}

/// A source of blocks: a raster pyramid, a remote file, an object store.
pub trait Dataset: Send + Sync {
    /// The dataset's identity; a new revision means new content.
    fn id(&self) -> DatasetId;

    /// Reads block `index`. `Ok(None)`: the block does not exist (sparse
    /// datasets).
    ///
    /// # Errors
    /// Whatever the source fails with; wrap foreign errors in
    /// [`Error::Source`](crate::Error::Source).
    fn read_block(&self, index: u64) -> Result<Option<Vec<u8>>>;
}

impl<D: Dataset + ?Sized> Dataset for Arc<D> {
    fn id(&self) -> DatasetId {
        (**self).id()
    }

    fn read_block(&self, index: u64) -> Result<Option<Vec<u8>>> {
        (**self).read_block(index)
    }
}

impl<D: Dataset + ?Sized> Dataset for Box<D> {
    fn id(&self) -> DatasetId {
        (**self).id()
    }

    fn read_block(&self, index: u64) -> Result<Option<Vec<u8>>> {
        (**self).read_block(index)
    }
}

impl DatasetFileCache {
    /// Removes every cached block of the dataset `id.guid`, **all
    /// revisions** (a dataset that changed or went away); returns how many.
    ///
    /// # Errors
    /// [`Error::ReadOnly`](crate::Error::ReadOnly); I/O errors.
    pub fn clear_dataset(&self, id: DatasetId) -> Result<u64> {
        self.remove_prefix(&id.dataset_prefix())
    }

    /// Removes the cached blocks of revision `id.revision` of the dataset
    /// only; returns how many.
    ///
    /// # Errors
    /// As [`clear_dataset`](Self::clear_dataset).
    pub fn clear_dataset_revision(&self, id: DatasetId) -> Result<u64> {
        self.remove_prefix(&id.revision_prefix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_ordered_and_round_trip() {
        let g = uuid::Uuid::from_u128(0x1234);
        let ids = [-5, -1, 0, 1, 7, i32::MAX].map(|r| DatasetId::new(g, r));
        for w in ids.windows(2) {
            assert!(w[0].block_key(u64::MAX) < w[1].block_key(0));
        }
        let id = DatasetId::new(g, -3);
        assert!(id.block_key(1) < id.block_key(2));
        assert!(id.block_key(255) < id.block_key(256));
        assert_eq!(DatasetId::from_block_key(&id.block_key(99)), Some((id, 99)));
        assert!(id.block_key(0).starts_with(&id.revision_prefix()));
        assert!(id.block_key(0).starts_with(&id.dataset_prefix()));
        assert_eq!(DatasetId::from_block_key(b"short"), None);
    }
}
