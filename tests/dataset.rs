//! Read-through over datasets: single-flight, negative entries, source
//! errors, revisions, layered caches, maximum age, shrinking the cap.

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use dfcache::{CachedDataset, Dataset, DatasetFileCache, DatasetId, Error, Flushable, OpenOptions};

/// A source that counts its reads; block `i` exists unless `i % 5 == 3`,
/// and reading block 13 fails.
struct Source {
    guid: uuid::Uuid,
    revision: AtomicI32,
    reads: AtomicU64,
    delay: Duration,
}

impl Source {
    fn new(delay_ms: u64) -> Arc<Source> {
        Arc::new(Source {
            guid: uuid::Uuid::from_u128(0x0DA7_A5E7),
            revision: AtomicI32::new(1),
            reads: AtomicU64::new(0),
            delay: Duration::from_millis(delay_ms),
        })
    }
}

fn block(rev: i32, i: u64) -> Vec<u8> {
    let mut v = format!("rev {rev} block {i} ").into_bytes();
    v.resize(1000 + (i as usize % 7) * 700, (i as u8) ^ (rev as u8));
    v
}

#[derive(Debug)]
struct Broken(u64);

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "server said 503 for block {}", self.0)
    }
}

impl std::error::Error for Broken {}

impl Dataset for Source {
    fn id(&self) -> DatasetId {
        DatasetId::new(self.guid, self.revision.load(Ordering::SeqCst))
    }

    fn read_block(&self, i: u64) -> dfcache::Result<Option<Vec<u8>>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(self.delay);
        if i == 13 {
            return Err(Error::Source(Box::new(Broken(i))));
        }
        Ok((i % 5 != 3).then(|| block(self.revision.load(Ordering::SeqCst), i)))
    }
}

fn cache(dir: &tempfile::TempDir, name: &str, cap: u64) -> Arc<DatasetFileCache> {
    Arc::new(
        OpenOptions::new()
            .sync(false)
            .create(dir.path().join(name), cap)
            .unwrap(),
    )
}

#[test]
fn sixteen_threads_missing_one_block_read_the_source_once() {
    let dir = tempfile::tempdir().unwrap();
    let src = Source::new(50);
    let ds = Arc::new(CachedDataset::new(src.clone(), cache(&dir, "c.dfc", 0)));
    let barrier = Arc::new(Barrier::new(16));
    let hs: Vec<_> = (0..16)
        .map(|_| {
            let ds = ds.clone();
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                ds.read_block(7).unwrap()
            })
        })
        .collect();
    for h in hs {
        assert_eq!(h.join().unwrap(), Some(block(1, 7)));
    }
    assert_eq!(src.reads.load(Ordering::SeqCst), 1);
    assert_eq!(ds.read_block(7).unwrap(), Some(block(1, 7)));
    assert_eq!(
        src.reads.load(Ordering::SeqCst),
        1,
        "then served from the cache"
    );
}

#[test]
fn negative_entries_are_cached() {
    let dir = tempfile::tempdir().unwrap();
    let src = Source::new(0);
    let c = cache(&dir, "n.dfc", 0);
    let ds = CachedDataset::new(src.clone(), c.clone());
    assert_eq!(ds.read_block(3).unwrap(), None);
    assert_eq!(ds.read_block(3).unwrap(), None);
    assert_eq!(src.reads.load(Ordering::SeqCst), 1);
    let key = src.id().block_key(3);
    assert!(c.contains_key(&key).unwrap());
    assert!(
        c.get(&key).unwrap().is_none(),
        "a negative entry has no value"
    );
    assert!(c.entry_info(&key).unwrap().unwrap().absent);
    c.flush().unwrap();
    // Still known after a reopen.
    drop(ds);
    drop(c);
    let c = Arc::new(DatasetFileCache::open(dir.path().join("n.dfc"), true).unwrap());
    let ds = CachedDataset::new(src.clone(), c);
    assert_eq!(ds.read_block(3).unwrap(), None);
    assert_eq!(src.reads.load(Ordering::SeqCst), 1);
}

