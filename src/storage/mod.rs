//! The embedded block storage ("BST"): extents of any size in one file,
//! B-tree roots, and the crash-safe commit.
//!
//! - [`backend`]: the I/O seam (real file, or a test double);
//! - `mapping`: the read-only memory map (the only `unsafe` code);
//! - `epoch`: reader pins that say when freed space may be reused;
//! - `allocator`: allocations and free chunks, both B-trees;
//! - `commit_record`: the two alternating commit slots;
//! - `open`: creating, opening and validating files;
//! - this module: [`Snapshot`] (a committed state, read in place) and
//!   `WriteTxn` (the writer's working state) with the commit protocol.
//!
//! The layers above see trees by id and extents by offset; they decide what
//! the trees and extents mean.

pub(crate) mod allocator;
pub mod backend;
pub(crate) mod commit_record;
pub(crate) mod epoch;
pub(crate) mod mapping;
pub(crate) mod open;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use crate::btree::node::{page_crc, NodeView, NODE_SIZE};
use crate::btree::{is_hot, Arena, Cx, PageSource, Reader, Tree, TreeId};
use crate::error::{Error, Result};
use crate::header::{le_u32, Headers, DATA_START, PAGE, SLOT_OFFSETS};
use crate::internal;
use allocator::{Allocator, ExtentKind, Reuse, ALIGN};
use backend::StorageBackend;
use commit_record::{CheckRange, CommitRecord, TreeRoot, MAX_CHECKS, MAX_TREES};
use mapping::Mapping;

/// What the storage needs from the reader table: tagging and scanning.
pub(crate) trait Pins: Send + Sync {
    /// Returns the tag for items made unreachable before the call.
    fn advance(&self) -> u64;
    /// The oldest pinned epoch, `u64::MAX` when none.
    fn min_pinned(&self) -> u64;
}

impl<T: Send + Sync> Pins for epoch::ReaderTable<T> {
    fn advance(&self) -> u64 {
        epoch::ReaderTable::advance(self)
    }
    fn min_pinned(&self) -> u64 {
        epoch::ReaderTable::min_pinned(self)
    }
}

/// Tunables of the storage layer.
#[derive(Clone, Debug)]
pub(crate) struct StoreOptions {
    /// Whether commits call `sync` (fsync). Without it a commit survives a
    /// process crash but not a power loss.
    pub sync: bool,
    /// Largest transaction (bytes written) committed with one sync.
    pub one_phase_max: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            sync: true,
            one_phase_max: 2 << 20,
        }
    }
}

/// A committed state of the file, read in place through the mapping.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// The commit record that names this state.
    pub record: CommitRecord,
    /// The mapping to read it through (covers at least `record.file_len`).
    pub mapping: Arc<Mapping>,
    /// Node pages must end by here: the committed file length, or, in the
    /// writer's working state after [`Store::spill`], the file's physical
    /// length (spilled pages may lie past the committed end).
    node_limit: u64,
}

impl Snapshot {
    /// Checks the CRC of the node page that holds `bytes` (a leaf value read
    /// through this snapshot), whether or not the page was checked before:
    /// for handles that check every read, since an inline value's only
    /// checksum is its page's. Errors with [`Error::Corrupt`] if the page
    /// fails it, or if `bytes` is not in a mapped node page.
    pub(crate) fn recheck_node_of(&self, bytes: &[u8]) -> Result<()> {
        let off = self
            .mapping
            .offset_of(bytes)
            .ok_or_else(|| Error::corrupt("B-tree node", 0, "a leaf value outside the mapping"))?;
        self.recheck_page(off / PAGE * PAGE)
    }

    /// [`recheck_node_of`](Self::recheck_node_of) for a run of values read
    /// in order: skips the page `last` names (checked for an earlier value)
    /// and values outside the mapping (nodes of the writer's transaction,
    /// in memory), and records the page it checks in `last`.
    pub(crate) fn recheck_node_once(&self, bytes: &[u8], last: &mut Option<u64>) -> Result<()> {
        let Some(off) = self.mapping.offset_of(bytes) else {
            return Ok(());
        };
        let page = off / PAGE * PAGE;
        if *last != Some(page) {
            self.recheck_page(page)?;
            *last = Some(page);
        }
        Ok(())
    }

    fn recheck_page(&self, page: u64) -> Result<()> {
        let bad = |at: u64, d: &str| Error::corrupt("B-tree node", at, d.to_string());
        let b = self
            .mapping
            .slice(page, PAGE, self.node_limit)
            .ok_or_else(|| bad(page, "past the end of the file"))?;
        if le_u32(b, 4) != Some(page_crc(b)) {
            return Err(bad(page, "fails its checksum"));
        }
        Ok(())
    }

    /// The committed state named by `record`, read through `mapping`.
    pub(crate) fn new(record: CommitRecord, mapping: Arc<Mapping>) -> Snapshot {
        let node_limit = record.file_len;
        Snapshot {
            record,
            mapping,
            node_limit,
        }
    }

    /// The root of tree `id`.
    pub(crate) fn root(&self, id: TreeId) -> TreeRoot {
        self.record
            .trees
            .get(id.0 as usize)
            .copied()
            .unwrap_or_default()
    }

    /// A reader of committed tree `id`.
    pub(crate) fn reader(&self, id: TreeId) -> Reader<'_> {
        let t = Tree::from_root(id, self.root(id));
        Reader {
            arena: None,
            src: self,
            tree: id,
            root: t.root,
            height: t.height,
        }
    }

    /// Whether the value extent starting at `page` (a multiple of 4096)
    /// passed its checksum through this handle since the writer last wrote
    /// into that page (spec §9, "Checking checksums once"). Shares the
    /// per-page bits of node checks: a page holds one or the other, and
    /// every write into a page forgets it.
    pub(crate) fn extent_checked(&self, page: u64) -> bool {
        self.mapping.is_verified(page)
    }

    /// Records that the value extent starting at `page` passed its
    /// checksum; see [`extent_checked`](Self::extent_checked).
    pub(crate) fn set_extent_checked(&self, page: u64) {
        self.mapping.set_verified(page);
    }

    /// Bytes `off..off+len` of the file, if inside the mapping and below
    /// `limit`.
    pub(crate) fn bytes(&self, off: u64, len: u64, limit: u64) -> Option<&[u8]> {
        self.mapping.slice(off, len, limit)
    }
}

