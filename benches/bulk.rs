//! `get_many` against one `get` per key: 100,000 random keys with values of
//! 0-1000 bytes (incompressible), looked up in random order, on a warm page
//! cache and on a cold one (the file's pages dropped with
//! `posix_fadvise(DONTNEED)` before each run).
//!
//! `cargo bench --bench bulk [-- N]` (N entries, default 100000).

use std::time::Instant;

use dfcache::{DatasetFileCache, Flushable, OpenOptions};

/// xorshift64.
fn rng(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// Drops the file's pages from the page cache (they are clean: flushed).
fn drop_pages(path: &std::path::Path) {
    use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
    let f = std::fs::File::open(path).expect("open");
    posix_fadvise(&f, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED).expect("fadvise");
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|s| s.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir_in(".").expect("tempdir");
    let path = dir.path().join("bulk.dfc");
    let mut x = 0x5eed_u64;
    // Random 16-byte keys, values of 0..=1000 random bytes.
    let items: Vec<([u8; 16], Vec<u8>)> = (0..n)
        .map(|_| {
            let mut k = [0u8; 16];
            k[..8].copy_from_slice(&rng(&mut x).to_le_bytes());
            k[8..].copy_from_slice(&rng(&mut x).to_le_bytes());
            let len = (rng(&mut x) % 1001) as usize;
            let v = (0..len).map(|_| rng(&mut x) as u8).collect();
            (k, v)
        })
        .collect();
    {
        let c = OpenOptions::new()
            .compression_level(None)
            .create(&path, 0)
            .expect("create");
        let t = Instant::now();
        c.put_many(items.iter().map(|(k, v)| (k, v)))
            .expect("put_many");
        c.flush().expect("flush");
        let s = t.elapsed().as_secs_f64();
        let bytes: usize = items.iter().map(|(_, v)| v.len()).sum();
        println!(
            "put_many of {n} values ({:.1} MB): {:.2} s, {:.0} values/s",
            bytes as f64 / 1e6,
            s,
            n as f64 / s
        );
    }
    // Look up in a random order.
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng(&mut x) as usize % (i + 1));
    }
    let keys: Vec<[u8; 16]> = order.iter().map(|&i| items[i].0).collect();
    let check = |i: usize, got: &[u8]| assert_eq!(got, items[order[i]].1.as_slice());

    println!("| page cache | one get per key | get_many | speed-up |");
    println!("|---|---:|---:|---:|");
    for cold in [false, true] {
        let one = {
            if cold {
                drop_pages(&path);
            }
            let c = DatasetFileCache::open(&path, true).expect("open");
            let t = Instant::now();
            for (i, k) in keys.iter().enumerate() {
                check(i, &c.get(k).expect("get").expect("present"));
            }
            t.elapsed().as_secs_f64()
        };
        let many = {
            if cold {
                drop_pages(&path);
            }
            let c = DatasetFileCache::open(&path, true).expect("open");
            let t = Instant::now();
            let got = c.get_many(&keys).expect("get_many");
            for (i, v) in got.iter().enumerate() {
                check(i, v.as_ref().expect("present"));
            }
            t.elapsed().as_secs_f64()
        };
        println!(
            "| {} | {:.0} keys/s ({:.2} s) | {:.0} keys/s ({:.2} s) | {:.1}x |",
            if cold { "cold" } else { "warm" },
            n as f64 / one,
            one,
            n as f64 / many,
            many,
            one / many
        );
    }
}