#[test]
fn source_errors_are_returned_and_not_cached() {
    let dir = tempfile::tempdir().unwrap();
    let src = Source::new(0);
    let c = cache(&dir, "e.dfc", 0);
    let ds = CachedDataset::new(src.clone(), c.clone());
    let e = ds.read_block(13).unwrap_err();
    assert!(matches!(e, Error::Source(_)), "{e:?}");
    assert!(e.to_string().contains("503"), "{e}");
    assert!(!c.contains_key(&src.id().block_key(13)).unwrap());
    assert!(ds.read_block(13).is_err());
    assert_eq!(src.reads.load(Ordering::SeqCst), 2, "asked again");
    assert_eq!(c.len(), 0);
}

#[test]
fn a_new_revision_never_sees_old_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let src = Source::new(0);
    let c = cache(&dir, "r.dfc", 0);
    let ds = CachedDataset::new(src.clone(), c.clone());
    for i in 0..10 {
        ds.read_block(i).unwrap();
    }
    assert_eq!(ds.read_block(4).unwrap(), Some(block(1, 4)));
    src.revision.store(2, Ordering::SeqCst);
    let reads = src.reads.load(Ordering::SeqCst);
    assert_eq!(ds.read_block(4).unwrap(), Some(block(2, 4)));
    assert_eq!(src.reads.load(Ordering::SeqCst), reads + 1);
    // Clearing one revision leaves the other.
    let old = DatasetId::new(src.guid, 1);
    assert_eq!(c.clear_dataset_revision(old).unwrap(), 10);
    assert!(c.contains_key(&src.id().block_key(4)).unwrap());
    assert_eq!(
        c.clear_dataset(old).unwrap(),
        1,
        "all revisions of the dataset"
    );
    assert!(c.is_empty());
}

#[test]
fn layered_shared_then_local() {
    let dir = tempfile::tempdir().unwrap();
    let src = Source::new(0);
    let shared_path = dir.path().join("shared.dfc");
    {
        let warm = CachedDataset::new(src.clone(), cache(&dir, "shared.dfc", 0));
        // Block 13 fails at the source: warm the others.
        let r = warm.warm((0..50).filter(|&i| i != 13)).unwrap();
        assert_eq!((r.fetched, r.absent, r.already_cached), (40, 9, 0));
        assert!(r.bytes_written > 40_000);
        assert_eq!(warm.warm(0..13).unwrap().already_cached, 13);
        assert!(warm.warm(0..50).is_err(), "the source error is reported");
    }
    let before = (
        std::fs::read(&shared_path).unwrap(),
        std::fs::metadata(&shared_path).unwrap().modified().unwrap(),
    );
    src.reads.store(0, Ordering::SeqCst);
    let shared = Arc::new(DatasetFileCache::open(&shared_path, true).unwrap());
    let local = cache(&dir, "local.dfc", 0);
    let ds = CachedDataset::new(src.clone(), local.clone()).with_shared(vec![shared]);
    for i in 0..100 {
        if i == 13 {
            continue;
        }
        assert_eq!(ds.read_block(i).unwrap(), (i % 5 != 3).then(|| block(1, i)));
    }
    assert_eq!(
        src.reads.load(Ordering::SeqCst),
        50,
        "only blocks the shared cache lacks"
    );
    assert_eq!(ds.shared_hits(), 49);
    // Hits in the shared cache were copied into the local one.
    for i in (0..50).filter(|&i| i != 13) {
        assert!(
            local.contains_key(&src.id().block_key(i)).unwrap(),
            "block {i}"
        );
    }
    let again = src.reads.load(Ordering::SeqCst);
    for i in 0..100 {
        if i != 13 {
            ds.read_block(i).unwrap();
        }
    }
    assert_eq!(src.reads.load(Ordering::SeqCst), again);
    drop(ds);
    let after = (
        std::fs::read(&shared_path).unwrap(),
        std::fs::metadata(&shared_path).unwrap().modified().unwrap(),
    );
    assert!(before == after, "the shared cache file changed");
}

