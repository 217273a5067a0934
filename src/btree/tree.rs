//! Changing a tree: insert and remove with copy-on-write of the touched path,
//! splitting overflowing nodes and merging or rebalancing underfull ones.

use std::collections::HashMap;

use crate::btree::node::{Bytes, Node, Pos, Ref, MAX_LEAF_ENTRY, MAX_TREE_KEY, NODE_SIZE};
use crate::btree::read::Reader;
use crate::btree::{PageSource, TreeId};
use crate::error::{Error, Result};
use crate::internal;
use crate::storage::commit_record::{TreeRoot, MAX_HEIGHT};

/// A node changed in the current transaction.
#[derive(Debug)]
pub(crate) struct DirtyNode {
    /// The node's content.
    pub node: Node,
    /// The page assigned to it by the commit, once assigned.
    pub page: Option<u64>,
}

/// The dirty nodes of every tree of the transaction.
#[derive(Debug, Default)]
pub(crate) struct Arena {
    slots: Vec<Option<DirtyNode>>,
    free: Vec<u32>,
    live: usize,
    /// Pages assigned to nodes that were dropped before being written.
    orphans: Vec<u64>,
    /// Decoded copies of hot nodes (see [`is_hot`]) as this writer last
    /// wrote them, by page: the next commit changes most of them again,
    /// and taking the copy saves decoding and checking the page (a quarter
    /// of a small commit's time). Kept across commits.
    recent: HashMap<u64, (u32, TreeId, Node)>,
    /// Decoded copies of the other nodes a spill wrote, kept until the
    /// commit while the dirty nodes leave room for them: a long run of
    /// random puts changes many of them again, and decoding them again
    /// was a fifth of a random-order load of small values.
    spilled: HashMap<u64, (u32, TreeId, Node)>,
    /// Decoded nodes (dirty ones and `spilled`) allowed at most since the
    /// last spill; 0 outside a run of spills.
    spill_room: usize,
}

/// Decoded nodes [`Arena::remember`] keeps at most (about 8 KiB each).
const RECENT_MAX: usize = 512;

/// Whether nodes of `tree` at `level` change at the same places in every
/// commit: branches, and every node of the LastUsed index (new ticks go to
/// its end) and of the allocator's two indexes (entries for the pages just
/// allocated). Leaves of the other indexes change where their keys fall.
pub(crate) fn is_hot(tree: TreeId, level: u8) -> bool {
    level > 0 || matches!(tree, TreeId::LAST_USED | TreeId::ALLOC | TreeId::FREE)
}

impl Arena {
    /// Keeps the decoded `node` of `tree` just written to `page` with `crc`
    /// if it is hot, and forgets any older copy for that page (a page is
    /// written again only after its node was freed).
    /// Between spills (see [`keep_spilled`](Self::keep_spilled)), other
    /// nodes are kept too, while there is room.
    pub(crate) fn remember(&mut self, page: u64, crc: u32, tree: TreeId, node: Node) {
        self.recent.remove(&page);
        self.spilled.remove(&page);
        if !is_hot(tree, node.level) {
            if self.live + self.spilled.len() < self.spill_room {
                self.spilled.insert(page, (crc, tree, node));
            }
            return;
        }
        if self.recent.len() >= RECENT_MAX {
            // Nodes not changed again since are the ones left; start over.
            self.recent.clear();
        }
        self.recent.insert(page, (crc, tree, node));
    }

    /// Takes the copy of the node at `page` if it is the one a reference
    /// with `crc` to a node of `tree` at `level` means.
    fn recall(&mut self, page: u64, crc: u32, tree: TreeId, level: u8) -> Option<Node> {
        for map in [&mut self.recent, &mut self.spilled] {
            match map.get(&page) {
                Some((c, t, n)) if *c == crc && *t == tree && n.level == level => {
                    return map.remove(&page).map(|e| e.2);
                }
                _ => {}
            }
        }
        None
    }

    /// Lets the spill about to write the dirty nodes keep decoded copies
    /// of them, as long as dirty and kept nodes number at most `room`
    /// (`0`: keep none, and forget those kept; the commit does this).
    pub(crate) fn keep_spilled(&mut self, room: usize) {
        self.spill_room = room;
        if room == 0 {
            self.spilled = HashMap::new();
        }
    }

