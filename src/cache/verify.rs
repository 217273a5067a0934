//! `verify`: a full check of the committed state of the file.
//!
//! Walks every structure the spec describes and checks every invariant it
//! states: the header and both commit records, every node of every tree
//! (checksum, layout, key order across nodes, what its entries must hold),
//! that extents and free chunks tile the data area exactly (no overlap, no
//! leak, nothing both free and used), that the LastUsed index and the
//! primary index agree, that the counters in the commit record add up, and
//! every value's checksum. Nothing is trusted before it is checked, so a
//! damaged file gives a report, never a panic or a huge allocation.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use crate::btree::node::{page_crc, NodeView};
use crate::btree::{Ref, TreeId};
use crate::cache::read::decode_chunk_table;
use crate::cache::record::{Body, Codec, MetaRef, Record};
use crate::cache::{codec, DatasetFileCache, CHUNK_RAW};
use crate::error::{Error, Result};
use crate::header::{le_u32, Headers, DATA_START, PAGE, SLOT_OFFSETS};
use crate::storage::allocator::{decode_alloc, decode_free, pages_in, ExtentKind};
use crate::storage::commit_record::CommitRecord;
use crate::storage::Snapshot;

/// One thing `verify` found wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The structure ("B-tree node", "value", "allocations index", ...).
    pub what: String,
    /// Byte offset in the file where it lives (0 when it has none).
    pub offset: u64,
    /// The key of the entry involved, if any.
    pub key: Option<Vec<u8>>,
    /// What is wrong.
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at offset {}", self.what, self.offset)?;
        if let Some(k) = &self.key {
            write!(f, " (key {})", crate::cache::verify::show_key(k))?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// Renders a key for messages: text when it is printable UTF-8, else hex.
pub fn show_key(k: &[u8]) -> String {
    match std::str::from_utf8(k) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => format!("{s:?}"),
        _ => k.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// What [`DatasetFileCache::verify`] checked and found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Everything found wrong; empty when the file is sound.
    pub problems: Vec<Problem>,
    /// Remarks that are not damage (a header mirror a crash left stale, an
    /// unused commit slot).
    pub notes: Vec<String>,
    /// Sequence number of the verified commit.
    pub commit: u64,
    /// Entries checked.
    pub entries: u64,
    /// B-tree nodes checked.
    pub nodes: u64,
    /// Extents checked.
    pub extents: u64,
    /// Value bytes whose checksum was computed.
    pub value_bytes: u64,
    /// Space taken by each B-tree index, in the order of the spec's tree
    /// ids (trees with no nodes are left out).
    pub indexes: Vec<IndexUsage>,
}

/// The space one B-tree index takes, from [`DatasetFileCache::verify`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexUsage {
    /// The index's name ("primary index", "LastUsed index", ...).
    pub name: &'static str,
    /// Node pages (4 KiB each).
    pub nodes: u64,
    /// Of which leaves.
    pub leaves: u64,
    /// Leaf entries.
    pub entries: u64,
    /// Key and value bytes of the leaf entries as stored (keys without the
    /// prefix their node shares), i.e. the leaves' payload: divided by
    /// `leaves × 4096` it gives how full the leaves are.
    pub entry_bytes: u64,
}

impl VerifyReport {
    /// Whether no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// How far a long operation (`verify`, compaction) has got, for progress
/// bars: entries and value bytes done, and the totals the commit record
/// gives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Entries done.
    pub entries: u64,
    /// Entries in all.
    pub entries_total: u64,
    /// Value bytes (stored) done.
    pub bytes: u64,
    /// Value bytes (stored) in all.
    pub bytes_total: u64,
}

/// Entries between two progress reports.
pub(crate) const PROGRESS_EVERY: u64 = 256;

/// A node still to visit: (page, crc, level, lower key bound, upper key
/// bound).
type Pending = (u64, u32, u8, Option<Vec<u8>>, Option<Vec<u8>>);