#[test]
fn read_only_cache_serves_hits_and_sends_misses_to_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let src = Source::new(0);
    {
        let ds = CachedDataset::new(src.clone(), cache(&dir, "ro.dfc", 0));
        ds.warm((0..20).filter(|&i| i != 13)).unwrap();
    }
    let ro = Arc::new(DatasetFileCache::open(dir.path().join("ro.dfc"), true).unwrap());
    src.reads.store(0, Ordering::SeqCst);
    let ds = CachedDataset::new(src.clone(), ro.clone());
    assert!(matches!(ds.warm(0..1), Err(Error::ReadOnly)));
    for i in 0..40 {
        if i != 13 {
            assert_eq!(ds.read_block(i).unwrap(), (i % 5 != 3).then(|| block(1, i)));
        }
    }
    assert_eq!(
        src.reads.load(Ordering::SeqCst),
        20,
        "misses go to the source"
    );
    for i in 20..40 {
        if i != 13 {
            ds.read_block(i).unwrap();
        }
    }
    assert_eq!(src.reads.load(Ordering::SeqCst), 40, "and are not stored");
    assert_eq!(ro.len(), 19);
}

#[test]
fn maximum_age() {
    let dir = tempfile::tempdir().unwrap();
    let c = cache(&dir, "age.dfc", 0);
    c.set_maximum_age(Some(Duration::from_millis(300))).unwrap();
    c.put(b"old", b"value").unwrap();
    assert_eq!(c.get(b"old").unwrap().unwrap().to_vec(), b"value");
    std::thread::sleep(Duration::from_millis(400));
    c.put(b"new", b"value").unwrap();
    assert!(c.get(b"old").unwrap().is_none(), "expired");
    assert!(!c.contains_key(b"old").unwrap());
    assert!(c.get(b"new").unwrap().is_some());
    let s = c.stats().unwrap();
    assert_eq!(s.expirations, 1);
    assert_eq!(s.maximum_age, Some(Duration::from_millis(300)));
    c.flush().unwrap();
    assert_eq!(c.len(), 1, "the expired entry was dropped");
    drop(c);
    let c = DatasetFileCache::open(dir.path().join("age.dfc"), true).unwrap();
    assert_eq!(
        c.maximum_age(),
        Some(Duration::from_millis(300)),
        "stored in the file"
    );
}

#[test]
fn shrinking_the_cap_keeps_what_fits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shrink.dfc");
    let c = OpenOptions::new()
        .sync(false)
        .compression_level(None)
        .create(&path, 32 << 20)
        .unwrap();
    let val = |i: u32| -> Vec<u8> {
        (0..20_000u32)
            .map(|j| (i.wrapping_mul(31) ^ j) as u8)
            .collect()
    };
    for i in 0..1000u32 {
        c.put(&i.to_be_bytes(), &val(i)).unwrap();
    }
    c.flush().unwrap();
    // Use the last 100 keys: they are the most recently used now.
    for i in 900..1000u32 {
        assert!(c.get(&i.to_be_bytes()).unwrap().is_some());
    }
    // Also the first ten, so recency is not just insertion order.
    for i in 0..10u32 {
        assert!(c.get(&i.to_be_bytes()).unwrap().is_some());
    }
    let before = std::fs::metadata(&path).unwrap().len();
    assert!(before > 16 << 20);
    c.set_maximum_file_size(8 << 20).unwrap();
    let after = std::fs::metadata(&path).unwrap().len();
    assert!(after <= 8 << 20, "file is {after} bytes");
    assert_eq!(c.maximum_file_size(), 8 << 20);
    // Warmed content that fits stays, least recently used went first.
    for i in (900..1000u32).chain(0..10) {
        assert_eq!(
            c.get(&i.to_be_bytes()).unwrap().unwrap().to_vec(),
            val(i),
            "key {i}"
        );
    }
    assert!(c.len() > 250, "only {} kept", c.len());
    assert!(!c.contains_key(&100u32.to_be_bytes()).unwrap());
    // It still works as a cache under the new cap.
    for i in 2000..2300u32 {
        c.put(&i.to_be_bytes(), &val(i)).unwrap();
    }
    assert!(std::fs::metadata(&path).unwrap().len() <= 8 << 20);
    drop(c);
    let c = DatasetFileCache::open(&path, false).unwrap();
    assert_eq!(c.maximum_file_size(), 8 << 20);
    assert_eq!(
        c.get(&2299u32.to_be_bytes()).unwrap().unwrap().to_vec(),
        val(2299)
    );
    // Growing it again, and unlimited.
    c.set_maximum_file_size(64 << 20).unwrap();
    c.set_maximum_file_size(0).unwrap();
    assert_eq!(c.maximum_file_size(), 0);
}

