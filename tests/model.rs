//! Property test: random operations against a `BTreeMap` model of the
//! entries (values and metadata) and of the groups.

use std::collections::BTreeMap;

use dfcache::{DatasetFileCache, Error, Flushable, OpenOptions};
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
    /// Key, value length and seed, metadata length and seed.
    PutMeta(Vec<u8>, usize, u8, usize, u8),
    /// Key, metadata length (0 removes it) and seed.
    SetMeta(Vec<u8>, usize, u8),
    Meta(Vec<u8>),
    PutGroup(Vec<u8>, Vec<Vec<u8>>),
    GetGroup(Vec<u8>),
    RemoveGroup(Vec<u8>),
    StreamGroup(Vec<u8>),
    Groups,
    /// Entries whose key starts with the prefix, with their values.
    Scan(Vec<u8>),
}

/// Longest metadata `put_with_meta` and `set_meta` accept.
const META_MAX: usize = 64 << 10;

fn meta_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 0usize..100,
        2 => 100usize..3000,
        1 => 3000usize..=META_MAX,
        // Over the limit: refused, nothing changes.
        1 => META_MAX + 1..META_MAX + 100,
    ]
}

fn group_name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => (0u8..6).prop_map(|i| format!("g{i}").into_bytes()),
        // With a zero byte, which the groups index escapes.
        1 => Just(b"g\0x".to_vec()),
        // Invalid: empty, or longer than 256 bytes.
        1 => prop_oneof![Just(Vec::new()), Just(vec![b'n'; 257])],
    ]
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
        3 => (key(), value_len(), any::<u8>(), meta_len(), any::<u8>())
            .prop_map(|(k, n, s, m, t)| Op::PutMeta(k, n, s, m, t)),
        2 => (key(), meta_len(), any::<u8>()).prop_map(|(k, m, t)| Op::SetMeta(k, m, t)),
        3 => key().prop_map(Op::Meta),
        2 => (group_name(), prop::collection::vec(key(), 0..8))
            .prop_map(|(g, ks)| Op::PutGroup(g, ks)),
        2 => group_name().prop_map(Op::GetGroup),
        1 => group_name().prop_map(Op::RemoveGroup),
        2 => group_name().prop_map(Op::StreamGroup),
        1 => Just(Op::Groups),
        2 => (key(), 0usize..6).prop_map(|(k, n)| Op::Scan(k[..n.min(k.len())].to_vec())),
    ]
}

/// Whether a group name is one `put_group` accepts.
fn valid_name(g: &[u8]) -> bool {
    (1..=256).contains(&g.len())
}

