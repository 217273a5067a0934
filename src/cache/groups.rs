//! Groups (dscache): named lists of keys, kept in their own B-tree (tree 5,
//! spec/FORMAT.md §11.7).
//!
//! A group lists keys; it does not own entries. Evicting or removing an
//! entry leaves the group as it is, and streaming a group skips (and
//! reports) members that are no longer cached.
//!
//! Tree 5 holds, for group `name` with members `k0 .. kn-1`:
//! - the directory entry `0x01 ‖ name` → member count (u64 LE);
//! - member entries `0x02 ‖ escape(name) ‖ 0x00 0x00 ‖ i (u32 BE)` → `ki`,
//!   where `escape` writes each 0x00 byte of the name as 0x00 0xFF, so a
//!   group's members are contiguous and names sort bytewise.

use std::collections::VecDeque;
use std::ops::Bound;

use crate::btree::{Reader, TreeId};
use crate::cache::value::Value;
use crate::cache::DatasetFileCache;
use crate::error::{Error, Result};

/// Longest group name, in bytes.
pub const MAX_GROUP_NAME: usize = 256;
const DIR: u8 = 0x01;
const MEMBER: u8 = 0x02;

fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name.len() > MAX_GROUP_NAME {
        return Err(Error::InvalidArgument(format!(
            "group names are 1 to {MAX_GROUP_NAME} bytes, not {}",
            name.len()
        )));
    }
    Ok(())
}

fn dir_key(name: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + name.len());
    k.push(DIR);
    k.extend_from_slice(name);
    k
}

/// `0x02 ‖ escape(name) ‖ 0x00 0x00`: the prefix of the group's members.
fn member_prefix(name: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(3 + name.len() * 2);
    k.push(MEMBER);
    for &b in name {
        k.push(b);
        if b == 0 {
            k.push(0xFF);
        }
    }
    k.extend_from_slice(&[0, 0]);
    k
}

fn member_key(prefix: &[u8], i: u32) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&i.to_be_bytes());
    k
}

/// What a groups-index key is: a directory entry (name) or a member entry
/// (name, position). `None` for a malformed key.
pub(crate) enum GroupKey {
    Dir(Vec<u8>),
    Member(Vec<u8>, u32),
}

/// Decodes a groups-index key.
pub(crate) fn decode_group_key(k: &[u8]) -> Option<GroupKey> {
    match *k.first()? {
        DIR if k.len() > 1 => Some(GroupKey::Dir(k[1..].to_vec())),
        MEMBER => {
            let mut name = Vec::new();
            let mut i = 1;
            loop {
                let b = *k.get(i)?;
                if b != 0 {
                    name.push(b);
                    i += 1;
                    continue;
                }
                match *k.get(i + 1)? {
                    0xFF => {
                        name.push(0);
                        i += 2;
                    }
                    0 => {
                        let pos = u32::from_be_bytes(k.get(i + 2..)?.try_into().ok()?);
                        return Some(GroupKey::Member(name, pos));
                    }
                    _ => return None,
                }
            }
        }
        _ => None,
    }
}

/// Members of a group from position `from`, at most `max`.
fn members(rd: Reader<'_>, name: &[u8], from: u32, max: usize) -> Result<Vec<Vec<u8>>> {
    let prefix = member_prefix(name);
    let start = member_key(&prefix, from);
    let mut out = Vec::new();
    rd.scan(Bound::Included(&start), |k, v| {
        if !k.starts_with(&prefix) {
            return Ok(false);
        }
        out.push(v.to_vec());
        Ok(out.len() < max)
    })?;
    Ok(out)
}

