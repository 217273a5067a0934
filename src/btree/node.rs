//! The on-disk B-tree node: a 4096-byte page (spec/FORMAT.md §6).
//!
//! ```text
//! 0   4  magic "DFBT"
//! 4   4  CRC-32 of bytes 8..4096
//! 8   8  sequence number of the commit that wrote the node
//! 16  1  tree id
//! 17  1  level (0 = leaf)
//! 18  2  entry count n
//! 20  2  prefix length p (bytes every key of the node starts with)
//! 22  2  end of used bytes; the rest of the page is zero
//! 24  1  leaf layout: 0 slots (key off, key len), 1 slots (key off), 2 no slots
//! 25  1  key suffix length of layouts 1 and 2
//! 26  2  value length of layout 2
//! 28  p  prefix
//! leaf:   n slots of (key off u16, key len u16) | (key off u16) | none
//! branch: n+1 children of (page u64, crc u32), then n slots of (key off u16, key len u16)
//! then the heap: key suffixes (and leaf values), in entry order
//! ```
//!
//! A leaf value has no slot of its own: it runs from the end of its key to
//! the start of the next entry's key (the last one to `end`). Most trees
//! have keys of one length (dataset keys, UUIDs, ticks, offsets), so a leaf
//! whose key suffixes are all equal drops the length from its slots
//! (layout 1), and one whose values are all equal too drops the slots
//! (layout 2): for a small document that is 2 bytes in the primary index
//! and 4 in the LastUsed index, about 2 % of the file.
//!
//! [`NodeView`] reads a page in place without allocating; every access is
//! bounds-checked so that a damaged page yields [`Error::Corrupt`], never a
//! panic. [`Node`] is the decoded, mutable form the writer works on.

use std::cmp::Ordering;

use crate::btree::TreeId;
use crate::error::{Error, Result};
use crate::header::{le_u16, le_u32, le_u64};

/// Bytes of a node page.
pub(crate) const NODE_SIZE: usize = 4096;
/// Bytes of the node header.
pub(crate) const HEADER: usize = 28;
/// Node magic.
pub(crate) const NODE_MAGIC: [u8; 4] = *b"DFBT";
const LEAF_SLOT: usize = 4;
const BRANCH_SLOT: usize = 4;
const CHILD: usize = 12;
/// The largest leaf entry a tree accepts, counted as 8 bytes plus key plus
/// value (the limit is that of format version 1, whose slots were 8 bytes:
/// key and value at most 2016 bytes together). Two of them always fit in a
/// node, whatever its layout, so a split always succeeds.
pub(crate) const MAX_LEAF_ENTRY: usize = 2024;
const _: () = assert!(LEAF_SLOT == BRANCH_SLOT);
const _: () = assert!(HEADER + 2 * (MAX_LEAF_ENTRY - 8 + LEAF_SLOT) <= NODE_SIZE);

/// How a leaf locates its keys (spec §6.2). Layouts 1 and 2 need every key
/// suffix to have the same length, of at most 255 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// Slots of (key offset, key length): any keys.
    Slots,
    /// Slots of key offset only; every key suffix is `ks` bytes.
    FixedKeys { ks: usize },
    /// No slots; every key suffix is `ks` bytes and every value `vs`.
    FixedEntries { ks: usize, vs: usize },
}

impl Layout {
    /// The most compact layout for `n` leaf entries whose keys (with a
    /// prefix of `p` bytes in common) and values have lengths `k` and `v`.
    fn of(n: usize, p: usize, k: Lens, v: Lens) -> Layout {
        if n == 0 || k.min != k.max {
            return Layout::Slots;
        }
        let ks = k.max - p;
        if ks == 0 || ks > u8::MAX as usize {
            Layout::Slots
        } else if v.min == v.max {
            Layout::FixedEntries { ks, vs: v.max }
        } else {
            Layout::FixedKeys { ks }
        }
    }

    /// Bytes of one slot.
    fn slot(self) -> usize {
        match self {
            Layout::Slots => LEAF_SLOT,
            Layout::FixedKeys { .. } => 2,
            Layout::FixedEntries { .. } => 0,
        }
    }
}
/// The sum, least and greatest of the lengths of some keys or values: what
/// sizing a node and choosing its layout need, kept up to date as entries
/// come and go so that neither walks the node on every insert.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Lens {
    sum: usize,
    min: usize,
    max: usize,
}

impl Lens {
    /// The lengths of `items` (all zero when there are none).
    fn of<'a>(items: impl IntoIterator<Item = &'a Bytes>) -> Lens {
        let mut it = items.into_iter().map(|b| b.len());
        let Some(first) = it.next() else {
            return Lens::default();
        };
        it.fold(
            Lens {
                sum: first,
                min: first,
                max: first,
            },
            |l, x| Lens {
                sum: l.sum + x,
                min: l.min.min(x),
                max: l.max.max(x),
            },
        )
    }

    /// Counts one more length; `first` when there was none before.
    fn add(&mut self, x: usize, first: bool) {
        if first {
            *self = Lens {
                sum: x,
                min: x,
                max: x,
            };
        } else {
            self.sum += x;
            self.min = self.min.min(x);
            self.max = self.max.max(x);
        }
    }

    /// Counts one length less, of `items` (what remains); walks them only
    /// when the bound it held may have gone.
    fn remove<'a>(&mut self, x: usize, items: impl IntoIterator<Item = &'a Bytes>) {
        if (x == self.min || x == self.max) && self.min != self.max {
            *self = Lens::of(items);
        } else {
            self.sum -= x;
        }
    }
}

/// The longest key any tree accepts (user keys are limited to 1024 bytes).
pub(crate) const MAX_TREE_KEY: usize = 1024;

/// A reference from a parent to a child node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ref {
    /// A committed node: its page and the CRC it must have.
    Clean {
        /// Block ID (file offset) of the page.
        page: u64,
        /// Expected CRC-32 of the page.
        crc: u32,
    },
    /// A node changed in the current transaction, by arena index.
    Dirty(u32),
}

/// Where a key falls in a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pos {
    /// Entry `i` has the key.
    Found(usize),
    /// No entry has it; it would be inserted at `i`.
    Missing(usize),
}

/// Nodes with fewer entries than this are bisected without a guess.
const INTERPOLATE_MIN: usize = 16;

