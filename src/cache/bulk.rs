//! Bulk access (disk-objectstore's and squirrel's bulk reads and writes):
//! `get_many` resolves keys in key order and reads values in file order,
//! `put_many` stores a batch under one writer lock with one commit.

use std::sync::Arc;

use crate::btree::TreeId;
use crate::cache::overlay::Seen;
use crate::cache::read::{Found, ValueSrc};
use crate::cache::record::{Body, Record};
use crate::cache::slots::{Counters, Note};
use crate::cache::value::Value;
use crate::cache::write::Payload;
use crate::cache::{check_key, DatasetFileCache, Flushable};
use crate::error::{Error, Result};

/// Where a request's value lives, once its record is found.
struct Resolved<'v> {
    /// Index of the request.
    at: usize,
    /// The record bytes (shared with the overlay, or in the map).
    src: Found<'v>,
    r: Record,
    /// File offset used to order the reads.
    offset: u64,
}

/// What a request found: a value (or negative entry), or a note for the
/// writer (expired, failed its checksum).
type Outcome = (usize, std::result::Result<Option<Mapped>, Note>);

impl DatasetFileCache {
    /// The values of all `keys`, in the order of `keys` (`None` for keys not
    /// cached, negative entries included). Keys are looked up in key order
    /// and values read in the order they lie in the file, which makes large
    /// batches much faster than one `get` per key on a cold page cache.
    /// Counts hits and misses and records uses like `get`.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for any invalid key (nothing is read then);
    /// [`Error::Corrupt`] when the index is damaged (a damaged value is a
    /// miss on a read-write cache, like `get`).
    pub fn get_many<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<Vec<Option<Value<'_>>>> {
        for k in keys {
            check_key(k.as_ref())?;
        }
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_unstable_by(|&a, &b| keys[a].as_ref().cmp(keys[b].as_ref()));
        let pin = self.readers.pin();
        let mut out: Vec<Option<Value<'_>>> = (0..keys.len()).map(|_| None).collect();
        let outcome = self.read_view(|view| {
            let mut found = Vec::new();
            for &i in &order {
                let key = keys[i].as_ref();
                let src = match view.overlay.get(key) {
                    Seen::Removed => continue,
                    Seen::Put(a) => Found::Overlay(a),
                    Seen::Unchanged => match view.snap.reader(TreeId::PRIMARY).get(key)? {
                        Some(b) => Found::Committed(b),
                        None => continue,
                    },
                };
                let r = Record::decode(src.bytes())?;
                let offset = match r.body {
                    Body::Extent { off, .. } | Body::Chunked { off, .. } => off,
                    Body::Inline { .. } | Body::Absent => 0,
                };
                found.push(Resolved {
                    at: i,
                    src,
                    r,
                    offset,
                });
            }
            found.sort_unstable_by_key(|f| f.offset);
            let mut values: Vec<Outcome> = Vec::with_capacity(found.len());
            for f in found {
                if self.expired(&f.r) {
                    values.push((f.at, Err(Note::Expired(f.r.inserted))));
                    continue;
                }
                let limit = match f.src {
                    Found::Overlay(_) => view.snap.mapping.len(),
                    Found::Committed(_) => view.snap.record.file_len,
                };
                let v = match self.value_of(&view.snap, &f.r, f.src.bytes(), &f.src, limit) {
                    // Bytes in the map stay valid under the pin; read-only
                    // handles copy them before the seqlock check.
                    Ok(Some(ValueSrc::Mapped(m))) if !self.store.read_only => {
                        Ok(Some(Mapped::Slice(m)))
                    }
                    Ok(Some(ValueSrc::Mapped(m))) => Ok(Some(Mapped::Owned(m.as_slice().to_vec()))),
                    Ok(Some(ValueSrc::Owned(v))) => Ok(Some(Mapped::Owned(v))),
                    Ok(Some(ValueSrc::Shared(s, l))) => match &f.src {
                        Found::Overlay(a) => Ok(Some(Mapped::Shared(a.clone(), s, l))),
                        Found::Committed(_) => {
                            return Err(crate::internal!("shared value of a committed record"))
                        }
                    },
                    Ok(None) => Ok(None),
                    Err(Error::Corrupt { .. }) if !self.store.read_only => {
                        Err(Note::Corrupt(f.r.inserted))
                    }
                    Err(e) => return Err(e),
                };
                values.push((f.at, v));
            }
            Ok(values)
        })?;
        let slot = pin.data();
        let mut hits = 0;
        for (at, v) in outcome {
            let key = keys[at].as_ref();
            match v {
                Ok(v) => {
                    hits += 1;
                    if !self.store.read_only {
                        let tick = self.clock.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                        self.note(slot, key, Note::Hit(tick));
                    }
                    out[at] = match v {
                        None => None,
                        Some(Mapped::Slice(m)) => Some(Value::mapped(m, self.readers.pin())),
                        Some(Mapped::Owned(v)) => Some(Value::owned(v)),
                        Some(Mapped::Shared(a, s, l)) => Some(Value::shared(a, s, l)),
                    };
                }
                Err(n) => {
                    if matches!(n, Note::Expired(_)) {
                        Counters::add(&slot.counters.expirations, 1);
                    } else {
                        Counters::add(&slot.counters.corrupt_drops, 1);
                    }
                    if !self.store.read_only {
                        self.note(slot, key, n);
                    }
                }
            }
        }
        Counters::add(&slot.counters.hits, hits);
        Counters::add(&slot.counters.misses, keys.len() as u64 - hits);
        Ok(out)
    }

    /// Stores every (key, value) of `items`, then commits once (one sync).
    /// Returns how many were stored. Readers see each item as it is put. Under a
    /// maximum file size, eviction may commit in between; a batch of more
    /// keys than [`OpenOptions::max_dirty_pages`](crate::OpenOptions::max_dirty_pages)
    /// allows uncommitted (131,072 by default) is committed in steps. For
    /// the most compact index give keys in ascending order.
    ///
    /// # Errors
    /// As [`put`](Self::put), for the first item that fails; the items
    /// before it are stored and committed.
    pub fn put_many<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        items: impl IntoIterator<Item = (K, V)>,
    ) -> Result<u64> {
        let mut n = 0;
        let mut first_err = None;
        for (k, v) in items {
            if let Err(e) = self.put_entry(k.as_ref(), Payload::Bytes(v.as_ref()), None) {
                first_err = Some(e);
                break;
            }
            n += 1;
        }
        let flushed = if self.is_read_only() {
            Ok(())
        } else {
            self.flush()
        };
        match first_err {
            Some(e) => Err(e),
            None => flushed.map(|_| n),
        }
    }
}

/// A found value, before it becomes a [`Value`].
enum Mapped {
    Slice(crate::storage::mapping::MappedSlice),
    Owned(Vec<u8>),
    Shared(Arc<[u8]>, usize, usize),
}
