//! `dfcache put FILE KEY [SRC]`: store one value from a file or stdin.
//!
//! The library takes a value as one slice, so the input is read into
//! memory first. On a cache with a maximum size the read stops as soon as
//! the input is known not to fit (a value can never be larger than the
//! file), so an endless or huge stream fails early with a clear error
//! instead of exhausting memory.

use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::path::Path;

use dfcache::Flushable;

use super::args::PutArgs;
use super::error::{CliError, CliResult};
use super::keys::{parse_key, show};
use super::size::human;
use super::{open, Global};

/// Reads all of `r`, failing once more than `limit` bytes (0 = no limit)
/// have arrived.
fn read_limited(r: impl Read, limit: u64, hint: usize, what: &str) -> CliResult<Vec<u8>> {
    let mut buf = Vec::with_capacity(hint);
    let cap = if limit == 0 { u64::MAX } else { limit + 1 };
    r.take(cap)
        .read_to_end(&mut buf)
        .map_err(|e| CliError::io(&e, "cannot read the value", Path::new(what)))?;
    if limit != 0 && buf.len() as u64 > limit {
        return Err(CliError::usage(format!(
            "the value is larger than the cache's maximum size of {} and can never fit: {what}",
            human(limit)
        )));
    }
    Ok(buf)
}

/// Runs `put`.
///
/// # Errors
/// Exit 2 when the cache or SRC cannot be opened, the key is invalid or the
/// value can never fit; exit 3 when another writer holds the cache.
pub fn run(a: &PutArgs, g: Global) -> CliResult {
    let key = parse_key(&a.key, g.hex)?;
    let shown = show(&key, g.hex);
    // Open the cache first: a bad cache fails before stdin is consumed.
    let cache = open::read_write(&a.file)?;
    let limit = cache.maximum_file_size();
    let value = match a.src.as_deref() {
        Some(p) if p != Path::new("-") => {
            let f = File::open(p).map_err(|e| CliError::io(&e, "cannot open the input", p))?;
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            if limit != 0 && len > limit {
                return Err(CliError::usage(format!(
                    "the value ({}) is larger than the cache's maximum size of {} and can never fit: {}",
                    human(len),
                    human(limit),
                    p.display()
                )));
            }
            read_limited(
                f,
                limit,
                usize::try_from(len).unwrap_or(0),
                &p.display().to_string(),
            )?
        }
        _ => {
            if io::stdin().is_terminal() && !g.quiet {
                eprintln!("dfcache: reading the value from standard input (end it with Ctrl-D)");
            }
            read_limited(io::stdin().lock(), limit, 1 << 16, "standard input")?
        }
    };
    cache
        .put(&key, &value)
        .map_err(|e| CliError::op(e, &shown))?;
    cache.flush().map_err(|e| CliError::op(e, &shown))?;
    let evicted = cache.stats().map(|s| s.evictions).unwrap_or(0);
    if evicted > 0 && !g.quiet {
        eprintln!(
            "dfcache: evicted {evicted} least recently used entries to stay under the maximum size"
        );
    }
    Ok(())
}