/// Key -> (value, metadata; empty when there is none).
type Model = BTreeMap<Vec<u8>, (Vec<u8>, Vec<u8>)>;
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// What the model expects of `stream_group`: the members still cached,
/// with their values, in group order, and the members skipped.
fn expected_stream(model: &Model, members: &[Vec<u8>]) -> (Pairs, Vec<Vec<u8>>) {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for k in members {
        match model.get(k) {
            Some((v, _)) => found.push((k.clone(), v.clone())),
            None => missing.push(k.clone()),
        }
    }
    (found, missing)
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
    let mut model: Model = BTreeMap::new();
    let mut groups: BTreeMap<Vec<u8>, Vec<Vec<u8>>> = BTreeMap::new();
    for op in ops {
        let c = cache.as_ref().unwrap();
        match op {
            Op::Put(k, n, s) => {
                let v = value(n, s);
                c.put(&k, &v).unwrap();
                model.insert(k, (v, Vec::new()));
            }
            Op::Get(k) => {
                let got = c.get(&k).unwrap().map(|v| v.to_vec());
                assert_eq!(got.as_ref(), model.get(&k).map(|e| &e.0), "get {k:?}");
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
                groups.clear();
                assert!(c.is_empty());
            }
            Op::Flush => c.flush().unwrap(),
            Op::Reopen => {
                drop(cache.take());
                cache = Some(opts.clone().open(&path).unwrap());
            }
            Op::PutMeta(k, n, s, m, t) => {
                let (v, meta) = (value(n, s), value(m, t));
                match c.put_with_meta(&k, &v, &meta) {
                    Ok(()) => {
                        assert!(m <= META_MAX, "{m} bytes of metadata accepted");
                        model.insert(k, (v, meta));
                    }
                    Err(Error::InvalidArgument(_)) if m > META_MAX => {}
                    Err(e) => panic!("put_with_meta: {e}"),
                }
            }
            Op::SetMeta(k, m, t) => {
                let meta = value(m, t);
                match c.set_meta(&k, &meta) {
                    Ok(present) => {
                        assert!(m <= META_MAX, "{m} bytes of metadata accepted");
                        assert_eq!(present, model.contains_key(&k), "set_meta {k:?}");
                        if let Some(e) = model.get_mut(&k) {
                            e.1 = meta;
                        }
                    }
                    Err(Error::InvalidArgument(_)) if m > META_MAX => {}
                    Err(e) => panic!("set_meta: {e}"),
                }
            }
            Op::Meta(k) => {
                let got = c.meta(&k).unwrap();
                assert_eq!(got.as_ref(), model.get(&k).map(|e| &e.1), "meta {k:?}");
            }
            Op::PutGroup(g, keys) => match c.put_group(&g, &keys) {
                Ok(n) => {
                    assert!(valid_name(&g));
                    assert_eq!(n, keys.len() as u64);
                    groups.insert(g, keys);
                }
                Err(Error::InvalidArgument(_)) if !valid_name(&g) => {}
                Err(e) => panic!("put_group {g:?}: {e}"),
            },
            Op::GetGroup(g) => match c.get_group(&g) {
                Ok(got) => assert_eq!(got.as_ref(), groups.get(&g), "group {g:?}"),
                Err(Error::InvalidArgument(_)) if !valid_name(&g) => {}
                Err(e) => panic!("get_group {g:?}: {e}"),
            },
            Op::RemoveGroup(g) => match c.remove_group(&g) {
                Ok(existed) => assert_eq!(existed, groups.remove(&g).is_some()),
                Err(Error::InvalidArgument(_)) if !valid_name(&g) => {}
                Err(e) => panic!("remove_group {g:?}: {e}"),
            },
            Op::StreamGroup(g) => match c.stream_group(&g) {
                Ok(mut st) => {
                    let got: Pairs = st
                        .by_ref()
                        .map(|r| r.map(|(k, v)| (k, v.to_vec())).unwrap())
                        .collect();
                    let members = groups.get(&g).cloned().unwrap_or_default();
                    let (found, missing) = expected_stream(&model, &members);
                    assert_eq!(got, found, "stream_group {g:?}");
                    assert_eq!(st.missing(), &missing[..], "missing of {g:?}");
                }
                Err(Error::InvalidArgument(_)) if !valid_name(&g) => {}
                Err(e) => panic!("stream_group {g:?}: {e}"),
            },
            Op::Groups => {
                let want: Vec<(Vec<u8>, u64)> = groups
                    .iter()
                    .map(|(g, ks)| (g.clone(), ks.len() as u64))
                    .collect();
                assert_eq!(c.groups().unwrap(), want);
                let g1: Vec<(Vec<u8>, u64)> = want
                    .into_iter()
                    .filter(|(g, _)| g.starts_with(b"g1"))
                    .collect();
                assert_eq!(c.groups_with_prefix(b"g1").unwrap(), g1);
            }
            Op::Scan(p) => {
                let got: Pairs = c
                    .scan(&p)
                    .unwrap()
                    .map(|r| r.map(|(k, v)| (k, v.to_vec())).unwrap())
                    .collect();
                let want: Pairs = model
                    .iter()
                    .filter(|(k, _)| k.starts_with(&p))
                    .map(|(k, (v, _))| (k.clone(), v.clone()))
                    .collect();
                assert_eq!(got, want, "scan {p:?}");
            }
        }
    }
    // Final full check after a reopen.
    drop(cache.take());
    let c = opts.open(&path).unwrap();
    assert_eq!(c.len(), model.len() as u64);
    for (k, (v, meta)) in &model {
        assert_eq!(c.get(k).unwrap().unwrap().to_vec(), *v);
        assert_eq!(c.meta(k).unwrap().as_ref(), Some(meta));
    }
    for (g, keys) in &groups {
        assert_eq!(c.get_group(g).unwrap().as_ref(), Some(keys));
    }
    assert_eq!(c.groups().unwrap().len(), groups.len());
    let keys: Vec<Vec<u8>> = c.keys().unwrap().map(|k| k.unwrap()).collect();
    assert_eq!(keys, model.keys().cloned().collect::<Vec<_>>());
    let scanned: Pairs = c
        .scan(b"")
        .unwrap()
        .map(|r| r.map(|(k, v)| (k, v.to_vec())).unwrap())
        .collect();
    let want: Pairs = model
        .iter()
        .map(|(k, (v, _))| (k.clone(), v.clone()))
        .collect();
    assert_eq!(scanned, want, "final scan");
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
