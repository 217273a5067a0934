//! A read-only handle follows a writer that uses the same file through
//! another handle (as another process would): it never returns wrong data,
//! and it sees newer commits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dfcache::{DatasetFileCache, Flushable, OpenOptions};

/// A value that names its key and version and checks itself.
fn value(key: u32, version: u32, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&key.to_le_bytes());
    v.extend_from_slice(&version.to_le_bytes());
    let mut x = ((key as u64) << 32) | version as u64 | 1;
    while v.len() + 4 < len.max(12) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push(x as u8);
    }
    let c = crc32fast::hash(&v);
    v.extend_from_slice(&c.to_le_bytes());
    v
}

fn check(key: u32, v: &[u8]) -> u32 {
    let (body, crc) = v.split_at(v.len() - 4);
    assert_eq!(
        u32::from_le_bytes(body[0..4].try_into().unwrap()),
        key,
        "value of another key"
    );
    assert_eq!(
        crc32fast::hash(body),
        u32::from_le_bytes(crc.try_into().unwrap()),
        "torn value"
    );
    u32::from_le_bytes(body[4..8].try_into().unwrap())
}

#[test]
fn read_only_handle_follows_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.dfc");
    // A cap, so that the writer reuses space constantly.
    let w = OpenOptions::new()
        .sync(false)
        .create(&path, 4 << 20)
        .unwrap();
    for k in 0..200u32 {
        w.put(
            &k.to_be_bytes(),
            &value(k, 0, 3000 + (k as usize % 5) * 1000),
        )
        .unwrap();
    }
    w.flush().unwrap();
    let r = Arc::new(DatasetFileCache::open(&path, true).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    // Each reader's newest version seen and reads made, for the writer to
    // wait on (the readers must run however the threads are scheduled).
    let seen_by: Arc<[std::sync::atomic::AtomicU64; 4]> = Arc::new(Default::default());
    let readers: Vec<_> = (0..2)
        .map(|t| {
            let r = r.clone();
            let stop = stop.clone();
            let seen_by = seen_by.clone();
            std::thread::spawn(move || {
                let mut newest = 0;
                let mut x = 99 + t;
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let k = (x % 200) as u32;
                    if let Some(v) = r.get(&k.to_be_bytes()).unwrap() {
                        newest = newest.max(check(k, &v));
                    }
                    reads += 1;
                    seen_by[2 * t as usize].store(newest as u64, Ordering::Relaxed);
                    seen_by[2 * t as usize + 1].store(reads, Ordering::Relaxed);
                    if reads.is_multiple_of(64) {
                        for key in r.keys().unwrap() {
                            assert_eq!(key.unwrap().len(), 4);
                        }
                    }
                }
                (newest, reads)
            })
        })
        .collect();
    let mut x = 7u64;
    for version in 1..=150u32 {
        for _ in 0..40 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = (x % 200) as u32;
            w.put(
                &k.to_be_bytes(),
                &value(k, version, 2000 + (x % 9000) as usize),
            )
            .unwrap();
        }
        w.flush().unwrap();
    }
    // Let both readers reach the final state (a few reads of it).
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < until
        && (0..2).any(|t| {
            seen_by[2 * t].load(Ordering::Relaxed) < 150
                || seen_by[2 * t + 1].load(Ordering::Relaxed) <= 100
        })
    {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    stop.store(true, Ordering::Relaxed);
    let mut seen = 0;
    for h in readers {
        let (newest, reads) = h.join().unwrap();
        assert!(reads > 100);
        seen = seen.max(newest);
    }
    assert!(
        seen > 100,
        "the readers followed the writer (newest version seen: {seen})"
    );
    assert_eq!(r.len(), w.len(), "after following, same entry count");
    assert!(r.verify().unwrap().is_ok());
}

/// A read-only backend that lets another handle commit right after it
/// measured the file's length, once: the race of a reader opening while a
/// writer grows the file.
struct CommitAfterLen {
    inner: dfcache::FileBackend,
    hook: parking_lot::Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl dfcache::StorageBackend for CommitAfterLen {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.inner.write_at(buf, offset)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync(&self) -> std::io::Result<()> {
        self.inner.sync()
    }
    fn len(&self) -> std::io::Result<u64> {
        let n = self.inner.len()?;
        if let Some(commit) = self.hook.lock().take() {
            commit();
        }
        Ok(n)
    }
    fn file(&self) -> &std::fs::File {
        self.inner.file()
    }
}

#[test]
fn opening_read_only_while_a_writer_grows_the_file_is_not_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.dfc");
    let w = Arc::new(OpenOptions::new().sync(false).create(&path, 0).unwrap());
    w.put(&0u32.to_be_bytes(), &value(0, 0, 100)).unwrap();
    w.flush().unwrap();
    let before = std::fs::metadata(&path).unwrap().len();
    let writer = w.clone();
    let backend = CommitAfterLen {
        inner: dfcache::FileBackend::new(std::fs::File::open(&path).unwrap()),
        hook: parking_lot::Mutex::new(Some(Box::new(move || {
            // Enough to grow the file: the new record names a length the
            // reader's first measurement did not see.
            for k in 1..40u32 {
                writer.put(&k.to_be_bytes(), &value(k, 1, 20_000)).unwrap();
            }
            writer.flush().unwrap();
        }))),
    };
    let r = OpenOptions::new()
        .read_only(true)
        .open_backend(Box::new(backend))
        .unwrap();
    assert!(
        std::fs::metadata(&path).unwrap().len() > before,
        "the writer grew the file"
    );
    assert_eq!(r.len(), 40, "the reader opened at the writer's new commit");
    for k in 0..40u32 {
        let v = r.get(&k.to_be_bytes()).unwrap().unwrap();
        check(k, &v);
    }
}