/// Bytewise order, with the first eight bytes compared as one integer:
/// keys below a node's prefix are short (a dataset block's is often one to
/// three bytes), and a call into `memcmp` per probe of a binary search costs
/// more than the comparison itself.
#[inline]
pub(crate) fn cmp_keys(a: &[u8], b: &[u8]) -> Ordering {
    let (x, y) = (head8(a), head8(b));
    if x != y {
        return x.cmp(&y);
    }
    // The first eight bytes agree, zero-padded. If either key is shorter
    // than eight, it is a prefix of the other (the other's bytes past it
    // are the zeros that padded it), so the shorter one sorts first.
    if a.len() < 8 || b.len() < 8 {
        return a.len().cmp(&b.len());
    }
    a[8..].cmp(&b[8..])
}

/// Where `rest` falls among `n` ascending keys whose parts past a common
/// prefix `suffix(i)` returns (the prefix already matched): `Found(i)` or
/// the insertion point `Missing(i)`. Larger nodes start from a guess by
/// interpolation, then gallop and bisect.
fn find<'a, E>(
    n: usize,
    rest: &[u8],
    suffix: impl Fn(usize) -> std::result::Result<&'a [u8], E>,
) -> std::result::Result<Pos, E> {
    // Invariant: suffixes before `lo` sort below `rest`, those from `hi`
    // on above it.
    let (mut lo, mut hi) = (0usize, n);
    if n >= INTERPOLATE_MIN {
        if let Some(g) = guess(n, rest, &suffix)? {
            match gallop(n, g, rest, &suffix)? {
                Ok(found) => return Ok(Pos::Found(found)),
                Err(bracket) => (lo, hi) = bracket,
            }
        }
    }
    while lo < hi {
        let mid = (lo + hi) / 2;
        match cmp_keys(suffix(mid)?, rest) {
            Ordering::Less => lo = mid + 1,
            Ordering::Greater => hi = mid,
            Ordering::Equal => return Ok(Pos::Found(mid)),
        }
    }
    Ok(Pos::Missing(lo))
}

/// Where `rest` would sit if the suffixes' first eight bytes were spread
/// evenly between the first and the last: dataset block keys are, so the
/// guess is usually a few entries off, one or two cache lines, where
/// bisection touches about seven. `None` when those bytes of the first and
/// last suffix are equal (no scale to interpolate on).
fn guess<'a, E>(
    n: usize,
    rest: &[u8],
    suffix: &impl Fn(usize) -> std::result::Result<&'a [u8], E>,
) -> std::result::Result<Option<usize>, E> {
    let last = n - 1;
    let (a, b) = (head8(suffix(0)?), head8(suffix(last)?));
    if b <= a {
        return Ok(None);
    }
    let x = head8(rest).clamp(a, b);
    // In floating point: a 128-bit integer division costs more than the
    // probes the guess saves in a small node.
    let g = (x - a) as f64 / (b - a) as f64 * last as f64;
    Ok(Some((g as usize).min(last)))
}

/// Compares `rest` with the suffix at `g`, then at steps of 1, 2, 4, ...
/// away from it in the direction of `rest`, until it is passed: either the
/// index of an equal suffix, or a bracket `(lo, hi)` to bisect.
fn gallop<'a, E>(
    n: usize,
    g: usize,
    rest: &[u8],
    suffix: &impl Fn(usize) -> std::result::Result<&'a [u8], E>,
) -> std::result::Result<std::result::Result<usize, (usize, usize)>, E> {
    let (mut lo, mut hi) = (0usize, n);
    match cmp_keys(suffix(g)?, rest) {
        Ordering::Equal => return Ok(Ok(g)),
        Ordering::Less => {
            lo = g + 1;
            let mut step = 1;
            while g + step < n {
                let j = g + step;
                match cmp_keys(suffix(j)?, rest) {
                    Ordering::Less => lo = j + 1,
                    Ordering::Equal => return Ok(Ok(j)),
                    Ordering::Greater => {
                        hi = j;
                        break;
                    }
                }
                step *= 2;
            }
        }
        Ordering::Greater => {
            hi = g;
            let mut step = 1;
            while step <= g {
                let j = g - step;
                match cmp_keys(suffix(j)?, rest) {
                    Ordering::Greater => hi = j,
                    Ordering::Equal => return Ok(Ok(j)),
                    Ordering::Less => {
                        lo = j + 1;
                        break;
                    }
                }
                step *= 2;
            }
        }
    }
    Ok(Err((lo, hi)))
}

/// The first eight bytes of `s` as a big-endian integer, zero-padded.
#[inline]
fn head8(s: &[u8]) -> u64 {
    match s.first_chunk::<8>() {
        Some(h) => u64::from_be_bytes(*h),
        None => {
            let mut v = 0u64;
            for (i, &c) in s.iter().enumerate() {
                v |= u64::from(c) << (56 - 8 * i);
            }
            v
        }
    }
}

/// Computes the CRC stored in a node page (bytes 8..4096).
pub(crate) fn page_crc(page: &[u8]) -> u32 {
    crc32fast::hash(page.get(8..).unwrap_or(&[]))
}

/// Length of the common prefix of two byte strings.
pub(crate) fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    // Eight bytes at a time: decoded nodes take the prefix of their first
    // and last keys on every search.
    let mut i = 0;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let d = u64::from_le_bytes(x.try_into().unwrap_or([0; 8]))
            ^ u64::from_le_bytes(y.try_into().unwrap_or([0; 8]));
        if d != 0 {
            return i + (d.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i + a[i..]
        .iter()
        .zip(&b[i..])
        .take_while(|(x, y)| x == y)
        .count()
}

/// A node page read in place.
#[derive(Clone, Copy)]
pub(crate) struct NodeView<'a> {
    b: &'a [u8],
    n: usize,
    p: usize,
    level: u8,
    /// How a leaf locates its keys (branches: always `Slots`).
    layout: Layout,
    /// Offset of the slot array (of a leaf in layout 2: of the heap).
    slots: usize,
    /// Offset of the child array (branches).
    children: usize,
    /// First byte past the used area.
    end: usize,
    /// File offset, for error messages.
    page: u64,
}