    /// Drops kept spilled nodes until dirty and kept ones fit the room.
    fn trim_spilled(&mut self) {
        while self.live + self.spilled.len() > self.spill_room {
            // Which one goes matters little: the puts that follow a spill
            // fall anywhere.
            let Some(&page) = self.spilled.keys().next() else {
                return;
            };
            self.spilled.remove(&page);
        }
    }

    /// Adds a node and returns its index.
    pub(crate) fn add(&mut self, node: Node) -> u32 {
        self.live += 1;
        if !self.spilled.is_empty() {
            self.trim_spilled();
        }
        let d = Some(DirtyNode { node, page: None });
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = d;
                i
            }
            None => {
                self.slots.push(d);
                (self.slots.len() - 1) as u32
            }
        }
    }

    /// Node `i`. Indices come from this arena; a stale one is a bug.
    pub(crate) fn node(&self, i: u32) -> &Node {
        &self.entry(i).node
    }

    /// Node `i`, mutably.
    pub(crate) fn node_mut(&mut self, i: u32) -> &mut Node {
        &mut self.entry_mut(i).node
    }

    /// The dirty node record `i`.
    pub(crate) fn entry(&self, i: u32) -> &DirtyNode {
        match self.slots.get(i as usize) {
            Some(Some(d)) => d,
            _ => panic!("dfcache bug: stale dirty node index {i}"),
        }
    }

    /// The dirty node record `i`, mutably.
    pub(crate) fn entry_mut(&mut self, i: u32) -> &mut DirtyNode {
        match self.slots.get_mut(i as usize) {
            Some(Some(d)) => d,
            _ => panic!("dfcache bug: stale dirty node index {i}"),
        }
    }

    /// Removes node `i` (dropped from its tree) and returns it. A page
    /// already assigned to it becomes an orphan for the storage to free.
    pub(crate) fn take(&mut self, i: u32) -> DirtyNode {
        let d = self.finish(i);
        if let Some(p) = d.page {
            self.orphans.push(p);
        }
        d
    }

    /// Removes node `i` because it has been written.
    pub(crate) fn finish(&mut self, i: u32) -> DirtyNode {
        let d = self.slots.get_mut(i as usize).and_then(|s| s.take());
        match d {
            Some(d) => {
                self.live -= 1;
                self.free.push(i);
                d
            }
            None => panic!("dfcache bug: stale dirty node index {i}"),
        }
    }

    /// Records a page allocated for a node that no longer exists.
    pub(crate) fn orphan(&mut self, p: u64) {
        self.orphans.push(p);
    }

    /// Pages of dropped nodes, to free.
    pub(crate) fn take_orphans(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.orphans)
    }

    /// Whether slot `i` holds a node that still needs a page.
    pub(crate) fn needs_page(&self, i: u32) -> bool {
        matches!(self.slots.get(i as usize), Some(Some(d)) if d.page.is_none())
    }

    /// Assigns page `p` to node `i`.
    pub(crate) fn set_page(&mut self, i: u32, p: u64) {
        self.entry_mut(i).page = Some(p);
    }

    /// Number of dirty nodes.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Calls `f` on every dirty node under `r` (children first).
    pub(crate) fn each_dirty_under(&self, r: Option<Ref>, f: &mut impl FnMut(u32, &Node)) {
        let Some(Ref::Dirty(i)) = r else {
            return;
        };
        let n = self.node(i);
        for &c in &n.children {
            self.each_dirty_under(Some(c), f);
        }
        f(i, n);
    }

    /// Indices of dirty nodes without an assigned page.
    pub(crate) fn unassigned(&self) -> Vec<u32> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Some(d) if d.page.is_none() => Some(i as u32),
                _ => None,
            })
            .collect()
    }

    /// Drops every dirty node.
    pub(crate) fn clear(&mut self) {
        self.slots.clear();
        self.free.clear();
        self.live = 0;
    }
}