impl PageSource for Snapshot {
    fn node(&self, page: u64, crc: u32, tree: TreeId, level: u8) -> Result<NodeView<'_>> {
        if !page.is_multiple_of(PAGE) || page < DATA_START {
            return Err(Error::corrupt(
                "B-tree node",
                page,
                format!("{} points to a misaligned page", tree.name()),
            ));
        }
        let b = self
            .mapping
            .slice(page, PAGE, self.node_limit)
            .ok_or_else(|| {
                Error::corrupt(
                    "B-tree node",
                    page,
                    format!("{} points past the end of the file", tree.name()),
                )
            })?;
        if le_u32(b, 4) != Some(crc) {
            return Err(Error::corrupt(
                "B-tree node",
                page,
                format!(
                    "{} node does not have the checksum its parent expects",
                    tree.name()
                ),
            ));
        }
        let v = NodeView::parse(b, page, tree, level)?;
        if !self.mapping.is_verified(page) {
            if page_crc(b) != crc {
                return Err(Error::corrupt(
                    "B-tree node",
                    page,
                    format!("{} node fails its checksum", tree.name()),
                ));
            }
            v.validate()?;
            self.mapping.set_verified(page);
        }
        Ok(v)
    }
}

/// Counters and settings carried in every commit record for the layers
/// above (the cache).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    /// Maximum entry age in milliseconds, 0 = none.
    pub max_age_ms: u64,
    /// What entry records count insertion times from, Unix milliseconds.
    pub time_base_ms: u64,
    /// Next LRU tick.
    pub clock: u64,
    /// Entries in the primary index.
    pub entries: u64,
    /// Sum of raw value lengths.
    pub raw_bytes: u64,
    /// Sum of stored value lengths.
    pub stored_bytes: u64,
    /// Sum of metadata lengths.
    pub meta_bytes: u64,
}

/// The writer's working state between commits.
pub(crate) struct WriteTxn {
    /// Dirty nodes of all trees.
    pub arena: Arena,
    /// Trees by id (the allocator's two live in `alloc`).
    pub trees: Vec<Tree>,
    /// Extents and free space.
    pub alloc: Allocator,
    /// Counters carried into the next record.
    pub meta: Meta,
    /// The committed state this transaction builds on, with the current
    /// mapping.
    pub base: Arc<Snapshot>,
    /// Pages of committed nodes replaced by copy-on-write, to free.
    freed: Vec<u64>,
    /// Extents written in this transaction: offset → (length, CRC).
    written: BTreeMap<u64, (u64, u32)>,
    /// Extents allocated in this transaction.
    fresh: HashSet<u64>,
    /// Node pages written by [`Store::spill`] in this transaction: no
    /// committed state or reader refers to them, so when copy-on-write
    /// replaces one it is free at once.
    spilled: HashSet<u64>,
    /// Spilled pages that copy-on-write replaced since: still allocated as
    /// node pages, given to the next dirty nodes before the allocator is
    /// asked (a long transaction rewrites the same nodes over and over).
    spare: Vec<u64>,
    /// Sequence number the next commit gets.
    next_seq: u64,
    /// Physical length of the file.
    phys_len: u64,
    /// End of what this writer has written, zeros included (or of what
    /// the file held when it began): past it, up to `phys_len`, the file
    /// may have no blocks yet.
    written_end: u64,
    /// End of the values and nodes this writer has written.
    data_end: u64,
    /// Length of the file known to be durable (one-phase commits must not
    /// go past it).
    durable_len: u64,
    /// Why the handle refuses writes, if it does.
    poisoned: Option<String>,
    /// Mappings replaced since the last publication.
    unpublished_maps: Vec<Arc<Mapping>>,
    /// Replaced mappings kept until readers let go: (tag, mapping).
    retired_maps: Vec<(u64, Arc<Mapping>)>,
    /// Whether a commit happened since the last publication.
    committed_unpublished: bool,
}

impl WriteTxn {
    /// A reader of tree `id` in the working state.
    pub(crate) fn reader(&self, id: TreeId) -> Reader<'_> {
        let t = self.tree(id);
        t.reader(&self.arena, &*self.base)
    }

    fn tree(&self, id: TreeId) -> &Tree {
        match id {
            TreeId::ALLOC => &self.alloc.alloc,
            TreeId::FREE => &self.alloc.free,
            _ => &self.trees[id.0 as usize],
        }
    }

    /// Number of dirty nodes.
    pub(crate) fn dirty_nodes(&self) -> usize {
        self.arena.len()
    }
}

/// An open cache file: backend, mode, and what the storage needs to know
/// about readers.
pub(crate) struct Store {
    /// Where bytes go.
    pub backend: Box<dyn StorageBackend>,
    /// The writer lock (none for read-only handles), held while this lives.
    pub _lock: Option<open::WriterLock>,
    /// The file's path, for messages (absent for custom backends).
    pub path: Option<PathBuf>,
    /// Read-only handles never write a byte.
    pub read_only: bool,
    /// Reader pins.
    pub pins: Arc<dyn Pins>,
    /// Tunables.
    pub opts: StoreOptions,
}

/// Bytes the commit protocol needs free beyond what is dirty.
pub(crate) const COMMIT_SLACK_PAGES: u64 = 24;

/// How many times a writer short of space waits for readers before giving
/// up (20 yields, then 1 ms sleeps: about a fifth of a second).
const READER_WAITS: u32 = 200;

