//! `dfcache demo`: the main job on an embedded default.
//!
//! A simulated slow source (2 ms and a checksum per block) is read through a
//! cache whose maximum size is smaller than the data, with a skewed (Zipf)
//! access pattern from several threads. Then the cache is reopened read-only
//! and a second reader is served from it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dfcache::{
    CachedDataset, Dataset, DatasetFileCache, DatasetId, Flushable, OpenOptions, Result,
};

const BLOCKS: u64 = 4096;
const BLOCK_SIZE: usize = 16 << 10;
const CAP: u64 = 16 << 20;
const THREADS: u64 = 4;
const READS_PER_THREAD: u64 = 2500;
const LATENCY: Duration = Duration::from_millis(2);

/// A slow source: each read takes 2 ms; each block ends with a CRC of the
/// rest, which readers check.
struct SlowSource {
    reads: AtomicU64,
}

impl SlowSource {
    fn block(i: u64) -> Vec<u8> {
        // Elevation-like tiles: 16-bit samples, a smooth surface plus noise
        // in the low byte, so they compress about 2:1.
        let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut v = Vec::with_capacity(BLOCK_SIZE);
        for j in 0..(BLOCK_SIZE - 4) / 2 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let surface = 1000 + (i % 64) * 40 + (j as u64 / 128) * 3;
            let sample = (surface + (x & 0xff)) as u16;
            v.extend_from_slice(&sample.to_le_bytes());
        }
        let c = crc32fast::hash(&v);
        v.extend_from_slice(&c.to_le_bytes());
        v
    }
}

fn checked(b: &[u8]) -> bool {
    let (body, crc) = b.split_at(b.len() - 4);
    crc32fast::hash(body).to_le_bytes() == crc
}

impl Dataset for SlowSource {
    fn id(&self) -> DatasetId {
        DatasetId::new(uuid::Uuid::from_u128(0x7e11_a1e5), 1)
    }

    fn read_block(&self, i: u64) -> Result<Option<Vec<u8>>> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(LATENCY);
        Ok((i < BLOCKS).then(|| Self::block(i)))
    }
}

/// Zipf(1.0) over `n` items, by inverse CDF.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: u64) -> Zipf {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|k| {
                acc += 1.0 / k as f64;
                acc
            })
            .collect();
        for c in cdf.iter_mut() {
            *c /= acc;
        }
        Zipf { cdf }
    }

    fn sample(&self, u: f64) -> u64 {
        self.cdf.partition_point(|&c| c < u) as u64
    }
}

fn uniform(x: &mut u64) -> f64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    (*x >> 11) as f64 / (1u64 << 53) as f64
}

/// Reads `n` Zipf-distributed blocks on each of `THREADS` threads.
fn workload<D: Dataset + 'static>(ds: &Arc<D>, zipf: &Arc<Zipf>, n: u64) -> (Duration, u64) {
    let t = Instant::now();
    let hs: Vec<_> = (0..THREADS)
        .map(|th| {
            let ds = ds.clone();
            let zipf = zipf.clone();
            std::thread::spawn(move || -> Result<u64> {
                // Popular blocks spread over the dataset, not 0, 1, 2...
                let mut x = 0xC0FFEE + th;
                let mut bad = 0;
                for _ in 0..n {
                    let i = zipf.sample(uniform(&mut x)).wrapping_mul(2_654_435_761) % BLOCKS;
                    match ds.read_block(i)? {
                        Some(b) if checked(&b) => {}
                        _ => bad += 1,
                    }
                }
                Ok(bad)
            })
        })
        .collect();
    let mut bad = 0;
    for h in hs {
        bad += h.join().unwrap_or(Ok(u64::MAX)).unwrap_or(u64::MAX);
    }
    (t.elapsed(), bad)
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
}

/// Runs the demo.
pub fn run() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| dfcache::Error::Io {
        op: "creating a temporary directory",
        path: None,
        source: e,
    })?;
    let path = dir.path().join("demo.dfc");
    let zipf = Arc::new(Zipf::new(BLOCKS));
    let reads = THREADS * READS_PER_THREAD;
    println!("dfcache demo");
    println!(
        "  source: {BLOCKS} blocks of {} KiB ({}), {} ms per read, checksum per block",
        BLOCK_SIZE >> 10,
        mib(BLOCKS * BLOCK_SIZE as u64),
        LATENCY.as_millis()
    );
    println!("  cache:  {} maximum, in {}", mib(CAP), path.display());
    println!("  load:   {THREADS} threads x {READS_PER_THREAD} reads, Zipf(1.0) over the blocks\n");

    // Baseline: a slice of the same workload straight from the source.
    let direct = Arc::new(SlowSource {
        reads: AtomicU64::new(0),
    });
    let probe = READS_PER_THREAD / 10;
    let (direct_time, _) = workload(&direct, &zipf, probe);
    let direct_estimate = direct_time.as_secs_f64() * (READS_PER_THREAD / probe) as f64;

    let cache = Arc::new(OpenOptions::new().create(&path, CAP)?);
    let source = SlowSource {
        reads: AtomicU64::new(0),
    };
    let ds = Arc::new(CachedDataset::new(source, cache.clone()));
    let (elapsed, bad) = workload(&ds, &zipf, READS_PER_THREAD);
    cache.flush()?;
    let s = cache.stats()?;
    println!(
        "read-through, {reads} reads in {:.2} s",
        elapsed.as_secs_f64()
    );
    println!(
        "  hits {:>8}   misses {:>6}   hit ratio {:.1} %",
        s.hits,
        s.misses,
        100.0 * s.hits as f64 / (s.hits + s.misses).max(1) as f64
    );
    println!(
        "  source reads {}   concurrent misses merged {}   evictions {}   bad blocks {bad}",
        ds.source_reads(),
        s.misses.saturating_sub(ds.source_reads()),
        s.evictions
    );
    println!(
        "  entries {}   raw {}   stored {} (zstd)",
        s.entries,
        mib(s.raw_bytes),
        mib(s.stored_bytes)
    );
    println!(
        "  file {} of a {} maximum",
        mib(s.file_size),
        mib(s.maximum_file_size)
    );
    println!(
        "  speed-up over the source alone: {:.1}x ({:.2} s estimated from {} direct reads)\n",
        direct_estimate / elapsed.as_secs_f64(),
        direct_estimate,
        THREADS * probe
    );

    // A second reader shares the warmed file read-only.
    let shared = Arc::new(DatasetFileCache::open(&path, true)?);
    let source2 = SlowSource {
        reads: AtomicU64::new(0),
    };
    let reader = Arc::new(CachedDataset::new(source2, shared.clone()));
    let (elapsed2, bad2) = workload(&reader, &zipf, READS_PER_THREAD / 5);
    let s2 = shared.stats()?;
    println!(
        "second reader, read-only: {} reads in {:.2} s, {} from the file, {} from the source (not stored), bad blocks {bad2}",
        THREADS * READS_PER_THREAD / 5,
        elapsed2.as_secs_f64(),
        s2.hits,
        reader.source_reads()
    );
    if bad + bad2 > 0 {
        return Err(dfcache::Error::InvalidArgument(format!(
            "{} blocks failed their checksum",
            bad + bad2
        )));
    }
    Ok(())
}