impl<'a> NodeView<'a> {
    /// Parses the header of a page and checks that the fixed-size parts lie
    /// inside it. `page` is the file offset, used in errors. O(1).
    pub(crate) fn parse(b: &'a [u8], page: u64, tree: TreeId, level: u8) -> Result<NodeView<'a>> {
        let bad = |d: String| Error::corrupt("B-tree node", page, d);
        if b.len() != NODE_SIZE {
            return Err(bad(format!("page of {} bytes", b.len())));
        }
        if b[0..4] != NODE_MAGIC {
            return Err(bad("no node magic".into()));
        }
        if b[16] != tree.0 {
            return Err(bad(format!("belongs to tree {} not {}", b[16], tree.0)));
        }
        if b[17] != level {
            return Err(bad(format!("level {} where {} was expected", b[17], level)));
        }
        let n = le_u16(b, 18).unwrap_or(0) as usize;
        let p = le_u16(b, 20).unwrap_or(0) as usize;
        let end = le_u16(b, 22).unwrap_or(0) as usize;
        let (ks, vs) = (b[25] as usize, le_u16(b, 26).unwrap_or(0) as usize);
        let layout = match (b[24], level) {
            (0, _) if ks == 0 && vs == 0 => Layout::Slots,
            (1, 0) if ks > 0 && vs == 0 => Layout::FixedKeys { ks },
            (2, 0) if ks > 0 => Layout::FixedEntries { ks, vs },
            (l, _) => {
                return Err(bad(format!(
                    "layout {l} with key length {ks}, value length {vs} at level {level}"
                )))
            }
        };
        let fixed = if level == 0 {
            HEADER + p + n * layout.slot()
        } else {
            HEADER + p + (n + 1) * CHILD + n * BRANCH_SLOT
        };
        if end > NODE_SIZE || fixed > end || p > MAX_TREE_KEY {
            return Err(bad(format!(
                "{n} entries, prefix {p}, end {end} do not fit"
            )));
        }
        if let Layout::FixedEntries { ks, vs } = layout {
            // The entries fill the heap exactly, so every computed offset
            // lies in the page.
            if fixed + n * (ks + vs) != end {
                return Err(bad(format!(
                    "{n} entries of {ks} + {vs} bytes do not end at {end}"
                )));
            }
        }
        if n == 0 && level > 0 {
            return Err(bad("branch without keys".into()));
        }
        let (slots, children) = if level == 0 {
            (HEADER + p, 0)
        } else {
            (HEADER + p + (n + 1) * CHILD, HEADER + p)
        };
        Ok(NodeView {
            b,
            n,
            p,
            level,
            layout,
            slots,
            children,
            end,
            page,
        })
    }

    /// The checks done once per page per handle, with the CRC: every slot in
    /// bounds, keys strictly ascending, unused bytes zero.
    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |d: String| Error::corrupt("B-tree node", self.page, d);
        let heap = if self.level == 0 {
            self.slots + self.n * self.layout.slot()
        } else {
            self.slots + self.n * BRANCH_SLOT
        };
        let mut prev: Option<&[u8]> = None;
        for i in 0..self.n {
            let (ko, kl) = self.key_range(i);
            if ko < heap || ko + kl > self.end {
                return Err(bad(format!("key {i} outside the heap")));
            }
            if self.p + kl > MAX_TREE_KEY || self.p + kl == 0 {
                return Err(bad(format!("key {i} has invalid length {}", self.p + kl)));
            }
            if self.level == 0 {
                // Leaf entries lie back to back from the start of the heap.
                if i == 0 && ko != heap {
                    return Err(bad("the first key does not start the heap".into()));
                }
                if self.val_range(i).is_none() {
                    return Err(bad(format!("value {i} outside the heap")));
                }
            }
            let k = &self.b[ko..ko + kl];
            if let Some(pk) = prev {
                if pk >= k {
                    return Err(bad(format!("keys {} and {i} out of order", i - 1)));
                }
            }
            prev = Some(k);
        }
        if self.b[self.end..].iter().any(|&x| x != 0) {
            return Err(bad("bytes past the used area are not zero".into()));
        }
        Ok(())
    }

    /// Number of entries (leaf) or separator keys (branch).
    pub(crate) fn len(&self) -> usize {
        self.n
    }

    /// 0 for leaves.
    pub(crate) fn level(&self) -> u8 {
        self.level
    }

    /// The prefix every key of the node starts with.
    pub(crate) fn prefix(&self) -> &'a [u8] {
        &self.b[HEADER..HEADER + self.p]
    }

    fn key_range(&self, i: usize) -> (usize, usize) {
        match self.layout {
            Layout::Slots => {
                // Branch and leaf slots are alike.
                let at = self.slots + i * LEAF_SLOT;
                (
                    le_u16(self.b, at).unwrap_or(0) as usize,
                    le_u16(self.b, at + 2).unwrap_or(0) as usize,
                )
            }
            Layout::FixedKeys { ks } => {
                (le_u16(self.b, self.slots + 2 * i).unwrap_or(0) as usize, ks)
            }
            Layout::FixedEntries { ks, vs } => (self.slots + i * (ks + vs), ks),
        }
    }

    /// Value `i` of a leaf runs from the end of key `i` to the start of key
    /// `i + 1` (or to `end`); `None` if those are out of order.
    fn val_range(&self, i: usize) -> Option<(usize, usize)> {
        let (ko, kl) = self.key_range(i);
        let next = if i + 1 < self.n {
            self.key_range(i + 1).0
        } else {
            self.end
        };
        let vo = ko + kl;
        Some((vo, next.checked_sub(vo)?))
    }

    fn oob(&self, what: &str, i: usize) -> Error {
        Error::corrupt(
            "B-tree node",
            self.page,
            format!("{what} {i} out of bounds"),
        )
    }

    /// Key `i` without the node prefix.
    pub(crate) fn suffix(&self, i: usize) -> Result<&'a [u8]> {
        if i >= self.n {
            return Err(self.oob("key", i));
        }
        let (o, l) = self.key_range(i);
        self.b.get(o..o + l).ok_or_else(|| self.oob("key", i))
    }

    /// Key `i` in full.
    pub(crate) fn key(&self, i: usize) -> Result<Vec<u8>> {
        let s = self.suffix(i)?;
        let mut k = Vec::with_capacity(self.p + s.len());
        k.extend_from_slice(self.prefix());
        k.extend_from_slice(s);
        Ok(k)
    }

    /// Value `i` of a leaf.
    pub(crate) fn val(&self, i: usize) -> Result<&'a [u8]> {
        if i >= self.n || self.level != 0 {
            return Err(self.oob("value", i));
        }
        let (o, l) = self.val_range(i).ok_or_else(|| self.oob("value", i))?;
        self.b.get(o..o + l).ok_or_else(|| self.oob("value", i))
    }

    /// Child `i` (0..=len) of a branch.
    pub(crate) fn child(&self, i: usize) -> Result<Ref> {
        if i > self.n || self.level == 0 {
            return Err(self.oob("child", i));
        }
        let at = self.children + i * CHILD;
        match (le_u64(self.b, at), le_u32(self.b, at + 8)) {
            (Some(page), Some(crc)) => Ok(Ref::Clean { page, crc }),
            _ => Err(self.oob("child", i)),
        }
    }

    /// Where `key` falls: for a leaf, the entry that has it or its insertion
    /// point; for a branch, `Missing(i)` / `Found(i)` name the separator (use
    /// [`child_for`](Self::child_for) to descend).
    pub(crate) fn search(&self, key: &[u8]) -> Result<Pos> {
        let pre = self.prefix();
        let m = pre.len().min(key.len());
        match key[..m].cmp(&pre[..m]) {
            Ordering::Less => return Ok(Pos::Missing(0)),
            Ordering::Greater => return Ok(Pos::Missing(self.n)),
            Ordering::Equal if key.len() < pre.len() => return Ok(Pos::Missing(0)),
            Ordering::Equal => {}
        }
        find(self.n, &key[pre.len()..], |i| self.suffix(i))
    }

    /// The index of the child whose subtree holds `key`.
    pub(crate) fn child_for(&self, key: &[u8]) -> Result<usize> {
        Ok(match self.search(key)? {
            Pos::Found(i) => i + 1,
            Pos::Missing(i) => i,
        })
    }

    /// Decodes the page into a mutable [`Node`].
    pub(crate) fn to_node(self) -> Result<Node> {
        let mut node = Node::new(self.level);
        node.keys.reserve_exact(self.n);
        if self.level == 0 {
            node.vals.reserve_exact(self.n);
        }
        let pre = self.prefix();
        for i in 0..self.n {
            let s = self.suffix(i)?;
            let mut k = Bytes::with_capacity(pre.len() + s.len());
            k.extend_from_slice(pre);
            k.extend_from_slice(s);
            node.keys.push(k);
            if self.level == 0 {
                node.vals.push(Bytes::from_slice(self.val(i)?));
            }
        }
        node.recount();
        if self.level > 0 {
            for i in 0..=self.n {
                node.children.push(self.child(i)?);
            }
        }
        Ok(node)
    }
}

