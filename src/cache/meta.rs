//! Per-entry metadata: a small byte string beside a value (dirdb's JSON
//! sidecar), readable without reading the value.
//!
//! Metadata up to 128 bytes lives in the entry record; longer metadata (up
//! to [`MAX_META_LEN`](crate::cache::write::MAX_META_LEN)) in an extent of its own. Either way it counts
//! against the maximum file size.

use std::sync::Arc;

use crate::btree::TreeId;
use crate::cache::overlay::Seen;
use crate::cache::record::{MetaRef, Record};
use crate::cache::write::{check_meta_len, inline_meta, Payload};
use crate::cache::{check_key, DatasetFileCache};
use crate::error::{Error, Result};
use crate::storage::Snapshot;

impl DatasetFileCache {
    /// Stores `value` with metadata `meta` (at most 64 KiB) under `key`.
    ///
    /// # Errors
    /// As [`put`](Self::put); [`Error::InvalidArgument`] for metadata over
    /// 64 KiB.
    pub fn put_with_meta(&self, key: &[u8], value: &[u8], meta: &[u8]) -> Result<()> {
        self.put_entry(key, Payload::Bytes(value), Some(meta))
    }

    /// The metadata of `key`: `None` when the key is not cached,
    /// `Some(empty)` when it has none. Reads only the metadata, never the
    /// value, and does not count as a use.
    ///
    /// # Errors
    /// [`Error::InvalidKey`]; [`Error::Corrupt`] when the metadata fails its
    /// checksum or the index is damaged.
    pub fn meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        let _pin = self.readers.pin();
        self.read_view(|view| {
            let (rec, limit): (Vec<u8>, u64) = match view.overlay.get(key) {
                Seen::Removed => return Ok(None),
                Seen::Put(a) => (a.to_vec(), view.snap.mapping.len()),
                Seen::Unchanged => match view.snap.reader(TreeId::PRIMARY).get(key)? {
                    Some(b) => (b.to_vec(), view.snap.record.file_len),
                    None => return Ok(None),
                },
            };
            let r = Record::decode(&rec)?;
            if self.expired(&r) {
                return Ok(None);
            }
            Ok(Some(read_meta(&view.snap, &r, &rec, limit)?))
        })
    }

    /// Replaces the metadata of `key` (an empty `meta` removes it); the value
    /// and its place in the LRU order stay. Returns whether `key` was
    /// present (nothing is stored when it was not).
    ///
    /// # Errors
    /// As [`put_with_meta`](Self::put_with_meta).
    pub fn set_meta(&self, key: &[u8], meta: &[u8]) -> Result<bool> {
        check_key(key)?;
        check_meta_len(meta)?;
        self.with_writer(|w| {
            if w.txn.reader(TreeId::PRIMARY).get(key)?.is_none() {
                return Ok(false);
            }
            w.protect = Some(key.to_vec());
            // Claimed at once: nothing below commits before the record
            // takes it (or it is freed).
            let mut held = Vec::new();
            let new_meta = self
                .headroom(w)
                .and_then(|()| self.store_meta(w, meta, &mut held))
                .and_then(|m| self.claim_held(w, &mut held).map(|()| m));
            self.release_held(w, &mut held);
            w.protect = None;
            let new_meta = new_meta?;
            // The entry may have been evicted to make room for the metadata.
            let Some(cur) = w.txn.reader(TreeId::PRIMARY).get(key)?.map(|b| b.to_vec()) else {
                if let Some(MetaRef::Extent { off, len, .. }) = new_meta {
                    self.store.free(&mut w.txn, off, len)?;
                }
                return Ok(false);
            };
            // Making room may have committed, and a commit applies readers'
            // LRU notes (a new tick): build on the record as it is now.
            let mut r = Record::decode(&cur)?;
            let old = cur;
            let old_meta = r.meta;
            let old_len = r.meta_len();
            r.meta = new_meta;
            let bytes = r.encode(
                Record::decode(&old)?.inline(&old),
                inline_meta(new_meta, meta),
            );
            self.store.with_tree(&mut w.txn, TreeId::PRIMARY, |t, cx| {
                t.insert(cx, key, &bytes)
            })?;
            w.overlay.set(key, Some(Arc::from(bytes)));
            if let Some(MetaRef::Extent { off, len, .. }) = old_meta {
                self.store.free(&mut w.txn, off, len)?;
            }
            let m = &mut w.txn.meta;
            m.meta_bytes = m.meta_bytes.saturating_sub(old_len) + meta.len() as u64;
            self.bound_txn(w)?;
            Ok(true)
        })
    }
}

/// Reads and checks an entry's metadata.
pub(crate) fn read_meta(snap: &Snapshot, r: &Record, rec: &[u8], limit: u64) -> Result<Vec<u8>> {
    match r.meta {
        None => Ok(Vec::new()),
        Some(MetaRef::Inline { .. }) => Ok(r.meta_inline(rec).unwrap_or(&[]).to_vec()),
        Some(MetaRef::Extent { off, len, crc }) => {
            let b = snap.bytes(off, len, limit).ok_or_else(|| {
                Error::corrupt("metadata", off, "extent past the end of the file")
            })?;
            if crc32fast::hash(b) != crc {
                return Err(Error::corrupt("metadata", off, "fails its checksum"));
            }
            Ok(b.to_vec())
        }
    }
}
