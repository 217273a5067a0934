use dfcache::{DatasetFileCache, Flushable};

#[test]
fn put_get_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.dfc");
    {
        let c = DatasetFileCache::create(&p, 0).unwrap();
        c.put(b"a", b"hello").unwrap();
        c.put(b"b", &vec![7u8; 5000]).unwrap();
        c.put(b"c", &vec![b'x'; 100_000]).unwrap();
        assert_eq!(&*c.get(b"a").unwrap().unwrap(), b"hello");
        assert_eq!(c.get(b"b").unwrap().unwrap().len(), 5000);
        c.flush().unwrap();
        assert_eq!(&*c.get(b"a").unwrap().unwrap(), b"hello");
        for i in 0..3000u32 {
            c.put(
                format!("k{i:05}").as_bytes(),
                &i.to_le_bytes().repeat(i as usize % 300),
            )
            .unwrap();
        }
        assert!(c.remove(b"a").unwrap());
        assert!(!c.remove(b"a").unwrap());
    }
    let c = DatasetFileCache::open(&p, false).unwrap();
    assert_eq!(c.len(), 3002);
    assert!(c.get(b"a").unwrap().is_none());
    assert_eq!(c.get(b"b").unwrap().unwrap().to_vec(), vec![7u8; 5000]);
    assert_eq!(c.get(b"c").unwrap().unwrap().to_vec(), vec![b'x'; 100_000]);
    for i in 0..3000u32 {
        let v = c.get(format!("k{i:05}").as_bytes()).unwrap().unwrap();
        assert_eq!(v.to_vec(), i.to_le_bytes().repeat(i as usize % 300));
    }
    let keys: Vec<Vec<u8>> = c.keys().unwrap().map(|k| k.unwrap()).collect();
    assert_eq!(keys.len(), 3002);
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
    let big = vec![3u8; 3 << 20];
    c.put(b"big", &big).unwrap();
    c.flush().unwrap();
    drop(c);
    let c = DatasetFileCache::open(&p, true).unwrap();
    assert_eq!(c.get(b"big").unwrap().unwrap().to_vec(), big);
}