/// What a tree change needs from below: the dirty nodes, committed pages, and
/// where to report pages that copy-on-write made obsolete.
pub(crate) struct Cx<'a> {
    /// Dirty nodes of all trees.
    pub arena: &'a mut Arena,
    /// Committed pages.
    pub src: &'a dyn PageSource,
    /// Pages of committed nodes replaced by dirty copies; the block storage
    /// frees them.
    pub freed: &'a mut Vec<u64>,
}

/// Splits a child produced: (separator, new right sibling).
type Splits = Vec<(Bytes, u32)>;

/// One B-tree: its id and root.
#[derive(Clone, Debug)]
pub(crate) struct Tree {
    /// Which tree.
    pub id: TreeId,
    /// Root, `None` when empty.
    pub root: Option<Ref>,
    /// Levels (0 when empty, 1 when the root is a leaf).
    pub height: u8,
}

impl Tree {
    /// The tree a commit record names.
    pub(crate) fn from_root(id: TreeId, r: TreeRoot) -> Tree {
        Tree {
            id,
            root: (r.page != 0).then_some(Ref::Clean {
                page: r.page,
                crc: r.crc,
            }),
            height: r.height,
        }
    }

    /// The committed root, once every node is written.
    pub(crate) fn committed_root(&self) -> Result<TreeRoot> {
        match self.root {
            None => Ok(TreeRoot::default()),
            Some(Ref::Clean { page, crc }) => Ok(TreeRoot {
                page,
                crc,
                height: self.height,
            }),
            Some(Ref::Dirty(_)) => Err(internal!("tree {} has an unwritten root", self.id.0)),
        }
    }

    /// A reader over this tree's working state.
    pub(crate) fn reader<'a>(&self, arena: &'a Arena, src: &'a dyn PageSource) -> Reader<'a> {
        Reader {
            arena: Some(arena),
            src,
            tree: self.id,
            root: self.root,
            height: self.height,
        }
    }

    fn dirty(&self, cx: &mut Cx<'_>, r: Ref, level: u8) -> Result<u32> {
        match r {
            Ref::Dirty(i) => Ok(i),
            Ref::Clean { page, crc } => {
                let node = match cx.arena.recall(page, crc, self.id, level) {
                    Some(n) => n,
                    None => cx.src.node(page, crc, self.id, level)?.to_node()?,
                };
                cx.freed.push(page);
                Ok(cx.arena.add(node))
            }
        }
    }

    fn check_entry(key: &[u8], val: &[u8]) -> Result<()> {
        if key.is_empty() || key.len() > MAX_TREE_KEY {
            return Err(Error::InvalidKey {
                len: key.len(),
                max: MAX_TREE_KEY,
            });
        }
        // Key and value at most 2016 bytes (the limit of format version 1,
        // whose slots were 8 bytes): two entries always fit in a page.
        if 8 + key.len() + val.len() > MAX_LEAF_ENTRY {
            return Err(internal!(
                "tree entry of {} + {} bytes is too large",
                key.len(),
                val.len()
            ));
        }
        Ok(())
    }

    /// Inserts or replaces; returns the old value.
    pub(crate) fn insert(
        &mut self,
        cx: &mut Cx<'_>,
        key: &[u8],
        val: &[u8],
    ) -> Result<Option<Vec<u8>>> {
        Self::check_entry(key, val)?;
        let Some(root) = self.root else {
            let mut leaf = Node::new(0);
            leaf.insert_entry(0, key, val);
            self.root = Some(Ref::Dirty(cx.arena.add(leaf)));
            self.height = 1;
            return Ok(None);
        };
        let r = self.dirty(cx, root, self.height - 1)?;
        self.root = Some(Ref::Dirty(r));
        let (old, splits) = self.insert_rec(cx, r, key, val)?;
        self.grow(cx, r, splits)?;
        Ok(old)
    }

