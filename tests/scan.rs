//! `DatasetFileCache::scan`: entries with their values in key order,
//! against a model, across batches, uncommitted changes, read-only handles
//! and damage; and a scan is not a use.

mod common;

use std::collections::BTreeMap;
use std::fs;

use dfcache::{DatasetFileCache, Flushable, OpenOptions};

fn scanned(c: &DatasetFileCache, prefix: &[u8]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut last: Option<Vec<u8>> = None;
    for e in c.scan(prefix).unwrap() {
        let (k, v) = e.unwrap();
        assert!(last.as_deref() < Some(&k[..]), "keys out of order");
        last = Some(k.clone());
        assert!(out.insert(k, v.to_vec()).is_none());
    }
    out
}

#[test]
fn scan_returns_every_entry_in_order_with_its_value() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.dfc");
    let c = OpenOptions::new().create(&p, 0).unwrap();
    let mut model = BTreeMap::new();
    // Inline, extent, compressible (zstd) and chunked values; more entries
    // than one batch.
    for i in 0..700u64 {
        let n = match i % 5 {
            0 => (i % 200) as usize,
            1 => 4096,
            2 => 3000,
            3 => 700,
            _ => 20_000,
        };
        let v = common::bytes(n, i, i % 5 == 2);
        let k = format!("{}/{i:05}", if i % 2 == 0 { "a" } else { "b" });
        c.put(k.as_bytes(), &v).unwrap();
        model.insert(k.into_bytes(), v);
    }
    let big = common::bytes(3 << 20, 99, false);
    c.put(b"a/big", &big).unwrap();
    model.insert(b"a/big".to_vec(), big);
    for i in (0..700u64).step_by(7) {
        let k = format!("{}/{i:05}", if i % 2 == 0 { "a" } else { "b" });
        c.remove(k.as_bytes()).unwrap();
        model.remove(k.as_bytes());
    }
    // Uncommitted changes are seen.
    assert_eq!(scanned(&c, b""), model);
    c.flush().unwrap();
    assert_eq!(scanned(&c, b""), model);
    let a: BTreeMap<_, _> = model
        .iter()
        .filter(|(k, _)| k.starts_with(b"a/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(scanned(&c, b"a/"), a);
    assert!(scanned(&c, b"c/").is_empty());
    drop(c);
    let ro = DatasetFileCache::open(&p, true).unwrap();
    assert_eq!(scanned(&ro, b""), model);
}

#[test]
fn a_scan_is_not_a_use() {
    let dir = tempfile::tempdir().unwrap();
    let c = OpenOptions::new()
        .create(dir.path().join("u.dfc"), 0)
        .unwrap();
    for i in 0..50u32 {
        c.put(&i.to_be_bytes(), &common::bytes(5000, i as u64, false))
            .unwrap();
    }
    c.flush().unwrap();
    let before: Vec<u64> = (0..50u32)
        .map(|i| c.entry_info(&i.to_be_bytes()).unwrap().unwrap().last_use)
        .collect();
    let stats = c.stats().unwrap();
    assert_eq!(c.scan(b"").unwrap().count(), 50);
    c.flush().unwrap();
    let after: Vec<u64> = (0..50u32)
        .map(|i| c.entry_info(&i.to_be_bytes()).unwrap().unwrap().last_use)
        .collect();
    assert_eq!(before, after, "the scan changed the LRU order");
    let s = c.stats().unwrap();
    assert_eq!((s.hits, s.misses), (stats.hits, stats.misses));
}

#[test]
fn a_damaged_value_is_dropped_by_a_writer_and_an_error_for_a_reader() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.dfc");
    let c = OpenOptions::new()
        .compression_level(None)
        .create(&p, 0)
        .unwrap();
    let damaged = common::bytes(4096, 7, false);
    for i in 0..10u32 {
        let v = if i == 7 {
            damaged.clone()
        } else {
            common::bytes(4096, 100 + i as u64, false)
        };
        c.put(&i.to_be_bytes(), &v).unwrap();
    }
    drop(c);
    let mut b = fs::read(&p).unwrap();
    let at = b
        .windows(damaged.len())
        .position(|w| w == damaged.as_slice())
        .unwrap();
    b[at + 1000] ^= 0x10;
    fs::write(&p, &b).unwrap();
    let ro = DatasetFileCache::open(&p, true).unwrap();
    assert!(ro
        .scan(b"")
        .unwrap()
        .any(|e| e.is_err_and(|e| e.is_corrupt())));
    drop(ro);
    let rw = DatasetFileCache::open(&p, false).unwrap();
    let keys: Vec<Vec<u8>> = rw.scan(b"").unwrap().map(|e| e.unwrap().0).collect();
    assert_eq!(keys.len(), 9);
    assert!(!keys.contains(&7u32.to_be_bytes().to_vec()));
    assert_eq!(rw.stats().unwrap().corrupt_drops, 1);
    rw.flush().unwrap();
    assert!(!rw.contains_key(&7u32.to_be_bytes()).unwrap(), "dropped");
}

