//! Creating, opening and validating cache files (spec/FORMAT.md §10).
//!
//! Nothing is written to a file before it is known to be a dfcache file (or
//! empty): a text file given by mistake comes back as
//! [`Error::NotACache`] untouched.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::backend::{FileBackend, StorageBackend};
use super::commit_record::CommitRecord;
use super::mapping::Mapping;
use super::{mapping_len, Pins, Snapshot, Store, StoreOptions};
use crate::error::{Error, Result};
use crate::header::{HeaderProblem, Headers, DATA_START, PAGE, SLOT_OFFSETS};

/// The smallest maximum file size a cache accepts (besides 0 = unlimited).
pub(crate) const MIN_MAX_FILE_SIZE: u64 = 1 << 20;

/// An opened file: the store, its committed state, and the physical length.
pub(crate) struct Opened {
    pub store: Store,
    pub snap: Arc<Snapshot>,
    pub phys_len: u64,
    /// The header does not mirror the committed record (damaged or stale);
    /// a writer rewrites it at its next commit.
    pub header_stale: bool,
}

/// What the first bytes of an existing file say it is.
enum Probe {
    Empty,
    Cache,
    Foreign(Error),
}

fn read_head(b: &dyn StorageBackend, len: u64) -> Result<Vec<u8>> {
    let n = len.min(DATA_START) as usize;
    let mut buf = vec![0u8; n];
    b.read_at(&mut buf, 0)
        .map_err(|e| Error::io("reading the header", e))?;
    Ok(buf)
}

fn slot_records(head: &[u8]) -> [Result<CommitRecord>; 2] {
    SLOT_OFFSETS.map(|off| {
        let s = off as usize;
        match head.get(s..(s + PAGE as usize).min(head.len())) {
            Some(b) if !b.is_empty() => CommitRecord::decode(b, off),
            _ => Err(Error::corrupt(
                "commit record",
                off,
                "missing: the file is too short",
            )),
        }
    })
}

fn probe(b: &dyn StorageBackend) -> Result<Probe> {
    let len = b
        .len()
        .map_err(|e| Error::io("reading the file length", e))?;
    if len == 0 {
        return Ok(Probe::Empty);
    }
    let head = read_head(b, len)?;
    match Headers::decode(&head) {
        Ok(_) | Err(HeaderProblem::Field(_)) | Err(HeaderProblem::BadBlockStorage(_)) => {
            Ok(Probe::Cache)
        }
        Err(p) => {
            if slot_records(&head).iter().any(|r| r.is_ok()) {
                Ok(Probe::Cache)
            } else if let HeaderProblem::TooShort(_) = p {
                if head.len() >= 8 || crate::header::MAGIC.starts_with(&head) {
                    // A torn create: our magic but nothing after it.
                    Ok(Probe::Cache)
                } else {
                    Ok(Probe::Foreign(p.into_error()))
                }
            } else {
                Ok(Probe::Foreign(p.into_error()))
            }
        }
    }
}

/// Writes a fresh, empty cache file of maximum size `cap` into `b`.
fn init(b: &dyn StorageBackend, cap: u64, sync: bool) -> Result<()> {
    let io = |op| move |e| Error::io(op, e);
    b.set_len(0).map_err(io("truncating the file"))?;
    let mut page = vec![0u8; PAGE as usize];
    let h = Headers {
        max_file_size: cap,
        ..Default::default()
    };
    page[..h.encode().len()].copy_from_slice(&h.encode());
    b.write_at(&page, 0).map_err(io("writing the header"))?;
    let now = super::now_ms();
    let r = CommitRecord {
        seq: 1,
        file_len: DATA_START,
        max_file_size: cap,
        committed_at_ms: now,
        time_base_ms: now,
        ..Default::default()
    };
    b.write_at(&r.encode(), SLOT_OFFSETS[r.slot()])
        .map_err(io("writing the commit record"))?;
    b.set_len(DATA_START).map_err(io("sizing the file"))?;
    if sync {
        b.sync().map_err(io("syncing"))?;
    }
    Ok(())
}

/// The writer's lock on the file, released explicitly when dropped.
///
/// Closing the file is not enough to release it: the lock belongs to the
/// open file, and a child process being started by another thread holds a
/// copy of every descriptor of its parent until it runs its program. A
/// handle dropped meanwhile kept the file locked, and opening it again at
/// once failed with [`Error::Locked`] (16-30 % of the time in a loop
/// beside a thread spawning processes).
#[derive(Debug)]
pub(crate) struct WriterLock(std::fs::File);

impl Drop for WriterLock {
    fn drop(&mut self) {
        // Unlocking releases the lock for every copy of the descriptor.
        let _ = self.0.unlock();
    }
}