/// Stops a walk over a badly damaged file from reporting forever.
const MAX_PROBLEMS: usize = 10_000;

struct Checker<'s> {
    cache: &'s DatasetFileCache,
    snap: &'s Snapshot,
    report: VerifyReport,
    /// (offset, length, kind, who refers to it)
    used: Vec<(u64, u64, ExtentKind, String)>,
}

impl<'s> Checker<'s> {
    fn problem(&mut self, what: &str, offset: u64, key: Option<&[u8]>, detail: impl Into<String>) {
        if self.report.problems.len() < MAX_PROBLEMS {
            self.report.problems.push(Problem {
                what: what.to_string(),
                offset,
                key: key.map(|k| k.to_vec()),
                detail: detail.into(),
            });
        }
    }

    fn report_error(&mut self, e: Error, key: Option<&[u8]>) {
        match e {
            Error::Corrupt {
                what,
                offset,
                detail,
            } => self.problem(what, offset, key, detail),
            other => self.problem("file", 0, key, other.to_string()),
        }
    }

    /// The usage entry of tree `id`, added in id order when first seen.
    fn usage(&mut self, id: TreeId) -> &mut IndexUsage {
        let name = id.name();
        let v = &mut self.report.indexes;
        let i = match v.iter().position(|u| u.name == name) {
            Some(i) => i,
            None => {
                v.push(IndexUsage {
                    name,
                    ..Default::default()
                });
                v.len() - 1
            }
        };
        &mut v[i]
    }

    fn full(&self) -> bool {
        self.report.problems.len() >= MAX_PROBLEMS
    }

    /// Walks tree `id`; calls `entry` for every leaf entry in order.
    fn tree(&mut self, id: TreeId, mut entry: impl FnMut(&mut Self, &[u8], &[u8])) {
        let root = self.snap.root(id);
        if root.page == 0 {
            return;
        }
        let mut stack: Vec<Pending> = vec![(root.page, root.crc, root.height - 1, None, None)];
        let file_len = self.snap.record.file_len;
        while let Some((page, crc, level, lo, hi)) = stack.pop() {
            if self.full() {
                return;
            }
            let what = "B-tree node";
            if page % PAGE != 0 || page < DATA_START || page + PAGE > file_len {
                self.problem(
                    what,
                    page,
                    None,
                    format!("{} points outside the data area", id.name()),
                );
                continue;
            }
            let Some(b) = self.snap.mapping.slice(page, PAGE, file_len) else {
                self.problem(what, page, None, "unreadable");
                continue;
            };
            self.report.nodes += 1;
            let usage = self.usage(id);
            usage.nodes += 1;
            self.used
                .push((page, PAGE, ExtentKind::Node, format!("{} node", id.name())));
            if le_u32(b, 4) != Some(crc) || page_crc(b) != crc {
                self.problem(
                    what,
                    page,
                    None,
                    format!("{} node fails its checksum", id.name()),
                );
                continue;
            }
            let v = match NodeView::parse(b, page, id, level).and_then(|v| v.validate().map(|_| v))
            {
                Ok(v) => v,
                Err(e) => {
                    self.report_error(e, None);
                    continue;
                }
            };
            // Every key must lie within the bounds the parent gives.
            let mut key = Vec::new();
            for i in 0..v.len() {
                if let Ok(k) = v.key(i) {
                    key = k;
                }
                let below = lo.as_ref().is_some_and(|lo| key < *lo);
                let above = hi.as_ref().is_some_and(|hi| key >= *hi);
                if below || above {
                    self.problem(
                        what,
                        page,
                        Some(&key),
                        format!("{} key outside the range its parent gives", id.name()),
                    );
                }
                if level == 0 {
                    if let Ok(val) = v.val(i) {
                        let usage = self.usage(id);
                        usage.entries += 1;
                        usage.entry_bytes +=
                            (key.len().saturating_sub(v.prefix().len()) + val.len()) as u64;
                        let k = key.clone();
                        entry(self, &k, val);
                    }
                }
            }
            if level == 0 {
                self.usage(id).leaves += 1;
            }
            if level > 0 {
                for i in (0..=v.len()).rev() {
                    let Ok(Ref::Clean { page: cp, crc: cc }) = v.child(i) else {
                        self.problem(what, page, None, format!("child {i} unreadable"));
                        continue;
                    };
                    let clo = if i == 0 {
                        lo.clone()
                    } else {
                        v.key(i - 1).ok()
                    };
                    let chi = if i == v.len() {
                        hi.clone()
                    } else {
                        v.key(i).ok()
                    };
                    stack.push((cp, cc, level - 1, clo, chi));
                }
            } else if v.len() == 0 && page != root.page {
                self.problem(
                    what,
                    page,
                    None,
                    format!("empty {} leaf below the root", id.name()),
                );
            }
        }
    }

