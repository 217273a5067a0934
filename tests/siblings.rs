//! What the sibling systems offer: metadata (dirdb), bulk and streamed
//! access (disk-objectstore, squirrel), groups and tee (dscache).

use std::io::{Read, Seek, SeekFrom};

use dfcache::{DatasetFileCache, Error, Flushable, OpenOptions};

fn cache(dir: &tempfile::TempDir, cap: u64) -> DatasetFileCache {
    OpenOptions::new()
        .sync(false)
        .create(dir.path().join("s.dfc"), cap)
        .unwrap()
}

#[test]
fn metadata_beside_values() {
    let dir = tempfile::tempdir().unwrap();
    let c = cache(&dir, 0);
    c.put_with_meta(b"a", b"value a", br#"{"shape": [5, 5]}"#)
        .unwrap();
    let big_meta = vec![b'm'; 5000];
    c.put_with_meta(b"b", &vec![1u8; 100_000], &big_meta)
        .unwrap();
    c.put(b"c", b"no meta").unwrap();
    assert_eq!(c.meta(b"a").unwrap().unwrap(), br#"{"shape": [5, 5]}"#);
    assert_eq!(c.meta(b"b").unwrap().unwrap(), big_meta);
    assert_eq!(c.meta(b"c").unwrap().unwrap(), b"");
    assert_eq!(c.meta(b"zz").unwrap(), None);
    assert_eq!(c.entry_info(b"b").unwrap().unwrap().meta_len, 5000);
    // set_meta replaces metadata, keeps the value and its LRU place.
    let tick = c.entry_info(b"b").unwrap().unwrap().last_use;
    assert!(c.set_meta(b"b", b"short").unwrap());
    assert_eq!(c.meta(b"b").unwrap().unwrap(), b"short");
    assert_eq!(c.get(b"b").unwrap().unwrap().to_vec(), vec![1u8; 100_000]);
    assert!(
        c.entry_info(b"b").unwrap().unwrap().last_use > tick,
        "the get above was a use"
    );
    assert!(c.set_meta(b"c", &vec![b'x'; 3000]).unwrap());
    assert!(!c.set_meta(b"zz", b"m").unwrap(), "absent key");
    assert!(c.set_meta(b"a", b"").unwrap());
    assert_eq!(c.meta(b"a").unwrap().unwrap(), b"");
    // Limits.
    assert!(matches!(
        c.put_with_meta(b"d", b"v", &vec![0u8; (64 << 10) + 1]),
        Err(Error::InvalidArgument(_))
    ));
    let s = c.stats().unwrap();
    assert_eq!(s.meta_bytes, 5 + 3000);
    c.flush().unwrap();
    assert!(c.verify().unwrap().is_ok());
    drop(c);
    let c = DatasetFileCache::open(dir.path().join("s.dfc"), true).unwrap();
    assert_eq!(c.meta(b"c").unwrap().unwrap(), vec![b'x'; 3000]);
}

#[test]
fn metadata_counts_against_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let c = OpenOptions::new()
        .sync(false)
        .compression_level(None)
        .create(dir.path().join("m.dfc"), 2 << 20)
        .unwrap();
    for i in 0..200u32 {
        c.put_with_meta(&i.to_be_bytes(), b"v", &vec![i as u8; 30_000])
            .unwrap();
    }
    assert!(
        c.stats().unwrap().evictions > 100,
        "metadata made room run out"
    );
    assert!(std::fs::metadata(dir.path().join("m.dfc")).unwrap().len() <= 2 << 20);
    assert_eq!(
        c.meta(&199u32.to_be_bytes()).unwrap().unwrap(),
        vec![199u8; 30_000]
    );
}

#[test]
fn bulk_get_and_put() {
    let dir = tempfile::tempdir().unwrap();
    let c = cache(&dir, 0);
    let items: Vec<(Vec<u8>, Vec<u8>)> = (0..5000u32)
        .map(|i| {
            (
                i.to_be_bytes().to_vec(),
                vec![i as u8; (i as usize * 13) % 1001],
            )
        })
        .collect();
    assert_eq!(c.put_many(items.iter().map(|(k, v)| (k, v))).unwrap(), 5000);
    // Request order is kept; missing keys are None.
    let mut keys: Vec<Vec<u8>> = (0..6000u32)
        .rev()
        .step_by(3)
        .map(|i| i.to_be_bytes().to_vec())
        .collect();
    keys.push(b"nope".to_vec());
    let got = c.get_many(&keys).unwrap();
    assert_eq!(got.len(), keys.len());
    for (k, v) in keys.iter().zip(&got) {
        let want = items.iter().find(|(ik, _)| ik == k).map(|(_, v)| v.clone());
        assert_eq!(v.as_ref().map(|v| v.to_vec()), want, "key {k:?}");
    }
    let s = c.stats().unwrap();
    assert_eq!(s.hits + s.misses, keys.len() as u64);
    drop(got);
    // Read-only handles too.
    drop(c);
    let r = DatasetFileCache::open(dir.path().join("s.dfc"), true).unwrap();
    let got = r.get_many(&[b"\0\0\0\x07".to_vec()]).unwrap();
    assert_eq!(got[0].as_ref().unwrap().to_vec(), vec![7u8; 91]);
    assert!(matches!(
        r.get_many(&[Vec::<u8>::new()]),
        Err(Error::InvalidKey { .. })
    ));
}

#[test]
fn put_many_in_any_order_stores_every_item_once_with_its_last_value() {
    // Keys in random order, values of every kind (inline, in extents,
    // chunked, compressed with a prefix's dictionary), some keys given
    // twice: every value comes back as given, a key given twice with its
    // last value, before and after reopening.
    let dir = tempfile::tempdir().unwrap();
    let c = cache(&dir, 0);
    let words: Vec<u8> = b"tile elevation shard document metadata block "
        .iter()
        .copied()
        .cycle()
        .take(64 << 10)
        .collect();
    c.train_dictionary_for(b"doc/", (0..64).map(|i| &words[i * 97..i * 97 + 900]), 4096)
        .unwrap();
    let mut rng = dfcache::fuzzing::sim::Rng(0x51_7cc1_b727_220au64);
    let mut next = move || rng.next_u64();
    let mut items: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for i in 0..70_000u64 {
        let r = next();
        // Keys in random order; one in twenty is given again later.
        let id = if i % 20 == 19 { r % i } else { i };
        let prefix = ["doc/", "raw/"][(r >> 8) as usize % 2];
        let key = format!("{prefix}{:08x}", id.wrapping_mul(0x9e37_79b9) % (1 << 32));
        let len = match (r >> 16) % 50 {
            _ if i % 2000 == 7 => (1 << 20) + 5000, // chunked
            0..=9 => 300 + (r >> 24) as usize % 20_000,
            _ => 1 + (r >> 24) as usize % 250,
        };
        let v: Vec<u8> = if prefix == "doc/" {
            words[(r >> 40) as usize % 1000..][..len.min(60_000)].to_vec()
        } else {
            (0..len).map(|j| (j as u64 ^ r) as u8).collect()
        };
        items.push((key.into_bytes(), v));
    }
    let mut last = std::collections::BTreeMap::new();
    for (k, v) in &items {
        last.insert(k.clone(), v.clone());
    }
    assert_eq!(
        c.put_many(items.iter().map(|(k, v)| (k, v))).unwrap(),
        items.len() as u64
    );
    let check = |c: &DatasetFileCache| {
        assert_eq!(c.len(), last.len() as u64);
        for (k, v) in &last {
            assert_eq!(&c.get(k).unwrap().unwrap().to_vec(), v, "{k:?}");
        }
        let scanned: Vec<Vec<u8>> = c.scan(b"").unwrap().map(|e| e.unwrap().0).collect();
        assert_eq!(scanned, last.keys().cloned().collect::<Vec<_>>());
    };
    check(&c);
    drop(c);
    let c = DatasetFileCache::open(dir.path().join("s.dfc"), false).unwrap();
    assert!(c.verify().unwrap().is_ok());
    check(&c);
}

#[test]
fn put_many_stores_the_items_before_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let c = cache(&dir, 0);
    let items: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"z".to_vec(), vec![1; 10]),
        (b"a".to_vec(), vec![2; 5000]),
        (Vec::new(), vec![3; 10]),
        (b"m".to_vec(), vec![4; 10]),
    ];
    assert!(matches!(
        c.put_many(items.iter().map(|(k, v)| (k, v))),
        Err(Error::InvalidKey { .. })
    ));
    drop(c);
    let c = DatasetFileCache::open(dir.path().join("s.dfc"), false).unwrap();
    assert_eq!(c.get(b"z").unwrap().unwrap().to_vec(), vec![1; 10]);
    assert_eq!(c.get(b"a").unwrap().unwrap().to_vec(), vec![2; 5000]);
    assert!(c.get(b"m").unwrap().is_none());
    assert_eq!(c.len(), 2);
    assert!(c.verify().unwrap().is_ok());
}

