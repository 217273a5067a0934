//! The `dfcache` command line.

use std::process::ExitCode;
use std::time::Instant;

use dfcache::{DatasetFileCache, Flushable};

fn demo() -> dfcache::Result<()> {
    let dir = tempfile::tempdir().map_err(|e| dfcache::Error::Io {
        op: "creating a temporary directory",
        path: None,
        source: e,
    })?;
    let path = dir.path().join("demo.dfc");
    let cache = DatasetFileCache::create(&path, 64 << 20)?;
    let t = Instant::now();
    for i in 0..1000u32 {
        let block: Vec<u8> = (0..4096u32).map(|j| (i ^ j) as u8).collect();
        cache.put(&i.to_be_bytes(), &block)?;
    }
    cache.flush()?;
    println!(
        "wrote 1000 blocks of 4 KiB in {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let t = Instant::now();
    let mut ok = 0;
    for i in 0..1000u32 {
        if let Some(v) = cache.get(&i.to_be_bytes())? {
            ok += usize::from(v.len() == 4096 && v[1] == (i ^ 1) as u8);
        }
    }
    println!(
        "read {ok} of 1000 back in {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    drop(cache);
    let shared = DatasetFileCache::open(&path, true)?;
    println!(
        "reopened read-only: {} entries, file {} bytes",
        shared.len(),
        std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("demo") => match demo() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("dfcache: {e}");
                ExitCode::from(1)
            }
        },
        _ => {
            eprintln!("usage: dfcache demo");
            ExitCode::from(2)
        }
    }
}