    /// Replaces the value of `key` with `f(old)` in one descent and returns
    /// the old value. The caller knows `key` is present: a miss returns
    /// `None` and changes nothing, but has copied the path for nothing.
    pub(crate) fn update_existing(
        &mut self,
        cx: &mut Cx<'_>,
        key: &[u8],
        f: impl FnOnce(&[u8]) -> Result<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>> {
        let Some(root) = self.root else {
            return Ok(None);
        };
        let mut r = self.dirty(cx, root, self.height - 1)?;
        self.root = Some(Ref::Dirty(r));
        // Descend copying the path; the leaf keeps its size class, so
        // splits are handled by the generic insert when the value grows.
        loop {
            let level = cx.arena.node(r).level;
            if level == 0 {
                break;
            }
            let (ci, child) = {
                let n = cx.arena.node(r);
                let ci = n.child_for(key);
                (ci, n.children[ci])
            };
            let c = self.dirty(cx, child, level - 1)?;
            cx.arena.node_mut(r).children[ci] = Ref::Dirty(c);
            r = c;
        }
        let node = cx.arena.node_mut(r);
        let Pos::Found(i) = node.search(key) else {
            return Ok(None);
        };
        let new = f(&node.vals[i])?;
        Self::check_entry(key, &new)?;
        let old = node.replace_val(i, &new);
        if !node.fits() {
            // Grown past the page: redo as a regular insert (rare).
            let v = node.vals[i].clone();
            node.replace_val(i, &old);
            self.insert(cx, key, &v)?;
        }
        Ok(Some(old))
    }

    /// Puts a new root above `left` when it split.
    fn grow(&mut self, cx: &mut Cx<'_>, left: u32, splits: Splits) -> Result<()> {
        if splits.is_empty() {
            return Ok(());
        }
        if self.height >= MAX_HEIGHT {
            return Err(internal!(
                "tree {} would exceed {MAX_HEIGHT} levels",
                self.id.0
            ));
        }
        let mut root = Node::new(self.height);
        root.children.push(Ref::Dirty(left));
        for (j, (sep, right)) in splits.into_iter().enumerate() {
            root.insert_child(j, sep, Ref::Dirty(right));
        }
        let r = cx.arena.add(root);
        self.root = Some(Ref::Dirty(r));
        self.height += 1;
        let more = self.split_if_needed(cx, r, false);
        self.grow(cx, r, more)
    }

    fn insert_rec(
        &self,
        cx: &mut Cx<'_>,
        idx: u32,
        key: &[u8],
        val: &[u8],
    ) -> Result<(Option<Vec<u8>>, Splits)> {
        let level = cx.arena.node(idx).level;
        let old;
        let append;
        if level == 0 {
            let node = cx.arena.node_mut(idx);
            match node.search(key) {
                Pos::Found(i) => {
                    old = Some(node.replace_val(i, val));
                    append = false;
                }
                Pos::Missing(i) => {
                    append = i == node.len() && i > 0;
                    node.insert_entry(i, key, val);
                    old = None;
                }
            }
        } else {
            let (ci, child) = {
                let n = cx.arena.node(idx);
                let ci = n.child_for(key);
                (ci, n.children[ci])
            };
            let c = self.dirty(cx, child, level - 1)?;
            cx.arena.node_mut(idx).children[ci] = Ref::Dirty(c);
            let (o, splits) = self.insert_rec(cx, c, key, val)?;
            old = o;
            let node = cx.arena.node_mut(idx);
            append = ci == node.len() && !splits.is_empty();
            for (j, (sep, right)) in splits.into_iter().enumerate() {
                node.insert_child(ci + j, sep, Ref::Dirty(right));
            }
        }
        Ok((old, self.split_if_needed(cx, idx, append)))
    }

    fn split_if_needed(&self, cx: &mut Cx<'_>, idx: u32, append: bool) -> Splits {
        let node = cx.arena.node_mut(idx);
        if node.fits() {
            return Vec::new();
        }
        let cuts = node.split_points(append);
        let mut pieces = Vec::with_capacity(cuts.len());
        for &c in cuts.iter().rev() {
            pieces.push(node.split_off(c));
        }
        pieces.reverse();
        pieces
            .into_iter()
            .map(|(sep, right)| (sep, cx.arena.add(right)))
            .collect()
    }

    /// Removes `key`; returns its value.
    pub(crate) fn remove(&mut self, cx: &mut Cx<'_>, key: &[u8]) -> Result<Option<Vec<u8>>> {
        // A miss must not copy the path.
        if self.reader(cx.arena, cx.src).get(key)?.is_none() {
            return Ok(None);
        }
        self.remove_existing(cx, key)
    }

    /// Removes `key`, which the caller knows is present (a miss still works
    /// but copies the path for nothing).
    pub(crate) fn remove_existing(
        &mut self,
        cx: &mut Cx<'_>,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>> {
        let Some(root) = self.root else {
            return Ok(None);
        };
        let r = self.dirty(cx, root, self.height - 1)?;
        self.root = Some(Ref::Dirty(r));
        let (old, splits) = self.remove_rec(cx, r, key)?;
        self.grow(cx, r, splits)?;
        self.shrink(cx);
        Ok(old)
    }

    /// Collapses a root branch with a single child. A root leaf that
    /// becomes empty stays: dropping it and creating a new one on the next
    /// insert would make the commit's page assignment oscillate for the
    /// allocator's own trees (an empty tree reached by removals costs one
    /// page).
    fn shrink(&mut self, cx: &mut Cx<'_>) {
        while let Some(Ref::Dirty(r)) = self.root {
            let n = cx.arena.node(r);
            if n.level > 0 && n.len() == 0 {
                let child = n.children[0];
                cx.arena.take(r);
                self.root = Some(child);
                self.height -= 1;
            } else {
                break;
            }
        }
    }

    fn remove_rec(
        &self,
        cx: &mut Cx<'_>,
        idx: u32,
        key: &[u8],
    ) -> Result<(Option<Vec<u8>>, Splits)> {
        let level = cx.arena.node(idx).level;
        if level == 0 {
            let node = cx.arena.node_mut(idx);
            return Ok(match node.search(key) {
                Pos::Found(i) => (Some(node.remove_entry(i).1), Vec::new()),
                Pos::Missing(_) => (None, Vec::new()),
            });
        }
        let (ci, child) = {
            let n = cx.arena.node(idx);
            let ci = n.child_for(key);
            (ci, n.children[ci])
        };
        let c = self.dirty(cx, child, level - 1)?;
        cx.arena.node_mut(idx).children[ci] = Ref::Dirty(c);
        let (old, splits) = self.remove_rec(cx, c, key)?;
        {
            let node = cx.arena.node_mut(idx);
            for (j, (sep, right)) in splits.into_iter().enumerate() {
                node.insert_child(ci + j, sep, Ref::Dirty(right));
            }
        }
        if underfull(cx.arena.node(c)) {
            self.rebalance(cx, idx, ci, level - 1)?;
        }
        Ok((old, self.split_if_needed(cx, idx, false)))
    }

    /// Merges child `ci` of `parent` with a sibling, or evens them out.
    fn rebalance(&self, cx: &mut Cx<'_>, parent: u32, ci: usize, child_level: u8) -> Result<()> {
        let n = cx.arena.node(parent).len();
        if n == 0 {
            return Ok(()); // only child; the root collapse handles it
        }
        let (li, ri) = if ci > 0 { (ci - 1, ci) } else { (ci, ci + 1) };
        let (lref, rref) = {
            let p = cx.arena.node(parent);
            (p.children[li], p.children[ri])
        };
        let l = self.dirty(cx, lref, child_level)?;
        let r = self.dirty(cx, rref, child_level)?;
        let sep = cx.arena.node(parent).keys[li].clone();
        let right = cx.arena.take(r).node;
        let left = cx.arena.node_mut(l);
        left.merge(sep, right);
        if left.fits() {
            let p = cx.arena.node_mut(parent);
            p.children[li] = Ref::Dirty(l);
            p.remove_child(li);
            return Ok(());
        }
        // Too big for one node: cut it again where the bytes balance.
        let cuts = left.split_points(false);
        let mut pieces = Vec::with_capacity(cuts.len());
        for &c in cuts.iter().rev() {
            pieces.push(left.split_off(c));
        }
        pieces.reverse();
        let p_pieces: Vec<(Bytes, u32)> = pieces
            .into_iter()
            .map(|(s, node)| (s, cx.arena.add(node)))
            .collect();
        let p = cx.arena.node_mut(parent);
        p.children[li] = Ref::Dirty(l);
        p.remove_child(li);
        for (j, (s, idx)) in p_pieces.into_iter().enumerate() {
            p.insert_child(li + j, s, Ref::Dirty(idx));
        }
        Ok(())
    }

    /// Copies every committed node whose page lies at or past `limit`, and
    /// the path to it, so that the next commit writes it to a new page
    /// (lowering the maximum file size). Visits every node.
    pub(crate) fn relocate_from(&mut self, cx: &mut Cx<'_>, limit: u64) -> Result<()> {
        let Some(root) = self.root else {
            return Ok(());
        };
        if let Some(r) = self.relocate_rec(cx, root, self.height - 1, limit)? {
            self.root = Some(r);
        }
        Ok(())
    }

    fn relocate_rec(&self, cx: &mut Cx<'_>, r: Ref, level: u8, limit: u64) -> Result<Option<Ref>> {
        let mut idx = match r {
            Ref::Dirty(i) => Some(i),
            Ref::Clean { page, .. } if page >= limit => Some(self.dirty(cx, r, level)?),
            Ref::Clean { .. } => None,
        };
        if level > 0 {
            let children: Vec<Ref> = match (idx, r) {
                (Some(i), _) => cx.arena.node(i).children.clone(),
                (None, Ref::Clean { page, crc }) => {
                    let v = cx.src.node(page, crc, self.id, level)?;
                    (0..=v.len()).map(|i| v.child(i)).collect::<Result<_>>()?
                }
                (None, Ref::Dirty(_)) => Vec::new(),
            };
            for (ci, c) in children.into_iter().enumerate() {
                if let Some(nc) = self.relocate_rec(cx, c, level - 1, limit)? {
                    let i = match idx {
                        Some(i) => i,
                        None => {
                            let i = self.dirty(cx, r, level)?;
                            idx = Some(i);
                            i
                        }
                    };
                    cx.arena.node_mut(i).children[ci] = nc;
                }
            }
        }
        Ok(match (r, idx) {
            (Ref::Clean { .. }, Some(i)) => Some(Ref::Dirty(i)),
            _ => None,
        })
    }

    /// Forgets every node (dirty ones are dropped, committed pages reported
    /// through `on_page`). Used by `clear`, which frees the space wholesale.
    pub(crate) fn drop_all(&mut self, cx: &mut Cx<'_>) {
        fn walk(cx: &mut Cx<'_>, r: Ref) {
            if let Ref::Dirty(i) = r {
                let d = cx.arena.take(i);
                for c in d.node.children {
                    walk(cx, c);
                }
            }
        }
        if let Some(r) = self.root {
            walk(cx, r);
        }
        self.root = None;
        self.height = 0;
    }
}

fn underfull(n: &Node) -> bool {
    n.len() == 0 || n.encoded_len() < NODE_SIZE / 4
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btree::node::NodeView;
    use std::collections::{BTreeMap, HashMap};
    use std::ops::Bound;

    /// Pages kept in memory, for testing the tree alone.
    #[derive(Default)]
    struct MemPages {
        pages: HashMap<u64, Box<[u8; NODE_SIZE]>>,
        /// Nodes read (decoded) from the pages.
        reads: std::cell::Cell<usize>,
    }

    impl PageSource for MemPages {
        fn node(&self, page: u64, crc: u32, tree: TreeId, level: u8) -> Result<NodeView<'_>> {
            self.reads.set(self.reads.get() + 1);
            let b = self
                .pages
                .get(&page)
                .ok_or_else(|| internal!("no page {page}"))?;
            let v = NodeView::parse(&b[..], page, tree, level)?;
            assert_eq!(crate::btree::node::page_crc(&b[..]), crc);
            v.validate()?;
            Ok(v)
        }
    }