    fn extent(&mut self, off: u64, len: u64, kind: ExtentKind, owner: String) {
        self.used.push((
            off,
            crate::storage::allocator::align_up(len.max(1), 16),
            kind,
            owner,
        ));
    }

    /// The bytes of an extent, if inside the file.
    fn bytes(&mut self, off: u64, len: u64, what: &str, key: &[u8]) -> Option<&'s [u8]> {
        let snap: &'s Snapshot = self.snap;
        match snap.bytes(off, len, snap.record.file_len) {
            Some(b) => Some(b),
            None => {
                self.problem(
                    what,
                    off,
                    Some(key),
                    format!("{len} bytes past the end of the file"),
                );
                None
            }
        }
    }
}

impl DatasetFileCache {
    /// Checks the committed state of the file completely (see the module
    /// docs for what is checked). Changes not yet flushed are not part of
    /// it: flush first to include them.
    ///
    /// # Errors
    /// Only I/O errors reading the file; damage is reported in the
    /// [`VerifyReport`], each problem with its location.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.verify_with_progress(&mut |_| {})
    }

    /// [`verify`](Self::verify), calling `progress` as entries are checked.
    ///
    /// # Errors
    /// As [`verify`](Self::verify).
    pub fn verify_with_progress(&self, progress: &mut dyn FnMut(Progress)) -> Result<VerifyReport> {
        let _pin = self.readers.pin();
        // On a read-only handle another process may commit meanwhile: the
        // walk is then repeated on the newest state.
        self.read_view(|view| self.verify_snapshot(view.snap.clone(), progress))
    }

    fn verify_snapshot(
        &self,
        snap: Arc<Snapshot>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<VerifyReport> {
        let mut c = Checker {
            cache: self,
            snap: &snap,
            report: VerifyReport {
                commit: snap.record.seq,
                ..Default::default()
            },
            used: Vec::new(),
        };
        self.check_header_and_slots(&mut c)?;
        let rec = snap.record.clone();

        // Primary index: entries, their values and extents.
        let mut ticks: HashMap<u64, Vec<u8>> = HashMap::new();
        let (mut raw, mut stored, mut meta, mut max_tick) = (0u64, 0u64, 0u64, 0u64);
        let mut p = Progress {
            entries_total: rec.entries,
            bytes_total: rec.stored_bytes,
            ..Default::default()
        };
        c.tree(TreeId::PRIMARY, |c, key, val| {
            c.report.entries += 1;
            if c.report.entries.is_multiple_of(PROGRESS_EVERY) {
                p.entries = c.report.entries;
                p.bytes = c.report.value_bytes;
                progress(p);
            }
            let r = match Record::decode(val) {
                Ok(r) => r,
                Err(e) => return c.report_error(e, Some(key)),
            };
            if let Some(other) = ticks.insert(r.tick, key.to_vec()) {
                c.problem(
                    "entry record",
                    0,
                    Some(key),
                    format!("shares its last-use tick with {}", show_key(&other)),
                );
            }
            max_tick = max_tick.max(r.tick);
            raw += r.raw_len;
            meta += r.meta_len();
            stored += check_value(c, key, val, &r);
            match r.meta {
                Some(MetaRef::Extent { off, len, crc }) => {
                    c.extent(
                        off,
                        len,
                        ExtentKind::Meta,
                        format!("metadata of {}", show_key(key)),
                    );
                    if let Some(b) = c.bytes(off, len, "metadata", key) {
                        if crc32fast::hash(b) != crc {
                            c.problem("metadata", off, Some(key), "fails its checksum");
                        }
                    }
                }
                Some(MetaRef::Inline { .. }) | None => {}
            }
        });
        // A last report with everything done, so a bar reaches its end.
        p.entries = c.report.entries;
        p.bytes = c.report.value_bytes;
        progress(p);
        // LastUsed index: tick -> key, one per entry.
        let mut lru = 0u64;
        c.tree(TreeId::LAST_USED, |c, k, v| {
            lru += 1;
            let Ok(t) = <[u8; 8]>::try_from(k) else {
                return c.problem("LastUsed index", 0, Some(v), "key is not an 8-byte tick");
            };
            let t = u64::from_be_bytes(t);
            match ticks.get(&t) {
                Some(key) if key.as_slice() == v => {}
                Some(key) => c.problem(
                    "LastUsed index",
                    0,
                    Some(v),
                    format!("tick {t} belongs to {}", show_key(key)),
                ),
                None => c.problem(
                    "LastUsed index",
                    0,
                    Some(v),
                    format!("tick {t} has no entry with that last use"),
                ),
            }
        });
        if lru != c.report.entries {
            c.problem(
                "LastUsed index",
                0,
                None,
                format!("{lru} entries for {} primary entries", c.report.entries),
            );
        }
        if c.report.entries > 0 && rec.clock <= max_tick {
            c.problem(
                "commit record",
                0,
                None,
                format!(
                    "LRU clock {} not past the newest tick {max_tick}",
                    rec.clock
                ),
            );
        }
        let counters = [
            ("entries", rec.entries, c.report.entries),
            ("raw bytes", rec.raw_bytes, raw),
            ("stored bytes", rec.stored_bytes, stored),
            ("metadata bytes", rec.meta_bytes, meta),
        ];
        for (name, said, found) in counters {
            if said != found {
                c.problem(
                    "commit record",
                    SLOT_OFFSETS[rec.slot()],
                    None,
                    format!("says {said} {name}, the index holds {found}"),
                );
            }
        }
        self.check_groups(&mut c);
        self.check_dicts(&mut c);
        self.check_space(&mut c, &rec);
        Ok(c.report)
    }

    fn check_header_and_slots(&self, c: &mut Checker<'_>) -> Result<()> {
        let mut head = vec![0u8; DATA_START as usize];
        self.store
            .backend
            .read_at(&mut head, 0)
            .map_err(|e| Error::io("reading the header", e))?;
        let rec = &c.snap.record;
        match Headers::decode(&head) {
            Ok(h) => {
                let roots = [
                    (h.primary_root, TreeId::PRIMARY),
                    (h.last_used_root, TreeId::LAST_USED),
                    (h.alloc_root, TreeId::ALLOC),
                    (h.free_root, TreeId::FREE),
                ];
                if h.max_file_size != rec.max_file_size
                    || roots.iter().any(|(p, id)| *p != c.snap.root(*id).page)
                {
                    c.report.notes.push("the header mirror is not that of the newest commit (a crash or a handle still open); it is advisory".into());
                }
            }
            Err(p) => c.problem(
                "file header",
                0,
                None,
                format!("{:?} (the commit records are intact)", p),
            ),
        }
        for (i, off) in SLOT_OFFSETS.iter().enumerate() {
            let b = &head[*off as usize..(*off + PAGE) as usize];
            match CommitRecord::decode(b, *off) {
                Ok(r) if r.seq == rec.seq => {}
                Ok(r) if r.seq + 1 == rec.seq => {}
                // Spec §7.4: a crash inside a one-phase commit leaves its
                // record with a torn range; open falls back to this one.
                Ok(r) if r.seq == rec.seq + 1 && r.checks.is_some() => c.report.notes.push(format!(
                    "commit slot {i} holds commit {}, a one-phase commit a crash left incomplete; the file is at commit {}",
                    r.seq, rec.seq
                )),
                Ok(r) => c.problem(
                    "commit record",
                    *off,
                    None,
                    format!("slot {i} holds commit {} next to commit {}", r.seq, rec.seq),
                ),
                Err(_) if b.iter().all(|&x| x == 0) => {
                    c.report.notes.push(format!("commit slot {i} is unused"))
                }
                Err(e) => c.report.notes.push(format!(
                    "commit slot {i} holds no valid record ({e}); the other one is used"
                )),
            }
        }
        Ok(())
    }

    /// Every dictionary is an extent that passes its checksum; defaults name
    /// existing dictionaries.
    fn check_dicts(&self, c: &mut Checker<'_>) {
        let mut ids = HashSet::new();
        let mut defaults = Vec::new();
        c.tree(TreeId::DICTS, |c, k, v| match k.first() {
            Some(1) if k.len() == 5 => {
                let id = u32::from_be_bytes([k[1], k[2], k[3], k[4]]);
                ids.insert(id);
                match crate::cache::dict::decode_desc(v) {
                    Ok((off, len, crc)) => {
                        c.extent(off, len, ExtentKind::Dict, format!("dictionary {id}"));
                        let key = id.to_be_bytes();
                        if let Some(b) = c.bytes(off, len, "dictionary", &key) {
                            if crc32fast::hash(b) != crc {
                                c.problem(
                                    "dictionary",
                                    off,
                                    None,
                                    format!("dictionary {id} fails its checksum"),
                                );
                            }
                        }
                    }
                    Err(e) => c.report_error(e, None),
                }
            }
            Some(2) => match <[u8; 4]>::try_from(v) {
                Ok(id) => defaults.push((k[1..].to_vec(), u32::from_le_bytes(id))),
                Err(_) => c.problem("dictionaries index", 0, Some(k), "malformed default"),
            },
            _ => c.problem("dictionaries index", 0, Some(k), "malformed key"),
        });
        for (prefix, id) in defaults {
            if !ids.contains(&id) {
                c.problem(
                    "dictionaries index",
                    0,
                    Some(&prefix),
                    format!("default dictionary {id} does not exist"),
                );
            }
        }
    }

    /// Every group's directory count matches its members, numbered from 0.
    fn check_groups(&self, c: &mut Checker<'_>) {
        use crate::cache::groups::{decode_group_key, GroupKey};
        let mut dirs: HashMap<Vec<u8>, u64> = HashMap::new();
        let mut next: HashMap<Vec<u8>, u64> = HashMap::new();
        c.tree(TreeId::GROUPS, |c, k, v| match decode_group_key(k) {
            Some(GroupKey::Dir(name)) => match <[u8; 8]>::try_from(v) {
                Ok(n) => {
                    dirs.insert(name, u64::from_le_bytes(n));
                }
                Err(_) => c.problem("groups index", 0, Some(&name), "malformed member count"),
            },
            Some(GroupKey::Member(name, pos)) => {
                let n = next.entry(name.clone()).or_insert(0);
                if *n != pos as u64 {
                    c.problem(
                        "groups index",
                        0,
                        Some(&name),
                        format!("member {pos} where {n} was expected"),
                    );
                }
                *n = pos as u64 + 1;
                if v.is_empty() || v.len() > crate::MAX_KEY_LEN {
                    c.problem(
                        "groups index",
                        0,
                        Some(&name),
                        "member key of invalid length",
                    );
                }
            }
            None => c.problem("groups index", 0, Some(k), "malformed key"),
        });
        for (name, n) in &dirs {
            let have = next.get(name).copied().unwrap_or(0);
            if have != *n {
                c.problem(
                    "groups index",
                    0,
                    Some(name),
                    format!("says {n} members, holds {have}"),
                );
            }
        }
        for name in next.keys() {
            if !dirs.contains_key(name) {
                c.problem("groups index", 0, Some(name), "members without a group");
            }
        }
    }

    /// Extents and free chunks must tile the data area.
    fn check_space(&self, c: &mut Checker<'_>, rec: &CommitRecord) {
        let mut allocs: Vec<(u64, u64, ExtentKind)> = Vec::new();
        c.tree(TreeId::ALLOC, |c, k, v| match decode_alloc(k, v) {
            Ok(a) => allocs.push(a),
            Err(e) => c.report_error(e, None),
        });
        let mut frees: Vec<(u64, u64)> = Vec::new();
        c.tree(TreeId::FREE, |c, k, _| match decode_free(k) {
            Ok((l, s)) => frees.push((s, l)),
            Err(e) => c.report_error(e, None),
        });
        c.report.extents = allocs.len() as u64;
        let (fb, fp) = frees
            .iter()
            .fold((0u64, 0u64), |(b, p), &(s, l)| (b + l, p + pages_in(s, l)));
        if fb != rec.free_bytes || fp != rec.free_pages {
            c.problem(
                "commit record",
                0,
                None,
                format!(
                    "says {} free bytes / {} free pages, the free-chunks index holds {fb} / {fp}",
                    rec.free_bytes, rec.free_pages
                ),
            );
        }
        // Tiling: allocations and free chunks, sorted, cover the data area
        // exactly once.
        let mut pieces: Vec<(u64, u64, bool)> =
            allocs.iter().map(|&(o, l, _)| (o, l, false)).collect();
        pieces.extend(frees.iter().map(|&(s, l)| (s, l, true)));
        pieces.sort_unstable();
        let mut at = DATA_START;
        let mut prev_free = false;
        for &(s, l, free) in &pieces {
            if s % 16 != 0 || l == 0 || l % 16 != 0 {
                c.problem(
                    if free {
                        "free-chunks index"
                    } else {
                        "allocations index"
                    },
                    s,
                    None,
                    format!("misaligned or empty ({l} bytes)"),
                );
            }
            if s < at {
                c.problem(
                    if free {
                        "free-chunks index"
                    } else {
                        "allocations index"
                    },
                    s,
                    None,
                    format!(
                        "overlaps what ends at {at} ({})",
                        if free {
                            "a free chunk is also in use"
                        } else {
                            "two extents overlap"
                        }
                    ),
                );
            } else if s > at {
                c.problem(
                    "allocations index",
                    at,
                    None,
                    format!("{} bytes neither in use nor free", s - at),
                );
            }
            if free && prev_free && s == at {
                c.problem(
                    "free-chunks index",
                    s,
                    None,
                    "two free chunks touch (not merged)",
                );
            }
            prev_free = free;
            at = at.max(s + l);
        }
        if at != rec.file_len && !pieces.is_empty() {
            c.problem(
                "allocations index",
                at,
                None,
                format!(
                    "extents and free chunks end at {at}, the file at {}",
                    rec.file_len
                ),
            );
        }
        // Every extent referred to is exactly one allocation of its kind;
        // every allocation is referred to.
        let by_off: HashMap<u64, (u64, ExtentKind)> =
            allocs.iter().map(|&(o, l, k)| (o, (l, k))).collect();
        let mut referenced: HashSet<u64> = HashSet::new();
        let used = std::mem::take(&mut c.used);
        for (off, len, kind, owner) in &used {
            match by_off.get(off) {
                Some((l, k)) if l == len && k == kind => {}
                Some((l, k)) => c.problem(
                    "allocations index",
                    *off,
                    None,
                    format!(
                        "{owner}: allocated as {l} bytes of {k:?}, used as {len} bytes of {kind:?}"
                    ),
                ),
                None => c.problem(
                    "allocations index",
                    *off,
                    None,
                    format!("{owner}: not allocated"),
                ),
            }
            if !referenced.insert(*off) {
                c.problem(
                    "allocations index",
                    *off,
                    None,
                    format!("{owner}: extent used twice"),
                );
            }
        }
        for (o, l, k) in &allocs {
            if !referenced.contains(o) {
                c.problem(
                    "allocations index",
                    *o,
                    None,
                    format!("{l} bytes of {k:?} allocated but used by nothing (leaked)"),
                );
            }
        }
    }
}

