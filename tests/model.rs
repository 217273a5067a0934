//! Property test: random operations against a `BTreeMap` model.

use std::collections::BTreeMap;

use dfcache::{DatasetFileCache, Flushable, OpenOptions};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Put(Vec<u8>, usize, u8),
    Get(Vec<u8>),
    Remove(Vec<u8>),
    Contains(Vec<u8>),
    Len,
    Keys,
    Clear,
    Flush,
    Reopen,
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // A small pool, so operations hit the same keys.
        6 => (0u8..24).prop_map(|i| format!("key-{i}").into_bytes()),
        2 => prop::collection::vec(any::<u8>(), 1..40),
        1 => (1usize..=1024, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
    ]
}

fn value_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 0usize..300,
        3 => 300usize..6000,
        1 => 6000usize..=256 * 1024,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (key(), value_len(), any::<u8>()).prop_map(|(k, n, s)| Op::Put(k, n, s)),
        6 => key().prop_map(Op::Get),
        3 => key().prop_map(Op::Remove),
        2 => key().prop_map(Op::Contains),
        1 => Just(Op::Len),
        1 => Just(Op::Keys),
        1 => Just(Op::Clear),
        2 => Just(Op::Flush),
        2 => Just(Op::Reopen),
    ]
}

/// Deterministic value bytes: compressible or not depending on the seed.
fn value(n: usize, seed: u8) -> Vec<u8> {
    if seed.is_multiple_of(2) {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(seed) ^ (i / 7) as u8)
            .collect()
    } else {
        let mut x = (seed as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.dfc");
    let opts = OpenOptions::new().sync(false);
    let mut cache = Some(opts.create(&path, 0).unwrap());
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for op in ops {
        let c = cache.as_ref().unwrap();
        match op {
            Op::Put(k, n, s) => {
                let v = value(n, s);
                c.put(&k, &v).unwrap();
                model.insert(k, v);
            }
            Op::Get(k) => {
                let got = c.get(&k).unwrap().map(|v| v.to_vec());
                assert_eq!(got.as_ref(), model.get(&k), "get {k:?}");
            }
            Op::Remove(k) => assert_eq!(c.remove(&k).unwrap(), model.remove(&k).is_some()),
            Op::Contains(k) => assert_eq!(c.contains_key(&k).unwrap(), model.contains_key(&k)),
            Op::Len => assert_eq!(c.len(), model.len() as u64),
            Op::Keys => {
                let keys: Vec<Vec<u8>> = c.keys().unwrap().map(|k| k.unwrap()).collect();
                let want: Vec<Vec<u8>> = model.keys().cloned().collect();
                assert_eq!(keys, want);
            }
            Op::Clear => {
                c.clear().unwrap();
                model.clear();
                assert!(c.is_empty());
            }
            Op::Flush => c.flush().unwrap(),
            Op::Reopen => {
                drop(cache.take());
                cache = Some(opts.clone().open(&path).unwrap());
            }
        }
    }
    // Final full check after a reopen.
    drop(cache.take());
    let c = opts.open(&path).unwrap();
    assert_eq!(c.len(), model.len() as u64);
    for (k, v) in &model {
        assert_eq!(c.get(k).unwrap().unwrap().to_vec(), *v);
    }
    let keys: Vec<Vec<u8>> = c.keys().unwrap().map(|k| k.unwrap()).collect();
    assert_eq!(keys, model.keys().cloned().collect::<Vec<_>>());
    let report = c.verify().unwrap();
    assert!(report.is_ok(), "{:#?}", report.problems);
    assert_eq!(report.entries, model.len() as u64);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, max_shrink_iters: 2000, .. ProptestConfig::default() })]
    #[test]
    fn matches_a_btreemap(ops in prop::collection::vec(op(), 1..200)) {
        run(ops);
    }
}

#[test]
fn read_only_sees_flushed_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ro.dfc");
    let c = DatasetFileCache::create(&path, 0).unwrap();
    for i in 0..500u32 {
        c.put(&i.to_be_bytes(), &value(i as usize * 7, i as u8))
            .unwrap();
    }
    c.flush().unwrap();
    drop(c);
    let r = DatasetFileCache::open(&path, true).unwrap();
    assert!(r.is_read_only());
    for i in 0..500u32 {
        assert_eq!(
            r.get(&i.to_be_bytes()).unwrap().unwrap().to_vec(),
            value(i as usize * 7, i as u8)
        );
    }
    assert!(matches!(r.put(b"x", b"y"), Err(dfcache::Error::ReadOnly)));
    r.flush().unwrap();
}