#[test]
fn too_large_values_are_refused_and_served_uncached() {
    let dir = tempfile::tempdir().unwrap();
    let c = cache(&dir, "big.dfc", 1 << 20);
    let e = c.put(b"big", &vec![1u8; 2 << 20]).unwrap_err();
    assert!(matches!(e, Error::ValueTooLarge { .. }), "{e}");
    assert!(c.is_empty());
    struct Big;
    impl Dataset for Big {
        fn id(&self) -> DatasetId {
            DatasetId::new(uuid::Uuid::from_u128(1), 0)
        }
        fn read_block(&self, _: u64) -> dfcache::Result<Option<Vec<u8>>> {
            Ok(Some(vec![7u8; 3 << 20]))
        }
    }
    let ds = CachedDataset::new(Big, c.clone());
    assert_eq!(ds.read_block(0).unwrap().unwrap().len(), 3 << 20);
    let r = ds.warm([1]).unwrap();
    assert_eq!((r.fetched, r.not_stored), (1, 1));
}

#[test]
fn stats_count_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let c = OpenOptions::new()
        .sync(false)
        .compression_level(None)
        .create(dir.path().join("s.dfc"), 2 << 20)
        .unwrap();
    for i in 0..200u32 {
        c.put(&i.to_be_bytes(), &vec![i as u8; 20_000]).unwrap();
    }
    assert!(c.get(&199u32.to_be_bytes()).unwrap().is_some());
    assert!(c.get(&0u32.to_be_bytes()).unwrap().is_none());
    let s = c.stats().unwrap();
    assert_eq!(s.inserts, 200);
    assert_eq!((s.hits, s.misses), (1, 1));
    assert!(s.evictions > 100);
    assert_eq!(s.entries + s.evictions, 200);
    assert_eq!(s.bytes_evicted, s.evictions * 20_000);
    assert_eq!(s.raw_bytes, s.entries * 20_000);
    assert_eq!(s.stored_bytes, s.raw_bytes);
    assert!(s.file_size <= 2 << 20);
    assert_eq!(s.maximum_file_size, 2 << 20);
}

#[test]
fn a_damaged_value_in_a_read_only_cache_is_read_from_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.dfc");
    let src = Source::new(0);
    {
        let c = OpenOptions::new()
            .compression_level(None)
            .create(&path, 0)
            .unwrap();
        CachedDataset::new(src.clone(), Arc::new(c))
            .warm([1, 2, 4])
            .unwrap();
    }
    // Damage block 2's stored bytes (raw, so they can be found).
    let mut img = std::fs::read(&path).unwrap();
    let want = block(1, 2);
    let at = img
        .windows(want.len())
        .position(|w| w == want.as_slice())
        .expect("block 2 is stored raw");
    img[at + 100] ^= 0x55;
    std::fs::write(&path, &img).unwrap();

    let ro = Arc::new(DatasetFileCache::open(&path, true).unwrap());
    assert!(matches!(
        ro.get(&src.id().block_key(2)),
        Err(Error::Corrupt { .. })
    ));
    src.reads.store(0, Ordering::SeqCst);
    let ds = CachedDataset::new(src.clone(), ro);
    assert_eq!(
        ds.read_block(2).unwrap(),
        Some(want),
        "right value, from the source"
    );
    assert_eq!(ds.read_block(1).unwrap(), Some(block(1, 1)), "a hit");
    assert_eq!(
        src.reads.load(Ordering::SeqCst),
        1,
        "only the damaged block"
    );
}