fn lock(b: &dyn StorageBackend) -> Result<WriterLock> {
    // A second descriptor for the same open file: the lock is the open
    // file's, and this one outlives the backend's until the lock is gone.
    let f = b
        .file()
        .try_clone()
        .map_err(|e| Error::io("locking the file", e))?;
    match f.try_lock() {
        Ok(()) => Ok(WriterLock(f)),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked { path: None }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io("locking the file", e)),
    }
}

/// Checks that `max` is a usable maximum file size.
pub(crate) fn check_max_size(max: u64) -> Result<()> {
    if max != 0 && max < MIN_MAX_FILE_SIZE {
        return Err(Error::InvalidArgument(format!(
            "maximum file size {max} is below the minimum of {MIN_MAX_FILE_SIZE} bytes (0 means unlimited)"
        )));
    }
    if max > i64::MAX as u64 {
        return Err(Error::InvalidArgument(format!(
            "maximum file size {max} is too large"
        )));
    }
    Ok(())
}

fn sync_dir(path: &Path) {
    // Makes the new directory entry durable; best effort (some file systems
    // refuse to open directories).
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// Creates (or overwrites) a cache file at `path`.
pub(crate) fn create(
    path: &Path,
    cap: u64,
    opts: StoreOptions,
    pins: Arc<dyn Pins>,
) -> Result<Opened> {
    check_max_size(cap)?;
    let existed = path.exists();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io("opening", e).with_path(path))?;
    let backend = FileBackend::new(file);
    create_backend(Box::new(backend), Some(path.to_path_buf()), cap, opts, pins)
        .map_err(|e| e.with_path(path))
        .inspect(|_| {
            if !existed {
                sync_dir(path)
            }
        })
}

/// Creates a cache in `backend` (which must be empty or hold a cache).
pub(crate) fn create_backend(
    backend: Box<dyn StorageBackend>,
    path: Option<PathBuf>,
    cap: u64,
    opts: StoreOptions,
    pins: Arc<dyn Pins>,
) -> Result<Opened> {
    check_max_size(cap)?;
    let lock = lock(&*backend)?;
    if let Probe::Foreign(e) = probe(&*backend)? {
        return Err(e);
    }
    init(&*backend, cap, opts.sync)?;
    open_locked(backend, Some(lock), path, false, opts, pins)
}

/// Opens an existing cache file.
pub(crate) fn open(
    path: &Path,
    read_only: bool,
    opts: StoreOptions,
    pins: Arc<dyn Pins>,
) -> Result<Opened> {
    let file = OpenOptions::new()
        .read(true)
        .write(!read_only)
        .open(path)
        .map_err(|e| Error::io("opening", e).with_path(path))?;
    open_backend(
        Box::new(FileBackend::new(file)),
        Some(path.to_path_buf()),
        read_only,
        opts,
        pins,
    )
    .map_err(|e| e.with_path(path))
}

/// Opens the cache in `backend`.
pub(crate) fn open_backend(
    backend: Box<dyn StorageBackend>,
    path: Option<PathBuf>,
    read_only: bool,
    opts: StoreOptions,
    pins: Arc<dyn Pins>,
) -> Result<Opened> {
    let lock = if read_only {
        None
    } else {
        Some(lock(&*backend)?)
    };
    open_locked(backend, lock, path, read_only, opts, pins)
}

/// Reads and checks the committed state; the writer lock (if any) is held.
fn open_locked(
    backend: Box<dyn StorageBackend>,
    lock: Option<WriterLock>,
    path: Option<PathBuf>,
    read_only: bool,
    opts: StoreOptions,
    pins: Arc<dyn Pins>,
) -> Result<Opened> {
    let (len, head, chosen) = if read_only {
        read_stable(&*backend)?
    } else {
        let len = backend
            .len()
            .map_err(|e| Error::io("reading the file length", e))?;
        let head = read_head(&*backend, len)?;
        let chosen = choose_record(&*backend, &head, len);
        (len, head, chosen)
    };
    let header = Headers::decode(&head);
    let record = match chosen {
        Ok(r) => r,
        Err(e) => {
            // With neither a valid header nor a record, the header decides
            // what kind of file this is.
            return Err(match &header {
                Err(p) if slot_records(&head).iter().all(|r| r.is_err()) => p.clone().into_error(),
                _ => e,
            });
        }
    };
    let header_stale = match header {
        Ok(h) => {
            h.max_file_size != record.max_file_size
                || h.primary_root != record.trees[crate::btree::TreeId::PRIMARY.0 as usize].page
        }
        Err(_) => true,
    };
    let map_len = if read_only {
        mapping_len(len.max(record.file_len), 0)
    } else {
        mapping_len(record.file_len, record.max_file_size)
    };
    let mapping = Arc::new(Mapping::new(backend.file(), map_len)?);
    let store = Store {
        backend,
        _lock: lock,
        path,
        read_only,
        pins,
        opts,
    };
    // Bytes past the committed length (left by an unfinished transaction)
    // are ignored; the writer's first commit cuts them off. Opening itself
    // never writes.
    Ok(Opened {
        store,
        snap: Arc::new(Snapshot::new(record, mapping)),
        phys_len: len,
        header_stale,
    })
}

