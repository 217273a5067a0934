//! `dfcache create FILE --max-size SIZE`: a new, empty cache file.

use std::io::ErrorKind;

use dfcache::{DatasetFileCache, Flushable};

use super::args::CreateArgs;
use super::error::{CliError, CliResult};
use super::output::Out;
use super::size::human_cap;
use super::{open, Global};

/// Runs `create`.
///
/// # Errors
/// Exit 2 for an existing file (without `--force`), a file that is not a
/// cache, or a path that cannot be created; exit 3 when another writer
/// holds the file.
pub fn run(a: &CreateArgs, g: Global) -> CliResult {
    let shown = a.file.display();
    match std::fs::metadata(&a.file) {
        Ok(m) if m.is_dir() => {
            return Err(CliError::usage(format!("is a directory: {shown}")));
        }
        Ok(m) if m.len() > 0 && !a.force => {
            return Err(CliError::usage(format!(
                "the file already exists (use --force to replace a cache file): {shown}"
            )));
        }
        Ok(_) => open::check_writable(&a.file)?,
        Err(_) => {}
    }
    let cache = DatasetFileCache::create(&a.file, a.max_size).map_err(|e| match e {
        dfcache::Error::Io { ref source, .. } if source.kind() != ErrorKind::PermissionDenied => {
            CliError::io(source, "cannot create the file", &a.file)
        }
        e => CliError::open(e, &a.file),
    })?;
    cache
        .flush()
        .map_err(|e| CliError::op(e, &shown.to_string()))?;
    drop(cache);
    if !g.quiet {
        let mut out = Out::new();
        out.line(format!(
            "created {shown}: maximum size {}",
            human_cap(a.max_size)
        ))?;
        out.flush()?;
    }
    Ok(())
}
