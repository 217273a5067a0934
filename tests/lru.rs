//! Property test: under a size cap the file never grows past it, and
//! evictions follow LRU order exactly, against a model that sees the same
//! accesses.

use std::collections::{BTreeSet, HashMap};

use dfcache::{DatasetFileCache, Flushable, OpenOptions};
use proptest::prelude::*;

const CAP: u64 = 2 << 20;

#[derive(Debug, Clone)]
enum Op {
    Put(u8, usize),
    Get(u8),
    Remove(u8),
    Flush,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u8..64, prop_oneof![3 => 1usize..2000, 2 => 2000usize..40_000, 1 => 40_000usize..150_000])
            .prop_map(|(k, n)| Op::Put(k, n)),
        8 => (0u8..64).prop_map(Op::Get),
        1 => (0u8..64).prop_map(Op::Remove),
        1 => Just(Op::Flush),
        1 => Just(Op::Reopen),
    ]
}

/// Stores `v` under `k` with `put_stream` or with `put`.
fn put_by(c: &DatasetFileCache, stream: bool, k: &[u8], v: &[u8]) -> dfcache::Result<()> {
    if stream {
        c.put_stream(k, std::io::Cursor::new(v)).map(|_| ())
    } else {
        c.put(k, v)
    }
}

fn value(k: u8, n: usize, version: u64) -> Vec<u8> {
    let mut x = ((k as u64 + 1) * 0x9E37_79B9) ^ version;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

struct Model {
    clock: u64,
    entries: HashMap<u8, (Vec<u8>, u64)>,
    evicted: u64,
}

impl Model {
    /// Reconciles with the keys the cache still has: whatever is gone was
    /// evicted, and must be exactly the least recently used.
    fn evictions(&mut self, present: &BTreeSet<u8>) {
        let gone: Vec<u8> = self
            .entries
            .keys()
            .filter(|k| !present.contains(k))
            .copied()
            .collect();
        if gone.is_empty() {
            return;
        }
        let newest_gone = gone.iter().map(|k| self.entries[k].1).max().unwrap();
        let oldest_kept = present
            .iter()
            .filter_map(|k| self.entries.get(k))
            .map(|e| e.1)
            .min();
        if let Some(kept) = oldest_kept {
            assert!(
                newest_gone < kept,
                "evicted {gone:?} (newest use {newest_gone}) while an entry used at {kept} stayed"
            );
        }
        for k in gone {
            self.entries.remove(&k);
            self.evicted += 1;
        }
    }
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lru.dfc");
    let opts = OpenOptions::new().sync(false).compression_level(None);
    let mut cache = Some(opts.create(&path, CAP).unwrap());
    let mut m = Model {
        clock: 0,
        entries: HashMap::new(),
        evicted: 0,
    };
    let mut evictions_before_reopen = 0;
    for (i, op) in ops.into_iter().enumerate() {
        let c = cache.as_ref().unwrap();
        match op {
            Op::Put(k, n) => {
                let v = value(k, n, i as u64);
                c.put(&[k], &v).unwrap();
                m.clock += 1;
                m.entries.insert(k, (v, m.clock));
                let present: BTreeSet<u8> = c.keys().unwrap().map(|k| k.unwrap()[0]).collect();
                m.evictions(&present);
                assert_eq!(
                    c.stats().unwrap().evictions + evictions_before_reopen,
                    m.evicted,
                    "eviction count"
                );
            }
            Op::Get(k) => {
                let got = c.get(&[k]).unwrap().map(|v| v.to_vec());
                match m.entries.get_mut(&k) {
                    Some((v, used)) => {
                        assert_eq!(got.as_ref(), Some(&*v), "value of {k}");
                        m.clock += 1;
                        *used = m.clock;
                    }
                    None => assert!(got.is_none(), "{k} should not be cached"),
                }
            }
            Op::Remove(k) => {
                assert_eq!(c.remove(&[k]).unwrap(), m.entries.remove(&k).is_some());
            }
            Op::Flush => c.flush().unwrap(),
            Op::Reopen => {
                evictions_before_reopen += c.stats().unwrap().evictions;
                drop(cache.take());
                cache = Some(opts.clone().open(&path).unwrap());
            }
        }
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(len <= CAP, "file is {len} bytes, over the cap of {CAP}");
    }
    let c = cache.unwrap();
    assert_eq!(c.len(), m.entries.len() as u64);
    c.flush().unwrap();
    let report = c.verify().unwrap();
    assert!(report.is_ok(), "{:#?}", report.problems);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, max_shrink_iters: 1000, .. ProptestConfig::default() })]
    #[test]
    fn lru_under_a_cap(ops in prop::collection::vec(op(), 1..400)) {
        run(ops);
    }
}

#[test]
fn order_survives_reopen() {
    // Use order is persisted: after a reopen the least recently used entry
    // is still the first to go.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("order.dfc");
    let opts = OpenOptions::new().sync(false).compression_level(None);
    let c = opts.create(&path, CAP).unwrap();
    for k in 0..10u8 {
        c.put(&[k], &value(k, 100_000, 0)).unwrap();
    }
    // Use them in reverse: 0 becomes the most recent.
    for k in (0..10u8).rev() {
        assert!(c.get(&[k]).unwrap().is_some());
    }
    drop(c);
    let c = opts.open(&path).unwrap();
    let mut k = 100u8;
    while c.stats().unwrap().evictions == 0 {
        c.put(&[k], &value(k, 100_000, 0)).unwrap();
        k += 1;
    }
    assert!(!c.contains_key(&[9]).unwrap(), "9 was least recently used");
    assert!(c.contains_key(&[0]).unwrap(), "0 was most recently used");
}

