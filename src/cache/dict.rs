//! Trained compression dictionaries (dscache): small values that look alike
//! (JSON metadata, tiles of one dataset) compress far better with a zstd
//! dictionary trained on samples of them.
//!
//! Dictionaries live in the file (tree 6, spec/FORMAT.md §11.9): each in an
//! extent of its own, with a default per key prefix (the longest matching
//! prefix wins; the empty prefix is the default for all keys). A value
//! records the dictionary it was compressed with, so values stay readable
//! after a newer dictionary becomes the default.

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::btree::{Reader, TreeId};
use crate::cache::{DatasetFileCache, Writer};
use crate::error::{Error, Result};
use crate::header::{le_u32, le_u64};
use crate::storage::allocator::ExtentKind;
use crate::storage::Snapshot;

/// Identifies a dictionary within one cache file (ids start at 1).
pub type DictionaryId = u32;

/// Largest dictionary a cache accepts.
pub const MAX_DICTIONARY_SIZE: usize = 1 << 20;

/// Samples shorter than this are left out of training (zstd's trainer works
/// on 8-byte segments).
const MIN_SAMPLE_LEN: usize = 8;
/// The fewest samples `train_dictionary` accepts.
const MIN_SAMPLES: usize = 8;
/// The fewest sample bytes `train_dictionary` accepts.
const MIN_SAMPLE_BYTES: usize = 1024;

const DESC: u8 = 0x01;
const DEFAULT: u8 = 0x02;

/// Process-wide serials for loaded dictionaries: compression contexts are
/// cached per serial, never per id (ids repeat across files and after
/// `clear`).
static SERIAL: AtomicU64 = AtomicU64::new(1);

/// A dictionary in memory.
#[derive(Debug)]
pub(crate) struct LoadedDict {
    /// Unique in this process for these bytes.
    pub serial: u64,
    /// Its id in the file.
    pub id: DictionaryId,
    /// The dictionary.
    pub bytes: Vec<u8>,
}

/// Default dictionaries: (key prefix, id), longest prefix first.
type Defaults = Vec<(Vec<u8>, DictionaryId)>;

/// What a handle knows of its file's dictionaries.
#[derive(Default)]
pub(crate) struct Dicts {
    loaded: RwLock<HashMap<DictionaryId, Arc<LoadedDict>>>,
    /// (prefix, id), longest prefix first; `None` until read from the file.
    defaults: RwLock<Option<Defaults>>,
}

impl Dicts {
    /// Forgets everything (the file's dictionaries changed underneath).
    pub(crate) fn invalidate(&self) {
        self.loaded.write().clear();
        *self.defaults.write() = None;
    }

    fn keep(&self, id: DictionaryId, bytes: Vec<u8>) -> Arc<LoadedDict> {
        let d = Arc::new(LoadedDict {
            serial: SERIAL.fetch_add(1, Ordering::Relaxed),
            id,
            bytes,
        });
        self.loaded.write().insert(id, d.clone());
        d
    }
}

/// What [`DatasetFileCache::dictionaries`] lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DictionaryInfo {
    /// The id values record.
    pub id: DictionaryId,
    /// Size in bytes.
    pub size: u64,
    /// Key prefixes it is the default for (the empty prefix: all keys).
    pub default_for: Vec<Vec<u8>>,
}

fn desc_key(id: DictionaryId) -> [u8; 5] {
    let mut k = [DESC, 0, 0, 0, 0];
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

fn default_key(prefix: &[u8]) -> Vec<u8> {
    let mut k = vec![DEFAULT];
    k.extend_from_slice(prefix);
    k
}

/// A dictionary descriptor: (extent offset, length, CRC-32).
pub(crate) fn decode_desc(v: &[u8]) -> Result<(u64, u64, u32)> {
    match (v.len(), le_u64(v, 0), le_u32(v, 8), le_u32(v, 12)) {
        (16, Some(off), Some(len), Some(crc)) if off.is_multiple_of(16) && len > 0 => {
            Ok((off, len as u64, crc))
        }
        _ => Err(Error::corrupt(
            "dictionaries index",
            0,
            "malformed dictionary descriptor",
        )),
    }
}

fn encode_desc(off: u64, len: u64, crc: u32) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&off.to_le_bytes());
    v[8..12].copy_from_slice(&(len as u32).to_le_bytes());
    v[12..].copy_from_slice(&crc.to_le_bytes());
    v
}

