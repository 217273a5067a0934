//! Reading a tree: point lookups, ordered scans and neighbour queries.
//!
//! [`Reader`] works on committed pages alone (readers of a snapshot) or on
//! committed pages plus the writer's dirty nodes (the writer's own reads).

use std::ops::Bound;

use crate::btree::node::{Node, NodeView, Pos, Ref};
use crate::btree::tree::Arena;
use crate::btree::{PageSource, TreeId};
use crate::error::Result;
use crate::internal;

/// A node seen by a reader: dirty (in the arena) or committed (a page).
#[derive(Clone, Copy)]
pub(crate) enum View<'a> {
    /// A node changed in the current transaction.
    Dirty(&'a Node),
    /// A committed page.
    Page(NodeView<'a>),
}

impl<'a> View<'a> {
    pub(crate) fn len(&self) -> usize {
        match self {
            View::Dirty(n) => n.len(),
            View::Page(v) => v.len(),
        }
    }

    pub(crate) fn level(&self) -> u8 {
        match self {
            View::Dirty(n) => n.level,
            View::Page(v) => v.level(),
        }
    }

    pub(crate) fn search(&self, key: &[u8]) -> Result<Pos> {
        match self {
            View::Dirty(n) => Ok(n.search(key)),
            View::Page(v) => v.search(key),
        }
    }

    pub(crate) fn child_for(&self, key: &[u8]) -> Result<usize> {
        match self {
            View::Dirty(n) => Ok(n.child_for(key)),
            View::Page(v) => v.child_for(key),
        }
    }

    pub(crate) fn child(&self, i: usize) -> Result<Ref> {
        match self {
            View::Dirty(n) => n
                .children
                .get(i)
                .copied()
                .ok_or_else(|| internal!("child {i} missing in a dirty node")),
            View::Page(v) => v.child(i),
        }
    }

    /// Key `i` appended to `out` (cleared first).
    pub(crate) fn key_into(&self, i: usize, out: &mut Vec<u8>) -> Result<()> {
        out.clear();
        match self {
            View::Dirty(n) => out.extend_from_slice(
                n.keys
                    .get(i)
                    .ok_or_else(|| internal!("key {i} missing in a dirty node"))?,
            ),
            View::Page(v) => {
                out.extend_from_slice(v.prefix());
                out.extend_from_slice(v.suffix(i)?);
            }
        }
        Ok(())
    }

    pub(crate) fn val(&self, i: usize) -> Result<&'a [u8]> {
        match self {
            View::Dirty(n) => n
                .vals
                .get(i)
                .map(|v| v.as_slice())
                .ok_or_else(|| internal!("value {i} missing in a dirty node")),
            View::Page(v) => v.val(i),
        }
    }
}

/// Reads one tree.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'a> {
    /// Dirty nodes, when reading the writer's working state.
    pub arena: Option<&'a Arena>,
    /// Committed pages.
    pub src: &'a dyn PageSource,
    /// Which tree.
    pub tree: TreeId,
    /// Root, `None` when empty.
    pub root: Option<Ref>,
    /// Levels (1 = the root is a leaf).
    pub height: u8,
}