impl DatasetFileCache {
    /// Runs `f` on the groups tree as this handle sees it.
    fn with_groups<R>(&self, mut f: impl FnMut(Reader<'_>) -> Result<R>) -> Result<R> {
        {
            let g = self.writer.lock();
            if let Some(w) = g.as_ref() {
                return f(w.txn.reader(TreeId::GROUPS));
            }
        }
        let _pin = self.readers.pin();
        self.read_view(|view| f(view.snap.reader(TreeId::GROUPS)))
    }

    /// Creates or replaces group `name` (1 to 256 bytes) listing `keys` in
    /// order; returns how many. The keys need not be cached.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad name; [`Error::InvalidKey`];
    /// [`Error::ReadOnly`]; I/O errors.
    pub fn put_group<K: AsRef<[u8]>>(
        &self,
        name: &[u8],
        keys: impl IntoIterator<Item = K>,
    ) -> Result<u64> {
        check_name(name)?;
        self.with_writer(|w| {
            self.remove_group_locked(w, name)?;
            let prefix = member_prefix(name);
            let mut n: u64 = 0;
            for k in keys {
                let k = k.as_ref();
                crate::cache::check_key(k)?;
                let i = u32::try_from(n).map_err(|_| {
                    Error::InvalidArgument("a group holds at most 2^32 keys".into())
                })?;
                let mk = member_key(&prefix, i);
                self.headroom(w)?;
                self.store
                    .with_tree(&mut w.txn, TreeId::GROUPS, |t, cx| t.insert(cx, &mk, k))?;
                n += 1;
                self.bound_txn(w)?;
            }
            let dk = dir_key(name);
            self.store.with_tree(&mut w.txn, TreeId::GROUPS, |t, cx| {
                t.insert(cx, &dk, &n.to_le_bytes())
            })?;
            Ok(n)
        })
    }

    /// The keys of group `name` in order, or `None` when there is no such
    /// group.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad name; [`Error::Corrupt`].
    pub fn get_group(&self, name: &[u8]) -> Result<Option<Vec<Vec<u8>>>> {
        check_name(name)?;
        self.with_groups(|rd| {
            if rd.get(&dir_key(name))?.is_none() {
                return Ok(None);
            }
            Ok(Some(members(rd, name, 0, usize::MAX)?))
        })
    }

    /// All groups with their member counts, in name order.
    ///
    /// # Errors
    /// [`Error::Corrupt`].
    pub fn groups(&self) -> Result<Vec<(Vec<u8>, u64)>> {
        self.groups_with_prefix(&[])
    }

    /// The groups whose names start with `prefix`, with their member counts.
    ///
    /// # Errors
    /// [`Error::Corrupt`].
    pub fn groups_with_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, u64)>> {
        let start = dir_key(prefix);
        self.with_groups(|rd| {
            let mut out = Vec::new();
            rd.scan(Bound::Included(&start), |k, v| {
                if !k.starts_with(&start) {
                    return Ok(false);
                }
                let n = <[u8; 8]>::try_from(v)
                    .map(u64::from_le_bytes)
                    .map_err(|_| Error::corrupt("groups index", 0, "malformed member count"))?;
                out.push((k[1..].to_vec(), n));
                Ok(true)
            })?;
            Ok(out)
        })
    }

    /// Removes group `name` (not its members' entries); returns whether it
    /// existed.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`]; [`Error::ReadOnly`]; I/O errors.
    pub fn remove_group(&self, name: &[u8]) -> Result<bool> {
        check_name(name)?;
        self.with_writer(|w| self.remove_group_locked(w, name))
    }

    fn remove_group_locked(&self, w: &mut crate::cache::Writer, name: &[u8]) -> Result<bool> {
        let dk = dir_key(name);
        let existed = self
            .store
            .with_tree(&mut w.txn, TreeId::GROUPS, |t, cx| t.remove(cx, &dk))?
            .is_some();
        let prefix = member_prefix(name);
        loop {
            let mut batch = Vec::new();
            w.txn
                .reader(TreeId::GROUPS)
                .scan(Bound::Included(&prefix), |k, _| {
                    if !k.starts_with(&prefix) {
                        return Ok(false);
                    }
                    batch.push(k.to_vec());
                    Ok(batch.len() < 1024)
                })?;
            if batch.is_empty() {
                return Ok(existed);
            }
            for k in batch {
                self.headroom(w)?;
                self.store.with_tree(&mut w.txn, TreeId::GROUPS, |t, cx| {
                    t.remove_existing(cx, &k)
                })?;
                self.bound_txn(w)?;
            }
        }
    }

    /// Streams the members of group `name` with their values, in group
    /// order, skipping members that are no longer cached (see
    /// [`GroupStream::missing`]). Values are read in batches with
    /// [`get_many`](Self::get_many).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad name; the iterator yields
    /// errors of `get_many`.
    pub fn stream_group(&self, name: &[u8]) -> Result<GroupStream<'_>> {
        check_name(name)?;
        Ok(GroupStream {
            cache: self,
            name: name.to_vec(),
            next: 0,
            batch: VecDeque::new(),
            missing: Vec::new(),
            done: false,
        })
    }
}

/// Members of a group with their values, from
/// [`DatasetFileCache::stream_group`].
pub struct GroupStream<'c> {
    cache: &'c DatasetFileCache,
    name: Vec<u8>,
    next: u32,
    batch: VecDeque<(Vec<u8>, Value<'c>)>,
    missing: Vec<Vec<u8>>,
    done: bool,
}

impl GroupStream<'_> {
    /// The members skipped so far because they are no longer cached.
    pub fn missing(&self) -> &[Vec<u8>] {
        &self.missing
    }
}

impl<'c> Iterator for GroupStream<'c> {
    type Item = Result<(Vec<u8>, Value<'c>)>;

    fn next(&mut self) -> Option<Self::Item> {
        const BATCH: usize = 256;
        while self.batch.is_empty() && !self.done {
            let keys = match self
                .cache
                .with_groups(|rd| members(rd, &self.name, self.next, BATCH))
            {
                Ok(k) => k,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            if keys.len() < BATCH {
                self.done = true;
            }
            self.next = self.next.saturating_add(keys.len() as u32);
            let values = match self.cache.get_many(&keys) {
                Ok(v) => v,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            for (k, v) in keys.into_iter().zip(values) {
                match v {
                    Some(v) => self.batch.push_back((k, v)),
                    None => self.missing.push(k),
                }
            }
        }
        self.batch.pop_front().map(Ok)
    }
}