    /// Writes every dirty node of `t` to `pages`, like a commit does.
    fn commit(t: &mut Tree, arena: &mut Arena, pages: &mut MemPages, next: &mut u64) {
        spill(t, arena, pages, next, 0);
    }

    /// Writes every dirty node of `t` to `pages` like a spill does: the
    /// arena keeps decoded copies of them while `room` allows (`0`: only
    /// the hot ones, as after a commit).
    fn spill(t: &mut Tree, arena: &mut Arena, pages: &mut MemPages, next: &mut u64, room: usize) {
        fn write(
            r: Ref,
            t: TreeId,
            arena: &mut Arena,
            pages: &mut MemPages,
            next: &mut u64,
        ) -> Ref {
            let Ref::Dirty(i) = r else {
                return r;
            };
            let children: Vec<Ref> = arena.node(i).children.clone();
            let written: Vec<Ref> = children
                .into_iter()
                .map(|c| write(c, t, arena, pages, next))
                .collect();
            let mut node = arena.finish(i).node;
            node.children = written;
            let page = node.encode(t, 1).unwrap();
            let crc = crate::btree::node::page_crc(&page);
            let at = *next;
            *next += NODE_SIZE as u64;
            pages.pages.insert(at, Box::new(page));
            arena.remember(at, crc, t, node);
            Ref::Clean { page: at, crc }
        }
        arena.keep_spilled(room);
        if let Some(r) = t.root {
            t.root = Some(write(r, t.id, arena, pages, next));
        }
    }

