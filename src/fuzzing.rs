//! Entry points for the fuzz targets in `fuzz/` and for the corpus replay
//! test, so both run exactly the same code. Not part of the stable API.
//!
//! Each function feeds arbitrary bytes to one decoder (or to the whole
//! open-and-read path) and panics only if the code under test misbehaves:
//! the decoders themselves must never panic, whatever the input.

use std::ops::Bound;

use crate::btree::node::{NodeView, NODE_SIZE};
use crate::btree::TreeId;
use crate::cache::record::Record;
use crate::header::Headers;
use crate::storage::commit_record::CommitRecord;
use crate::{DatasetFileCache, Error};

/// Decodes the first 96 bytes as headers and the rest as commit records.
pub fn headers(data: &[u8]) {
    let _ = Headers::decode(data);
    if let Ok(r) = CommitRecord::decode(data, 0) {
        // A decoded record re-encodes to the same bytes.
        let b = r.encode();
        assert_eq!(&data[..b.len()], &b[..], "record does not round-trip");
    }
    if data.len() > 96 {
        let _ = CommitRecord::decode(&data[96..], 96);
    }
}

/// Parses a page as a node of every tree and level, and uses it.
pub fn node(data: &[u8]) {
    let mut page = [0u8; NODE_SIZE];
    let n = data.len().min(NODE_SIZE);
    page[..n].copy_from_slice(&data[..n]);
    for tree in TreeId::ALL {
        for level in 0..3 {
            let Ok(v) = NodeView::parse(&page, 0, tree, level) else {
                continue;
            };
            let checked = v.validate().is_ok();
            let _ = v.search(b"key");
            let _ = v.search(&data[..data.len().min(40)]);
            for i in 0..=v.len() {
                let _ = v.key(i);
                let _ = v.val(i);
                let _ = v.child(i);
            }
            if let (true, Ok(node)) = (checked, v.to_node()) {
                // A valid node re-encodes to a valid node with the same keys.
                if let Ok(b) = node.encode(tree, 1) {
                    let w = NodeView::parse(&b, 0, tree, level).expect("re-encoded node parses");
                    w.validate().expect("re-encoded node validates");
                    assert_eq!(w.len(), v.len());
                }
            }
        }
    }
}

/// Decodes an entry record.
pub fn record(data: &[u8]) {
    if let Ok(r) = Record::decode(data) {
        let _ = r.inline(data);
        let _ = r.meta_inline(data);
        let b = r.encode(r.inline(data), r.meta_inline(data).unwrap_or(&[]));
        let again = Record::decode(&b).expect("re-encoded record decodes");
        assert_eq!(again.raw_len, r.raw_len);
        assert_eq!(again.tick, r.tick);
    }
}

/// Treats `data` as a whole cache file: opens it read-only, reads every key
/// and value, and opens it read-write. Every outcome must be a value or a
/// typed error.
pub fn open_file(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let path = dir.path().join("fuzz.dfc");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let check = |e: &Error| {
        assert!(
            !matches!(e, Error::Poisoned { .. }),
            "a read-only handle cannot be poisoned: {e}"
        );
    };
    if let Ok(c) = DatasetFileCache::open(&path, true) {
        read_all(&c, check);
    }
    if let Ok(c) = DatasetFileCache::open(&path, false) {
        read_all(&c, |_| {});
        // Writing to a damaged file fails cleanly or works.
        let _ = c.put(b"fuzz", b"value");
        let _ = c.remove(b"fuzz");
    }
}

fn read_all(c: &DatasetFileCache, check: impl Fn(&Error)) {
    let _ = c.len();
    let keys = match c.keys() {
        Ok(k) => k,
        Err(e) => return check(&e),
    };
    for k in keys.take(10_000) {
        match k {
            Ok(k) => match c.get(&k) {
                Ok(_) => {}
                Err(e) => check(&e),
            },
            Err(e) => return check(&e),
        }
    }
    let _ = c.contains_key(b"x");
    let view = c.view.load();
    let _ = view
        .snap
        .reader(TreeId::LAST_USED)
        .scan(Bound::Unbounded, |_, _| Ok(true));
}

/// A simulated disk for crash tests: a [`StorageBackend`] that forwards to a
/// real file and records every write, length change and sync, and the
/// power-loss images spec/FORMAT.md §7.1 allows at any point of that log.
///
/// Shared by `tests/crash.rs`, `tests/poison.rs` and the `ops` fuzz target.
pub mod sim {
    use std::collections::{BTreeMap, BTreeSet};
    use std::fs::File;
    use std::io;
    use std::os::unix::fs::FileExt;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use crate::{DatasetFileCache, Error, Flushable, OpenOptions, StorageBackend};

    /// Bytes of a disk sector: the unit a power loss tears writes at.
    pub const SECTOR: u64 = 512;
    /// File offsets of the two commit slots (spec §5).
    pub const SLOTS: [u64; 2] = [4096, 8192];

