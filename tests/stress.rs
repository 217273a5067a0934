//! Concurrency stress: 8 threads share one handle for a bounded time doing
//! mixed get/put/remove/flush. Each thread owns a key range and records
//! what it last wrote; reads of its own keys must return exactly that (or,
//! under a size cap, nothing: evicted), reads of other threads' keys must
//! return well-formed values of that key (self-checking values). Some
//! reads hold their `Value` while others write, and check it has not
//! changed. Afterwards: `verify()`, every recorded value, and the same
//! after a reopen. Runs without a cap and under a cap (eviction racing
//! readers). `DFCACHE_STRESS_SECS` sets the seconds per run (default 2).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{check_value, sc_value, Rng};
use dfcache::{DatasetFileCache, Error, Flushable, OpenOptions};

const THREADS: u32 = 8;
const KEYS: u32 = 32;
const HOLD: u64 = 1;

fn key(t: u32, j: u32) -> Vec<u8> {
    format!("t{t}-k{j:02}").into_bytes()
}

fn id(t: u32, j: u32) -> u32 {
    t * 1000 + j
}

/// What a thread last wrote to its keys (`None`: removed).
type Owned = HashMap<u32, Option<Vec<u8>>>;

#[derive(Default)]
struct Counts {
    ops: AtomicU64,
    hits: AtomicU64,
    evicted_misses: AtomicU64,
    no_space: AtomicU64,
    flushes: AtomicU64,
}

fn worker(
    c: &DatasetFileCache,
    t: u32,
    capped: bool,
    until: Instant,
    seed: u64,
    n: &Counts,
) -> Owned {
    let mut r = Rng(seed ^ ((t as u64) << 40));
    let mut owned = Owned::new();
    let mut version = 0u32;
    let ctx = |what: &str| format!("seed {seed:#x}, thread {t}, capped {capped}: {what}");
    while Instant::now() < until {
        n.ops.fetch_add(1, Ordering::Relaxed);
        let j = r.below(KEYS as u64) as u32;
        match r.below(100) {
            0..=34 => {
                version += 1;
                let len = match r.below(8) {
                    0..=3 => 20 + r.below(230),
                    4..=6 => 300 + r.below(8000),
                    _ => 20_000 + r.below(40_000),
                } as usize;
                let v = sc_value(id(t, j), version, len);
                match c.put(&key(t, j), &v) {
                    Ok(()) => {
                        owned.insert(j, Some(v));
                    }
                    Err(Error::NoSpace { .. }) if capped => {
                        // Live Values of other threads hold the space: the
                        // put did not happen (the old value may be evicted).
                        n.no_space.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => panic!("{}", ctx(&format!("put: {e}"))),
                }
            }
            35..=44 => {
                c.remove(&key(t, j))
                    .unwrap_or_else(|e| panic!("{}", ctx(&format!("remove: {e}"))));
                owned.insert(j, None);
            }
            45..=69 => {
                let got = c
                    .get(&key(t, j))
                    .unwrap_or_else(|e| panic!("{}", ctx(&format!("get own: {e}"))));
                let want = owned.get(&j).cloned().flatten();
                match (got, want) {
                    (Some(v), Some(w)) => {
                        assert!(*v == *w, "{}", ctx(&format!("own key {j}: another value")));
                        n.hits.fetch_add(1, Ordering::Relaxed);
                    }
                    (None, None) => {}
                    (None, Some(_)) if capped => {
                        n.evicted_misses.fetch_add(1, Ordering::Relaxed);
                        owned.insert(j, None);
                    }
                    (got, want) => panic!(
                        "{}",
                        ctx(&format!(
                            "own key {j}: got {:?} bytes, wrote {:?}",
                            got.map(|v| v.len()),
                            want.map(|v| v.len())
                        ))
                    ),
                }
            }
            70..=97 => {
                let o = r.below(THREADS as u64) as u32;
                let got = c
                    .get(&key(o, j))
                    .unwrap_or_else(|e| panic!("{}", ctx(&format!("get other: {e}"))));
                if let Some(v) = got {
                    let (k, _) = check_value(&v)
                        .unwrap_or_else(|e| panic!("{}", ctx(&format!("thread {o} key {j}: {e}"))));
                    assert_eq!(k, id(o, j), "{}", ctx("a value of another key"));
                    if r.chance(HOLD, 8) {
                        // Hold it while others write and commit.
                        let copy = v.to_vec();
                        std::thread::sleep(Duration::from_micros(200 + r.below(2000)));
                        assert!(*v == copy, "{}", ctx("a held Value changed"));
                    }
                    n.hits.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ => {
                c.flush()
                    .unwrap_or_else(|e| panic!("{}", ctx(&format!("flush: {e}"))));
                n.flushes.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    owned
}

fn check_final(c: &DatasetFileCache, owned: &[Owned], capped: bool, ctx: &str) {
    let rep = c.verify().unwrap();
    assert!(rep.is_ok(), "{ctx}: verify: {:?}", rep.problems);
    for (t, o) in owned.iter().enumerate() {
        for j in 0..KEYS {
            let got = c.get(&key(t as u32, j)).unwrap().map(|v| v.to_vec());
            let want = o.get(&j).cloned().flatten();
            let ok = got == want || (capped && got.is_none());
            assert!(
                ok,
                "{ctx}: thread {t} key {j}: got {:?} bytes, wrote {:?}",
                got.map(|v| v.len()),
                want.map(|v| v.len())
            );
        }
    }
}

fn stress(cap: u64, seed: u64) {
    let secs: u64 = std::env::var("DFCACHE_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let capped = cap != 0;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stress.dfc");
    let c = Arc::new(OpenOptions::new().sync(false).create(&path, cap).unwrap());
    let counts = Arc::new(Counts::default());
    let until = Instant::now() + Duration::from_secs(secs);
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (c, counts) = (c.clone(), counts.clone());
            std::thread::spawn(move || worker(&c, t, capped, until, seed, &counts))
        })
        .collect();
    let owned: Vec<Owned> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ctx = format!("seed {seed:#x}, cap {cap}");
    c.flush().unwrap();
    check_final(&c, &owned, capped, &ctx);
    let s = c.stats().unwrap();
    drop(c);
    let c = DatasetFileCache::open(&path, false).unwrap();
    check_final(&c, &owned, capped, &format!("{ctx}, reopened"));
    eprintln!(
        "stress: cap {cap}: {} ops, {} hits, {} flushes, {} evictions, {} evicted misses, {} NoSpace",
        counts.ops.load(Ordering::Relaxed),
        counts.hits.load(Ordering::Relaxed),
        counts.flushes.load(Ordering::Relaxed),
        s.evictions,
        counts.evicted_misses.load(Ordering::Relaxed),
        counts.no_space.load(Ordering::Relaxed)
    );
    assert!(
        counts.ops.load(Ordering::Relaxed) > 1000,
        "{ctx}: too few operations"
    );
    if capped {
        assert!(
            s.evictions > 0,
            "{ctx}: nothing was evicted: the cap run did not race eviction"
        );
    }
}

#[test]
fn eight_threads_without_a_cap() {
    stress(0, common::seed(0x57E5_0001));
}

#[test]
fn eight_threads_racing_eviction_under_a_cap() {
    stress(2 << 20, common::seed(0x57E5_0002));
}