/// Reads the per-prefix defaults from tree 6.
fn read_defaults(rd: Reader<'_>) -> Result<Vec<(Vec<u8>, DictionaryId)>> {
    let mut out = Vec::new();
    rd.scan(Bound::Included(&[DEFAULT]), |k, v| {
        if k.first() != Some(&DEFAULT) {
            return Ok(false);
        }
        let id = <[u8; 4]>::try_from(v)
            .map(u32::from_le_bytes)
            .map_err(|_| Error::corrupt("dictionaries index", 0, "malformed default"))?;
        out.push((k[1..].to_vec(), id));
        Ok(true)
    })?;
    out.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    Ok(out)
}

/// Reads and checks dictionary `id` through `rd` (tree 6) and `snap`.
fn read_dict(rd: Reader<'_>, snap: &Snapshot, limit: u64, id: DictionaryId) -> Result<Vec<u8>> {
    let v = rd.get(&desc_key(id))?.ok_or_else(|| {
        Error::corrupt(
            "value",
            0,
            format!("compressed with dictionary {id}, which the file does not hold"),
        )
    })?;
    let (off, len, crc) = decode_desc(v)?;
    if len > MAX_DICTIONARY_SIZE as u64 {
        return Err(Error::corrupt("dictionary", off, format!("{len} bytes")));
    }
    let b = snap
        .bytes(off, len, limit)
        .ok_or_else(|| Error::corrupt("dictionary", off, "past the end of the file"))?;
    if crc32fast::hash(b) != crc {
        return Err(Error::corrupt("dictionary", off, "fails its checksum"));
    }
    Ok(b.to_vec())
}

impl DatasetFileCache {
    /// The dictionary `id` for decompressing a value read from `snap`.
    pub(crate) fn dict(
        &self,
        snap: &Snapshot,
        id: DictionaryId,
    ) -> Result<Option<Arc<LoadedDict>>> {
        if id == 0 {
            return Ok(None);
        }
        if let Some(d) = self.dicts.loaded.read().get(&id) {
            return Ok(Some(d.clone()));
        }
        let bytes = read_dict(snap.reader(TreeId::DICTS), snap, snap.record.file_len, id)?;
        Ok(Some(self.dicts.keep(id, bytes)))
    }

    /// The default dictionary for new values under `key`, if any.
    pub(crate) fn default_dict(&self, key: &[u8]) -> Result<Option<Arc<LoadedDict>>> {
        if self.compression_level.is_none() {
            return Ok(None);
        }
        let known = self.dicts.defaults.read().clone();
        let defaults = match known {
            Some(d) => d,
            None => {
                // Not read yet: the committed state is current (every change
                // of defaults updates this cache).
                let d = {
                    let g = self.writer.lock();
                    match g.as_ref() {
                        Some(w) => read_defaults(w.txn.reader(TreeId::DICTS))?,
                        None => {
                            drop(g);
                            self.read_view(|view| read_defaults(view.snap.reader(TreeId::DICTS)))?
                        }
                    }
                };
                *self.dicts.defaults.write() = Some(d.clone());
                d
            }
        };
        let Some(&(_, id)) = defaults.iter().find(|(p, _)| key.starts_with(p)) else {
            return Ok(None);
        };
        if let Some(d) = self.dicts.loaded.read().get(&id) {
            return Ok(Some(d.clone()));
        }
        let bytes = {
            let g = self.writer.lock();
            match g.as_ref() {
                Some(w) => read_dict(
                    w.txn.reader(TreeId::DICTS),
                    &w.txn.base,
                    w.txn.base.mapping.len(),
                    id,
                )?,
                None => {
                    drop(g);
                    self.read_view(|view| {
                        read_dict(
                            view.snap.reader(TreeId::DICTS),
                            &view.snap,
                            view.snap.record.file_len,
                            id,
                        )
                    })?
                }
            }
        };
        Ok(Some(self.dicts.keep(id, bytes)))
    }