impl Store {
    /// Starts the working state on top of committed snapshot `snap`.
    pub(crate) fn begin(&self, snap: Arc<Snapshot>, phys_len: u64) -> WriteTxn {
        let r = &snap.record;
        let durable_len = r.file_len;
        let trees = (0..MAX_TREES as u8)
            .map(|i| Tree::from_root(TreeId(i), r.trees[i as usize]))
            .collect();
        WriteTxn {
            arena: Arena::default(),
            trees,
            alloc: Allocator {
                alloc: Tree::from_root(TreeId::ALLOC, r.trees[TreeId::ALLOC.0 as usize]),
                free: Tree::from_root(TreeId::FREE, r.trees[TreeId::FREE.0 as usize]),
                file_len: r.file_len,
                cap: r.max_file_size,
                limit: 0,
                exact_growth: false,
                free_bytes: r.free_bytes,
                free_pages: r.free_pages,
                quarantine: Default::default(),
            },
            meta: Meta {
                max_age_ms: r.max_age_ms,
                time_base_ms: r.time_base_ms,
                clock: r.clock,
                entries: r.entries,
                raw_bytes: r.raw_bytes,
                stored_bytes: r.stored_bytes,
                meta_bytes: r.meta_bytes,
            },
            next_seq: r.seq + 1,
            base: snap,
            freed: Vec::new(),
            written: BTreeMap::new(),
            fresh: HashSet::new(),
            spilled: HashSet::new(),
            spare: Vec::new(),
            phys_len,
            written_end: phys_len,
            data_end: phys_len,
            durable_len,
            poisoned: None,
            unpublished_maps: Vec::new(),
            retired_maps: Vec::new(),
            committed_unpublished: false,
        }
    }