/// A large value that fits the free space only in pieces (once everything
/// else is evicted, a few index pages are left between free chunks smaller
/// than it) is stored in chunks that use the pieces, not refused with
/// NoSpace: nothing holds space there but the cache's own index. Found by
/// the ops fuzz target (fuzz/corpus/ops/bug10-a-frame-finds-free-space-in-pieces).
#[test]
fn a_value_that_fits_only_in_pieces_of_free_space_is_stored_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let opts = OpenOptions::new().sync(false).compression_level(None);
    for how in [0, 1, 2] {
        let c = opts
            .create(dir.path().join(format!("pieces{how}.dfc")), 1536 << 10)
            .unwrap();
        c.put(b"k10", &value(10, 64_000, 0)).unwrap();
        let mut last = Vec::new();
        for version in 0..24u64 {
            if version == 10 {
                c.put(b"k14", &value(14, 5000, 0)).unwrap();
                c.put(b"k05", &value(5, 63, 0)).unwrap();
            }
            // The last one finds no room in one piece: larger than a frame
            // (1 MiB), it needs two chunks of which the first, of a frame,
            // found none (0, 1); up to a frame it is one extent (2).
            let n = match (version, how) {
                (23, 2) => 1_040_000,
                (23, _) => 1_176_000,
                _ => 1_020_000,
            };
            last = value(5, n, version);
            put_by(&c, how == 0, b"k05", &last)
                .unwrap_or_else(|e| panic!("version {version} ({how}): {e}"));
        }
        assert_eq!(c.get(b"k05").unwrap().unwrap().to_vec(), last);
        // Frames of several sizes: a stream reads and seeks across them.
        let mut r = c.get_stream(b"k05").unwrap().unwrap();
        let mut all = Vec::new();
        std::io::Read::read_to_end(&mut r, &mut all).unwrap();
        assert_eq!(all, last);
        for at in [0u64, 700_000, 1_000_000, last.len() as u64 - 10] {
            std::io::Seek::seek(&mut r, std::io::SeekFrom::Start(at)).unwrap();
            let mut b = [0u8; 10];
            std::io::Read::read_exact(&mut r, &mut b).unwrap();
            assert_eq!(&b[..], &last[at as usize..at as usize + 10], "at {at}");
        }
        drop(r);
        c.flush().unwrap();
        assert!(c.verify().unwrap().is_ok());
        drop(c);
        let c = opts
            .open(dir.path().join(format!("pieces{how}.dfc")))
            .unwrap();
        assert_eq!(c.get(b"k05").unwrap().unwrap().to_vec(), last);
    }
}

/// A value whose room only the old version of its own key could make (the
/// rest of the cache is small) must leave the pages the next commit
/// needs. It used to take them: the commit after it, with the old
/// version's space still held by the transaction, found no page for its
/// dirty index nodes and poisoned the handle. Found by the ops fuzz target
/// (fuzz/corpus/ops/bug11-a-value-took-the-pages-of-the-next-commit).
#[test]
fn a_value_never_takes_the_pages_the_next_commit_needs() {
    let dir = tempfile::tempdir().unwrap();
    let opts = OpenOptions::new().sync(false).compression_level(None);
    // Sizes around the one where the room left beside the old version
    // falls between the value and the value plus a commit's pages.
    for n in (1_000_000..=1_048_000).step_by(4_000) {
        for how in 0..2 {
            let c = opts.create(dir.path().join("headroom.dfc"), CAP).unwrap();
            c.put(b"k10", &value(10, 64_000, 0)).unwrap();
            for version in 0..3u64 {
                let v = value(5, n, version);
                put_by(&c, how == 0, b"k05", &v)
                    .unwrap_or_else(|e| panic!("{n} bytes, version {version} ({how}): {e}"));
                c.put(b"k55", &value(55, 2500, version))
                    .unwrap_or_else(|e| panic!("small put after {n} bytes ({how}): {e}"));
            }
            c.flush().unwrap();
            assert!(c.verify().unwrap().is_ok());
        }
    }
}

/// A value that fits the cache alone but not beside the old value of its
/// key replaces it: once nothing else is left to evict, the old entry goes
/// first (the write replaces it anyway). `set_meta` keeps the value it
/// adds to, so it may fail for room but never drops the entry.
#[test]
fn a_value_too_big_to_sit_beside_its_old_version_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let opts = OpenOptions::new().sync(false).compression_level(None);
    // Incompressible, 0.55 MiB and 1.05 MiB (one 1 MiB frame and a piece)
    // under a cap of 1 MiB and 2 MiB: two copies never fit.
    for (cap, n) in [(1u64 << 20, 560_000usize), (CAP, 1_100_000)] {
        for how in 0..3 {
            let c = opts.create(dir.path().join("big.dfc"), cap).unwrap();
            c.put(b"small", &value(1, 1000, 0)).unwrap();
            for version in 0..3u64 {
                let v = value(7, n, version);
                match how {
                    0 => c.put(b"k", &v).unwrap(),
                    1 => c.put_with_meta(b"k", &v, b"meta").unwrap(),
                    _ => {
                        c.put_stream(b"k", std::io::Cursor::new(&v)).unwrap();
                    }
                }
                assert_eq!(c.get(b"k").unwrap().unwrap().to_vec(), v, "{cap} {how}");
            }
            assert!(c.verify().unwrap().is_ok());
            // set_meta must not make room by dropping its own entry.
            match c.set_meta(b"k", &vec![3u8; 60_000]) {
                Ok(present) => assert!(present),
                Err(dfcache::Error::NoSpace { .. }) => {}
                Err(e) => panic!("set_meta: {e}"),
            }
            assert!(c.contains_key(b"k").unwrap(), "set_meta dropped the entry");
            c.flush().unwrap();
            assert!(c.verify().unwrap().is_ok());
        }
    }
}
