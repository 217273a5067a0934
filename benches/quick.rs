//! Quick measurements of the core paths (not the comparison benchmark).
use std::time::Instant;

use dfcache::{Flushable, OpenOptions};

fn rng(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|s| s.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir_in(".").unwrap();
    let p = dir.path().join("q.dfc");
    let c = OpenOptions::new().create(&p, 0).unwrap();
    let mut x = 42u64;
    let mut keys: Vec<[u8; 28]> = (0..n as u64)
        .map(|i| {
            let mut k = [7u8; 28];
            k[20..].copy_from_slice(&i.to_be_bytes());
            k
        })
        .collect();
    for i in (1..keys.len()).rev() {
        let j = rng(&mut x) as usize % (i + 1);
        keys.swap(i, j);
    }
    let mut val = vec![0u8; 4096];
    let t = Instant::now();
    for k in &keys {
        for w in val.chunks_mut(8) {
            w.copy_from_slice(&rng(&mut x).to_le_bytes());
        }
        c.put(k, &val).unwrap();
    }
    let tp = t.elapsed();
    c.flush().unwrap();
    let tl = t.elapsed();
    let len = std::fs::metadata(&p).unwrap().len();
    println!(
        "bulk load {n} x 4 KiB: puts {:.2}s, with flush {:.2}s = {:.0} MB/s; file/payload {:.4}",
        tp.as_secs_f64(),
        tl.as_secs_f64(),
        (n * 4096) as f64 / tl.as_secs_f64() / 1e6,
        len as f64 / (n * 4096) as f64
    );
    let gets = 1_000_000;
    let t = Instant::now();
    let mut sum = 0u32;
    for _ in 0..gets {
        let k = &keys[rng(&mut x) as usize % n];
        let v = c.get(k).unwrap().unwrap();
        sum ^= crc32fast::hash(&v);
    }
    let tg = t.elapsed();
    println!(
        "random get: {:.0} ops/s ({sum})",
        gets as f64 / tg.as_secs_f64()
    );
    let t = Instant::now();
    c.flush().unwrap();
    println!("flush after 1M hits: {:.3}s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let mut lat = Vec::new();
    for _ in 0..500 {
        let s = Instant::now();
        for _ in 0..10 {
            let k = &keys[rng(&mut x) as usize % n];
            c.put(k, &val).unwrap();
        }
        c.flush().unwrap();
        lat.push(s.elapsed().as_micros());
    }
    lat.sort();
    println!(
        "durable commits of 10 puts: {:.0}/s p50 {} us p99 {} us",
        500.0 / t.elapsed().as_secs_f64(),
        lat[250],
        lat[495]
    );
    drop(c);
    let t = Instant::now();
    let c = OpenOptions::new().open(&p).unwrap();
    let v = c.get(&keys[0]).unwrap().unwrap().len();
    println!(
        "reopen + get: {:.3} ms ({v})",
        t.elapsed().as_secs_f64() * 1e3
    );
}