    /// Trains a zstd dictionary of at most `size` bytes on `samples`,
    /// stores it in the file and makes it the default for new values.
    /// Existing values keep theirs.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when there are fewer than 8 samples of at
    /// least 8 bytes (shorter ones are left out) or less than 1 KiB of
    /// them, when zstd cannot train on them (give it dozens of
    /// representative values), or when `size` is 0 or exceeds 1 MiB; [`Error::ReadOnly`]; I/O errors.
    pub fn train_dictionary<S: AsRef<[u8]>>(
        &self,
        samples: impl IntoIterator<Item = S>,
        size: usize,
    ) -> Result<DictionaryId> {
        self.train_dictionary_for(&[], samples, size)
    }

    /// As [`train_dictionary`](Self::train_dictionary), but the dictionary
    /// becomes the default only for keys starting with `prefix` (for
    /// example a dataset's 16-byte GUID prefix).
    ///
    /// # Errors
    /// As [`train_dictionary`](Self::train_dictionary).
    pub fn train_dictionary_for<S: AsRef<[u8]>>(
        &self,
        prefix: &[u8],
        samples: impl IntoIterator<Item = S>,
        size: usize,
    ) -> Result<DictionaryId> {
        if size == 0 || size > MAX_DICTIONARY_SIZE {
            return Err(Error::InvalidArgument(format!(
                "dictionary size {size} is not between 1 and {MAX_DICTIONARY_SIZE}"
            )));
        }
        // zstd's trainer crashes (rather than failing) on too little input
        // or on samples shorter than its segment length: check first.
        let samples: Vec<S> = samples
            .into_iter()
            .filter(|s| s.as_ref().len() >= MIN_SAMPLE_LEN)
            .collect();
        let total: usize = samples.iter().map(|s| s.as_ref().len()).sum();
        if samples.len() < MIN_SAMPLES || total < MIN_SAMPLE_BYTES {
            return Err(Error::InvalidArgument(format!(
                "{} samples of at least {MIN_SAMPLE_LEN} bytes ({total} bytes in all) are too few to train a dictionary: give at least {MIN_SAMPLES} samples and {MIN_SAMPLE_BYTES} bytes",
                samples.len()
            )));
        }
        let dict = zstd::dict::from_samples(&samples, size).map_err(|e| {
            Error::InvalidArgument(format!(
                "zstd could not train a dictionary on {} samples: {e} (give it more, representative values)",
                samples.len()
            ))
        })?;
        self.add_dictionary_for(prefix, &dict)
    }

    /// Stores a dictionary trained elsewhere (zstd format) and makes it the
    /// default for keys starting with `prefix`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty dictionary or one over 1 MiB
    /// or one zstd rejects; [`Error::ReadOnly`]; I/O errors.
    pub fn add_dictionary_for(&self, prefix: &[u8], dict: &[u8]) -> Result<DictionaryId> {
        if dict.is_empty() || dict.len() > MAX_DICTIONARY_SIZE {
            return Err(Error::InvalidArgument(format!(
                "a dictionary of {} bytes",
                dict.len()
            )));
        }
        zstd::bulk::Decompressor::with_dictionary(dict)
            .map_err(|e| Error::InvalidArgument(format!("not a zstd dictionary: {e}")))?;
        if prefix.len() > crate::MAX_KEY_LEN {
            return Err(Error::InvalidKey {
                len: prefix.len(),
                max: crate::MAX_KEY_LEN,
            });
        }
        self.with_writer(|w| {
            self.load_defaults_locked(w)?;
            let id = self.next_dict_id(w)?;
            let (off, crc) = self.write_extent(w, &[dict], ExtentKind::Dict)?;
            let desc = encode_desc(off, dict.len() as u64, crc);
            self.store.with_tree(&mut w.txn, TreeId::DICTS, |t, cx| {
                t.insert(cx, &desc_key(id), &desc)
            })?;
            self.dicts.keep(id, dict.to_vec());
            self.set_default_locked(w, prefix, Some(id))?;
            Ok(id)
        })
    }