    /// Fails unless writes are allowed.
    pub(crate) fn writable(&self, txn: &WriteTxn) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        if let Some(c) = &txn.poisoned {
            return Err(Error::Poisoned { cause: c.clone() });
        }
        Ok(())
    }

    /// Marks the handle unusable for writes after `e`, and returns `e`.
    pub(crate) fn poison(&self, txn: &mut WriteTxn, e: Error) -> Error {
        if txn.poisoned.is_none() {
            txn.poisoned = Some(e.to_string());
        }
        e
    }

    /// Runs a change on tree `id`. A failure in the middle leaves the tree
    /// in an unknown state, so it poisons the handle.
    pub(crate) fn with_tree<R>(
        &self,
        txn: &mut WriteTxn,
        id: TreeId,
        f: impl FnOnce(&mut Tree, &mut Cx<'_>) -> Result<R>,
    ) -> Result<R> {
        self.writable(txn)?;
        let r = {
            let WriteTxn {
                arena,
                trees,
                freed,
                base,
                alloc,
                ..
            } = txn;
            let tree = match id {
                TreeId::ALLOC => &mut alloc.alloc,
                TreeId::FREE => &mut alloc.free,
                _ => &mut trees[id.0 as usize],
            };
            let mut cx = Cx {
                arena,
                src: &**base,
                freed,
            };
            f(tree, &mut cx)
        };
        let r = r.and_then(|v| self.release_cow_pages(txn).map(|_| v));
        r.map_err(|e| self.poison(txn, e))
    }

    /// Runs an allocator operation with a tree context.
    fn with_alloc<R>(
        &self,
        txn: &mut WriteTxn,
        f: impl FnOnce(&mut Allocator, &mut Cx<'_>) -> Result<R>,
    ) -> Result<R> {
        let WriteTxn {
            arena,
            freed,
            base,
            alloc,
            ..
        } = txn;
        let mut cx = Cx {
            arena,
            src: &**base,
            freed,
        };
        f(alloc, &mut cx)
    }

    /// Frees the committed pages copy-on-write replaced; freeing changes the
    /// allocator's trees, which may replace more pages.
    fn release_cow_pages(&self, txn: &mut WriteTxn) -> Result<()> {
        self.free_replaced(txn)?;
        for p in txn.arena.take_orphans() {
            txn.written.remove(&p);
            self.with_alloc(txn, |a, cx| a.free(cx, p, PAGE, Reuse::Now))?;
            self.free_replaced(txn)?;
        }
        Ok(())
    }

    /// Frees the pages copy-on-write replaced once the commit is done (the
    /// committed state still uses them); spilled ones become spares at once.
    fn free_replaced(&self, txn: &mut WriteTxn) -> Result<()> {
        while let Some(p) = txn.freed.pop() {
            if txn.spilled.remove(&p) {
                txn.written.remove(&p);
                txn.spare.push(p);
            } else {
                self.with_alloc(txn, |a, cx| a.free(cx, p, PAGE, Reuse::AfterCommit))?;
            }
        }
        Ok(())
    }

    /// Whether the working state equals the committed one (a commit would
    /// write nothing new).
    pub(crate) fn is_clean(&self, txn: &WriteTxn) -> bool {
        let r = &txn.base.record;
        let m = &txn.meta;
        txn.arena.len() == 0
            && txn.written.is_empty()
            && txn.freed.is_empty()
            && txn.alloc.file_len == r.file_len
            && txn.alloc.cap == r.max_file_size
            && m.clock == r.clock
            && m.max_age_ms == r.max_age_ms
            && m.time_base_ms == r.time_base_ms
            && m.entries == r.entries
            && m.raw_bytes == r.raw_bytes
            && m.stored_bytes == r.stored_bytes
            && m.meta_bytes == r.meta_bytes
    }

    /// Forgets every extent: the data area becomes empty (for `clear`). The
    /// committed state's space stays quarantined until the next commit.
    pub(crate) fn reset_space(&self, txn: &mut WriteTxn) -> Result<()> {
        self.writable(txn)?;
        let committed = txn.base.record.file_len;
        self.with_alloc(txn, |a, cx| {
            a.reset(cx, committed);
            Ok(())
        })?;
        txn.written.clear();
        txn.fresh.clear();
        txn.spilled.clear();
        txn.spare.clear();
        txn.freed.clear();
        txn.arena.take_orphans();
        Ok(())
    }

    /// Waits a little for readers to let go of freed space they may still
    /// see (a get holds it for microseconds; a live `Value` for as long as
    /// its owner keeps it). Returns whether some quarantined space became
    /// usable.
    pub(crate) fn wait_for_readers(&self, txn: &mut WriteTxn) -> bool {
        let before = txn.alloc.quarantine_pages();
        for i in 0..READER_WAITS {
            if !txn.alloc.quarantine.has_tagged() {
                return false;
            }
            if i < 20 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            self.reclaim(txn);
            if txn.alloc.quarantine_pages() < before {
                return true;
            }
        }
        false
    }

    /// Drops quarantined space and retired mappings no reader can reach.
    pub(crate) fn reclaim(&self, txn: &mut WriteTxn) {
        if txn.alloc.quarantine.has_tagged() || !txn.retired_maps.is_empty() {
            let min = self.pins.min_pinned();
            txn.alloc.quarantine.reclaim(min);
            txn.retired_maps.retain(|(t, _)| *t >= min);
        }
    }

    /// Whether space can be found for `bytes` more without evicting: value
    /// space plus the pages a commit of the current changes needs.
    pub(crate) fn has_room(&self, txn: &WriteTxn, bytes: u64, extra_dirty: u64) -> bool {
        let need_pages = self.commit_pages_needed(txn) + extra_dirty;
        let value_pages = bytes.div_ceil(PAGE) + 1;
        txn.alloc.available_pages() >= need_pages + value_pages
            && txn.alloc.available_bytes() >= bytes + need_pages * PAGE
    }

    /// A bound on the pages the next commit allocates.
    pub(crate) fn commit_pages_needed(&self, txn: &WriteTxn) -> u64 {
        let dirty = txn.arena.len() as u64;
        // Page assignment changes the allocator's two trees too.
        let trees = (txn.alloc.alloc.height as u64 + txn.alloc.free.height as u64 + 2) * 2;
        dirty + dirty / 8 + trees + COMMIT_SLACK_PAGES
    }

    /// A bound on the pages a commit needs after removing one more entry
    /// from a clean transaction: the paths through the primary and LastUsed
    /// indexes (with a sibling per level for merges) plus the allocator's
    /// own changes. Tighter than [`commit_pages_needed`](Self::commit_pages_needed)
    /// so that a full cache can still evict one entry at a time.
    pub(crate) fn one_removal_pages(&self, txn: &WriteTxn) -> u64 {
        let paths = (txn.tree(TreeId::PRIMARY).height as u64
            + txn.tree(TreeId::LAST_USED).height as u64
            + 2)
            * 2;
        let trees = (txn.alloc.alloc.height as u64 + txn.alloc.free.height as u64 + 2) * 2;
        txn.arena.len() as u64 + paths + trees
    }

    /// Allocates an extent for `len` bytes of `kind`.
    pub(crate) fn alloc(&self, txn: &mut WriteTxn, len: u64, kind: ExtentKind) -> Result<u64> {
        self.writable(txn)?;
        self.reclaim(txn);
        let len16 = allocator::align_up(len.max(1), ALIGN);
        let align = if len16.is_multiple_of(PAGE) {
            PAGE
        } else {
            ALIGN
        };
        let r = self.with_alloc(txn, |a, cx| a.alloc(cx, len16, align, kind));
        match r {
            Ok(off) => {
                self.release_cow_pages(txn)
                    .map_err(|e| self.poison(txn, e))?;
                txn.fresh.insert(off);
                Ok(off)
            }
            Err(e @ Error::NoSpace { .. }) => {
                // Nothing changed (the search failed before any change).
                Err(e)
            }
            Err(e) => Err(self.poison(txn, e)),
        }
    }

    /// Reserves room for `len` bytes without allocating it (see
    /// `Allocator::reserve`); write to it with [`write`](Self::write), then
    /// [`claim`](Self::claim) or [`release`](Self::release) it.
    pub(crate) fn reserve(&self, txn: &mut WriteTxn, len: u64) -> Result<u64> {
        self.writable(txn)?;
        self.reclaim(txn);
        let len16 = allocator::align_up(len.max(1), ALIGN);
        let align = if len16.is_multiple_of(PAGE) {
            PAGE
        } else {
            ALIGN
        };
        match self.with_alloc(txn, |a, cx| a.reserve(cx, len16, align)) {
            Ok(off) => {
                self.release_cow_pages(txn)
                    .map_err(|e| self.poison(txn, e))?;
                Ok(off)
            }
            Err(e @ Error::NoSpace { .. }) => Err(e),
            Err(e) => Err(self.poison(txn, e)),
        }
    }

    /// Allocates the reserved extent at `off` as `kind`.
    pub(crate) fn claim(
        &self,
        txn: &mut WriteTxn,
        off: u64,
        len: u64,
        kind: ExtentKind,
    ) -> Result<()> {
        self.writable(txn)?;
        let len16 = allocator::align_up(len.max(1), ALIGN);
        self.with_alloc(txn, |a, cx| a.claim(cx, off, len16, kind))
            .and_then(|_| self.release_cow_pages(txn))
            .map_err(|e| self.poison(txn, e))?;
        txn.fresh.insert(off);
        Ok(())
    }

    /// Gives up the reservation at `off`.
    pub(crate) fn release(&self, txn: &mut WriteTxn, off: u64) {
        txn.written.remove(&off);
        txn.alloc.release(off);
    }

    /// Frees extent `[off, off + len)` (the length given to `alloc`).
    pub(crate) fn free(&self, txn: &mut WriteTxn, off: u64, len: u64) -> Result<()> {
        self.writable(txn)?;
        let len16 = allocator::align_up(len.max(1), ALIGN);
        let reuse = if txn.fresh.remove(&off) {
            txn.written.remove(&off);
            Reuse::AfterEpoch(self.pins.advance())
        } else {
            Reuse::AfterCommit
        };
        self.with_alloc(txn, |a, cx| a.free(cx, off, len16, reuse))
            .and_then(|_| self.release_cow_pages(txn))
            .map_err(|e| self.poison(txn, e))
    }

    /// Writes the parts of `data` one after the other at `off` (an extent
    /// just allocated). Returns whether the mapping was replaced (the caller
    /// must publish the new base before readers may look at the bytes) and
    /// the CRC-32 of the bytes written (callers record it; computing it
    /// here saves a second pass over the value).
    pub(crate) fn write(
        &self,
        txn: &mut WriteTxn,
        off: u64,
        data: &[&[u8]],
    ) -> Result<(bool, u32)> {
        self.writable(txn)?;
        // Checks remembered for the pages written are void (readers cannot
        // reach these bytes before the caller publishes them).
        let total: usize = data.iter().map(|d| d.len()).sum();
        txn.base.mapping.clear_verified(off, total as u64);
        let mut at = off;
        let mut h = crc32fast::Hasher::new();
        for d in data {
            if let Err(e) = self.backend.write_at(d, at) {
                return Err(self.poison(txn, Error::io("writing", e)));
            }
            h.update(d);
            at += d.len() as u64;
        }
        txn.phys_len = txn.phys_len.max(at);
        txn.written_end = txn.written_end.max(at);
        txn.data_end = txn.data_end.max(at);
        let crc = h.finalize();
        txn.written.insert(off, (at - off, crc));
        Ok((self.ensure_mapped(txn, at)?, crc))
    }

    /// Makes sure the mapping covers `end`; replaces it when not.
    fn ensure_mapped(&self, txn: &mut WriteTxn, end: u64) -> Result<bool> {
        let cur = &txn.base.mapping;
        if end <= cur.len() {
            return Ok(false);
        }
        let want = mapping_len(end, txn.alloc.cap);
        let m = Arc::new(Mapping::new(self.backend.file(), want)?);
        m.inherit_verified(cur);
        txn.unpublished_maps.push(cur.clone());
        txn.base = Arc::new(Snapshot {
            record: txn.base.record.clone(),
            mapping: m,
            node_limit: txn.base.node_limit,
        });
        Ok(true)
    }

    /// Called after the caller made `txn.base` (or a newer state) visible
    /// to readers: tags what the publication made unreachable.
    pub(crate) fn published(&self, txn: &mut WriteTxn) {
        if !txn.committed_unpublished && txn.unpublished_maps.is_empty() {
            return;
        }
        let tag = self.pins.advance();
        if txn.committed_unpublished {
            txn.alloc.quarantine.committed(tag);
            txn.committed_unpublished = false;
        }
        for m in txn.unpublished_maps.drain(..) {
            txn.retired_maps.push((tag, m));
        }
        self.reclaim(txn);
        if let Err(e) = self.shrink_file(txn) {
            self.poison(txn, e);
        }
    }

    /// Truncates the file to the committed length once nothing beyond it is
    /// reachable (after `clear`, a trim, or a lowered cap).
    fn shrink_file(&self, txn: &mut WriteTxn) -> Result<()> {
        let target = txn
            .alloc
            .file_len
            .max(txn.base.record.file_len)
            .max(txn.alloc.quarantine.max_end());
        if txn.phys_len > target && !self.read_only {
            self.backend
                .set_len(target)
                .map_err(|e| Error::io("truncating the file", e))?;
            txn.phys_len = target;
            txn.written_end = txn.written_end.min(target);
            txn.data_end = txn.data_end.min(target);
        }
        Ok(())
    }

    /// Makes the working state the committed state: writes every dirty
    /// node, then the commit record, with the syncs of spec §7. `trim` also
    /// cuts free space off the end of the file.
    ///
    /// The caller publishes the returned snapshot to readers and then calls
    /// [`published`](Self::published).
    pub(crate) fn commit(&self, txn: &mut WriteTxn, trim: bool) -> Result<Arc<Snapshot>> {
        self.writable(txn)?;
        self.reclaim(txn);
        // A trimmed file ends with its last extent: no growth step.
        txn.alloc.exact_growth = trim;
        let r = self.commit_inner(txn, trim);
        txn.alloc.exact_growth = false;
        r.map_err(|e| self.poison(txn, e))
    }

    fn commit_inner(&self, txn: &mut WriteTxn, trim: bool) -> Result<Arc<Snapshot>> {
        let seq = txn.next_seq;
        if trim {
            let t = self.with_alloc(txn, |a, cx| a.trimmable_tail(cx))?;
            if let Some(t) = t {
                self.with_alloc(txn, |a, cx| a.trim_to(cx, t))?;
            }
        }
        // The nodes first: writing one drops the check of an earlier write
        // of its page (a spilled page handed back), then the other writes.
        let mut checks: Vec<(u64, u64, u32)> = Vec::new();
        // Copies kept from spills go: between commits the writer keeps
        // only the hot nodes.
        txn.arena.keep_spilled(0);
        let roots = self.write_dirty(txn, seq, &mut checks, true)?;
        checks.extend(txn.written.iter().map(|(o, (l, c))| (*o, *l, *c)));
        let file_len = txn.alloc.file_len;
        if txn.phys_len < file_len {
            self.backend
                .set_len(file_len)
                .map_err(|e| Error::io("extending the file", e))?;
            txn.phys_len = file_len;
        }
        self.fill_tail(txn)?;
        let mut record = CommitRecord {
            seq,
            file_len,
            max_file_size: txn.alloc.cap,
            max_age_ms: txn.meta.max_age_ms,
            clock: txn.meta.clock,
            entries: txn.meta.entries,
            raw_bytes: txn.meta.raw_bytes,
            stored_bytes: txn.meta.stored_bytes,
            meta_bytes: txn.meta.meta_bytes,
            committed_at_ms: now_ms(),
            free_bytes: txn.alloc.free_bytes,
            free_pages: txn.alloc.free_pages,
            time_base_ms: txn.meta.time_base_ms,
            trees: roots,
            checks: None,
        };
        // One phase only when the state fits in the durable length: then a
        // crash can tear data inside the file, never shorten it.
        if file_len <= txn.durable_len {
            record.checks = one_phase_checks(&mut checks, self.opts.one_phase_max);
        }
        let bytes = record.encode();
        let slot = SLOT_OFFSETS[record.slot()];
        if record.checks.is_none() {
            self.sync()?;
        }
        self.backend
            .write_at(&bytes, slot)
            .map_err(|e| Error::io("writing the commit record", e))?;
        self.sync()?;
        // The header mirrors the new roots; it is not synced (advisory).
        let h = Headers {
            max_file_size: record.max_file_size,
            primary_root: roots[TreeId::PRIMARY.0 as usize].page,
            last_used_root: roots[TreeId::LAST_USED.0 as usize].page,
            alloc_root: roots[TreeId::ALLOC.0 as usize].page,
            free_root: roots[TreeId::FREE.0 as usize].page,
        };
        self.backend
            .write_at(&h.encode(), 0)
            .map_err(|e| Error::io("writing the header", e))?;
        self.ensure_mapped(txn, file_len)?;
        let snap = Arc::new(Snapshot::new(record, txn.base.mapping.clone()));
        txn.base = snap.clone();
        txn.durable_len = file_len;
        txn.next_seq = seq + 1;
        txn.written.clear();
        txn.fresh.clear();
        txn.spilled.clear();
        debug_assert!(txn.spare.is_empty());
        txn.committed_unpublished = true;
        Ok(snap)
    }

    /// Writes zeros past the end of what was written, up to [`FILL_HIGH`]
    /// past the data, once the data comes within [`FILL_LOW`] of them: the
    /// next commits then write into blocks the file system has. A write
    /// into a hole makes the sync store the file's block map too, which
    /// doubled a small commit's sync on ext4 (and preallocated blocks cost
    /// the same, since their first write changes the map). Nothing lies
    /// there: every write moves `written_end`.
    fn fill_tail(&self, txn: &mut WriteTxn) -> Result<()> {
        let end = txn.phys_len.min(txn.data_end.saturating_add(FILL_HIGH));
        let at = allocator::align_up(txn.written_end, PAGE);
        if at >= end || txn.data_end.saturating_add(FILL_LOW) < txn.written_end {
            return Ok(());
        }
        // At most FILL_HIGH bytes: `at` is past the data.
        let zeros = vec![0u8; (end - at) as usize];
        self.backend
            .write_at(&zeros, at)
            .map_err(|e| Error::io("filling the end of the file", e))?;
        txn.written_end = end;
        Ok(())
    }

    /// Gives every dirty node a page and writes it (children first), adding
    /// each page's CRC to `checks`; returns the trees' roots. For a
    /// `commit`, spare pages left over are freed.
    fn write_dirty(
        &self,
        txn: &mut WriteTxn,
        seq: u64,
        checks: &mut Vec<(u64, u64, u32)>,
        commit: bool,
    ) -> Result<[TreeRoot; MAX_TREES]> {
        // Allocating changes the allocator's trees (more dirty nodes, more
        // replaced pages); repeat until stable.
        let mut rounds = 0;
        'assign: loop {
            self.release_cow_pages(txn)?;
            let todo = txn.arena.unassigned();
            if todo.is_empty() {
                if !commit || txn.spare.is_empty() {
                    break;
                }
                // Spares nothing took go back to the allocator (changing
                // its trees, so assign again).
                while let Some(p) = txn.spare.pop() {
                    self.with_alloc(txn, |a, cx| a.free(cx, p, PAGE, Reuse::Now))?;
                }
                continue;
            }
            rounds += 1;
            if rounds > 1000 {
                return Err(internal!("page assignment did not settle"));
            }
            if rounds == 1 {
                // The nodes that change at the same places every commit go
                // side by side (with room for what allocating them dirties),
                // after the others took their pages: one write instead of
                // one per page, and the next commits free them together.
                // The others take single free pages (the holes commits
                // leave), unless there are many.
                // Pages a spill wrote and copy-on-write handed back go
                // first: they are the transaction's own, and skipping them
                // grew a long load's file at every spill.
                let hot = hot_nodes(txn);
                let mut sorted = hot.clone();
                sorted.sort_unstable();
                let cold: Vec<u32> = todo
                    .iter()
                    .copied()
                    .filter(|i| sorted.binary_search(i).is_err())
                    .collect();
                let cold = self.assign_spares(txn, cold)?;
                let hot = self.assign_spares(txn, hot)?;
                if cold.len() < COLD_RUN_MIN || !self.assign_run(txn, &cold, 0)? {
                    for i in cold {
                        if !self.assign_page(txn, i)? {
                            continue 'assign;
                        }
                    }
                }
                if hot.len() >= 2 {
                    self.assign_run(txn, &hot, RUN_SLACK)?;
                }
                continue 'assign;
            }
            for i in todo {
                if !self.assign_page(txn, i)? {
                    continue 'assign;
                }
            }
        }
        // Encode bottom-up and write.
        let mut roots = [TreeRoot::default(); MAX_TREES];
        let mut batch: Vec<(u64, Box<[u8; NODE_SIZE]>)> = Vec::new();
        for id in TreeId::ALL {
            let tree = txn.tree(id).clone();
            let root = match tree.root {
                None => None,
                Some(r) => Some(self.write_subtree(txn, id, r, seq, &mut batch, checks)?),
            };
            let t = Tree { root, ..tree };
            roots[id.0 as usize] = t.committed_root()?;
            match id {
                TreeId::ALLOC => txn.alloc.alloc = t,
                TreeId::FREE => txn.alloc.free = t,
                _ => txn.trees[id.0 as usize] = t,
            }
        }
        self.write_pages(txn, &mut batch)?;
        if txn.arena.len() != 0 {
            return Err(internal!(
                "{} dirty nodes left after writing them",
                txn.arena.len()
            ));
        }
        txn.arena.clear();
        Ok(roots)
    }

    /// Gives the dirty nodes `nodes` pages that lie side by side, plus
    /// `slack` spare pages after them, if a free chunk holds them all.
    /// Returns whether one did.
    fn assign_run(&self, txn: &mut WriteTxn, nodes: &[u32], slack: usize) -> Result<bool> {
        let n = (nodes.len() + slack) as u64;
        // A bulk change may grow the file for its run; small commits take
        // free space or fall back to single pages, so that they never
        // strand the holes earlier commits left.
        let grow = nodes.len() >= COLD_RUN_MIN;
        let run = self.with_alloc(txn, |a, cx| a.alloc_run(cx, n, grow, ExtentKind::Node))?;
        let Some(pages) = run else {
            return Ok(false);
        };
        let (mine, spare) = pages.split_at(nodes.len());
        for (&i, &p) in nodes.iter().zip(mine) {
            // Allocating may have merged node `i` away.
            if txn.arena.needs_page(i) {
                txn.arena.set_page(i, p);
            } else {
                txn.arena.orphan(p);
            }
        }
        txn.spare.extend(spare.iter().rev());
        Ok(true)
    }

    /// Gives each node of `nodes` that needs a page a spare one while there
    /// are spares; returns the nodes left without.
    fn assign_spares(&self, txn: &mut WriteTxn, nodes: Vec<u32>) -> Result<Vec<u32>> {
        let mut rest = Vec::new();
        for i in nodes {
            if txn.arena.needs_page(i) && !self.assign_spare(txn, i)? {
                rest.push(i);
            }
        }
        Ok(rest)
    }

    /// Gives dirty node `i` (which needs a page) a spare page if there is
    /// one; returns whether there was.
    fn assign_spare(&self, txn: &mut WriteTxn, i: u32) -> Result<bool> {
        let Some(p) = self.take_spare(txn)? else {
            return Ok(false);
        };
        // Freeing spares past the bound changes the allocator's trees,
        // which may have merged node `i` away.
        if txn.arena.needs_page(i) {
            txn.arena.set_page(i, p);
        } else {
            txn.spare.push(p);
        }
        Ok(true)
    }

    /// Gives dirty node `i` a page (a spare, else a new one) unless it has
    /// one. Returns `false` when the search failed and readers let go of
    /// space since: the caller assigns again.
    fn assign_page(&self, txn: &mut WriteTxn, i: u32) -> Result<bool> {
        if !txn.arena.needs_page(i) || self.assign_spare(txn, i)? {
            return Ok(true);
        }
        let p = match self.with_alloc(txn, |a, cx| a.alloc(cx, PAGE, PAGE, ExtentKind::Node)) {
            // A failed search changes nothing: wait for readers to
            // release freed space, then assign the pages again.
            Err(Error::NoSpace { .. }) if self.wait_for_readers(txn) => return Ok(false),
            Err(Error::NoSpace { detail }) => {
                return Err(internal!(
                    "no page for a dirty node at commit ({detail}); dirty {}, available pages {}, free pages {}, quarantined pages {}, file {}",
                    txn.arena.len(),
                    txn.alloc.available_pages(),
                    txn.alloc.free_pages,
                    txn.alloc.quarantine_pages(),
                    txn.alloc.file_len
                ))
            }
            r => r?,
        };
        // The allocation itself may have merged node `i` away.
        if txn.arena.needs_page(i) {
            txn.arena.set_page(i, p);
        } else {
            txn.arena.orphan(p);
        }
        Ok(true)
    }

    /// A spare page for a dirty node: one inside the allocator's bound
    /// (a lowered cap or the limit of a shrink applies to spares too; those
    /// past it are freed, to be trimmed).
    fn take_spare(&self, txn: &mut WriteTxn) -> Result<Option<u64>> {
        while let Some(p) = txn.spare.pop() {
            let bound = txn.alloc.bound();
            if bound == 0 || p + PAGE <= bound {
                return Ok(Some(p));
            }
            txn.written.remove(&p);
            self.with_alloc(txn, |a, cx| a.free(cx, p, PAGE, Reuse::Now))?;
        }
        Ok(None)
    }

    /// Writes every dirty node to a page without committing, so that a
    /// long transaction keeps a bounded number of decoded nodes in memory.
    /// The pages belong to the transaction: the commit covers them like the
    /// pages it writes itself, and a change to one copies it and frees it
    /// at once (only this writer ever sees it). Returns whether the mapping
    /// was replaced (publish before readers look past the old end).
    ///
    /// Decoded copies of the nodes written stay in memory while dirty and
    /// kept nodes number at most `keep` (until the commit): the changes
    /// that follow take them back without decoding their pages.
    pub(crate) fn spill(&self, txn: &mut WriteTxn, keep: usize) -> Result<bool> {
        self.writable(txn)?;
        self.reclaim(txn);
        txn.arena.keep_spilled(keep);
        let mut pages = Vec::new();
        let r = self.write_dirty(txn, txn.next_seq, &mut pages, false);
        for (p, len, crc) in pages {
            txn.written.insert(p, (len, crc));
            txn.spilled.insert(p);
        }
        // The trees now start at their spilled pages (write_dirty set them).
        let remapped = r
            .and_then(|_| self.ensure_mapped(txn, txn.phys_len))
            .map_err(|e| self.poison(txn, e))?;
        let limit = txn.phys_len.max(txn.base.record.file_len);
        if limit > txn.base.node_limit {
            txn.base = Arc::new(Snapshot {
                record: txn.base.record.clone(),
                mapping: txn.base.mapping.clone(),
                node_limit: limit,
            });
        }
        Ok(remapped)
    }

    fn sync(&self) -> Result<()> {
        if self.opts.sync {
            self.backend.sync().map_err(|e| Error::io("syncing", e))?;
        }
        Ok(())
    }

    /// Encodes the dirty subtree under `r` into `batch` (children first),
    /// returning the clean reference to it.
    fn write_subtree(
        &self,
        txn: &mut WriteTxn,
        tree: TreeId,
        r: crate::btree::Ref,
        seq: u64,
        batch: &mut Vec<(u64, Box<[u8; NODE_SIZE]>)>,
        checks: &mut Vec<(u64, u64, u32)>,
    ) -> Result<crate::btree::Ref> {
        use crate::btree::Ref;
        let Ref::Dirty(i) = r else {
            return Ok(r);
        };
        let children = txn.arena.node(i).children.clone();
        let mut clean = Vec::with_capacity(children.len());
        for c in children {
            clean.push(self.write_subtree(txn, tree, c, seq, batch, checks)?);
        }
        let d = txn.arena.finish(i);
        let mut node = d.node;
        node.children = clean;
        let page = d
            .page
            .ok_or_else(|| internal!("dirty node without a page at commit"))?;
        let bytes = node.encode(tree, seq)?;
        let crc = le_u32(&bytes, 4).unwrap_or(0);
        // A page spilled earlier in this transaction may be written again
        // (copy-on-write handed it back): its old check is void, and left
        // in the list it would make a one-phase commit look torn.
        txn.written.remove(&page);
        checks.push((page, PAGE, crc32fast::hash(&bytes)));
        txn.base.mapping.clear_verified(page, PAGE);
        batch.push((page, Box::new(bytes)));
        txn.arena.remember(page, crc, tree, node);
        if batch.len() >= 256 {
            self.write_pages(txn, batch)?;
        }
        Ok(Ref::Clean { page, crc })
    }

    /// Writes a batch of node pages in file order, coalescing neighbours.
    fn write_pages(
        &self,
        txn: &mut WriteTxn,
        batch: &mut Vec<(u64, Box<[u8; NODE_SIZE]>)>,
    ) -> Result<()> {
        batch.sort_by_key(|(p, _)| *p);
        let mut i = 0;
        let mut buf: Vec<u8> = Vec::new();
        while i < batch.len() {
            let start = batch[i].0;
            buf.clear();
            buf.extend_from_slice(&batch[i].1[..]);
            let mut j = i + 1;
            while j < batch.len() && batch[j].0 == start + (j - i) as u64 * PAGE && j - i < 64 {
                buf.extend_from_slice(&batch[j].1[..]);
                j += 1;
            }
            self.backend
                .write_at(&buf, start)
                .map_err(|e| Error::io("writing B-tree nodes", e))?;
            txn.phys_len = txn.phys_len.max(start + buf.len() as u64);
            txn.written_end = txn.written_end.max(start + buf.len() as u64);
            txn.data_end = txn.data_end.max(start + buf.len() as u64);
            i = j;
        }
        batch.clear();
        Ok(())
    }
}

