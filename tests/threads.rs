//! Readers in parallel with a writer see whole values, never torn ones, and
//! a held `Value` never changes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dfcache::{DatasetFileCache, Flushable, OpenOptions};

/// A value that names its key and version and checks itself.
fn value(key: u32, version: u32, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len.max(12));
    v.extend_from_slice(&key.to_le_bytes());
    v.extend_from_slice(&version.to_le_bytes());
    let mut x = (key as u64) << 32 | version as u64 | 1;
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

fn check(key: u32, v: &[u8]) {
    assert!(v.len() >= 12, "short value for {key}");
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
}

#[test]
fn readers_and_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let c = Arc::new(
        OpenOptions::new()
            .sync(false)
            .create(dir.path().join("t.dfc"), 32 << 20)
            .unwrap(),
    );
    for k in 0..2000u32 {
        c.put(
            &k.to_be_bytes(),
            &value(k, 0, 100 + (k as usize * 37) % 9000),
        )
        .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let readers: Vec<_> = (0..4)
        .map(|t| {
            let c = c.clone();
            let stop = stop.clone();
            let progress = progress.clone();
            std::thread::spawn(move || {
                let mut x = 77u64 + t;
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let k = (x % 2000) as u32;
                    if let Some(v) = c.get(&k.to_be_bytes()).unwrap() {
                        check(k, &v);
                        let copy = v.to_vec();
                        // Hold it across the writer's work; it must not change.
                        std::thread::yield_now();
                        assert_eq!(&*v, &copy[..], "a held value changed");
                    }
                    n += 1;
                    progress.fetch_add(1, Ordering::Relaxed);
                }
                n
            })
        })
        .collect();
    let mut x = 5u64;
    for round in 1..=30u32 {
        // The readers must overlap every round, however the threads are
        // scheduled (a busy machine once let the writer finish first).
        let start = progress.load(Ordering::Relaxed);
        for _ in 0..300 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = (x % 2000) as u32;
            if x.is_multiple_of(7) {
                c.remove(&k.to_be_bytes()).unwrap();
            } else {
                c.put(&k.to_be_bytes(), &value(k, round, (x % 20_000) as usize))
                    .unwrap();
            }
        }
        c.flush().unwrap();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while progress.load(Ordering::Relaxed) < start + 50 && std::time::Instant::now() < until {
            std::thread::yield_now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let reads: u64 = readers.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(reads >= 1500, "readers made progress: {reads}");
    assert!(std::fs::metadata(dir.path().join("t.dfc")).unwrap().len() <= 32 << 20);
}

#[test]
fn a_held_value_survives_overwrite_remove_commit_and_reuse() {
    let dir = tempfile::tempdir().unwrap();
    let c = OpenOptions::new()
        .sync(false)
        .compression_level(None)
        .create(dir.path().join("h.dfc"), 0)
        .unwrap();
    c.put(b"k", &value(1, 1, 8000)).unwrap();
    c.flush().unwrap();
    let held = c.get(b"k").unwrap().unwrap();
    assert!(held.is_mapped());
    let before = held.to_vec();
    c.put(b"k", &value(1, 2, 8000)).unwrap();
    c.remove(b"k").unwrap();
    c.flush().unwrap();
    for i in 0..200u32 {
        c.put(&i.to_be_bytes(), &value(i, 3, 8000)).unwrap();
    }
    c.flush().unwrap();
    assert_eq!(&*held, &before[..]);
    drop(held);
    // Once released, the space is reused.
    for i in 200..400u32 {
        c.put(&i.to_be_bytes(), &value(i, 3, 8000)).unwrap();
    }
    c.flush().unwrap();
    assert!(c.get(b"k").unwrap().is_none());
}

#[test]
fn cache_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<DatasetFileCache>();
    fn assert_send<T: Send>() {}
    assert_send::<dfcache::Value<'static>>();
}
