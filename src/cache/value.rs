//! [`Value`]: the bytes `get` returns.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::cache::slots::Slot;
use crate::storage::epoch::Pin;
use crate::storage::mapping::MappedSlice;

/// A value read from the cache. Derefs to its bytes.
///
/// A raw (uncompressed) value is not copied: the `Value` points into the
/// cache file's memory map and keeps that space from being reused while it
/// lives. Drop it (or copy it with [`to_vec`](Value::to_vec)) when done:
/// space it pins cannot be reused, so a `Value` held for a long time can
/// make a full cache refuse writes with [`Error::NoSpace`](crate::Error::NoSpace).
/// Compressed values are decompressed into an owned buffer.
pub struct Value<'c> {
    inner: Inner<'c>,
}

enum Inner<'c> {
    Mapped {
        bytes: MappedSlice,
        _pin: Pin<'c, Slot>,
    },
    Shared {
        rec: Arc<[u8]>,
        start: usize,
        len: usize,
    },
    Owned(Vec<u8>),
}

impl<'c> Value<'c> {
    pub(crate) fn mapped(bytes: MappedSlice, pin: Pin<'c, Slot>) -> Value<'c> {
        Value {
            inner: Inner::Mapped { bytes, _pin: pin },
        }
    }

    pub(crate) fn shared(rec: Arc<[u8]>, start: usize, len: usize) -> Value<'c> {
        Value {
            inner: Inner::Shared { rec, start, len },
        }
    }

    pub(crate) fn owned(v: Vec<u8>) -> Value<'c> {
        Value {
            inner: Inner::Owned(v),
        }
    }

    /// Starts loading a mapped value's first `lines` cache lines and a
    /// line of each later page (see `MappedSlice::prefetch`).
    pub(crate) fn prefetch(&self, lines: usize) {
        if let Inner::Mapped { bytes, .. } = &self.inner {
            bytes.prefetch(lines);
        }
    }

    /// A copy of the bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        self.deref().to_vec()
    }

    /// The bytes as a `Vec`, without a copy when they are already owned.
    pub fn into_vec(self) -> Vec<u8> {
        match self.inner {
            Inner::Owned(v) => v,
            _ => self.to_vec(),
        }
    }

    /// Whether the bytes are read in place from the file (no copy was made).
    pub fn is_mapped(&self) -> bool {
        matches!(self.inner, Inner::Mapped { .. })
    }
}

impl Deref for Value<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.inner {
            Inner::Mapped { bytes, .. } => bytes.as_slice(),
            Inner::Shared { rec, start, len } => rec.get(*start..*start + *len).unwrap_or(&[]),
            Inner::Owned(v) => v,
        }
    }
}

impl AsRef<[u8]> for Value<'_> {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Value")
            .field("len", &self.len())
            .field("mapped", &self.is_mapped())
            .finish()
    }
}

impl PartialEq<[u8]> for Value<'_> {
    fn eq(&self, other: &[u8]) -> bool {
        self.deref() == other
    }
}

impl PartialEq<&[u8]> for Value<'_> {
    fn eq(&self, other: &&[u8]) -> bool {
        self.deref() == *other
    }
}

impl PartialEq<Vec<u8>> for Value<'_> {
    fn eq(&self, other: &Vec<u8>) -> bool {
        self.deref() == other.as_slice()
    }
}