#[test]
fn put_many_of_more_than_the_cache_holds_keeps_the_newest() {
    // Eviction makes room as the items come: the batch succeeds, the file
    // stays within its maximum size and the items given last are kept.
    let dir = tempfile::tempdir().unwrap();
    let cap = 4 << 20;
    let c = OpenOptions::new()
        .sync(false)
        .compression_level(None)
        .create(dir.path().join("s.dfc"), cap)
        .unwrap();
    let items: Vec<(Vec<u8>, Vec<u8>)> = (0..3000u32)
        .map(|i| {
            let key = (i.wrapping_mul(2_654_435_761)).to_be_bytes().to_vec();
            (key, vec![i as u8; 2000 + (i as usize % 7) * 300])
        })
        .collect();
    assert_eq!(c.put_many(items.iter().map(|(k, v)| (k, v))).unwrap(), 3000);
    let s = c.stats().unwrap();
    assert!(s.file_size <= cap, "{} > {cap}", s.file_size);
    assert!(s.evictions > 0);
    // What is left is right, and the items given last are there.
    for (k, v) in &items {
        if let Some(got) = c.get(k).unwrap() {
            assert_eq!(&got.to_vec(), v);
        }
    }
    for (k, _) in &items[items.len() - 20..] {
        assert!(c.get(k).unwrap().is_some());
    }
    assert!(c.verify().unwrap().is_ok());
}