    /// An empty primary index.
    fn empty_primary() -> Tree {
        Tree {
            id: TreeId::PRIMARY,
            root: None,
            height: 0,
        }
    }

    /// Random puts (most replacing), and removes if `removes` (a remove
    /// reads the path before changing it), of keys from `pick` (a key and
    /// a random number), against `model`.
    fn churn(
        t: &mut Tree,
        arena: &mut Arena,
        pages: &MemPages,
        model: &mut BTreeMap<Vec<u8>, Vec<u8>>,
        pick: &mut impl FnMut() -> (Vec<u8>, u64),
        n: usize,
        removes: bool,
    ) {
        for _ in 0..n {
            let (key, r) = pick();
            let mut freed = Vec::new();
            let mut cx = Cx {
                arena: &mut *arena,
                src: pages,
                freed: &mut freed,
            };
            if removes && (r >> 32).is_multiple_of(5) {
                assert_eq!(t.remove(&mut cx, &key).unwrap(), model.remove(&key));
            } else {
                let val = vec![(r >> 8) as u8; (r >> 16) as usize % 120];
                assert_eq!(
                    t.insert(&mut cx, &key, &val).unwrap(),
                    model.insert(key, val)
                );
            }
        }
    }

    #[test]
    fn nodes_kept_from_a_spill_stand_in_for_their_pages() {
        let mut x = 0x9e37_79b9_u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let keys: Vec<Vec<u8>> = (0..4000).map(|_| rnd().to_be_bytes().to_vec()).collect();
        let mut pick = move || {
            let r = rnd();
            (keys[(r % keys.len() as u64) as usize].clone(), r)
        };
        let mut t = empty_primary();
        let mut arena = Arena::default();
        let mut pages = MemPages::default();
        let mut next = 4096u64;
        let mut model = BTreeMap::new();
        churn(
            &mut t, &mut arena, &pages, &mut model, &mut pick, 6000, true,
        );
        let nodes = arena.len();
        assert!(nodes > 50, "{nodes} nodes");
        // Room for all (and for the nodes splits add): every node the puts
        // after the spill change is taken back from memory, none decoded
        // from its page.
        spill(&mut t, &mut arena, &mut pages, &mut next, 2 * nodes);
        assert_eq!(arena.len(), 0);
        assert_eq!(arena.spilled.len() + arena.recent.len(), nodes);
        pages.reads.set(0);
        churn(
            &mut t, &mut arena, &pages, &mut model, &mut pick, 3000, false,
        );
        assert_eq!(pages.reads.get(), 0);
        check(&t, &arena, &pages, &model);
        // Little room: the copies give way to the nodes decoded after them
        // (dirty and kept ones stay within it), and what the tree holds
        // stays right.
        for _ in 0..4 {
            spill(&mut t, &mut arena, &mut pages, &mut next, 16);
            assert!(arena.spilled.len() <= 16);
            pages.reads.set(0);
            churn(
                &mut t, &mut arena, &pages, &mut model, &mut pick, 500, false,
            );
            assert!(pages.reads.get() > 0);
            assert!(arena.len() + arena.spilled.len() <= arena.len().max(16));
            churn(&mut t, &mut arena, &pages, &mut model, &mut pick, 200, true);
            check(&t, &arena, &pages, &model);
        }
        // A commit forgets the copies (hot nodes stay in `recent`).
        arena.keep_spilled(0);
        assert!(arena.spilled.is_empty());
        spill(&mut t, &mut arena, &mut pages, &mut next, 0);
        assert!(arena.spilled.is_empty());
        check(&t, &arena, &pages, &model);
    }