impl<'a> Reader<'a> {
    /// Loads the node `r` expected at `level`.
    pub(crate) fn load(&self, r: Ref, level: u8) -> Result<View<'a>> {
        match r {
            Ref::Clean { page, crc } => Ok(View::Page(self.src.node(page, crc, self.tree, level)?)),
            Ref::Dirty(i) => match self.arena {
                Some(a) => {
                    let n = a.node(i);
                    if n.level != level {
                        return Err(internal!("dirty node {i} at the wrong level"));
                    }
                    Ok(View::Dirty(n))
                }
                None => Err(internal!("dirty node in a committed tree")),
            },
        }
    }

    /// The value stored under `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<&'a [u8]>> {
        let Some(mut r) = self.root else {
            return Ok(None);
        };
        let mut level = self.height.saturating_sub(1);
        loop {
            let v = self.load(r, level)?;
            if level == 0 {
                return match v.search(key)? {
                    Pos::Found(i) => Ok(Some(v.val(i)?)),
                    Pos::Missing(_) => Ok(None),
                };
            }
            r = v.child(v.child_for(key)?)?;
            level -= 1;
        }
    }

    /// Calls `f(key, value)` for entries in key order from `start`, until it
    /// returns `false`.
    pub(crate) fn scan(
        &self,
        start: Bound<&[u8]>,
        mut f: impl FnMut(&[u8], &'a [u8]) -> Result<bool>,
    ) -> Result<()> {
        let Some(root) = self.root else {
            return Ok(());
        };
        // Stack of (node, next child index) for branches; leaf handled inline.
        let mut stack: Vec<(View<'a>, usize)> = Vec::with_capacity(self.height as usize);
        let mut level = self.height.saturating_sub(1);
        let mut node = self.load(root, level)?;
        // Descend to the first leaf that can hold `start`.
        while level > 0 {
            let ci = match start {
                Bound::Unbounded => 0,
                Bound::Included(k) | Bound::Excluded(k) => node.child_for(k)?,
            };
            stack.push((node, ci + 1));
            node = self.load(node.child(ci)?, level - 1)?;
            level -= 1;
        }
        let mut i = match start {
            Bound::Unbounded => 0,
            Bound::Included(k) => match node.search(k)? {
                Pos::Found(i) | Pos::Missing(i) => i,
            },
            Bound::Excluded(k) => match node.search(k)? {
                Pos::Found(i) => i + 1,
                Pos::Missing(i) => i,
            },
        };
        let mut key = Vec::new();
        loop {
            while i < node.len() {
                node.key_into(i, &mut key)?;
                if !f(&key, node.val(i)?)? {
                    return Ok(());
                }
                i += 1;
            }
            // Next leaf: climb to the first ancestor with a child left.
            loop {
                let Some((parent, ci)) = stack.pop() else {
                    return Ok(());
                };
                if ci <= parent.len() {
                    let plevel = parent.level();
                    stack.push((parent, ci + 1));
                    let mut n = self.load(parent.child(ci)?, plevel - 1)?;
                    let mut l = plevel - 1;
                    while l > 0 {
                        stack.push((n, 1));
                        n = self.load(n.child(0)?, l - 1)?;
                        l -= 1;
                    }
                    node = n;
                    i = 0;
                    break;
                }
            }
        }
    }

    /// The first entry with key ≥ `key` (or > when `exclusive`).
    pub(crate) fn ceiling(
        &self,
        key: &[u8],
        exclusive: bool,
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let mut out = None;
        let b = if exclusive {
            Bound::Excluded(key)
        } else {
            Bound::Included(key)
        };
        self.scan(b, |k, v| {
            out = Some((k.to_vec(), v.to_vec()));
            Ok(false)
        })?;
        Ok(out)
    }

    /// The first entry.
    #[cfg(test)]
    pub(crate) fn first(&self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let mut out = None;
        self.scan(Bound::Unbounded, |k, v| {
            out = Some((k.to_vec(), v.to_vec()));
            Ok(false)
        })?;
        Ok(out)
    }

    /// The last entry with key < `key` (or ≤ when `inclusive`); `None` for
    /// `key` means the last entry of the tree.
    pub(crate) fn floor(
        &self,
        key: Option<&[u8]>,
        inclusive: bool,
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let Some(mut r) = self.root else {
            return Ok(None);
        };
        let mut level = self.height.saturating_sub(1);
        // Remember, at each level, the node and the child we went into, to
        // step left when the leaf has nothing before `key`.
        let mut path: Vec<(View<'a>, usize)> = Vec::new();
        loop {
            let v = self.load(r, level)?;
            if level == 0 {
                let i = match key {
                    None => v.len(),
                    Some(k) => match v.search(k)? {
                        Pos::Found(i) if inclusive => i + 1,
                        Pos::Found(i) | Pos::Missing(i) => i,
                    },
                };
                if i > 0 {
                    let mut k = Vec::new();
                    v.key_into(i - 1, &mut k)?;
                    return Ok(Some((k, v.val(i - 1)?.to_vec())));
                }
                // Step to the rightmost entry of the previous leaf.
                while let Some((p, ci)) = path.pop() {
                    if ci > 0 {
                        let mut n = self.load(p.child(ci - 1)?, p.level() - 1)?;
                        while n.level() > 0 {
                            n = self.load(n.child(n.len())?, n.level() - 1)?;
                        }
                        if n.len() == 0 {
                            return Ok(None);
                        }
                        let mut k = Vec::new();
                        n.key_into(n.len() - 1, &mut k)?;
                        return Ok(Some((k, n.val(n.len() - 1)?.to_vec())));
                    }
                }
                return Ok(None);
            }
            let ci = match key {
                None => v.len(),
                Some(k) => v.child_for(k)?,
            };
            path.push((v, ci));
            r = v.child(ci)?;
            level -= 1;
        }
    }
}