/// Checks one entry's value; returns the stored bytes it accounts for.
fn check_value(c: &mut Checker<'_>, key: &[u8], rec: &[u8], r: &Record) -> u64 {
    let owner = || format!("value of {}", show_key(key));
    match r.body {
        Body::Absent => 0,
        Body::Inline { len, .. } => {
            // The node's CRC covers inline bytes.
            let s = r.inline(rec);
            if r.codec == Codec::Zstd {
                let d = c.cache.dict(c.snap, r.dict);
                if let Err(e) =
                    d.and_then(|d| codec::decompress_with(s, r.raw_len, CHUNK_RAW, 0, d.as_deref()))
                {
                    c.report_error(e, Some(key));
                }
            }
            c.report.value_bytes += len as u64;
            len as u64
        }
        Body::Extent { off, len } => {
            c.extent(off, len, ExtentKind::Value, owner());
            let Some(s) = c.bytes(off, len, "value", key) else {
                return len;
            };
            let ok = crc32fast::hash(s) == r.crc;
            let zstd = (r.codec == Codec::Zstd).then(|| {
                c.cache.dict(c.snap, r.dict).and_then(|d| {
                    codec::decompress_with(s, r.raw_len, CHUNK_RAW, off, d.as_deref())
                })
            });
            c.report.value_bytes += len;
            if !ok {
                c.problem("value", off, Some(key), "fails its checksum");
            } else if let Some(Err(e)) = zstd {
                c.report_error(e, Some(key));
            }
            len
        }
        Body::Chunked { off, len } => {
            c.extent(
                off,
                len,
                ExtentKind::ChunkTable,
                format!("chunk table of {}", show_key(key)),
            );
            let Some(t) = c.bytes(off, len, "chunk table", key).map(|t| t.to_vec()) else {
                return len;
            };
            if crc32fast::hash(&t) != r.crc {
                c.problem("chunk table", off, Some(key), "fails its checksum");
                return len;
            }
            let chunks = match decode_chunk_table(&t, off, r.raw_len) {
                Ok(ch) => ch,
                Err(e) => {
                    c.report_error(e, Some(key));
                    return len;
                }
            };
            let mut total = len;
            for ch in chunks {
                total += ch.stored as u64;
                c.extent(
                    ch.off,
                    ch.stored as u64,
                    ExtentKind::Value,
                    format!("chunk of {}", show_key(key)),
                );
                let Some(s) = c.bytes(ch.off, ch.stored as u64, "value chunk", key) else {
                    continue;
                };
                c.report.value_bytes += s.len() as u64;
                if crc32fast::hash(s) != ch.crc {
                    c.problem("value chunk", ch.off, Some(key), "fails its checksum");
                } else if ch.codec == Codec::Zstd {
                    if let Err(e) = codec::decompress(s, ch.raw as u64, CHUNK_RAW, ch.off) {
                        c.report_error(e, Some(key));
                    }
                }
            }
            total
        }
    }
}