#[test]
fn groups_list_keys_and_survive_eviction() {
    let dir = tempfile::tempdir().unwrap();
    let c = OpenOptions::new()
        .sync(false)
        .compression_level(None)
        .create(dir.path().join("g.dfc"), 2 << 20)
        .unwrap();
    let tile = |x: u32| format!("tile/{x}").into_bytes();
    for x in 0..20 {
        c.put(&tile(x), &vec![x as u8; 1000]).unwrap();
    }
    assert_eq!(c.put_group(b"albers/10_12", (0..10).map(tile)).unwrap(), 10);
    assert_eq!(c.put_group(b"albers/10_13", (5..20).map(tile)).unwrap(), 15);
    assert_eq!(c.put_group(b"other", [b"x".to_vec()]).unwrap(), 1);
    assert_eq!(c.put_group(b"with\0nul", [tile(1)]).unwrap(), 1);
    assert_eq!(
        c.get_group(b"albers/10_12").unwrap().unwrap(),
        (0..10).map(tile).collect::<Vec<_>>()
    );
    assert_eq!(c.get_group(b"nope").unwrap(), None);
    assert_eq!(
        c.groups_with_prefix(b"albers/").unwrap(),
        vec![
            (b"albers/10_12".to_vec(), 10),
            (b"albers/10_13".to_vec(), 15)
        ]
    );
    assert_eq!(c.groups().unwrap().len(), 4);
    assert_eq!(c.get_group(b"with\0nul").unwrap().unwrap(), vec![tile(1)]);
    // Replace a group.
    assert_eq!(
        c.put_group(b"other", [b"y".to_vec(), b"z".to_vec()])
            .unwrap(),
        2
    );
    assert_eq!(
        c.get_group(b"other").unwrap().unwrap(),
        vec![b"y".to_vec(), b"z".to_vec()]
    );
    // Evict some members: the group is intact, streaming skips them.
    for i in 0..3000u32 {
        c.put(&i.to_be_bytes(), &vec![0u8; 2000]).unwrap();
        if c.stats().unwrap().evictions > 30 {
            break;
        }
    }
    assert!(
        !c.contains_key(&tile(0)).unwrap(),
        "the oldest tiles were evicted"
    );
    assert_eq!(c.get_group(b"albers/10_13").unwrap().unwrap().len(), 15);
    let mut s = c.stream_group(b"albers/10_13").unwrap();
    let streamed: Vec<(Vec<u8>, Vec<u8>)> = s
        .by_ref()
        .map(|r| r.map(|(k, v)| (k, v.to_vec())).unwrap())
        .collect();
    assert_eq!(streamed.len() + s.missing().len(), 15);
    assert!(!s.missing().is_empty());
    for (k, v) in &streamed {
        let x: u32 = std::str::from_utf8(&k[5..]).unwrap().parse().unwrap();
        assert_eq!(v, &vec![x as u8; 1000]);
    }
    drop(s);
    assert!(c.remove_group(b"other").unwrap());
    assert!(!c.remove_group(b"other").unwrap());
    c.flush().unwrap();
    let r = c.verify().unwrap();
    assert!(r.is_ok(), "{:?}", r.problems);
    // Compaction keeps groups.
    let copy = dir.path().join("g2.dfc");
    c.compact_to(&copy).unwrap();
    let d = DatasetFileCache::open(&copy, true).unwrap();
    assert_eq!(d.groups().unwrap(), c.groups().unwrap());
    assert_eq!(d.get_group(b"with\0nul").unwrap().unwrap(), vec![tile(1)]);
    assert!(d.verify().unwrap().is_ok());
    drop(d);
    drop(c);
    let c = DatasetFileCache::open(dir.path().join("g.dfc"), true).unwrap();
    assert_eq!(c.groups().unwrap().len(), 3);
    assert!(matches!(c.put_group(b"x", [b"k"]), Err(Error::ReadOnly)));
    assert!(matches!(c.get_group(b""), Err(Error::InvalidArgument(_))));
}