/// Reads the head and chooses the record as a seqlock section: a writer in
/// another process may commit meanwhile (and reuse the space of the state
/// before), so the choice stands only if the commit slots did not change
/// while it was made (spec §9.1).
fn read_stable(backend: &dyn StorageBackend) -> Result<(u64, Vec<u8>, Result<CommitRecord>)> {
    let mut last = None;
    for _ in 0..STABLE_READ_TRIES {
        let (len, head) = head_then_len(backend)?;
        let chosen = choose_record(backend, &head, len);
        let again = read_head(backend, len)?;
        let slots = SLOT_OFFSETS[0] as usize..head.len().min(DATA_START as usize);
        if again.get(slots.clone()) == head.get(slots) {
            return Ok((len, head, chosen));
        }
        last = Some((len, head, chosen));
        std::thread::yield_now();
    }
    // The slots kept changing: report what the last attempt found.
    last.ok_or_else(|| crate::internal!("no attempt to read the commit records"))
}

/// How often opening read-only retries while another process commits.
const STABLE_READ_TRIES: usize = 1000;

/// Picks the committed state: the valid record with the highest sequence
/// number, unless it is a one-phase record whose check list fails (its
/// commit did not complete; its predecessor is used). `head` holds the
/// file's first bytes (up to 12288), `len` its length.
pub(crate) fn choose_record(
    backend: &dyn StorageBackend,
    head: &[u8],
    len: u64,
) -> Result<CommitRecord> {
    let [r0, r1] = slot_records(head);
    let mut valid: Vec<CommitRecord> = [r0, r1].into_iter().filter_map(|r| r.ok()).collect();
    if valid.is_empty() {
        return Err(Error::corrupt(
            "commit record",
            SLOT_OFFSETS[0],
            "neither commit slot holds a valid record",
        ));
    }
    valid.sort_by_key(|r| std::cmp::Reverse(r.seq));
    let mut last_err = None;
    for (i, r) in valid.iter().enumerate() {
        if r.file_len > len {
            // Commits make the file's length durable before a record names
            // it (one-phase commits never grow it), so this is damage, not
            // a crash: no fallback.
            last_err = Some(Error::corrupt(
                "file",
                len,
                format!(
                    "truncated: the committed state needs {} bytes, the file has {len}",
                    r.file_len
                ),
            ));
            break;
        }
        if let Some(checks) = &r.checks {
            if !verify_checks(backend, checks)? {
                // The transaction did not complete; its predecessor is the
                // state of the last completed flush.
                last_err = Some(Error::corrupt(
                    "commit record",
                    SLOT_OFFSETS[r.slot()],
                    "one-phase commit did not complete",
                ));
                if i + 1 < valid.len() && valid[i + 1].seq + 1 == r.seq {
                    continue;
                }
                break;
            }
        }
        return Ok(r.clone());
    }
    Err(last_err.unwrap_or_else(|| {
        Error::corrupt("commit record", SLOT_OFFSETS[0], "no usable commit record")
    }))
}

/// Re-reads the commit records of an open file (read-only handles following
/// a writer): the newest usable committed state.
pub(crate) fn reload(backend: &dyn StorageBackend) -> Result<CommitRecord> {
    let (len, head) = head_then_len(backend)?;
    choose_record(backend, &head, len)
}

/// Reads the file's first bytes, then its length. In this order, because
/// a writer in another process makes a longer file durable before a record
/// names it (§7.2): a length read before the head may predate a record the
/// head shows, which would look like a truncated file.
fn head_then_len(backend: &dyn StorageBackend) -> Result<(u64, Vec<u8>)> {
    let len_of = || {
        backend
            .len()
            .map_err(|e| Error::io("reading the file length", e))
    };
    let head = read_head(backend, len_of()?)?;
    Ok((len_of()?, head))
}

/// Whether every range a one-phase record lists holds the bytes it wrote.
fn verify_checks(
    b: &dyn StorageBackend,
    checks: &[super::commit_record::CheckRange],
) -> Result<bool> {
    let mut buf = Vec::new();
    for c in checks {
        buf.resize(c.len as usize, 0);
        match b.read_at(&mut buf, c.offset) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(Error::io("reading a commit's check list", e)),
        }
        if crc32fast::hash(&buf) != c.crc {
            return Ok(false);
        }
    }
    Ok(true)
}