    /// One operation the cache did on its file.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum Op {
        /// `write_at(data, offset)`.
        Write {
            /// File offset.
            off: u64,
            /// The bytes.
            data: Vec<u8>,
        },
        /// `set_len(len)`.
        SetLen(u64),
        /// `sync()` returned.
        Sync,
    }

    /// The shared log of a simulated disk.
    pub type Log = Arc<Mutex<Vec<Op>>>;

    /// Which operation to fail (counted from 1 over the backend's life,
    /// across every backend sharing the same counters).
    #[derive(Clone, Copy, Debug, Default)]
    pub struct FailPlan {
        /// Fail the Nth `write_at`.
        pub write: Option<u64>,
        /// Fail the Nth `sync`.
        pub sync: Option<u64>,
        /// Fail the Nth `set_len`.
        pub set_len: Option<u64>,
    }

    /// Counters for [`FailPlan`], shared by reopened backends.
    #[derive(Debug, Default)]
    pub struct FailState {
        /// `write_at` calls so far.
        pub writes: AtomicU64,
        /// `sync` calls so far.
        pub syncs: AtomicU64,
        /// `set_len` calls so far.
        pub set_lens: AtomicU64,
        /// 1 + the log length at the injected failure (0: none yet).
        pub failed_at: AtomicU64,
        /// Mutating calls that reached the backend after the failure.
        pub after_failure: AtomicU64,
    }

    /// A backend that records what it does to a real file, and can fail.
    pub struct RecordingBackend {
        file: File,
        log: Log,
        plan: FailPlan,
        state: Arc<FailState>,
    }

    impl RecordingBackend {
        /// Records into `log`; fails as `plan` says.
        pub fn new(file: File, log: Log, plan: FailPlan, state: Arc<FailState>) -> Self {
            RecordingBackend {
                file,
                log,
                plan,
                state,
            }
        }

        /// Opens `path` read-write (creating it) and records into `log`.
        pub fn open(path: &Path, log: Log) -> io::Result<Self> {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)?;
            Ok(Self::new(
                file,
                log,
                FailPlan::default(),
                Default::default(),
            ))
        }

        fn mutating(&self) {
            if self.state.failed_at.load(Ordering::SeqCst) != 0 {
                self.state.after_failure.fetch_add(1, Ordering::SeqCst);
            }
        }

        fn fail(&self, log_len: usize) -> io::Error {
            self.state
                .failed_at
                .store(log_len as u64 + 1, Ordering::SeqCst);
            io::Error::other("injected failure")
        }
    }

    impl StorageBackend for RecordingBackend {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            self.file.read_exact_at(buf, offset)
        }

        fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
            self.mutating();
            let mut log = self.log.lock().unwrap();
            let n = self.state.writes.fetch_add(1, Ordering::SeqCst) + 1;
            if self.plan.write == Some(n) {
                // A failed write may have written part of its sectors: keep
                // the first half of them (recorded like any write).
                let sectors = (buf.len() as u64).div_ceil(SECTOR) / 2;
                let keep = ((sectors * SECTOR) as usize).min(buf.len());
                if keep > 0 {
                    self.file.write_all_at(&buf[..keep], offset)?;
                    log.push(Op::Write {
                        off: offset,
                        data: buf[..keep].to_vec(),
                    });
                }
                return Err(self.fail(log.len()));
            }
            self.file.write_all_at(buf, offset)?;
            log.push(Op::Write {
                off: offset,
                data: buf.to_vec(),
            });
            Ok(())
        }

        fn set_len(&self, len: u64) -> io::Result<()> {
            self.mutating();
            let mut log = self.log.lock().unwrap();
            let n = self.state.set_lens.fetch_add(1, Ordering::SeqCst) + 1;
            if self.plan.set_len == Some(n) {
                return Err(self.fail(log.len()));
            }
            self.file.set_len(len)?;
            log.push(Op::SetLen(len));
            Ok(())
        }

        fn sync(&self) -> io::Result<()> {
            self.mutating();
            let mut log = self.log.lock().unwrap();
            let n = self.state.syncs.fetch_add(1, Ordering::SeqCst) + 1;
            if self.plan.sync == Some(n) {
                return Err(self.fail(log.len()));
            }
            // The real file need not reach the disk: the log is the disk.
            log.push(Op::Sync);
            Ok(())
        }

        fn len(&self) -> io::Result<u64> {
            Ok(self.file.metadata()?.len())
        }

        fn file(&self) -> &File {
            &self.file
        }
    }

    /// A small deterministic PRNG (SplitMix64).
    #[derive(Clone, Debug)]
    pub struct Rng(pub u64);

    impl Rng {
        /// The next 64 random bits.
        pub fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        /// A number in `0..n` (`n > 0`).
        pub fn below(&mut self, n: u64) -> u64 {
            self.next_u64() % n.max(1)
        }
        /// True with probability `num/den`.
        pub fn chance(&mut self, num: u64, den: u64) -> bool {
            self.below(den) < num
        }
    }

    /// Applies one operation to a file image, completely.
    pub fn apply(image: &mut Vec<u8>, op: &Op) {
        match op {
            Op::Write { off, data } => {
                let off = *off as usize;
                let end = off + data.len();
                if image.len() < end {
                    image.resize(end, 0);
                }
                image[off..end].copy_from_slice(data);
            }
            Op::SetLen(n) => image.resize(*n as usize, 0),
            Op::Sync => {}
        }
    }

    /// What a power loss did to the unsynced operations (for messages).
    #[derive(Clone, Debug, Default)]
    pub struct CrashDamage {
        /// Writes kept whole.
        pub kept: u32,
        /// Writes lost whole.
        pub dropped: u32,
        /// Writes torn at sector granularity.
        pub torn: u32,
        /// Length changes applied / not applied.
        pub set_len: (u32, u32),
        /// (offset of the sector, bytes of it that are new) for the one
        /// sector torn at a byte boundary, if any.
        pub mixed_sector: Option<(u64, u64)>,
    }

    /// The image a power loss may leave: `durable` (everything up to the
    /// last sync applied) plus each of `unsynced` kept, dropped or torn at
    /// 512-byte sectors, length changes applied or not, and possibly one
    /// sector holding a mix of old and new bytes (spec §7.1). Bytes outside
    /// the written ranges never change.
    pub fn crash_image(durable: &[u8], unsynced: &[Op], rng: &mut Rng) -> (Vec<u8>, CrashDamage) {
        let mut img = durable.to_vec();
        let mut d = CrashDamage::default();
        // Writes whose last sector may be the one torn at a byte boundary.
        let n_writes = unsynced
            .iter()
            .filter(|o| matches!(o, Op::Write { .. }))
            .count() as u64;
        let mix_at = if n_writes > 0 && rng.chance(1, 2) {
            Some(rng.below(n_writes))
        } else {
            None
        };
        let mut wi = 0u64;
        for op in unsynced {
            match op {
                Op::Sync => unreachable!("unsynced operations hold no sync"),
                Op::SetLen(_) => {
                    if rng.chance(1, 2) {
                        apply(&mut img, op);
                        d.set_len.0 += 1;
                    } else {
                        d.set_len.1 += 1;
                    }
                }
                Op::Write { off, data } => {
                    let this = wi;
                    wi += 1;
                    if data.is_empty() {
                        continue;
                    }
                    let (off, end) = (*off, *off + data.len() as u64);
                    let mode = rng.below(3);
                    let first = off / SECTOR;
                    let last = (end - 1) / SECTOR;
                    let mut keep: Vec<bool> = (first..=last)
                        .map(|_| match mode {
                            0 => true,
                            1 => false,
                            _ => rng.chance(1, 2),
                        })
                        .collect();
                    match mode {
                        0 => d.kept += 1,
                        1 => d.dropped += 1,
                        _ => d.torn += 1,
                    }
                    // The file's length may grow with the write even where
                    // its data is lost (the new bytes then read as zeros).
                    let any = keep.iter().any(|&k| k);
                    if img.len() < end as usize && (any || rng.chance(1, 2)) {
                        img.resize(end as usize, 0);
                    }
                    let mut mixed = None;
                    if mix_at == Some(this) {
                        // The last sector written holds a mix: a prefix of
                        // new bytes, the rest old (or the reverse).
                        let s = last * SECTOR;
                        let lo = s.max(off);
                        let cut = lo + rng.below(end - lo + 1);
                        mixed = Some((lo, cut, rng.chance(1, 2)));
                        *keep.last_mut().unwrap() = false;
                        d.mixed_sector = Some((s, cut - lo));
                    }
                    for (i, k) in keep.iter().enumerate() {
                        let s = (first + i as u64) * SECTOR;
                        let (a, b) = (s.max(off), (s + SECTOR).min(end));
                        let range = match mixed {
                            Some((lo, cut, new_first)) if s + SECTOR >= end && lo >= s => {
                                if new_first {
                                    (lo, cut)
                                } else {
                                    (cut, b)
                                }
                            }
                            _ if *k => (a, b),
                            _ => continue,
                        };
                        let (a, b) = range;
                        if b > a && (b as usize) <= img.len() {
                            img[a as usize..b as usize]
                                .copy_from_slice(&data[(a - off) as usize..(b - off) as usize]);
                        }
                    }
                }
            }
        }
        (img, d)
    }

    /// A commit found in the log: the write of its record and the sync that
    /// made it durable.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct CommitPoint {
        /// Index in the log of the (last) write of the commit record.
        pub record_write: usize,
        /// Index in the log of the sync after which the commit is durable.
        pub sync: usize,
    }

    /// Finds the commits in a log: a sync preceded (since the previous
    /// sync) by a write to a commit slot.
    pub fn commit_points(log: &[Op]) -> Vec<CommitPoint> {
        let mut out = Vec::new();
        let mut rec = None;
        for (i, op) in log.iter().enumerate() {
            match op {
                Op::Write { off, .. } if SLOTS.contains(off) => rec = Some(i),
                Op::Sync => {
                    if let Some(r) = rec.take() {
                        out.push(CommitPoint {
                            record_write: r,
                            sync: i,
                        });
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// What a committed state holds, as the public API shows it.
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct Snap {
        /// Every entry.
        pub entries: BTreeMap<Vec<u8>, Vec<u8>>,
        /// The metadata of the entries that have some.
        pub meta: BTreeMap<Vec<u8>, Vec<u8>>,
        /// The maximum file size.
        pub max_size: u64,
        /// The maximum age.
        pub max_age: Option<Duration>,
    }

    impl Snap {
        /// A short description for messages.
        pub fn describe(&self) -> String {
            let keys: Vec<String> = self
                .entries
                .iter()
                .take(12)
                .map(|(k, v)| format!("{}={}B", String::from_utf8_lossy(k), v.len()))
                .collect();
            format!(
                "{} entries [{}{}], cap {}, age {:?}",
                self.entries.len(),
                keys.join(" "),
                if self.entries.len() > 12 { " ..." } else { "" },
                self.max_size,
                self.max_age
            )
        }

        /// The first difference from `other`, for messages.
        pub fn diff(&self, other: &Snap) -> String {
            if self.max_size != other.max_size {
                return format!("cap {} vs {}", self.max_size, other.max_size);
            }
            if self.max_age != other.max_age {
                return format!("age {:?} vs {:?}", self.max_age, other.max_age);
            }
            let keys: BTreeSet<&Vec<u8>> =
                self.entries.keys().chain(other.entries.keys()).collect();
            for k in keys {
                for (what, x, y) in [
                    ("", &self.entries, &other.entries),
                    ("metadata ", &self.meta, &other.meta),
                ] {
                    let (a, b) = (x.get(k), y.get(k));
                    if a != b {
                        return format!(
                            "key {}: {what}{:?} vs {:?}",
                            String::from_utf8_lossy(k),
                            a.map(|v| v.len()),
                            b.map(|v| v.len())
                        );
                    }
                }
            }
            "equal".into()
        }
    }

    /// Reads every entry of `c` through the public API.
    pub fn read_snap(c: &DatasetFileCache) -> Result<Snap, Error> {
        let mut entries = BTreeMap::new();
        let mut meta = BTreeMap::new();
        for k in c.keys()? {
            let k = k?;
            match c.get(&k)? {
                Some(v) => {
                    match c.meta(&k)? {
                        Some(m) if !m.is_empty() => {
                            meta.insert(k.clone(), m);
                        }
                        Some(_) => {}
                        None => {
                            return Err(Error::InvalidArgument(format!(
                                "key {k:?} has a value but no metadata record"
                            )))
                        }
                    }
                    entries.insert(k, v.to_vec());
                }
                None => {
                    return Err(Error::InvalidArgument(format!(
                        "listed key {k:?} has no value"
                    )))
                }
            }
        }
        if entries.len() as u64 != c.len() {
            return Err(Error::InvalidArgument(format!(
                "len() is {} but {} keys are listed",
                c.len(),
                entries.len()
            )));
        }
        Ok(Snap {
            entries,
            meta,
            max_size: c.maximum_file_size(),
            max_age: c.maximum_age(),
        })
    }

    /// What the cache must hold after one operation, and what a commit made
    /// during it may hold.
    #[derive(Clone, Debug)]
    pub struct Window {
        /// What the operation was.
        pub what: String,
        /// Log length before the operation.
        pub start: usize,
        /// Log length after it.
        pub end: usize,
        /// The expected state before.
        pub before: Snap,
        /// The expected state after.
        pub after: Snap,
        /// Keys the cache dropped on its own (eviction) during the operation.
        pub evicted: BTreeSet<Vec<u8>>,
        /// The key a put replaces: a commit made during the put may lack it
        /// (with nothing else left to evict, a put evicts its key's old
        /// entry, spec §11.5).
        pub replaced: Option<Vec<u8>>,
        /// Whether the operation ends with everything durable (flush, clear,
        /// settings, drop): the newest commit then equals `after`.
        pub durable: bool,
    }

    impl Window {
        /// Checks a state committed during this operation: every key holds
        /// its value from before or after it, or is gone if it was evicted;
        /// settings are from before or after.
        pub fn allows(&self, s: &Snap) -> Result<(), String> {
            if s.max_size != self.before.max_size && s.max_size != self.after.max_size {
                return Err(format!("cap {} is neither before nor after", s.max_size));
            }
            if s.max_age != self.before.max_age && s.max_age != self.after.max_age {
                return Err(format!("age {:?} is neither before nor after", s.max_age));
            }
            let keys: BTreeSet<&Vec<u8>> = self
                .before
                .entries
                .keys()
                .chain(self.after.entries.keys())
                .chain(s.entries.keys())
                .collect();
            for k in keys {
                let got = s.entries.get(k);
                let got_meta = (got, s.meta.get(k));
                let ok = got_meta == (self.before.entries.get(k), self.before.meta.get(k))
                    || got_meta == (self.after.entries.get(k), self.after.meta.get(k))
                    || (got.is_none() && self.evicted.contains(k))
                    || (got.is_none() && self.replaced.as_ref() == Some(k))
                    || (got.is_none() && self.what == "clear");
                if !ok {
                    return Err(format!(
                        "key {}: holds {:?} bytes; before {:?}, after {:?}, evicted {}",
                        String::from_utf8_lossy(k),
                        got.map(|v| v.len()),
                        self.before.entries.get(k).map(|v| v.len()),
                        self.after.entries.get(k).map(|v| v.len()),
                        self.evicted.contains(k)
                    ));
                }
            }
            Ok(())
        }
    }

    /// Drives a cache on a recording backend and keeps the model: the
    /// expected state after every operation, with the log positions.
    pub struct Harness {
        /// Where the file lives.
        pub dir: PathBuf,
        /// The cache file.
        pub path: PathBuf,
        /// The disk log.
        pub log: Log,
        /// The open handle.
        pub cache: Option<DatasetFileCache>,
        /// Options used to open.
        pub opts: OpenOptions,
        /// The expected visible state now.
        pub model: Snap,
        /// One per operation.
        pub windows: Vec<Window>,
        /// The first log point a crash may hit (after a restart the log
        /// begins with the durable crash image).
        pub first_point: usize,
    }

    impl Harness {
        /// Creates a cache of maximum size `cap` in directory `dir`.
        pub fn create(dir: &Path, cap: u64, opts: OpenOptions) -> Result<Harness, Error> {
            let path = dir.join("sim.dfc");
            let log: Log = Default::default();
            let b = RecordingBackend::open(&path, log.clone())
                .map_err(|e| Error::InvalidArgument(e.to_string()))?;
            let cache = opts.create_backend(Box::new(b), cap)?;
            let model = Snap {
                max_size: cap,
                ..Default::default()
            };
            let end = log.lock().unwrap().len();
            Ok(Harness {
                dir: dir.to_path_buf(),
                path,
                log,
                cache: Some(cache),
                opts,
                windows: vec![Window {
                    what: "create".into(),
                    start: 0,
                    end,
                    before: model.clone(),
                    after: model.clone(),
                    evicted: Default::default(),
                    replaced: None,
                    durable: true,
                }],
                model,
                first_point: 0,
            })
        }

        /// The handle.
        pub fn c(&self) -> &DatasetFileCache {
            self.cache.as_ref().expect("open handle")
        }

        /// Length of the log now.
        pub fn log_len(&self) -> usize {
            self.log.lock().unwrap().len()
        }

        /// Runs one operation: `f` performs it and updates the model; then
        /// the model learns which keys the cache evicted.
        fn step(
            &mut self,
            what: String,
            durable: bool,
            f: impl FnOnce(&mut Harness) -> Result<(), String>,
        ) -> Result<(), String> {
            self.step_replacing(what, durable, None, f)
        }

        /// [`step`](Self::step) for a put that replaces the entry of
        /// `replaced`.
        fn step_replacing(
            &mut self,
            what: String,
            durable: bool,
            replaced: Option<Vec<u8>>,
            f: impl FnOnce(&mut Harness) -> Result<(), String>,
        ) -> Result<(), String> {
            let start = self.log_len();
            let before = self.model.clone();
            f(self)?;
            let mut evicted = BTreeSet::new();
            if let Some(c) = &self.cache {
                let gone: Vec<Vec<u8>> = self
                    .model
                    .entries
                    .keys()
                    .filter(|k| !c.contains_key(k).unwrap_or(true))
                    .cloned()
                    .collect();
                // Lowering the cap evicts, even when the call then fails.
                let may_evict = before.max_size != 0
                    || self.model.max_size != 0
                    || what.starts_with("set_maximum_file_size");
                for k in gone {
                    if !may_evict {
                        return Err(format!(
                            "{what}: key {} vanished from a cache without a maximum size",
                            String::from_utf8_lossy(&k)
                        ));
                    }
                    self.model.entries.remove(&k);
                    self.model.meta.remove(&k);
                    evicted.insert(k);
                }
                if c.len() != self.model.entries.len() as u64 {
                    return Err(format!(
                        "{what}: len() is {}, the model has {}",
                        c.len(),
                        self.model.entries.len()
                    ));
                }
            }
            let end = self.log_len();
            self.windows.push(Window {
                what,
                start,
                end,
                before,
                after: self.model.clone(),
                evicted,
                replaced,
                durable,
            });
            Ok(())
        }

        /// `put`.
        pub fn put(&mut self, k: &[u8], v: &[u8]) -> Result<(), String> {
            self.put_by("put", k, v, &[], |c| c.put(k, v))
        }

        /// `put_with_meta`.
        pub fn put_meta(&mut self, k: &[u8], v: &[u8], meta: &[u8]) -> Result<(), String> {
            self.put_by("put_with_meta", k, v, meta, |c| c.put_with_meta(k, v, meta))
        }

        /// `put_many` of `items` (one commit at its end). Only for caches
        /// without a maximum size: eviction may commit part of a batch, a
        /// state the windows do not describe.
        pub fn put_many(&mut self, items: &[(Vec<u8>, Vec<u8>)]) -> Result<(), String> {
            if self.model.max_size != 0 {
                return Err("put_many in the harness needs a cache without a maximum size".into());
            }
            self.step(format!("put_many of {} items", items.len()), true, |h| {
                let n = h
                    .c()
                    .put_many(items.iter().map(|(k, v)| (k, v)))
                    .map_err(|e| format!("put_many: {e}"))?;
                if n != items.len() as u64 {
                    return Err(format!("put_many stored {n} of {} items", items.len()));
                }
                for (k, v) in items {
                    h.model.entries.insert(k.clone(), v.clone());
                    h.model.meta.remove(k);
                }
                Ok(())
            })
        }

        /// `put_stream` of `v`, read in pieces.
        pub fn put_stream(&mut self, k: &[u8], v: &[u8]) -> Result<(), String> {
            self.put_by("put_stream", k, v, &[], |c| {
                c.put_stream(k, std::io::Cursor::new(v)).map(|_| ())
            })
        }

        /// One of the puts: `f` stores `v` under `k` with metadata `meta`
        /// (empty: none, which a plain put leaves).
        fn put_by(
            &mut self,
            what: &str,
            k: &[u8],
            v: &[u8],
            meta: &[u8],
            f: impl FnOnce(&DatasetFileCache) -> crate::Result<()>,
        ) -> Result<(), String> {
            self.step_replacing(
                format!("{what} {}", String::from_utf8_lossy(k)),
                false,
                Some(k.to_vec()),
                |h| {
                    match f(h.c()) {
                        Ok(()) => {
                            h.model.entries.insert(k.to_vec(), v.to_vec());
                            if meta.is_empty() {
                                h.model.meta.remove(k);
                            } else {
                                h.model.meta.insert(k.to_vec(), meta.to_vec());
                            }
                            Ok(())
                        }
                        // Refused (too large for the cap): the old value stays.
                        Err(Error::ValueTooLarge { .. }) => Ok(()),
                        Err(e) => Err(format!("{what}: {e}")),
                    }
                },
            )
        }

        /// `remove`.
        pub fn remove(&mut self, k: &[u8]) -> Result<(), String> {
            self.step(
                format!("remove {}", String::from_utf8_lossy(k)),
                false,
                |h| {
                    let had = h.c().remove(k).map_err(|e| format!("remove: {e}"))?;
                    let want = h.model.entries.remove(k).is_some();
                    h.model.meta.remove(k);
                    // A key the cache evicted (the model learns that after the
                    // operation) may be missing.
                    if had && !want {
                        return Err("remove found a key the model does not have".into());
                    }
                    Ok(())
                },
            )
        }

        /// `get`, checked against the model.
        pub fn get(&mut self, k: &[u8]) -> Result<(), String> {
            self.step(format!("get {}", String::from_utf8_lossy(k)), false, |h| {
                let got = h
                    .c()
                    .get(k)
                    .map_err(|e| format!("get: {e}"))?
                    .map(|v| v.to_vec());
                let want = h.model.entries.get(k);
                match (&got, want) {
                    (None, Some(_)) if h.model.max_size != 0 => {
                        // Evicted: the step learns it.
                        Ok(())
                    }
                    _ if got.as_ref() == want => {
                        if got.is_none() {
                            return Ok(());
                        }
                        // The metadata beside the value.
                        let m = h.c().meta(k).map_err(|e| format!("meta: {e}"))?;
                        let want_m = h.model.meta.get(k).cloned().unwrap_or_default();
                        match m {
                            Some(m) if m == want_m => Ok(()),
                            m => Err(format!(
                                "meta {}: {:?} bytes, model {} bytes",
                                String::from_utf8_lossy(k),
                                m.map(|m| m.len()),
                                want_m.len()
                            )),
                        }
                    }
                    _ => Err(format!(
                        "get {}: {:?} bytes, model {:?}",
                        String::from_utf8_lossy(k),
                        got.map(|v| v.len()),
                        want.map(|v| v.len())
                    )),
                }
            })
        }

        /// `flush`, then a [`check_scan`](Self::check_scan).
        pub fn flush(&mut self) -> Result<(), String> {
            self.step("flush".into(), true, |h| {
                h.c().flush().map_err(|e| format!("flush: {e}"))
            })?;
            self.check_scan()
        }

        /// `scan` of every entry against the model: the same keys in the
        /// same order, with the same values. A scan is not a use, so it
        /// changes nothing a later operation sees.
        pub fn check_scan(&self) -> Result<(), String> {
            let Some(c) = &self.cache else {
                return Ok(());
            };
            let name = |k: &[u8]| String::from_utf8_lossy(k).into_owned();
            let mut want = self.model.entries.iter();
            for e in c.scan(b"").map_err(|e| format!("scan: {e}"))? {
                let (k, v) = e.map_err(|e| format!("scan: {e}"))?;
                match want.next() {
                    Some((mk, mv)) if *mk == k && mv[..] == v[..] => {}
                    Some((mk, mv)) => {
                        return Err(format!(
                            "scan: {} ({} bytes) where the model has {} ({} bytes)",
                            name(&k),
                            v.len(),
                            name(mk),
                            mv.len()
                        ))
                    }
                    None => return Err(format!("scan: {} is not in the model", name(&k))),
                }
            }
            match want.next() {
                Some((mk, _)) => Err(format!("scan: {} is missing", name(mk))),
                None => Ok(()),
            }
        }

        /// `clear`.
        pub fn clear(&mut self) -> Result<(), String> {
            self.step("clear".into(), true, |h| {
                h.c().clear().map_err(|e| format!("clear: {e}"))?;
                h.model.entries.clear();
                h.model.meta.clear();
                Ok(())
            })
        }

        /// `set_maximum_file_size`.
        pub fn set_cap(&mut self, cap: u64) -> Result<(), String> {
            self.step(format!("set_maximum_file_size {cap}"), true, |h| {
                match h.c().set_maximum_file_size(cap) {
                    Ok(()) => {
                        h.model.max_size = cap;
                        Ok(())
                    }
                    Err(e) => Err(format!("set_maximum_file_size({cap}): {e}")),
                }
            })?;
            Ok(())
        }

        /// `set_maximum_age`.
        pub fn set_age(&mut self, age: Option<Duration>) -> Result<(), String> {
            self.step(format!("set_maximum_age {age:?}"), true, |h| {
                h.c()
                    .set_maximum_age(age)
                    .map_err(|e| format!("set_maximum_age: {e}"))?;
                h.model.max_age = age;
                Ok(())
            })
        }

        /// Drops the handle (which flushes) and opens the file again.
        pub fn reopen(&mut self) -> Result<(), String> {
            self.step("reopen".into(), true, |h| {
                drop(h.cache.take());
                let b = RecordingBackend::open(&h.path, h.log.clone())
                    .map_err(|e| format!("reopen: {e}"))?;
                let c = h
                    .opts
                    .open_backend(Box::new(b))
                    .map_err(|e| format!("reopen: {e}"))?;
                let s = read_snap(&c).map_err(|e| format!("reopen: read: {e}"))?;
                if s != h.model {
                    return Err(format!("reopened state differs: {}", s.diff(&h.model)));
                }
                h.cache = Some(c);
                Ok(())
            })
        }

        /// Continues from a crash: the file becomes `img` (whose state is
        /// `s`), the log restarts with it as its first, durable commit, and
        /// the file is reopened.
        pub fn restart_from(&mut self, img: &[u8], s: Snap) -> Result<(), String> {
            // The abandoned handle's last writes go to the old log and the
            // file is overwritten below.
            drop(self.cache.take());
            std::fs::write(&self.path, img).map_err(|e| format!("restart: {e}"))?;
            let log: Log = Arc::new(Mutex::new(vec![
                Op::Write {
                    off: 0,
                    data: img.to_vec(),
                },
                Op::SetLen(img.len() as u64),
                // A marker: the image counts as a commit (its record).
                Op::Write {
                    off: SLOTS[0],
                    data: Vec::new(),
                },
                Op::Sync,
            ]));
            self.log = log;
            self.first_point = 4;
            self.model = s.clone();
            self.windows = vec![Window {
                what: "restart after a crash".into(),
                start: 0,
                end: 4,
                before: s.clone(),
                after: s,
                evicted: Default::default(),
                replaced: None,
                durable: true,
            }];
            let b = RecordingBackend::open(&self.path, self.log.clone())
                .map_err(|e| format!("restart: {e}"))?;
            let c = self
                .opts
                .open_backend(Box::new(b))
                .map_err(|e| format!("restart: open: {e}"))?;
            self.cache = Some(c);
            Ok(())
        }

        /// The window (operation) whose log range holds log index `i`.
        pub fn window_of(&self, i: usize) -> Option<usize> {
            self.windows.iter().position(|w| w.start <= i && i < w.end)
        }
    }

    /// The problems of a report, as text.
    pub fn problems_of(rep: &crate::VerifyReport) -> Vec<String> {
        rep.problems.iter().map(|p| p.to_string()).collect()
    }

    /// Opens the image `img` written to `path`: read-only (read, verify),
    /// then read-write (verify, read again). Returns the state read, or a
    /// description of what went wrong. `extra` also writes one entry after
    /// reopening read-write, flushes, and checks it reopens with it.
    pub fn check_image(path: &Path, img: &[u8], extra: bool) -> Result<Snap, String> {
        std::fs::write(path, img).map_err(|e| format!("writing the image: {e}"))?;
        let ro = DatasetFileCache::open(path, true).map_err(|e| format!("read-only open: {e}"))?;
        let s = read_snap(&ro).map_err(|e| format!("read-only read: {e}"))?;
        let rep = ro.verify().map_err(|e| format!("read-only verify: {e}"))?;
        let p = problems_of(&rep);
        if !p.is_empty() {
            return Err(format!("read-only verify: {p:?}"));
        }
        drop(ro);
        let rw =
            DatasetFileCache::open(path, false).map_err(|e| format!("read-write open: {e}"))?;
        let rep = rw.verify().map_err(|e| format!("read-write verify: {e}"))?;
        let p = problems_of(&rep);
        if !p.is_empty() {
            return Err(format!("read-write verify: {p:?}"));
        }
        let s2 = read_snap(&rw).map_err(|e| format!("read-write read: {e}"))?;
        if s2 != s {
            return Err(format!("read-write sees another state: {}", s2.diff(&s)));
        }
        if extra {
            let v = b"written after the crash".repeat(20);
            rw.put(b"~after-crash", &v)
                .map_err(|e| format!("put after the crash: {e}"))?;
            rw.flush()
                .map_err(|e| format!("flush after the crash: {e}"))?;
            drop(rw);
            let again = DatasetFileCache::open(path, true)
                .map_err(|e| format!("reopen after the crash: {e}"))?;
            let mut want = s.clone();
            want.entries.insert(b"~after-crash".to_vec(), v);
            let got = read_snap(&again).map_err(|e| format!("read after the crash: {e}"))?;
            if want.max_size != 0 {
                // Under a cap the put may evict entries to keep its commit
                // possible; what stays must be unchanged.
                want.entries
                    .retain(|k, _| got.entries.contains_key(k) || k == b"~after-crash");
            }
            if got != want {
                return Err(format!("after writing post-crash: {}", got.diff(&want)));
            }
            let rep = again
                .verify()
                .map_err(|e| format!("verify after the crash: {e}"))?;
            if !rep.is_ok() {
                // The writer's commit replaced the incomplete record: no
                // tolerance here.
                return Err(format!(
                    "verify after the post-crash write: {:?}",
                    rep.problems
                ));
            }
        }
        Ok(s)
    }

    /// Replays a log front to back and visits crash points. Keeps the
    /// durable image (every operation up to the last sync applied).
    pub struct Replayer<'a> {
        log: &'a [Op],
        durable: Vec<u8>,
        /// Index after the last sync applied to `durable`.
        pub synced: usize,
    }

    impl<'a> Replayer<'a> {
        /// Starts at the empty file.
        pub fn new(log: &'a [Op]) -> Self {
            Replayer {
                log,
                durable: Vec::new(),
                synced: 0,
            }
        }

        /// Moves to crash point `k` (operations `..k` issued): applies the
        /// synced prefix. `k` must not go backwards.
        pub fn advance(&mut self, k: usize) {
            if let Some(last_sync) = self.log[..k].iter().rposition(|o| *o == Op::Sync) {
                if last_sync + 1 > self.synced {
                    for op in &self.log[self.synced..=last_sync] {
                        apply(&mut self.durable, op);
                    }
                    self.synced = last_sync + 1;
                }
            }
        }

        /// The durable image at the current point.
        pub fn durable(&self) -> &[u8] {
            &self.durable
        }

        /// A power-loss image at crash point `k` (after [`advance`]).
        pub fn image(&self, k: usize, rng: &mut Rng) -> (Vec<u8>, CrashDamage) {
            crash_image(&self.durable, &self.log[self.synced..k], rng)
        }

        /// The image at crash point `k` (after [`advance`]) when every
        /// unsynced operation reached the disk except the write at log
        /// index `lost`: one lost write, the case random damage rarely
        /// builds when a commit writes many pages.
        pub fn lost_write_image(&self, k: usize, lost: usize) -> Vec<u8> {
            let mut img = self.durable.clone();
            for (i, op) in self.log[self.synced..k].iter().enumerate() {
                if self.synced + i != lost {
                    apply(&mut img, op);
                }
            }
            img
        }

        /// Log indexes of the writes not yet synced at point `k`.
        pub fn unsynced_writes(&self, k: usize) -> Vec<usize> {
            (self.synced..k)
                .filter(|&i| matches!(self.log[i], Op::Write { .. }))
                .collect()
        }
    }

    /// The states committed in `log`, read from the clean image at each
    /// commit (written to `scratch`). Each is checked: it opens, verifies,
    /// and fits the operation it was made in.
    pub fn commit_states(
        h: &Harness,
        log: &[Op],
        scratch: &Path,
    ) -> Result<Vec<(CommitPoint, Snap)>, String> {
        let points = commit_points(log);
        let mut r = Replayer::new(log);
        let mut out: Vec<(CommitPoint, Snap)> = Vec::new();
        for p in points {
            r.advance(p.sync + 1);
            let s = check_image(scratch, r.durable(), false).map_err(|e| {
                format!(
                    "the clean image of the commit synced at log {}: {e}",
                    p.sync
                )
            })?;
            if let Some(w) = h.window_of(p.sync) {
                let w = &h.windows[w];
                w.allows(&s).map_err(|e| {
                    format!(
                        "commit synced at log {} during `{}` holds a state the model does not allow: {e}",
                        p.sync, w.what
                    )
                })?;
            }
            out.push((p, s));
        }
        // After an operation that makes everything durable, the newest
        // commit is exactly the model.
        for w in h.windows.iter().filter(|w| w.durable) {
            let newest = out.iter().rev().find(|(p, _)| p.sync < w.end);
            match newest {
                Some((p, s)) if *s != w.after => {
                    return Err(format!(
                        "after `{}` (log {}..{}) the newest commit (synced at {}) differs from the model: {}",
                        w.what,
                        w.start,
                        w.end,
                        p.sync,
                        s.diff(&w.after)
                    ))
                }
                Some(_) => {}
                None => return Err(format!("no commit by the end of `{}`", w.what)),
            }
        }
        Ok(out)
    }

    /// The states a crash at log point `k` may leave: the last commit
    /// durable before `k`, and the next one if its record was written.
    pub fn allowed_at(states: &[(CommitPoint, Snap)], k: usize) -> Vec<&Snap> {
        let mut out = Vec::new();
        let done = states.iter().rposition(|(p, _)| p.sync < k);
        if let Some(i) = done {
            out.push(&states[i].1);
        }
        let next = done.map_or(0, |i| i + 1);
        if let Some((p, s)) = states.get(next) {
            if p.record_write < k {
                out.push(s);
            }
        }
        out
    }

    /// Simulates a power loss at log point `k` with randomness `seed`:
    /// builds the image, opens it, and checks the state is an allowed one.
    /// Before the first commit (a crash during create) any typed error or
    /// an empty cache is fine.
    pub fn crash_check(
        r: &Replayer<'_>,
        states: &[(CommitPoint, Snap)],
        k: usize,
        seed: u64,
        scratch: &Path,
        extra: bool,
    ) -> Result<Snap, String> {
        let mut rng = Rng(seed);
        let (img, damage) = r.image(k, &mut rng);
        check_crash_image(
            states,
            k,
            &img,
            scratch,
            extra,
            &format!("seed {seed:#x}, damage {damage:?}"),
        )
    }

    /// As [`crash_check`], for a given image at crash point `k`; `what`
    /// describes the damage in messages.
    pub fn check_crash_image(
        states: &[(CommitPoint, Snap)],
        k: usize,
        img: &[u8],
        scratch: &Path,
        extra: bool,
        what: &str,
    ) -> Result<Snap, String> {
        let allowed = allowed_at(states, k);
        // Before the first commit (create) completes there is no state to
        // keep: a typed error is fine too.
        let created = states.first().is_some_and(|(p, _)| p.sync < k);
        let ctx = || format!("crash at log point {k}, {what}");
        match check_image(scratch, img, extra) {
            Ok(s) => {
                if !created && s.entries.is_empty() {
                    return Ok(s);
                }
                if allowed.contains(&&s) {
                    Ok(s)
                } else {
                    Err(format!(
                        "{}: opened a state no commit made: {}; allowed: {}",
                        ctx(),
                        s.describe(),
                        allowed
                            .iter()
                            .map(|a| format!("[{} / diff {}]", a.describe(), s.diff(a)))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ))
                }
            }
            Err(e) if !created => {
                // A torn create: the file must be refused with a typed error.
                open_error_is_typed(scratch).map_err(|x| format!("{}: {x} ({e})", ctx()))
            }
            Err(e) => Err(format!("{}: {e}", ctx())),
        }
    }

    /// A crash during create: the file is refused with a typed error, or
    /// opens empty; its header may be damaged (torn with the record
    /// intact), which verify reports until the first commit rewrites it.
    fn open_error_is_typed(path: &Path) -> Result<Snap, String> {
        match DatasetFileCache::open(path, true) {
            Err(Error::NotACache { .. } | Error::Corrupt { .. }) => Ok(Snap::default()),
            Err(e) => Err(format!("a torn create gives an unexpected error: {e}")),
            Ok(c) => {
                let s = read_snap(&c).map_err(|e| format!("a torn create: read: {e}"))?;
                let rep = c
                    .verify()
                    .map_err(|e| format!("a torn create: verify: {e}"))?;
                let other: Vec<String> = problems_of(&rep)
                    .into_iter()
                    .filter(|p| {
                        !p.starts_with("file header") && !p.starts_with("block storage header")
                    })
                    .collect();
                if !s.entries.is_empty() || !other.is_empty() {
                    return Err(format!(
                        "a torn create opens with {} entries, problems {other:?}",
                        s.entries.len()
                    ));
                }
                Ok(s)
            }
        }
    }
}

/// An arbitrary sequence of cache operations decoded from `data`, checked
/// against a model (`sim::Harness`): puts, removes, gets, flushes, reopens,
/// clear, cap and age changes, and simulated power losses at a chosen
/// point of the disk log, after which the recovered state must be one the
/// spec allows and the run continues from it. The first byte chooses the
/// cap (bits 0-1), compression (bit 2), spilling transactions (bit 3) and
/// whether two of the six puts are `put_with_meta` and `put_stream` (bit 4).
pub fn ops(data: &[u8]) {
    use sim::*;
    let mut input = data.iter().copied();
    let Some(cfg) = input.next() else {
        return;
    };
    let dir = match std::path::Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()),
        false => tempfile::tempdir(),
    };
    let Ok(dir) = dir else {
        return;
    };
    let cap = [0, 1 << 20, 2 << 20, 1536 << 10][(cfg & 3) as usize];
    let mut opts = crate::OpenOptions::new()
        .sync(true)
        .compression_level((cfg & 4 != 0).then_some(3))
        .max_dirty_pages(64);
    // Bit 3: long transactions spill. The public minimum of 64 decoded
    // pages needs thousands of puts to pass; two pages (below what any put
    // dirties) make nearly every put without a flush spill, and 64 keys
    // give the trees more than one leaf.
    let spill = cfg & 8 != 0;
    if spill {
        opts.max_dirty_pages = 2;
    }
    let keys = if spill { 64 } else { 16 };
    // Bit 4: puts 4 and 5 become put_with_meta and put_stream (values past
    // 1 MiB among them), which write several extents for one entry.
    let multi = cfg & 16 != 0;
    let mut h = Harness::create(dir.path(), cap, opts).expect("create");
    let scratch = dir.path().join("crash.dfc");
    let mut n = 0u32;
    while let Some(op) = input.next() {
        n += 1;
        if n > 48 {
            break;
        }
        let a = input.next().unwrap_or(0);
        let key = format!("k{:02}", a % keys).into_bytes();
        let r = match op % 16 {
            0..=5 => {
                let b = input.next().unwrap_or(0) as usize;
                let len = match b >> 6 {
                    0 => b & 63,
                    1 => 300 + (b & 63) * 40,
                    2 => 5000 + (b & 63) * 500,
                    // Streams cross the 1 MiB frame size from (b & 63) = 13.
                    _ if multi && op % 16 == 5 => 1_000_000 + (b & 63) * 4000,
                    _ => 40_000 + (b & 63) * 4000,
                };
                let mut r = Rng(((n as u64) << 16) | b as u64 | ((a as u64) << 8));
                let v: Vec<u8> = if op & 1 == 0 {
                    (0..len).map(|i| (i / 7) as u8 ^ a).collect()
                } else {
                    (0..len).map(|_| r.next_u64() as u8).collect()
                };
                match op % 16 {
                    4 if multi => {
                        // Inline metadata, or (from a = 128) an extent of its own.
                        let m = if a & 128 == 0 {
                            a as usize % 90
                        } else {
                            300 + a as usize * 20
                        };
                        let meta: Vec<u8> = (0..m).map(|i| (i as u8) ^ a ^ 0x5a).collect();
                        h.put_meta(&key, &v, &meta)
                    }
                    5 if multi => h.put_stream(&key, &v),
                    _ => h.put(&key, &v),
                }
            }
            6 => h.remove(&key),
            7 => h.get(&key),
            8 => h.flush(),
            9 => h.reopen(),
            10 => h.clear(),
            11 => h.set_cap([1 << 20, 2 << 20, 0, 1536 << 10][(a & 3) as usize]),
            12 => h.set_age([None, Some(std::time::Duration::from_secs(3600))][(a & 1) as usize]),
            _ => {
                // A power loss at a point of the log chosen by the input.
                let b = input.next().unwrap_or(0);
                let log: Vec<Op> = h.log.lock().unwrap().clone();
                let states = commit_states(&h, &log, &scratch).unwrap_or_else(|e| panic!("{e}"));
                let k = h.first_point
                    + ((a as usize) << 8 | b as usize) % (log.len() + 1 - h.first_point);
                let mut rep = Replayer::new(&log);
                rep.advance(k);
                let seed = ((op as u64) << 16) | ((a as u64) << 8) | b as u64;
                let s = crash_check(&rep, &states, k, seed, &scratch, false)
                    .unwrap_or_else(|e| panic!("{e}"));
                let (img, _) = rep.image(k, &mut Rng(seed));
                if states.first().is_some_and(|(p, _)| p.sync < k) {
                    h.restart_from(&img, s)
                } else {
                    // A crash during create: start over.
                    return;
                }
            }
        };
        if let Err(e) = r {
            panic!("operation {n}: {e}");
        }
    }
    h.flush().unwrap_or_else(|e| panic!("final flush: {e}"));
    h.reopen().unwrap_or_else(|e| panic!("final reopen: {e}"));
    h.check_scan().unwrap_or_else(|e| panic!("final scan: {e}"));
    let rep = h.c().verify().expect("verify");
    let p = sim::problems_of(&rep);
    assert!(p.is_empty(), "verify: {p:?}");
}