    fn check(t: &Tree, arena: &Arena, pages: &MemPages, model: &BTreeMap<Vec<u8>, Vec<u8>>) {
        let rd = t.reader(arena, pages);
        let mut got = Vec::new();
        rd.scan(Bound::Unbounded, |k, v| {
            got.push((k.to_vec(), v.to_vec()));
            Ok(true)
        })
        .unwrap();
        let want: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert_eq!(got, want);
        for (k, v) in model {
            assert_eq!(rd.get(k).unwrap(), Some(v.as_slice()));
        }
    }

    #[test]
    fn random_inserts_removes_against_a_model() {
        let mut rng = 0x1234_5678_u64;
        let mut next_rand = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut t = empty_primary();
        let mut arena = Arena::default();
        let mut pages = MemPages::default();
        let mut next_page = 4096u64;
        let mut model = BTreeMap::new();
        for round in 0..6 {
            for _ in 0..3000 {
                let r = next_rand();
                let klen = 1 + (r % 40) as usize + if r % 97 == 0 { 900 } else { 0 };
                let key: Vec<u8> = (0..klen)
                    .map(|j| ((r >> (j % 50)) % 7) as u8 + b'a')
                    .collect();
                let vlen = (r >> 20) as usize % if r % 13 == 0 { 900 } else { 60 };
                let val = vec![(r >> 8) as u8; vlen];
                let mut freed = Vec::new();
                let mut cx = Cx {
                    arena: &mut arena,
                    src: &pages,
                    freed: &mut freed,
                };
                if (r >> 40) % 3 == 0 {
                    assert_eq!(t.remove(&mut cx, &key).unwrap(), model.remove(&key));
                } else {
                    assert_eq!(
                        t.insert(&mut cx, &key, &val).unwrap(),
                        model.insert(key, val)
                    );
                }
            }
            check(&t, &arena, &pages, &model);
            if round % 2 == 1 {
                commit(&mut t, &mut arena, &mut pages, &mut next_page);
                assert_eq!(arena.len(), 0);
                check(&t, &arena, &pages, &model);
            }
        }
        // Remove everything: the tree must collapse to empty.
        let keys: Vec<_> = model.keys().cloned().collect();
        for k in keys {
            let mut freed = Vec::new();
            let mut cx = Cx {
                arena: &mut arena,
                src: &pages,
                freed: &mut freed,
            };
            assert!(t.remove(&mut cx, &k).unwrap().is_some());
        }
        assert_eq!(t.height, 1, "an emptied tree keeps an empty root leaf");
        assert_eq!(arena.len(), 1);
        assert!(t.reader(&arena, &pages).first().unwrap().is_none());
    }