/// How far past the data [`Store::fill_tail`] fills the file.
const FILL_HIGH: u64 = 1 << 20;
/// How close the data may come to the filled end before it fills again.
const FILL_LOW: u64 = 256 << 10;

/// Pages a commit's run of hot nodes takes beyond their count, for the
/// allocator's own nodes that allocating the run dirties.
const RUN_SLACK: usize = 8;

/// Cold nodes (not [`is_hot`]) a commit or spill must have for them to
/// take a run of pages instead of single free pages, and nodes a run must
/// have to grow the file: a bulk change writes in one piece, small commits
/// fill the holes earlier ones left.
const COLD_RUN_MIN: usize = 32;

/// The dirty nodes without a page that are hot ([`is_hot`]).
fn hot_nodes(txn: &WriteTxn) -> Vec<u32> {
    let mut hot = Vec::new();
    for id in TreeId::ALL {
        txn.arena.each_dirty_under(txn.tree(id).root, &mut |i, n| {
            if is_hot(id, n.level) && txn.arena.needs_page(i) {
                hot.push(i);
            }
        });
    }
    hot
}

/// Coalesces the written ranges and returns them as a one-phase check list
/// when the transaction is small enough; `None` means two-phase.
fn one_phase_checks(ranges: &mut [(u64, u64, u32)], max_bytes: u64) -> Option<Vec<CheckRange>> {
    let total: u64 = ranges.iter().map(|r| r.1).sum();
    if total > max_bytes {
        return None;
    }
    ranges.sort_by_key(|r| r.0);
    let mut out: Vec<CheckRange> = Vec::new();
    for &(off, len, crc) in ranges.iter() {
        if let Some(last) = out.last_mut() {
            // Overlapping ranges cannot both hold their CRCs: commit in two
            // phases (which needs no checks) rather than write a record
            // that would read as torn. (A bug elsewhere, guarded here.)
            if off < last.offset + last.len as u64 {
                return None;
            }
            if last.offset + last.len as u64 == off {
                let mut h = crc32fast::Hasher::new_with_initial_len(last.crc, last.len as u64);
                h.combine(&crc32fast::Hasher::new_with_initial_len(crc, len));
                last.crc = h.finalize();
                last.len += len as u32;
                continue;
            }
        }
        out.push(CheckRange {
            offset: off,
            len: len as u32,
            crc,
        });
    }
    (out.len() <= MAX_CHECKS).then_some(out)
}