    /// Makes dictionary `id` the default for keys starting with `prefix`,
    /// or removes the default for that prefix (`None`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an unknown id; [`Error::ReadOnly`].
    pub fn set_default_dictionary(&self, prefix: &[u8], id: Option<DictionaryId>) -> Result<()> {
        self.with_writer(|w| {
            self.load_defaults_locked(w)?;
            if let Some(id) = id {
                if w.txn.reader(TreeId::DICTS).get(&desc_key(id))?.is_none() {
                    return Err(Error::InvalidArgument(format!("no dictionary {id}")));
                }
            }
            self.set_default_locked(w, prefix, id)
        })
    }

    /// The dictionaries stored in the file.
    ///
    /// # Errors
    /// [`Error::Corrupt`].
    pub fn dictionaries(&self) -> Result<Vec<DictionaryInfo>> {
        let list = |rd: Reader<'_>| -> Result<Vec<DictionaryInfo>> {
            let mut out = Vec::new();
            rd.scan(Bound::Included(&[DESC]), |k, v| {
                if k.first() != Some(&DESC) {
                    return Ok(false);
                }
                let id = <[u8; 4]>::try_from(&k[1..])
                    .map(u32::from_be_bytes)
                    .map_err(|_| Error::corrupt("dictionaries index", 0, "malformed key"))?;
                let (_, len, _) = decode_desc(v)?;
                out.push(DictionaryInfo {
                    id,
                    size: len,
                    default_for: Vec::new(),
                });
                Ok(true)
            })?;
            for (p, id) in read_defaults(rd)? {
                if let Some(d) = out.iter_mut().find(|d| d.id == id) {
                    d.default_for.push(p);
                }
            }
            Ok(out)
        };
        {
            let g = self.writer.lock();
            if let Some(w) = g.as_ref() {
                return list(w.txn.reader(TreeId::DICTS));
            }
        }
        self.read_view(|view| list(view.snap.reader(TreeId::DICTS)))
    }

    fn load_defaults_locked(&self, w: &Writer) -> Result<()> {
        if self.dicts.defaults.read().is_none() {
            let d = read_defaults(w.txn.reader(TreeId::DICTS))?;
            *self.dicts.defaults.write() = Some(d);
        }
        Ok(())
    }

    fn next_dict_id(&self, w: &Writer) -> Result<DictionaryId> {
        let last = w
            .txn
            .reader(TreeId::DICTS)
            .floor(Some(&[DESC + 1]), false)?
            .filter(|(k, _)| k.first() == Some(&DESC));
        let id = match last {
            Some((k, _)) => <[u8; 4]>::try_from(&k[1..])
                .map(u32::from_be_bytes)
                .map_err(|_| Error::corrupt("dictionaries index", 0, "malformed key"))?,
            None => 0,
        };
        id.checked_add(1)
            .ok_or_else(|| Error::InvalidArgument("no dictionary ids left".into()))
    }

    fn set_default_locked(
        &self,
        w: &mut Writer,
        prefix: &[u8],
        id: Option<DictionaryId>,
    ) -> Result<()> {
        let k = default_key(prefix);
        match id {
            Some(id) => self
                .store
                .with_tree(&mut w.txn, TreeId::DICTS, |t, cx| {
                    t.insert(cx, &k, &id.to_le_bytes())
                })
                .map(|_| ()),
            None => self
                .store
                .with_tree(&mut w.txn, TreeId::DICTS, |t, cx| t.remove(cx, &k))
                .map(|_| ()),
        }?;
        let d = read_defaults(w.txn.reader(TreeId::DICTS))?;
        *self.dicts.defaults.write() = Some(d);
        // Values that did not compress without this dictionary may now.
        self.backoff.reset();
        Ok(())
    }
}
