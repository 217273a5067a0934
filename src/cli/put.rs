//! `dfcache put FILE KEY [SRC] [--meta TEXT | --meta-file PATH]`: store one
//! value from a file or stdin, optionally with metadata.
//!
//! The value streams in (see [`values`](super::values)): values of up to
//! 1 MiB are stored whole, longer ones in 1 MiB frames as they arrive, so
//! memory use does not grow with the value. A file whose size is known to
//! exceed the cache's maximum size is refused before it is read; a stream
//! (stdin) is refused as soon as it outgrows the cache.

use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::path::Path;

use dfcache::{Flushable, MAX_META_LEN};

use super::args::PutArgs;
use super::error::{CliError, CliResult};
use super::keys::{parse_key, show};
use super::size::human;
use super::values::{put_from, PutFailed};
use super::{open, Global};

/// The metadata given with `--meta` or `--meta-file`, checked against the
/// 64 KiB limit before anything else is read.
///
/// # Errors
/// Exit 2 for metadata over the limit or a file that cannot be read.
fn metadata(a: &PutArgs) -> CliResult<Option<Vec<u8>>> {
    let too_long = |len: usize, what: &str| {
        CliError::usage(format!(
            "metadata of {len} bytes is over the limit of {} ({MAX_META_LEN} bytes): {what}",
            human(MAX_META_LEN as u64)
        ))
    };
    if let Some(text) = &a.meta {
        if text.len() > MAX_META_LEN {
            return Err(too_long(text.len(), "--meta"));
        }
        return Ok(Some(text.as_bytes().to_vec()));
    }
    let Some(path) = &a.meta_file else {
        return Ok(None);
    };
    let f = File::open(path).map_err(|e| CliError::io(&e, "cannot open the metadata", path))?;
    let mut meta = Vec::new();
    f.take(MAX_META_LEN as u64 + 1)
        .read_to_end(&mut meta)
        .map_err(|e| CliError::io(&e, "cannot read the metadata", path))?;
    if meta.len() > MAX_META_LEN {
        return Err(CliError::usage(format!(
            "metadata is over the limit of {} ({MAX_META_LEN} bytes): {}",
            human(MAX_META_LEN as u64),
            path.display()
        )));
    }
    Ok(Some(meta))
}

/// The error for a value that can never fit under the maximum size.
fn never_fits(limit: u64, what: &str) -> CliError {
    CliError::usage(format!(
        "the value is larger than the cache's maximum size of {} and can never fit: {what}",
        human(limit)
    ))
}

/// Runs `put`.
///
/// # Errors
/// Exit 2 when the cache, SRC or the metadata cannot be opened, the key is
/// invalid, the metadata is over 64 KiB or the value can never fit; exit 3
/// when another writer holds the cache; exit 4 when reading SRC or writing
/// the cache fails part-way (nothing is stored then).
pub fn run(a: &PutArgs, g: Global) -> CliResult {
    let key = parse_key(&a.key, g.hex)?;
    let shown = show(&key, g.hex);
    let meta = metadata(a)?;
    // Open the cache first: a bad cache fails before stdin is consumed.
    let cache = open::read_write(&a.file)?;
    let limit = cache.maximum_file_size();
    let stored = match a.src.as_deref() {
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
            let what = p.display().to_string();
            put_from(&cache, &key, f, meta.as_deref(), |_| {}).map_err(|e| (e, what))
        }
        _ => {
            if io::stdin().is_terminal() && !g.quiet {
                eprintln!("dfcache: reading the value from standard input (end it with Ctrl-D)");
            }
            put_from(&cache, &key, io::stdin().lock(), meta.as_deref(), |_| {})
                .map_err(|e| (e, "standard input".to_string()))
        }
    };
    match stored {
        Ok(_) => {}
        Err((PutFailed::Input(e), what)) => {
            return Err(CliError::io(&e, "cannot read the value", Path::new(&what)))
        }
        Err((PutFailed::Cache(dfcache::Error::ValueTooLarge { .. }), what)) if limit != 0 => {
            return Err(never_fits(limit, &what))
        }
        Err((PutFailed::Cache(e), _)) => return Err(CliError::op(e, &shown)),
    }
    cache.flush().map_err(|e| CliError::op(e, &shown))?;
    let evicted = cache.stats().map(|s| s.evictions).unwrap_or(0);
    if evicted > 0 && !g.quiet {
        eprintln!(
            "dfcache: evicted {evicted} least recently used entries to stay under the maximum size"
        );
    }
    Ok(())
}