    #[test]
    fn sequential_appends_fill_leaves() {
        let mut t = Tree {
            id: TreeId::LAST_USED,
            root: None,
            height: 0,
        };
        let mut arena = Arena::default();
        let pages = MemPages::default();
        let mut freed = Vec::new();
        let mut cx = Cx {
            arena: &mut arena,
            src: &pages,
            freed: &mut freed,
        };
        for i in 0..20_000u64 {
            t.insert(&mut cx, &i.to_be_bytes(), &[7u8; 28]).unwrap();
        }
        // 20k entries of ~8+28+8 bytes: full leaves hold ~92 each.
        let leaves = cx.arena.len();
        assert!(leaves < 240, "{leaves} nodes for 20k appends");
        let rd = t.reader(cx.arena, cx.src);
        assert_eq!(
            rd.floor(Some(&5u64.to_be_bytes()), false)
                .unwrap()
                .unwrap()
                .0,
            4u64.to_be_bytes()
        );
        assert_eq!(
            rd.floor(None, false).unwrap().unwrap().0,
            19_999u64.to_be_bytes()
        );
        assert_eq!(rd.ceiling(&[0xff; 9], false).unwrap(), None);
        assert_eq!(rd.first().unwrap().unwrap().0, 0u64.to_be_bytes());
    }
}
