//! The machine: its facts, its physical limits, and what the process does
//! (I/O counters, resident memory).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::data::Rng;

/// A command's first line of output, or "?" (facts are best effort).
fn cmd(prog: &str, args: &[&str]) -> String {
    Command::new(prog)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.lines().next().unwrap_or("").trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "?".into())
}

/// The value of `key:` in a `/proc` file of "key: value" lines.
fn proc_field(path: &str, key: &str) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    s.lines()
        .find(|l| l.split(':').next().map(str::trim) == Some(key))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// Facts about the machine, for BENCHMARKS.md.
pub fn facts(dir: &Path) -> Vec<(&'static str, String)> {
    let cpu = proc_field("/proc/cpuinfo", "model name").unwrap_or_else(|| "?".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get().to_string())
        .unwrap_or_else(|_| "?".into());
    let ram = proc_field("/proc/meminfo", "MemTotal")
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kb| format!("{:.1} GiB", kb / (1024.0 * 1024.0)))
        .unwrap_or_else(|| "?".into());
    let d = dir.to_string_lossy().to_string();
    let fs = cmd("findmnt", &["-no", "SOURCE,FSTYPE,OPTIONS", "-T", &d]);
    let disk = Command::new("df")
        .args(["-h", "--output=size,avail", &d])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| {
            let l = s.lines().nth(1)?.to_string();
            let mut w = l.split_whitespace();
            Some(format!("{} in all, {} free", w.next()?, w.next()?))
        })
        .unwrap_or_else(|| "?".into());
    let virt = cmd("systemd-detect-virt", &[]);
    vec![
        ("CPU", cpu),
        ("cores", cores),
        ("RAM", ram),
        ("filesystem (source, type, options)", fs),
        ("disk", disk),
        ("virtualisation", virt),
        (
            "kernel",
            std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "?".into()),
        ),
        ("rustc", cmd("rustc", &["--version"])),
        ("date (UTC)", cmd("date", &["-u", "+%Y-%m-%d %H:%M"])),
    ]
}

/// This process's I/O counters from `/proc/self/io`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Io {
    /// Bytes passed to write-like syscalls.
    pub wchar: u64,
    /// Write syscalls.
    pub syscw: u64,
    /// Bytes this process caused to be sent to storage (dirtied pages,
    /// memory-mapped writes included).
    pub write_bytes: u64,
}

impl Io {
    /// The counters now.
    pub fn now() -> Io {
        let s = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
        let get = |k: &str| -> u64 {
            s.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        Io {
            wchar: get("wchar"),
            syscw: get("syscw"),
            write_bytes: get("write_bytes"),
        }
    }

    /// What happened since `before`.
    pub fn since(before: Io) -> Io {
        let n = Io::now();
        Io {
            wchar: n.wchar - before.wchar,
            syscw: n.syscw - before.syscw,
            write_bytes: n.write_bytes - before.write_bytes,
        }
    }
}

/// Resident memory of this process, in KiB: (VmHWM, RssAnon, RssFile,
/// RssShmem).
pub fn rss_kib() -> (u64, u64, u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let get = |k: &str| -> u64 {
        s.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (
        get("VmHWM"),
        get("RssAnon"),
        get("RssFile"),
        get("RssShmem"),
    )
}

/// The machine's physical limits, measured in the benchmark directory.
#[derive(Clone, Debug, Default)]
pub struct Limits {
    /// Sequential write of `seq_bytes` in 1 MiB writes, then fdatasync: MB/s.
    pub seq_write_mbs: f64,
    /// Bytes written for `seq_write_mbs`.
    pub seq_bytes: u64,
    /// 4 KiB pwrite + fdatasync, median latency in ms.
    pub fsync_p50_ms: f64,
    /// Same, 99th percentile.
    pub fsync_p99_ms: f64,
    /// How many 4 KiB syncs were timed.
    pub fsyncs: usize,
    /// 4 KiB append + fdatasync, median latency in ms.
    pub append_p50_ms: f64,
    /// memcpy of a buffer larger than the caches: GB/s copied.
    pub memcpy_gbs: f64,
}

/// Measures [`Limits`] with files in `dir`.
pub fn limits(dir: &Path, seq_bytes: u64, fsyncs: usize, copy_bytes: usize) -> Result<Limits> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("limits.tmp");
    let mut r = Rng::new(99);
    let chunk: Vec<u8> = (0..1 << 20).map(|_| r.next_u64() as u8).collect();
    let mut out = Limits {
        seq_bytes,
        fsyncs,
        ..Limits::default()
    };
    {
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        let t = Instant::now();
        let mut left = seq_bytes;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            f.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        f.sync_data()?;
        out.seq_write_mbs = seq_bytes as f64 / t.elapsed().as_secs_f64() / 1e6;
    }
    {
        let f = OpenOptions::new().write(true).open(&path)?;
        let mut lat = Vec::with_capacity(fsyncs);
        for i in 0..fsyncs {
            let t = Instant::now();
            f.write_all_at(&chunk[..4096], (i as u64 % 256) * 4096)?;
            f.sync_data()?;
            lat.push(t.elapsed().as_secs_f64() * 1e3);
        }
        lat.sort_by(f64::total_cmp);
        out.fsync_p50_ms = percentile(&lat, 50.0);
        out.fsync_p99_ms = percentile(&lat, 99.0);
    }
    std::fs::remove_file(&path)?;
    {
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        let mut lat = Vec::with_capacity(fsyncs);
        for _ in 0..fsyncs {
            let t = Instant::now();
            f.write_all(&chunk[..4096])?;
            f.sync_data()?;
            lat.push(t.elapsed().as_secs_f64() * 1e3);
        }
        out.append_p50_ms = median(lat);
    }
    std::fs::remove_file(&path)?;
    {
        let src: Vec<u8> = (0..copy_bytes).map(|i| (i * 7) as u8).collect();
        let mut dst = vec![0u8; copy_bytes];
        dst.copy_from_slice(&src); // fault the pages in first
        let reps = 5;
        let t = Instant::now();
        for _ in 0..reps {
            dst.copy_from_slice(std::hint::black_box(&src));
            std::hint::black_box(&mut dst);
        }
        out.memcpy_gbs = (copy_bytes * reps) as f64 / t.elapsed().as_secs_f64() / 1e9;
    }
    let _ = std::io::stdout().flush();
    Ok(out)
}

/// 4 KiB pwrite + fdatasync `n` times over a 1 MiB file in `dir`: (p50,
/// p99) in ms. The disk's sync latency drifts on this machine, so it is
/// probed right before each engine's durable commits.
pub fn fsync_probe(dir: &Path, n: usize) -> Result<(f64, f64)> {
    let path = dir.join("probe.tmp");
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    let buf = vec![0x5au8; 1 << 20];
    f.write_all_at(&buf, 0)?;
    f.sync_all()?;
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        f.write_all_at(&buf[..4096], (i as u64 % 256) * 4096)?;
        f.sync_data()?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    drop(f);
    std::fs::remove_file(&path)?;
    lat.sort_by(f64::total_cmp);
    Ok((percentile(&lat, 50.0), percentile(&lat, 99.0)))
}

/// The `p`-th percentile of sorted samples (nearest rank).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of samples.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    percentile(&v, 50.0)
}