#[test]
fn tee_writes_through_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let c = cache(&dir, 0);
    let items = (0..2500u32).map(|i| (i.to_be_bytes(), vec![i as u8; 100]));
    let mut tee = c.tee(items).batch(1000);
    let mut seen = 0;
    for (k, v) in tee.by_ref() {
        assert_eq!(v, vec![u32::from_be_bytes(k) as u8; 100]);
        seen += 1;
        if seen == 1500 {
            break; // the consumer stops early
        }
    }
    assert_eq!(tee.written(), 1500);
    drop(tee);
    // What was written is committed, and no lock is held: a reopen sees it.
    drop(c);
    let c = DatasetFileCache::open(dir.path().join("s.dfc"), false).unwrap();
    assert_eq!(c.len(), 1500);
    let t = c.tee((0..10u32).map(|i| (format!("k{i}"), "v")));
    assert_eq!(t.count(), 10);
    let t = c.tee((0..10u32).map(|i| (format!("j{i}"), "v")));
    assert_eq!(t.finish().unwrap(), 0, "nothing was iterated");
    assert_eq!(c.len(), 1510);
}

/// Deterministic bytes by position, so any range can be checked.
pub fn byte_at(i: u64) -> u8 {
    let mut z = (i / 8).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    // Mostly incompressible, with compressible stretches.
    if (i >> 20).is_multiple_of(3) {
        (i % 251) as u8
    } else {
        (z >> ((i % 8) * 8)) as u8
    }
}

struct Gen {
    pos: u64,
    len: u64,
}