/// A key or value of a decoded node: up to 32 bytes (a dataset block's
/// key, an extent's entry record) without an allocation of its own.
pub(crate) type Bytes = smallvec::SmallVec<[u8; 32]>;

/// A decoded node the writer changes in memory.
#[derive(Clone, Debug, Default)]
pub(crate) struct Node {
    /// 0 for leaves.
    pub level: u8,
    /// Full keys, ascending.
    pub keys: Vec<Bytes>,
    /// Leaf values (empty for branches).
    pub vals: Vec<Bytes>,
    /// Branch children, `keys.len() + 1` of them (empty for leaves).
    pub children: Vec<Ref>,
    /// Lengths of `keys`.
    klens: Lens,
    /// Lengths of `vals`.
    vlens: Lens,
}

impl Node {
    /// An empty node at `level`.
    pub(crate) fn new(level: u8) -> Node {
        Node {
            level,
            ..Default::default()
        }
    }

    /// Whether this is a leaf.
    pub(crate) fn is_leaf(&self) -> bool {
        self.level == 0
    }

    /// Number of keys.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Prefix length shared by all keys.
    fn prefix_len(&self) -> usize {
        match (self.keys.first(), self.keys.last()) {
            (Some(a), Some(b)) if self.keys.len() > 1 => common_prefix(a, b),
            // One key: keep it whole in the heap (a prefix buys nothing).
            _ => 0,
        }
    }

    /// Bytes the node takes when encoded.
    pub(crate) fn encoded_len(&self) -> usize {
        let n = self.keys.len();
        let p = self.prefix_len();
        let fixed = if self.is_leaf() {
            n * self.layout(p).slot()
        } else {
            (n + 1) * CHILD + n * BRANCH_SLOT
        };
        HEADER + p + fixed + (self.klens.sum - n * p) + self.vlens.sum
    }

    /// The layout of this leaf with a prefix of `p` bytes.
    fn layout(&self, p: usize) -> Layout {
        Layout::of(self.keys.len(), p, self.klens, self.vlens)
    }

    /// Whether the node fits in a page.
    pub(crate) fn fits(&self) -> bool {
        self.encoded_len() <= NODE_SIZE
    }

    /// Inserts a leaf entry at `i`.
    pub(crate) fn insert_entry(&mut self, i: usize, key: &[u8], val: &[u8]) {
        let first = self.keys.is_empty();
        self.klens.add(key.len(), first);
        self.vlens.add(val.len(), first);
        self.keys.insert(i, Bytes::from_slice(key));
        self.vals.insert(i, Bytes::from_slice(val));
    }

    /// Replaces leaf value `i`, returning the old one.
    pub(crate) fn replace_val(&mut self, i: usize, val: &[u8]) -> Vec<u8> {
        let old = std::mem::replace(&mut self.vals[i], Bytes::from_slice(val));
        let (o, x) = (old.len(), val.len());
        if o != x {
            if o == self.vlens.min || o == self.vlens.max {
                // The bound it held may have gone.
                self.vlens = Lens::of(&self.vals);
            } else {
                self.vlens.sum = self.vlens.sum - o + x;
                self.vlens.min = self.vlens.min.min(x);
                self.vlens.max = self.vlens.max.max(x);
            }
        }
        old.into_vec()
    }

    /// Removes leaf entry `i`.
    pub(crate) fn remove_entry(&mut self, i: usize) -> (Vec<u8>, Vec<u8>) {
        let k = self.keys.remove(i);
        let v = self.vals.remove(i);
        self.klens.remove(k.len(), &self.keys);
        self.vlens.remove(v.len(), &self.vals);
        (k.into_vec(), v.into_vec())
    }

    /// Inserts separator `key` at `i` with `right` as child `i + 1`.
    pub(crate) fn insert_child(&mut self, i: usize, key: Bytes, right: Ref) {
        self.klens.add(key.len(), self.keys.is_empty());
        self.keys.insert(i, key);
        self.children.insert(i + 1, right);
    }

    /// Removes separator `i` and child `i + 1`.
    pub(crate) fn remove_child(&mut self, i: usize) -> (Bytes, Ref) {
        let k = self.keys.remove(i);
        self.klens.remove(k.len(), &self.keys);
        (k, self.children.remove(i + 1))
    }