/// How much of the file to map for a file of `len` bytes.
pub(crate) fn mapping_len(len: u64, cap: u64) -> u64 {
    if cap != 0 && cap >= len {
        return allocator::align_up(cap, PAGE);
    }
    allocator::align_up((len * 2).max(64 << 20), PAGE)
}

/// Wall-clock milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::one_phase_checks;

    #[test]
    fn one_phase_checks_coalesce_and_refuse_overlaps() {
        let a = crc32fast::hash(&[1u8; 4096]);
        let b = crc32fast::hash(&[2u8; 4096]);
        let mut both = [0u8; 8192];
        both[..4096].fill(1);
        both[4096..].fill(2);
        let mut r = vec![(16384, 4096, b), (12288, 4096, a)];
        let c = one_phase_checks(&mut r, 1 << 20).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].offset, c[0].len), (12288, 8192));
        assert_eq!(c[0].crc, crc32fast::hash(&both));
        // The same page twice (two writes of it): no one-phase commit.
        let mut r = vec![(12288, 4096, a), (16384, 4096, b), (16384, 4096, a)];
        assert!(one_phase_checks(&mut r, 1 << 20).is_none());
        let mut r = vec![(12288, 8192, a), (16384, 4096, b)];
        assert!(one_phase_checks(&mut r, 1 << 20).is_none());
    }
}