#[test]
fn values_are_compressed_only_when_it_pays() {
    let dir = tempfile::tempdir().unwrap();
    let c = DatasetFileCache::create(dir.path().join("z.dfc"), 0).unwrap();
    let text = b"{\"tile\": [12, 55], \"name\": \"elevation\", \"unit\": \"m\"} ".repeat(200);
    let mut x = 3u64;
    let random: Vec<u8> = (0..20_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    // 8 % smaller at best: not worth it.
    let mut barely: Vec<u8> = random.clone();
    for b in barely.iter_mut().take(random.len() * 8 / 100) {
        *b = 0;
    }
    c.put(b"text", &text).unwrap();
    c.put(b"random", &random).unwrap();
    c.put(b"barely", &barely).unwrap();
    c.put(b"tiny", b"abcabcabc").unwrap();
    let t = c.entry_info(b"text").unwrap().unwrap();
    assert_eq!(t.codec, dfcache::Codec::Zstd);
    assert!(t.stored_len * 10 < t.raw_len, "{t:?}");
    assert_eq!(c.get(b"text").unwrap().unwrap().to_vec(), text);
    let r = c.entry_info(b"random").unwrap().unwrap();
    assert_eq!((r.codec, r.stored_len), (dfcache::Codec::Raw, 20_000));
    assert!(
        c.get(b"random").unwrap().unwrap().is_mapped(),
        "raw values are not copied"
    );
    assert_eq!(
        c.entry_info(b"barely").unwrap().unwrap().codec,
        dfcache::Codec::Raw
    );
    assert_eq!(
        c.entry_info(b"tiny").unwrap().unwrap().codec,
        dfcache::Codec::Raw
    );
    // Level None stores everything raw.
    drop(c);
    let c = dfcache::OpenOptions::new()
        .compression_level(None)
        .open(dir.path().join("z.dfc"))
        .unwrap();
    c.put(b"text2", &text).unwrap();
    assert_eq!(
        c.entry_info(b"text2").unwrap().unwrap().codec,
        dfcache::Codec::Raw
    );
    assert_eq!(
        c.entry_info(b"text").unwrap().unwrap().codec,
        dfcache::Codec::Zstd
    );
    assert!(c.entry_info(b"nope").unwrap().is_none());
}

/// The README's Rust example, run as written.
#[test]
fn readme_example() -> Result<(), Box<dyn std::error::Error>> {
    let readme = include_str!("../README.md");
    assert!(readme.contains("cargo run --release -- demo"));
    assert!(readme.contains("cargo test --release"));
    use dfcache::{DatasetFileCache, Flushable};

    let dir = tempfile::tempdir()?;
    let cache = DatasetFileCache::create(dir.path().join("tiles.dfc"), 64 << 20)?; // 64 MiB cap
    cache.put(b"tile/12/2210/1343", b"...elevation samples...")?;
    if let Some(v) = cache.get(b"tile/12/2210/1343")? {
        assert_eq!(&*v, b"...elevation samples...");
    }
    cache.flush()?; // durable now; a crash leaves the file at the last flush
    drop(cache);

    let shared = DatasetFileCache::open(dir.path().join("tiles.dfc"), true)?; // read-only
    assert_eq!(shared.len(), 1);
    Ok(())
}

/// The README's read-through example, run as written.
#[test]
fn readme_read_through_example() -> Result<(), Box<dyn std::error::Error>> {
    use dfcache::{CachedDataset, Dataset, DatasetFileCache, DatasetId, Result};
    use std::sync::Arc;

    /// Your slow source: a tile server, an object store, a remote file.
    struct TileServer;

    impl Dataset for TileServer {
        fn id(&self) -> DatasetId {
            // A GUID for the dataset and a revision that changes with its content.
            DatasetId::new(uuid::Uuid::from_u128(0x5eed), 7)
        }
        fn read_block(&self, index: u64) -> Result<Option<Vec<u8>>> {
            Ok((index < 1000).then(|| vec![index as u8; 4096])) // None: no such block
        }
    }

    let dir = tempfile::tempdir()?;
    let local = Arc::new(DatasetFileCache::create(
        dir.path().join("local.dfc"),
        256 << 20,
    )?);
    let tiles = CachedDataset::new(TileServer, local);
    assert_eq!(tiles.read_block(42)?, Some(vec![42; 4096])); // from the source, now cached
    assert_eq!(tiles.read_block(42)?, Some(vec![42; 4096])); // from the cache
    assert_eq!(tiles.read_block(5000)?, None); // "no such block" is cached too
    Ok(())
}

/// The README's metadata example, run as written.
#[test]
fn readme_metadata_example() -> Result<(), Box<dyn std::error::Error>> {
    use dfcache::DatasetFileCache;

    let dir = tempfile::tempdir()?;
    let cache = DatasetFileCache::create(dir.path().join("tiles.dfc"), 64 << 20)?;
    let meta = br#"{"crs": "EPSG:3577", "shape": [4000, 4000]}"#;
    cache.put_with_meta(b"tile/12/2210/1343", b"...samples...", meta)?;
    assert_eq!(
        cache.meta(b"tile/12/2210/1343")?.as_deref(),
        Some(&meta[..])
    );
    assert!(cache.set_meta(b"tile/12/2210/1343", b"{}")?); // the value and its LRU place stay
    cache.put(b"tile/12/2210/1344", b"...")?;
    assert_eq!(cache.meta(b"tile/12/2210/1344")?, Some(Vec::new())); // present, no metadata
    assert_eq!(cache.meta(b"tile/0/0/0")?, None); // not cached
    Ok(())
}

/// The README's entry_info example, run as written.
#[test]
fn readme_entry_info_example() -> Result<(), Box<dyn std::error::Error>> {
    use dfcache::{Codec, DatasetFileCache};

    let dir = tempfile::tempdir()?;
    let cache = DatasetFileCache::create(dir.path().join("tiles.dfc"), 0)?; // 0: no cap
    cache.put(b"tile/1", "elevation ".repeat(1000).as_bytes())?;
    let info = cache.entry_info(b"tile/1")?.ok_or("not cached")?;
    assert_eq!(
        (info.raw_len, info.codec, info.absent),
        (10_000, Codec::Zstd, false)
    );
    assert!(info.stored_len < 200); // compressed; `chunked`: stored in 1 MiB frames
    assert_eq!((info.dictionary, info.meta_len), (0, 0)); // no dictionary, no metadata
    assert!(info.inserted <= std::time::SystemTime::now()); // and `last_use`: the LRU tick
    Ok(())
}

/// The README's bulk access example, run as written.
#[test]
fn readme_bulk_example() -> Result<(), Box<dyn std::error::Error>> {
    use dfcache::DatasetFileCache;

    let dir = tempfile::tempdir()?;
    let cache = DatasetFileCache::create(dir.path().join("tiles.dfc"), 0)?;
    let tiles: Vec<(String, Vec<u8>)> = (0..1000u32)
        .map(|i| (format!("tile/{i:04}"), vec![i as u8; 512]))
        .collect();
    assert_eq!(cache.put_many(tiles.iter().map(|(k, v)| (k, v)))?, 1000); // one commit
    let values = cache.get_many(&["tile/0999", "tile/5000", "tile/0001"])?;
    assert_eq!(values[0].as_deref(), Some(&[231u8; 512][..])); // request order
    assert!(values[1].is_none()); // not cached
    assert_eq!(values[2].as_deref(), Some(&[1u8; 512][..]));
    Ok(())
}

/// The README's streamed values example, run as written.
#[test]
fn readme_stream_example() -> Result<(), Box<dyn std::error::Error>> {
    use dfcache::DatasetFileCache;
    use std::io::{Read, Seek, SeekFrom};

    let dir = tempfile::tempdir()?;
    let cache = DatasetFileCache::create(dir.path().join("scenes.dfc"), 0)?;
    let scene = std::io::repeat(7).take(10 << 20); // any Read: a file, a socket, a decoder
    assert_eq!(cache.put_stream(b"scene/42", scene)?, 10 << 20);
    let mut r = cache.get_stream(b"scene/42")?.ok_or("not cached")?;
    assert_eq!(r.len(), 10 << 20);
    r.seek(SeekFrom::Start(9 << 20))?;
    let mut last = Vec::new();
    r.read_to_end(&mut last)?;
    assert_eq!(last, vec![7u8; 1 << 20]);
    Ok(())
}

/// The README's tee example, run as written.
#[test]
fn readme_tee_example() -> Result<(), Box<dyn std::error::Error>> {
    use dfcache::DatasetFileCache;

    let dir = tempfile::tempdir()?;
    let cache = DatasetFileCache::create(dir.path().join("tiles.dfc"), 0)?;
    let from_source = (0..2500u32).map(|i| (format!("tile/{i}"), vec![i as u8; 100]));
    let mut tee = cache.tee(from_source).batch(1000); // commits every 1000 items
    let mut total = 0;
    for (_key, value) in tee.by_ref() {
        total += value.len(); // your own processing: the items pass through unchanged
    }
    assert_eq!((total, tee.finish()?), (250_000, 2500)); // the last commit, and any error
    assert_eq!(cache.len(), 2500);
    Ok(())
}

/// The README's groups example, run as written.
#[test]
fn readme_groups_example() -> Result<(), Box<dyn std::error::Error>> {
    use dfcache::DatasetFileCache;

    let dir = tempfile::tempdir()?;
    let cache = DatasetFileCache::create(dir.path().join("tiles.dfc"), 0)?;
    for x in 0..4u8 {
        cache.put(format!("tile/12/{x}").as_bytes(), &[x; 100])?;
    }
    let z12 = (0..5).map(|x| format!("tile/12/{x}")); // tile/12/4 is not cached
    assert_eq!(cache.put_group(b"albers/z12", z12)?, 5);
    let listed = cache.groups_with_prefix(b"albers/")?; // (name, member count)
    assert_eq!(listed, vec![(b"albers/z12".to_vec(), 5)]);
    let mut members = cache.stream_group(b"albers/z12")?; // (key, value), in group order
    let (key, value) = members.next().ok_or("empty")??;
    assert_eq!((key, &*value), (b"tile/12/0".to_vec(), &[0u8; 100][..]));
    assert_eq!(members.by_ref().count(), 3);
    assert_eq!(members.missing(), [b"tile/12/4".to_vec()]); // listed, not cached
    assert!(cache.remove_group(b"albers/z12")?); // the entries stay
    Ok(())
}

/// The README's trained dictionaries example, run as written.
#[test]
fn readme_dictionaries_example() -> Result<(), Box<dyn std::error::Error>> {
    use dfcache::{CompactOptions, DatasetFileCache};

    let dir = tempfile::tempdir()?;
    let cache = DatasetFileCache::create(dir.path().join("docs.dfc"), 0)?;
    let template = r#"{"product": "ga_ls8c_ard_3", "platform": "landsat-8", "scene": "#;
    let doc = |i: u32| format!("{template}{i}}}");
    cache.put(b"doc/0", doc(0).as_bytes())?; // stored before there is a dictionary
    let samples: Vec<String> = (1..500).map(doc).collect(); // values like those to come
    let id = cache.train_dictionary_for(b"doc/", &samples, 4096)?; // the default under doc/
    for i in 1..500 {
        cache.put(format!("doc/{i}").as_bytes(), doc(i).as_bytes())?;
    }
    assert_eq!(cache.entry_info(b"doc/7")?.map(|i| i.dictionary), Some(id));
    assert_eq!(cache.entry_info(b"doc/0")?.map(|i| i.dictionary), Some(0));
    assert_eq!(cache.dictionaries()?[0].default_for, vec![b"doc/".to_vec()]);
    let copy = dir.path().join("docs-recompressed.dfc");
    cache.compact_to_with(&copy, CompactOptions { recompress: true })?; // doc/0 too
    let copy = DatasetFileCache::open(copy, true)?;
    assert_eq!(copy.entry_info(b"doc/0")?.map(|i| i.dictionary), Some(id));
    Ok(())
}

/// Every Rust block of the README is one of the tests above, as written:
/// the blocks, without their hidden `# ` lines and ignoring whitespace and
/// the trailing commas rustfmt adds, appear in this file.
#[test]
fn readme_rust_blocks_are_tested() {
    fn normalize(code: &str) -> String {
        let mut s: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        for (from, to) in [(",)", ")"), (",]", "]"), (",}", "}")] {
            s = s.replace(from, to);
        }
        s
    }
    let readme = include_str!("../README.md");
    let tests = normalize(include_str!("smoke.rs"));
    let mut blocks = 0;
    let mut rest = readme;
    while let Some(start) = rest.find("```rust\n") {
        let body = &rest[start + 8..];
        let end = body.find("```").expect("the block ends");
        let code: Vec<&str> = body[..end]
            .lines()
            .filter(|l| !l.starts_with("# "))
            .collect();
        let code = normalize(&code.join("\n"));
        assert!(
            tests.contains(&code),
            "README block {} is not a test in tests/smoke.rs:\n{}",
            blocks + 1,
            &body[..end]
        );
        blocks += 1;
        rest = &body[end + 3..];
    }
    assert_eq!(blocks, 9, "the README's Rust blocks");
}