    /// Where `key` is among the keys.
    pub(crate) fn search(&self, key: &[u8]) -> Pos {
        let n = self.keys.len();
        // The keys between the first and the last share what those two
        // share: match that once, then search the rest as NodeView does.
        let pre = match (self.keys.first(), self.keys.last()) {
            (Some(a), Some(b)) if n > 1 => common_prefix(a, b),
            _ => 0,
        };
        if pre > 0 {
            let first = &self.keys[0][..pre];
            let m = pre.min(key.len());
            match key[..m].cmp(&first[..m]) {
                Ordering::Less => return Pos::Missing(0),
                Ordering::Greater => return Pos::Missing(n),
                Ordering::Equal if key.len() < pre => return Pos::Missing(0),
                Ordering::Equal => {}
            }
        }
        let found = find(n, &key[pre..], |i| {
            Ok::<_, std::convert::Infallible>(&self.keys[i][pre..])
        });
        match found {
            Ok(p) => p,
            Err(never) => match never {},
        }
    }

    /// The index of the child whose subtree holds `key`.
    pub(crate) fn child_for(&self, key: &[u8]) -> usize {
        match self.search(key) {
            Pos::Found(i) => i + 1,
            Pos::Missing(i) => i,
        }
    }

    /// Moves the entries (and children) from `at` on into a new node. For a
    /// branch the key at `at` is returned as the separator and belongs to
    /// neither half; for a leaf the separator is the shortest key between
    /// the halves.
    pub(crate) fn split_off(&mut self, at: usize) -> (Bytes, Node) {
        let mut right = Node::new(self.level);
        if self.is_leaf() {
            right.keys = self.keys.split_off(at);
            right.vals = self.vals.split_off(at);
            right.recount();
            self.recount();
            let sep = match (self.keys.last(), right.keys.first()) {
                (Some(a), Some(b)) => shortest_separator(a, b),
                (_, Some(b)) => b.clone(),
                _ => Bytes::new(),
            };
            (sep, right)
        } else {
            right.keys = self.keys.split_off(at + 1);
            right.children = self.children.split_off(at + 1);
            let sep = self.keys.pop().unwrap_or_default();
            right.recount();
            self.recount();
            (sep, right)
        }
    }

    /// Appends all of `right` to this node; `sep` is the parent's separator
    /// between them (used for branches).
    pub(crate) fn merge(&mut self, sep: Bytes, mut right: Node) {
        if !self.is_leaf() {
            self.keys.push(sep);
        }
        self.keys.append(&mut right.keys);
        self.vals.append(&mut right.vals);
        self.children.append(&mut right.children);
        self.recount();
    }

    fn recount(&mut self) {
        self.klens = Lens::of(&self.keys);
        self.vlens = Lens::of(&self.vals);
    }

    /// Encoded size of entries `a..b` as a node of their own (leaf) or of
    /// separators `a..b` with children `a..=b` (branch).
    fn range_len(&self, a: usize, b: usize) -> usize {
        if a >= b {
            return HEADER;
        }
        let n = b - a;
        let p = if n > 1 {
            common_prefix(&self.keys[a], &self.keys[b - 1])
        } else {
            0
        };
        let k = Lens::of(&self.keys[a..b]);
        let kb = k.sum - n * p;
        if self.is_leaf() {
            let v = Lens::of(&self.vals[a..b]);
            HEADER + p + n * Layout::of(n, p, k, v).slot() + kb + v.sum
        } else {
            HEADER + p + (n + 1) * CHILD + n * BRANCH_SLOT + kb
        }
    }

    /// Chooses where to cut an overflowing node. Returns the start index of
    /// every piece after the first (for branches, the index of the separator
    /// that moves up). `append` asks for full left pieces (sequential
    /// inserts); otherwise the cut balances bytes.
    pub(crate) fn split_points(&self, append: bool) -> Vec<usize> {
        let n = self.keys.len();
        let leaf = self.is_leaf();
        // A piece covers keys [a, b); for a branch, key b moves up to the
        // parent and the next piece starts at b + 1. Every piece needs at
        // least one key.
        let fits = |a: usize, b: usize| self.range_len(a, b) <= NODE_SIZE;
        let next = |b: usize| if leaf { b } else { b + 1 };
        if !append && n >= 3 {
            // Start at the uncompressed byte midpoint and widen until both
            // halves fit.
            let weight = |i: usize| self.keys[i].len() + self.vals.get(i).map_or(0, |v| v.len());
            let total: usize = (0..n).map(weight).sum();
            let mut acc = 0;
            let mut mid = 1;
            for i in 0..n {
                acc += weight(i);
                if acc * 2 >= total {
                    mid = i.max(1);
                    break;
                }
            }
            let valid = |c: usize| c >= 1 && next(c) < n && fits(0, c) && fits(next(c), n);
            for d in 0..n {
                if mid >= d && valid(mid - d) {
                    return vec![mid - d];
                }
                if valid(mid + d) {
                    return vec![mid + d];
                }
            }
        }
        // Greedy: fill each piece as far as it goes. A piece's size only
        // grows with its end, so the end is found by bisection (a linear
        // walk made every split of a full node quadratic).
        let mut cuts = Vec::new();
        let mut a = 0;
        while a < n && !fits(a, n) {
            // The last end that leaves a key for the next piece.
            let last = if leaf { n - 1 } else { n.saturating_sub(2) };
            let (mut lo, mut hi) = (a + 1, last.max(a + 1));
            while lo < hi {
                let mid = lo + (hi - lo).div_ceil(2);
                if fits(a, mid) {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            cuts.push(lo);
            a = next(lo);
        }
        cuts
    }

    /// Encodes the node into a page. Children must all be clean.
    pub(crate) fn encode(&self, tree: TreeId, seq: u64) -> Result<[u8; NODE_SIZE]> {
        let mut b = [0u8; NODE_SIZE];
        let n = self.keys.len();
        let p = self.prefix_len();
        if !self.fits() || n > u16::MAX as usize {
            return Err(Error::corrupt(
                "B-tree node",
                0,
                format!("node of {} bytes does not fit a page", self.encoded_len()),
            ));
        }
        b[0..4].copy_from_slice(&NODE_MAGIC);
        b[8..16].copy_from_slice(&seq.to_le_bytes());
        b[16] = tree.0;
        b[17] = self.level;
        b[18..20].copy_from_slice(&(n as u16).to_le_bytes());
        b[20..22].copy_from_slice(&(p as u16).to_le_bytes());
        if let Some(k) = self.keys.first() {
            b[HEADER..HEADER + p].copy_from_slice(&k[..p]);
        }
        let mut at = HEADER + p;
        if !self.is_leaf() {
            for c in &self.children {
                let Ref::Clean { page, crc } = *c else {
                    return Err(Error::corrupt(
                        "B-tree node",
                        0,
                        "encoding a node with an unwritten child",
                    ));
                };
                b[at..at + 8].copy_from_slice(&page.to_le_bytes());
                b[at + 8..at + 12].copy_from_slice(&crc.to_le_bytes());
                at += CHILD;
            }
        }
        let slots = at;
        let layout = if self.is_leaf() {
            self.layout(p)
        } else {
            Layout::Slots
        };
        match layout {
            Layout::Slots => {}
            Layout::FixedKeys { ks } => {
                b[24] = 1;
                b[25] = ks as u8;
            }
            Layout::FixedEntries { ks, vs } => {
                b[24] = 2;
                b[25] = ks as u8;
                b[26..28].copy_from_slice(&(vs as u16).to_le_bytes());
            }
        }
        let slot_w = if self.is_leaf() {
            layout.slot()
        } else {
            BRANCH_SLOT
        };
        let mut heap = slots + n * slot_w;
        for i in 0..n {
            let s = &self.keys[i][p..];
            let so = slots + i * slot_w;
            if slot_w >= 2 {
                b[so..so + 2].copy_from_slice(&(heap as u16).to_le_bytes());
            }
            if slot_w == 4 {
                b[so + 2..so + 4].copy_from_slice(&(s.len() as u16).to_le_bytes());
            }
            b[heap..heap + s.len()].copy_from_slice(s);
            heap += s.len();
            if self.is_leaf() {
                let v = &self.vals[i];
                b[heap..heap + v.len()].copy_from_slice(v);
                heap += v.len();
            }
        }
        b[22..24].copy_from_slice(&(heap as u16).to_le_bytes());
        let crc = page_crc(&b);
        b[4..8].copy_from_slice(&crc.to_le_bytes());
        Ok(b)
    }
}

/// The shortest key `s` with `a < s <= b` (for `a < b`).
pub(crate) fn shortest_separator(a: &[u8], b: &[u8]) -> Bytes {
    let l = common_prefix(a, b);
    Bytes::from_slice(&b[..(l + 1).min(b.len())])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeded xorshift: each call gives a number below its argument.
    fn below(mut x: u64) -> impl FnMut(u64) -> u64 {
        move |m| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m.max(1)
        }
    }

    #[test]
    fn cmp_keys_is_bytewise_order() {
        let keys: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![0, 0, 0, 0, 0, 0, 0, 0],
            vec![0, 0, 0, 0, 0, 0, 0, 0, 0],
            vec![0, 0, 0, 0, 0, 0, 0, 1],
            vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            vec![1, 2, 3, 4, 5, 6, 7, 8, 9],
            vec![1, 2, 3, 4, 5, 6, 7, 9],
            vec![255; 8],
            vec![255; 12],
            vec![128, 0, 0, 0, 0, 0, 0, 0, 5],
            vec![127, 255, 255, 255, 255, 255, 255, 255, 5],
        ];
        for a in &keys {
            for b in &keys {
                assert_eq!(cmp_keys(a, b), a.cmp(b), "{a:?} {b:?}");
            }
        }
        // Every pair of short keys over a small alphabet, where padding
        // with zeros could confuse a prefix with a key ending in zeros.
        let mut short: Vec<Vec<u8>> = vec![vec![]];
        for len in 1..=9usize {
            for n in 0..3u32.pow(len.min(4) as u32) {
                let mut k = vec![0u8; len];
                let mut m = n;
                for slot in k.iter_mut().rev().take(4) {
                    *slot = [0, 1, 255][(m % 3) as usize];
                    m /= 3;
                }
                short.push(k);
            }
        }
        for a in &short {
            for b in &short {
                assert_eq!(cmp_keys(a, b), a.cmp(b), "{a:?} {b:?}");
            }
        }
    }

