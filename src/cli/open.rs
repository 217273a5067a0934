//! Opening the cache file: read-only for the commands that only look, read-
//! write (with the writer lock) for the ones that change it.
//!
//! Failures to open are exit 2 (3 when another writer holds the lock); see
//! [`CliError::open`].

use std::path::Path;

use dfcache::{DatasetFileCache, OpenOptions};

use super::error::{CliError, CliResult};

/// Opens `path` read-only: no byte is written, no lock taken; works on files
/// without write permission.
///
/// # Errors
/// Exit 2 when the file cannot be opened as a cache.
pub fn read_only(path: &Path) -> CliResult<DatasetFileCache> {
    OpenOptions::new()
        .read_only(true)
        .open(path)
        .map_err(|e| CliError::open(e, path))
}

/// Opens `path` for writing.
///
/// A file without any write permission bit is refused up front, even for
/// root (who could write it anyway): the mode says the file is not to be
/// changed, and commands behave the same whoever runs them.
///
/// # Errors
/// Exit 2 when the file is missing, read-only or not a cache; exit 3 when
/// another writer holds it.
pub fn read_write(path: &Path) -> CliResult<DatasetFileCache> {
    check_writable(path)?;
    OpenOptions::new()
        .open(path)
        .map_err(|e| CliError::open(e, path))
}

/// Refuses files whose mode has no write permission.
///
/// # Errors
/// Exit 2 for a missing or read-only file.
pub fn check_writable(path: &Path) -> CliResult {
    match std::fs::metadata(path) {
        Ok(m) if m.permissions().readonly() => Err(CliError::usage(format!(
            "the file is read-only (no write permission; read-only commands still work): {}",
            path.display()
        ))),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(CliError::usage(format!("no such file: {}", path.display())))
        }
        Err(e) => Err(CliError::io(&e, "cannot open", path)),
    }
}
