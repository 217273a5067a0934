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