#[test]
fn skipped_entries_do_not_end_a_scan_early() {
    // A batch reads 256 index entries; expired ones are skipped, and a
    // batch with fewer items than that must not be taken for the last.
    let dir = tempfile::tempdir().unwrap();
    let c = OpenOptions::new()
        .sync(false)
        .create(dir.path().join("x.dfc"), 0)
        .unwrap();
    c.set_maximum_age(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    for i in 0..10u32 {
        c.put(&[b"a".as_slice(), &i.to_be_bytes()].concat(), b"old")
            .unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    for i in 0..600u32 {
        c.put(&[b"b".as_slice(), &i.to_be_bytes()].concat(), b"new")
            .unwrap();
    }
    let all = scanned(&c, b"");
    assert_eq!(all.len(), 600, "every live entry, none expired");
    assert!(all.keys().all(|k| k[0] == b'b'));
    c.flush().unwrap();
    assert_eq!(scanned(&c, b"").len(), 600, "after a commit too");
    let ro = DatasetFileCache::open(dir.path().join("x.dfc"), true).unwrap();
    assert_eq!(scanned(&ro, b"").len(), 600, "and on a read-only handle");
}

#[test]
fn keys_entries_and_scan_agree_across_batches_on_both_handles() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("k.dfc");
    let c = OpenOptions::new().sync(false).create(&p, 0).unwrap();
    // 700 entries in "p", some around them: batches of 256 end mid-prefix.
    let mut want = Vec::new();
    for i in 0..700u32 {
        let k = [b"p".as_slice(), &i.to_be_bytes()].concat();
        c.put(&k, &i.to_le_bytes()).unwrap();
        want.push(k);
    }
    c.put(b"a", b"x").unwrap();
    c.put(b"q", b"x").unwrap();
    c.flush().unwrap();
    let check = |h: &DatasetFileCache| {
        let keys: Vec<Vec<u8>> = h
            .keys_with_prefix(b"p")
            .unwrap()
            .map(|k| k.unwrap())
            .collect();
        assert_eq!(keys, want);
        let entries: Vec<Vec<u8>> = h.entries(b"p").unwrap().map(|e| e.unwrap().0).collect();
        assert_eq!(entries, want);
        let scan: Vec<(Vec<u8>, Vec<u8>)> = h
            .scan(b"p")
            .unwrap()
            .map(|e| e.map(|(k, v)| (k, v.to_vec())).unwrap())
            .collect();
        assert_eq!(scan.len(), 700);
        for (i, (k, v)) in scan.iter().enumerate() {
            assert_eq!(k, &want[i]);
            assert_eq!(v, &(i as u32).to_le_bytes());
        }
        assert_eq!(h.keys().unwrap().count(), 702);
    };
    check(&c);
    let ro = DatasetFileCache::open(&p, true).unwrap();
    check(&ro);
}
