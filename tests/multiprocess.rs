//! Several processes share one warmed cache read-only (harness = false: the
//! test spawns itself as the child processes).
//!
//! Each child opens the cache read-only, reads through it: hits come from
//! the file, misses go to the child's source and are not stored. Afterwards
//! the file's bytes and modification time are unchanged.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dfcache::{CachedDataset, Dataset, DatasetFileCache, DatasetId, Flushable};

struct Source {
    reads: AtomicU64,
}

fn block(i: u64) -> Vec<u8> {
    (0..3000 + i % 1000).map(|j| (i * 7 + j) as u8).collect()
}

impl Dataset for Source {
    fn id(&self) -> DatasetId {
        DatasetId::new(uuid::Uuid::from_u128(42), 3)
    }
    fn read_block(&self, i: u64) -> dfcache::Result<Option<Vec<u8>>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        Ok(Some(block(i)))
    }
}

fn child(path: &str) {
    let cache = Arc::new(DatasetFileCache::open(path, true).expect("open read-only"));
    let ds = CachedDataset::new(
        Source {
            reads: AtomicU64::new(0),
        },
        cache.clone(),
    );
    for round in 0..3 {
        for i in 0..150 {
            assert_eq!(
                ds.read_block(i).unwrap(),
                Some(block(i)),
                "round {round} block {i}"
            );
        }
    }
    let s = cache.stats().unwrap();
    println!(
        "source_reads={} hits={}",
        ds.source().reads.load(Ordering::SeqCst),
        s.hits
    );
}

fn main() {
    if let Ok(path) = std::env::var("DFCACHE_RO_CHILD") {
        child(&path);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.dfc");
    {
        let cache = Arc::new(DatasetFileCache::create(&path, 0).unwrap());
        let ds = CachedDataset::new(
            Source {
                reads: AtomicU64::new(0),
            },
            cache.clone(),
        );
        let r = ds.warm(0..100).unwrap();
        assert_eq!(r.fetched, 100);
        cache.flush().unwrap();
    }
    let mut perm = std::fs::metadata(&path).unwrap().permissions();
    perm.set_readonly(true);
    std::fs::set_permissions(&path, perm.clone()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let before = (
        std::fs::read(&path).unwrap(),
        std::fs::metadata(&path).unwrap().modified().unwrap(),
    );
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(&exe)
                .env("DFCACHE_RO_CHILD", &path)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "child failed: {:?}", out);
        let text = String::from_utf8(out.stdout).unwrap();
        // 100 warmed blocks hit three times; 50 misses read thrice from the
        // source (read-only: never stored).
        assert_eq!(
            text.trim(),
            "source_reads=150 hits=300",
            "child said {text}"
        );
    }
    let after = (
        std::fs::read(&path).unwrap(),
        std::fs::metadata(&path).unwrap().modified().unwrap(),
    );
    assert!(before == after, "a read-only process changed the file");
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    std::fs::set_permissions(&path, perm).unwrap();
    println!("multiprocess: two read-only processes shared the cache; file unchanged");
}