    fn leaf(entries: &[(&[u8], &[u8])]) -> Node {
        let mut n = Node::new(0);
        for (k, v) in entries {
            let i = n.len();
            n.insert_entry(i, k, v);
        }
        n
    }

    #[test]
    fn leaf_roundtrip_with_prefix() {
        let keys: Vec<Vec<u8>> = (0..50u32)
            .map(|i| {
                let mut k = b"dataset-0000-".to_vec();
                k.extend_from_slice(&i.to_be_bytes());
                k
            })
            .collect();
        let mut n = Node::new(0);
        for (i, k) in keys.iter().enumerate() {
            n.insert_entry(i, k, &vec![i as u8; i % 7]);
        }
        let page = n.encode(TreeId::PRIMARY, 9).unwrap();
        assert_eq!(n.encoded_len(), le_u16(&page, 22).unwrap() as usize);
        let v = NodeView::parse(&page, 4096, TreeId::PRIMARY, 0).unwrap();
        v.validate().unwrap();
        assert_eq!(v.prefix(), b"dataset-0000-\0\0\0");
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(v.search(k).unwrap(), Pos::Found(i));
            assert_eq!(v.val(i).unwrap(), &vec![i as u8; i % 7][..]);
        }
        assert_eq!(v.search(b"a").unwrap(), Pos::Missing(0));
        assert_eq!(v.search(b"dataset").unwrap(), Pos::Missing(0));
        assert_eq!(v.search(b"z").unwrap(), Pos::Missing(50));
        let back = v.to_node().unwrap();
        assert_eq!(back.keys, n.keys);
        assert_eq!(back.vals, n.vals);
    }

    /// Encodes, parses and reads back a leaf; returns its layout byte.
    fn roundtrip(n: &Node) -> u8 {
        let page = n.encode(TreeId::PRIMARY, 3).unwrap();
        assert_eq!(n.encoded_len(), le_u16(&page, 22).unwrap() as usize);
        let v = NodeView::parse(&page, 4096, TreeId::PRIMARY, 0).unwrap();
        v.validate().unwrap();
        for (i, (k, val)) in n.keys.iter().zip(&n.vals).enumerate() {
            assert_eq!(v.search(k).unwrap(), Pos::Found(i));
            assert_eq!(v.key(i).unwrap(), k.to_vec());
            assert_eq!(v.val(i).unwrap(), &val[..]);
        }
        let back = v.to_node().unwrap();
        assert_eq!(back.keys, n.keys);
        assert_eq!(back.vals, n.vals);
        page[24]
    }

    #[test]
    fn each_layout_roundtrips_and_is_chosen_when_smallest() {
        let key = |i: u32, len: usize| {
            let mut k = vec![7u8; len - 4];
            k.extend_from_slice(&i.to_be_bytes());
            k
        };
        // Equal keys and values: no slots.
        let fixed = leaf(
            &(0..40)
                .map(|i| (key(i, 16), vec![i as u8; 16]))
                .collect::<Vec<_>>()
                .iter()
                .map(|(k, v)| (&k[..], &v[..]))
                .collect::<Vec<_>>(),
        );
        assert_eq!(roundtrip(&fixed), 2);
        // Empty values count as equal (the free-chunks index).
        let empty = leaf(&[(b"a1".as_slice(), b"".as_slice()), (b"a2", b"")]);
        assert_eq!(roundtrip(&empty), 2);
        // Equal keys, values of different lengths: offsets only.
        let mut keys_only = fixed.clone();
        keys_only.replace_val(3, b"short");
        assert_eq!(roundtrip(&keys_only), 1);
        assert_eq!(keys_only.encoded_len(), fixed.encoded_len() + 40 * 2 - 11);
        // One longer key: full slots, two bytes more per entry.
        let mut mixed = keys_only.clone();
        mixed.insert_entry(40, &key(99, 17), b"v");
        assert_eq!(roundtrip(&mixed), 0);
        // A suffix longer than 255 bytes needs full slots.
        let long = leaf(&[(&key(1, 300)[..], b"x".as_slice())]);
        assert_eq!(roundtrip(&long), 0);
        let long2 = leaf(&[(&[1u8; 300][..], b"x".as_slice()), (&[2u8; 300][..], b"y")]);
        assert_eq!(roundtrip(&long2), 0);
        // A single entry keeps its key whole (no prefix).
        let one = leaf(&[(b"k".as_slice(), b"v".as_slice())]);
        assert_eq!(roundtrip(&one), 2);
        assert_eq!(roundtrip(&Node::new(0)), 0);
    }

    /// The lengths a node keeps up to date match its entries after every
    /// change, and so does the size it computes from them.
    #[test]
    fn kept_lengths_follow_every_change() {
        let mut rnd = below(0x2545_f491_4f6c_dd1du64);
        let mut n = Node::new(0);
        for step in 0..4000 {
            // Mostly one key length and few value lengths, so the node
            // moves between all three layouts.
            let klen = if rnd(10) == 0 { 5 } else { 4 };
            let key: Vec<u8> = (0..klen).map(|_| rnd(4) as u8).collect();
            let val = vec![7u8; [3, 3, 3, 0, 9][rnd(5) as usize]];
            match (n.search(&key), rnd(3)) {
                (Pos::Found(i), 0) => {
                    n.remove_entry(i);
                }
                (Pos::Found(i), _) => {
                    n.replace_val(i, &val);
                }
                (Pos::Missing(i), _) => {
                    if n.encoded_len() + 20 < NODE_SIZE {
                        n.insert_entry(i, &key, &val);
                    }
                }
            }
            assert_eq!(n.klens.sum, Lens::of(&n.keys).sum, "step {step}");
            assert_eq!(n.vlens.sum, Lens::of(&n.vals).sum, "step {step}");
            if !n.keys.is_empty() {
                assert_eq!(n.klens, Lens::of(&n.keys), "step {step}");
                assert_eq!(n.vlens, Lens::of(&n.vals), "step {step}");
                assert_eq!(n.encoded_len(), n.range_len(0, n.len()), "step {step}");
            }
            if step % 97 == 0 && n.fits() {
                roundtrip(&n);
            }
        }
    }

    #[test]
    fn layout_fields_that_disagree_are_errors() {
        let n = leaf(&[(b"k1".as_slice(), b"v1".as_slice()), (b"k2", b"v2")]);
        let good = n.encode(TreeId::PRIMARY, 1).unwrap();
        assert_eq!(good[24], 2);
        let parse = |f: &dyn Fn(&mut [u8; NODE_SIZE])| {
            let mut c = good;
            f(&mut c);
            NodeView::parse(&c, 0, TreeId::PRIMARY, 0).and_then(|v| v.validate())
        };
        assert!(parse(&|_| {}).is_ok());
        assert!(parse(&|c| c[24] = 3).is_err());
        assert!(parse(&|c| c[25] = 0).is_err());
        // Entries that would not end where the page says.
        assert!(parse(&|c| c[26] = 3).is_err());
        assert!(parse(&|c| c[25] = 2).is_err());
        // Layout 0 and 1 carry no value length, layout 0 no key length.
        assert!(parse(&|c| c[24] = 1).is_err());
        assert!(parse(&|c| c[24] = 0).is_err());
        // A branch has full slots.
        let mut b = Node::new(1);
        b.children.push(Ref::Clean { page: 4096, crc: 1 });
        b.insert_child(
            0,
            Bytes::from_slice(b"m"),
            Ref::Clean { page: 8192, crc: 2 },
        );
        let mut page = b.encode(TreeId::PRIMARY, 1).unwrap();
        assert!(NodeView::parse(&page, 0, TreeId::PRIMARY, 1).is_ok());
        page[24] = 1;
        page[25] = 1;
        assert!(NodeView::parse(&page, 0, TreeId::PRIMARY, 1).is_err());
    }

    #[test]
    fn common_prefix_counts_equal_leading_bytes() {
        let naive = |a: &[u8], b: &[u8]| a.iter().zip(b).take_while(|(x, y)| x == y).count();
        let base: Vec<u8> = (0..40u8).collect();
        for la in [0usize, 1, 7, 8, 9, 16, 23, 28, 40] {
            for lb in [0usize, 5, 8, 17, 28, 40] {
                for diff in 0..41usize {
                    let a = &base[..la];
                    let mut b = base[..lb].to_vec();
                    if let Some(x) = b.get_mut(diff) {
                        *x ^= 0x10;
                    }
                    assert_eq!(common_prefix(a, &b), naive(a, &b), "{la} {lb} {diff}");
                }
            }
        }
    }

    /// Interpolation with galloping finds what bisection finds, in pages
    /// and in decoded nodes, on keys spread evenly, clustered, skewed, of mixed lengths, and on probes
    /// before, between, on and after them.
    #[test]
    fn search_agrees_with_bisection_on_any_key_spread() {
        let mut rnd = below(0x2545_f491_4f6c_dd1du64);
        for case in 0..400u64 {
            let level = (case % 3 == 2) as u8;
            let count = 1 + rnd(300) as usize;
            let mut keys: Vec<Vec<u8>> = (0..count)
                .map(|_| {
                    let mut k = b"ds".to_vec();
                    let v: u64 = match case % 4 {
                        0 => rnd(u64::MAX),
                        1 => rnd(1000),
                        2 => rnd(1 << 20).pow(3),
                        _ => rnd(1 << 40) | (rnd(2) << 63),
                    };
                    k.extend_from_slice(&v.to_be_bytes()[..1 + rnd(8) as usize]);
                    if rnd(3) == 0 {
                        k.extend_from_slice(&rnd(1 << 16).to_be_bytes());
                    }
                    k
                })
                .collect();
            keys.sort();
            keys.dedup();
            let mut n = Node::new(level);
            if level > 0 {
                n.children.push(Ref::Clean { page: 4096, crc: 1 });
            }
            for (i, k) in keys.iter().enumerate() {
                if level == 0 {
                    n.insert_entry(i, k, b"v");
                } else {
                    n.insert_child(i, Bytes::from_slice(k), Ref::Clean { page: 4096, crc: 1 });
                }
            }
            if !n.fits() {
                continue;
            }
            let page = n.encode(TreeId::PRIMARY, 1).unwrap();
            let v = NodeView::parse(&page, 0, TreeId::PRIMARY, level).unwrap();
            let mut probes = keys.clone();
            for k in &keys {
                let mut p = k.clone();
                p.push(0);
                probes.push(p);
                let mut p = k.clone();
                if let Some(l) = p.last_mut() {
                    *l = l.wrapping_sub(1);
                }
                probes.push(p);
            }
            probes.extend([b"".to_vec(), b"d".to_vec(), b"ds".to_vec(), b"dt".to_vec()]);
            for _ in 0..50 {
                let mut k = b"ds".to_vec();
                k.extend_from_slice(&rnd(u64::MAX).to_be_bytes()[..1 + rnd(8) as usize]);
                probes.push(k);
            }
            for p in &probes {
                let want = match keys.binary_search(p) {
                    Ok(i) => Pos::Found(i),
                    Err(i) => Pos::Missing(i),
                };
                assert_eq!(v.search(p).unwrap(), want, "case {case}, probe {p:?}");
                assert_eq!(n.search(p), want, "decoded node: case {case}, probe {p:?}");
            }
        }
    }

    #[test]
    fn branch_roundtrip_and_child_search() {
        let mut n = Node::new(1);
        n.children.push(Ref::Clean { page: 4096, crc: 1 });
        for (i, k) in [b"b".as_slice(), b"d", b"f"].iter().enumerate() {
            n.insert_child(
                i,
                Bytes::from_slice(k),
                Ref::Clean {
                    page: 8192 * (i as u64 + 1),
                    crc: 2,
                },
            );
        }
        let page = n.encode(TreeId::PRIMARY, 1).unwrap();
        let v = NodeView::parse(&page, 0, TreeId::PRIMARY, 1).unwrap();
        v.validate().unwrap();
        assert_eq!(v.child_for(b"a").unwrap(), 0);
        assert_eq!(v.child_for(b"b").unwrap(), 1);
        assert_eq!(v.child_for(b"c").unwrap(), 1);
        assert_eq!(v.child_for(b"f").unwrap(), 3);
        assert_eq!(
            v.child(3).unwrap(),
            Ref::Clean {
                page: 24576,
                crc: 2
            }
        );
    }

    #[test]
    fn wrong_tree_level_and_bitflips_are_errors() {
        for n in [
            leaf(&[(b"k1", b"v1"), (b"k2", b"v2")]),
            leaf(&[(b"k1", b"v1"), (b"k2", b"v22")]),
            leaf(&[(b"k1", b"v1"), (b"k22", b"v2")]),
        ] {
            flips(&n);
        }
    }

    fn flips(n: &Node) {
        let page = n.encode(TreeId::PRIMARY, 1).unwrap();
        assert!(NodeView::parse(&page, 0, TreeId::LAST_USED, 0).is_err());
        assert!(NodeView::parse(&page, 0, TreeId::PRIMARY, 1).is_err());
        for i in 8..200 {
            let mut c = page;
            c[i] ^= 0x10;
            assert_ne!(page_crc(&c), le_u32(&c, 4).unwrap(), "byte {i}");
            // Parsing and validating garbage must never panic.
            if let Ok(v) = NodeView::parse(&c, 0, TreeId::PRIMARY, 0) {
                let _ = v.validate();
                let _ = v.search(b"k1");
                for j in 0..v.len() {
                    let _ = v.key(j);
                    let _ = v.val(j);
                }
            }
        }
    }

    #[test]
    fn split_points_fit() {
        // Large entries with no shared prefix.
        let mut n = Node::new(0);
        for i in 0..5u8 {
            n.insert_entry(i as usize, &[i; 1000], &[i; 900]);
        }
        assert!(!n.fits());
        for append in [false, true] {
            let cuts = n.split_points(append);
            let mut a = 0;
            for &c in cuts.iter().chain(std::iter::once(&n.len())) {
                assert!(n.range_len(a, c) <= NODE_SIZE);
                a = c;
            }
        }
        assert_eq!(&shortest_separator(b"abc", b"abzzz")[..], b"abz");
    }

    /// The bisecting greedy split cuts where a linear walk would.
    #[test]
    fn greedy_split_points_match_a_linear_walk() {
        let linear = |n: &Node| {
            let len = n.len();
            let next = |b: usize| if n.is_leaf() { b } else { b + 1 };
            let mut cuts = Vec::new();
            let mut a = 0;
            while a < len && n.range_len(a, len) > NODE_SIZE {
                let mut b = a + 1;
                while next(b + 1) < len && n.range_len(a, b + 1) <= NODE_SIZE {
                    b += 1;
                }
                cuts.push(b);
                a = next(b);
            }
            cuts
        };
        let mut rnd = below(0x9e37_79b9_7f4a_7c15u64);
        let mut many_cuts = 0;
        for case in 0..300 {
            let level = (case % 2) as u8;
            let mut n = Node::new(level);
            let count = 2 + rnd(400) as usize;
            let klen = 1 + rnd(40) as usize;
            let vlen = rnd(60) as usize;
            let mut keys: Vec<Vec<u8>> = (0..count)
                .map(|_| {
                    let l = if rnd(4) == 0 {
                        1 + rnd(60) as usize
                    } else {
                        klen
                    };
                    (0..l).map(|_| rnd(3) as u8).collect()
                })
                .collect();
            keys.sort();
            keys.dedup();
            for (i, k) in keys.iter().enumerate() {
                if level == 0 {
                    let l = if rnd(4) == 0 { rnd(200) as usize } else { vlen };
                    n.insert_entry(i, k, &vec![7u8; l]);
                } else {
                    n.keys.push(Bytes::from_slice(k));
                }
            }
            n.recount();
            let cuts = n.split_points(true);
            assert_eq!(cuts, linear(&n), "case {case}");
            many_cuts += usize::from(cuts.len() > 1);
        }
        assert!(many_cuts > 100, "{many_cuts} cases cut more than once");
        assert_eq!(&shortest_separator(b"ab", b"abc")[..], b"abc");
    }
}