impl Read for Gen {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = ((self.len - self.pos) as usize).min(out.len()).min(100_003);
        for (j, b) in out[..n].iter_mut().enumerate() {
            *b = byte_at(self.pos + j as u64);
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[test]
fn streamed_values_read_and_seek() {
    let dir = tempfile::tempdir().unwrap();
    let c = cache(&dir, 0);
    let len = (9 << 20) + 12345;
    assert_eq!(c.put_stream(b"big", Gen { pos: 0, len }).unwrap(), len);
    let info = c.entry_info(b"big").unwrap().unwrap();
    assert!(info.chunked && info.raw_len == len);
    assert!(info.stored_len < len, "compressible frames were compressed");
    let mut r = c.get_stream(b"big").unwrap().unwrap();
    assert_eq!(r.len(), len);
    let mut all = Vec::new();
    r.read_to_end(&mut all).unwrap();
    assert_eq!(all.len() as u64, len);
    assert!(all.iter().enumerate().all(|(i, &b)| b == byte_at(i as u64)));
    for &p in &[0u64, 1, (1 << 20) - 1, 1 << 20, 5_000_000, len - 3] {
        r.seek(SeekFrom::Start(p)).unwrap();
        let mut b = [0u8; 3];
        let n = r.read(&mut b).unwrap();
        assert!(n >= 1);
        for (j, &x) in b[..n].iter().enumerate() {
            assert_eq!(x, byte_at(p + j as u64), "at {}", p + j as u64);
        }
    }
    r.seek(SeekFrom::End(-1)).unwrap();
    let mut b = [0u8; 8];
    assert_eq!(r.read(&mut b).unwrap(), 1);
    assert!(r.seek(SeekFrom::Current(-(len as i64) - 5)).is_err());
    // get() assembles it too.
    assert_eq!(c.get(b"big").unwrap().unwrap().len() as u64, len);
    // Small and empty values stream as well.
    c.put(b"small", b"hello").unwrap();
    let mut s = String::new();
    c.get_stream(b"small")
        .unwrap()
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s, "hello");
    assert_eq!(c.put_stream(b"empty", std::io::empty()).unwrap(), 0);
    assert_eq!(c.get(b"empty").unwrap().unwrap().len(), 0);
    assert!(c.get_stream(b"none").unwrap().is_none());
    // Replaced while reading: an error, never a mix.
    let mut r = c.get_stream(b"big").unwrap().unwrap();
    let mut first = vec![0u8; 10];
    r.read_exact(&mut first).unwrap();
    c.put(b"big", b"replaced").unwrap();
    r.seek(SeekFrom::Start(3 << 20)).unwrap();
    let e = r.read(&mut first).unwrap_err();
    assert!(e.to_string().contains("changed"), "{e}");
    c.flush().unwrap();
    assert!(c.verify().unwrap().is_ok());
}

#[test]
fn streamed_values_with_metadata_in_the_same_change() {
    struct Unread;
    impl Read for Unread {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            panic!("the source was read although the metadata is refused");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let c = cache(&dir, 0);
    let len = (3 << 20) + 7;
    let big_meta = vec![b'm'; 4000];
    let n = c
        .put_stream_with_meta(b"big", Gen { pos: 0, len }, &big_meta)
        .unwrap();
    assert_eq!(n, len);
    c.put_stream_with_meta(b"small", &b"hello"[..], br#"{"a": 1}"#)
        .unwrap();
    c.put_stream_with_meta(b"empty", std::io::empty(), b"m")
        .unwrap();
    c.put_stream_with_meta(b"none", &b"x"[..], b"").unwrap();
    assert_eq!(c.meta(b"big").unwrap().unwrap(), big_meta);
    assert_eq!(c.meta(b"small").unwrap().unwrap(), br#"{"a": 1}"#);
    assert_eq!(c.meta(b"empty").unwrap().unwrap(), b"m");
    assert_eq!(c.meta(b"none").unwrap().unwrap(), b"");
    assert_eq!(c.entry_info(b"big").unwrap().unwrap().meta_len, 4000);
    let mut all = Vec::new();
    c.get_stream(b"big")
        .unwrap()
        .unwrap()
        .read_to_end(&mut all)
        .unwrap();
    assert!(
        all.len() as u64 == len && all.iter().enumerate().all(|(i, &b)| b == byte_at(i as u64))
    );
    assert_eq!(c.stats().unwrap().meta_bytes, 4000 + 8 + 1);
    assert!(matches!(
        c.put_stream_with_meta(b"k", Unread, &vec![0u8; (64 << 10) + 1]),
        Err(Error::InvalidArgument(_))
    ));
    // Replacing the entry frees its metadata extent (verify checks that
    // every extent is referenced).
    c.put_stream_with_meta(b"big", &b"short now"[..], b"")
        .unwrap();
    assert_eq!(c.stats().unwrap().meta_bytes, 8 + 1);
    c.flush().unwrap();
    assert!(c.verify().unwrap().is_ok());
    drop(c);
    let c = DatasetFileCache::open(dir.path().join("s.dfc"), true).unwrap();
    assert_eq!(c.meta(b"small").unwrap().unwrap(), br#"{"a": 1}"#);
    assert_eq!(c.get(b"big").unwrap().unwrap().to_vec(), b"short now");
}

#[test]
fn a_failing_stream_stores_nothing_and_leaks_nothing() {
    struct Failing(u64);
    impl Read for Failing {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            if self.0 > 3 << 20 {
                return Err(std::io::Error::other("network went away"));
            }
            let n = out.len().min(65536);
            out[..n].fill(7);
            self.0 += n as u64;
            Ok(n)
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let c = cache(&dir, 0);
    c.put(b"k", b"old").unwrap();
    let e = c.put_stream(b"k", Failing(0)).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    assert_eq!(c.get(b"k").unwrap().unwrap().to_vec(), b"old");
    // Too large for the cap: refused while streaming.
    let c2 = OpenOptions::new()
        .sync(false)
        .create(dir.path().join("small.dfc"), 2 << 20)
        .unwrap();
    let e = c2
        .put_stream(
            b"k",
            Gen {
                pos: 0,
                len: 5 << 20,
            },
        )
        .unwrap_err();
    assert!(matches!(e, Error::ValueTooLarge { .. }), "{e}");
    c.flush().unwrap();
    c2.flush().unwrap();
    assert!(
        c.verify().unwrap().is_ok(),
        "{:?}",
        c.verify().unwrap().problems
    );
    assert!(
        c2.verify().unwrap().is_ok(),
        "{:?}",
        c2.verify().unwrap().problems
    );
    assert!(c2.is_empty());
}

/// JSON documents that look alike, as dscache stores them.
fn doc(i: u32) -> Vec<u8> {
    format!(
        r#"{{"id": "{:08x}-5454-4eef-829d-ed081135aefb", "product": {{"name": "ga_ls8c_ard_3", "platform": "landsat-8"}}, "properties": {{"datetime": "2021-{:02}-{:02}T00:{:02}:13Z", "eo:cloud_cover": {}.{}, "odc:region_code": "{:03}{:03}"}}, "grids": {{"default": {{"shape": [7811, 7681], "transform": [30.0, 0.0, {}00.0, 0.0, -30.0, -{}00.0]}}}}, "measurements": ["nbart_blue", "nbart_green", "nbart_red", "oa_fmask"]}}"#,
        i,
        i % 12 + 1,
        i % 28 + 1,
        i % 60,
        i % 100,
        i % 7,
        i % 200,
        i % 150,
        15000 + i % 999,
        62000 + i % 777
    )
    .into_bytes()
}

#[test]
fn trained_dictionaries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.dfc");
    let c = OpenOptions::new().sync(false).create(&path, 0).unwrap();
    for i in 0..300u32 {
        c.put(format!("doc/{i}").as_bytes(), &doc(i)).unwrap();
    }
    let before: u64 = (0..300u32)
        .map(|i| {
            c.entry_info(format!("doc/{i}").as_bytes())
                .unwrap()
                .unwrap()
                .stored_len
        })
        .sum();
    let samples: Vec<Vec<u8>> = (1000..1200u32).map(doc).collect();
    let id = c.train_dictionary(&samples, 4096).unwrap();
    assert_eq!(id, 1);
    for i in 300..600u32 {
        c.put(format!("doc/{i}").as_bytes(), &doc(i)).unwrap();
    }
    let after: u64 = (300..600u32)
        .map(|i| {
            c.entry_info(format!("doc/{i}").as_bytes())
                .unwrap()
                .unwrap()
                .stored_len
        })
        .sum();
    assert!(
        after * 2 < before,
        "a dictionary halves small documents: {before} -> {after}"
    );
    let info = c.entry_info(b"doc/400").unwrap().unwrap();
    assert_eq!((info.codec, info.dictionary), (dfcache::Codec::Zstd, 1));
    assert_eq!(
        c.entry_info(b"doc/10").unwrap().unwrap().dictionary,
        0,
        "old values keep theirs"
    );
    // A second dictionary for one prefix; old values stay readable.
    let id2 = c.train_dictionary_for(b"other/", &samples, 2048).unwrap();
    assert_eq!(id2, 2);
    c.put(b"other/1", &doc(7)).unwrap();
    assert_eq!(c.entry_info(b"other/1").unwrap().unwrap().dictionary, 2);
    assert_eq!(
        c.entry_info(b"doc/777").unwrap().map(|i| i.dictionary),
        None
    );
    c.put(b"doc/777", &doc(777)).unwrap();
    assert_eq!(c.entry_info(b"doc/777").unwrap().unwrap().dictionary, 1);
    let dicts = c.dictionaries().unwrap();
    assert_eq!(dicts.len(), 2);
    assert_eq!(dicts[0].default_for, vec![Vec::<u8>::new()]);
    assert_eq!(dicts[1].default_for, vec![b"other/".to_vec()]);
    for i in 0..600u32 {
        assert_eq!(
            c.get(format!("doc/{i}").as_bytes())
                .unwrap()
                .unwrap()
                .to_vec(),
            doc(i)
        );
    }
    assert!(matches!(
        c.train_dictionary([b"x"], 1024),
        Err(Error::InvalidArgument(_))
    ));
    c.flush().unwrap();
    let r = c.verify().unwrap();
    assert!(r.is_ok(), "{:?}", r.problems);
    // Compaction keeps dictionaries; recompression re-encodes old values.
    let copy = dir.path().join("copy.dfc");
    c.compact_to(&copy).unwrap();
    let re = dir.path().join("re.dfc");
    c.compact_to_with(&re, dfcache::CompactOptions { recompress: true })
        .unwrap();
    drop(c);
    for p in [&path, &copy, &re] {
        let d = DatasetFileCache::open(p, true).unwrap();
        for i in 0..600u32 {
            assert_eq!(
                d.get(format!("doc/{i}").as_bytes())
                    .unwrap()
                    .unwrap()
                    .to_vec(),
                doc(i),
                "{p:?}"
            );
        }
        assert_eq!(d.get(b"other/1").unwrap().unwrap().to_vec(), doc(7));
        assert!(d.verify().unwrap().is_ok());
    }
    let d = DatasetFileCache::open(&re, true).unwrap();
    assert_eq!(
        d.entry_info(b"doc/10").unwrap().unwrap().dictionary,
        1,
        "recompressed with the default"
    );
    assert!(std::fs::metadata(&re).unwrap().len() < std::fs::metadata(&copy).unwrap().len());
}

#[test]
fn lowering_the_cap_moves_dictionaries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shrink.dfc");
    let c = OpenOptions::new()
        .sync(false)
        .create(&path, 16 << 20)
        .unwrap();
    let samples: Vec<Vec<u8>> = (0..300u32).map(doc).collect();
    // Push the dictionary toward the end of the file.
    for i in 0..2000u32 {
        c.put(format!("pad/{i}").as_bytes(), &vec![i as u8 ^ 0x5a; 4000])
            .unwrap();
    }
    c.train_dictionary(&samples, 8192).unwrap();
    for i in 0..500u32 {
        c.put(format!("doc/{i}").as_bytes(), &doc(i)).unwrap();
    }
    c.flush().unwrap();
    c.set_maximum_file_size(2 << 20).unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() <= 2 << 20);
    let r = c.verify().unwrap();
    assert!(r.is_ok(), "{:?}", r.problems);
    assert_eq!(c.dictionaries().unwrap().len(), 1);
    for i in 450..500u32 {
        assert_eq!(
            c.get(format!("doc/{i}").as_bytes())
                .unwrap()
                .unwrap()
                .to_vec(),
            doc(i)
        );
    }
}

#[test]
fn too_few_or_tiny_samples_are_refused_not_crashed_on() {
    let dir = tempfile::tempdir().unwrap();
    let c = cache(&dir, 0);
    // zstd's trainer itself crashes on some of these.
    let cases: Vec<Vec<Vec<u8>>> = vec![
        vec![],
        vec![b"x".to_vec(); 9],
        vec![b"x".to_vec(); 10],
        vec![b"abcdefgh".to_vec(); 9],
        vec![vec![7u8; 7]; 1000],
        vec![vec![1u8; 100]; 3],
    ];
    for samples in cases {
        let n = samples.len();
        match c.train_dictionary(samples, 8192) {
            Err(dfcache::Error::InvalidArgument(_)) => {}
            other => panic!("{n} samples: {other:?}"),
        }
    }
    assert!(c.dictionaries().unwrap().is_empty());
}

#[test]
fn a_new_dictionary_is_tried_at_once_and_on_short_values() {
    let dir = tempfile::tempdir().unwrap();
    let c = cache(&dir, 0);
    // Incompressible values first: compression backs off.
    for i in 0..40u64 {
        let v: Vec<u8> = (0..200u64)
            .map(|j| {
                (i.wrapping_mul(6364136223846793005) ^ j.wrapping_mul(1442695040888963407))
                    .to_le_bytes()[3]
            })
            .collect();
        c.put(format!("noise/{i}").as_bytes(), &v).unwrap();
    }
    let short = |i: u32| format!(r#"{{"scene":{i},"product":"ga_ls8c_ard_3"}}"#);
    let samples: Vec<String> = (100..600).map(short).collect();
    let id = c.train_dictionary(&samples, 4096).unwrap();
    let v = short(9999);
    assert!(v.len() < 64, "a short value ({} bytes)", v.len());
    c.put(b"doc/new", v.as_bytes()).unwrap();
    let info = c.entry_info(b"doc/new").unwrap().unwrap();
    assert_eq!(info.dictionary, id);
    assert!(info.stored_len < info.raw_len, "{info:?}");
    assert_eq!(c.get(b"doc/new").unwrap().unwrap().to_vec(), v.as_bytes());
}

#[test]
fn progress_reports_end_at_the_totals() {
    let dir = tempfile::tempdir().unwrap();
    let c = cache(&dir, 0);
    for i in 0..1000u32 {
        c.put(
            format!("k{i:05}").as_bytes(),
            &vec![i as u8; 100 + i as usize],
        )
        .unwrap();
    }
    c.flush().unwrap();
    let mut last = None;
    let rep = c.verify_with_progress(&mut |p| last = Some(p)).unwrap();
    assert!(rep.is_ok());
    let p = last.expect("verify reported progress");
    assert_eq!((p.entries, p.entries_total), (1000, 1000));
    assert_eq!(p.bytes, p.bytes_total);
    let mut last = None;
    c.compact_to_with_progress(dir.path().join("copy.dfc"), Default::default(), &mut |p| {
        last = Some(p)
    })
    .unwrap();
    let p = last.expect("compaction reported progress");
    assert_eq!((p.entries, p.entries_total), (1000, 1000));
    assert_eq!(p.bytes, p.bytes_total);
}
