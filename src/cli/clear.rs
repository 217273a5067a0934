//! `dfcache clear FILE`: drop every entry and shrink the file.

use super::args::ClearArgs;
use super::error::{CliError, CliResult};
use super::output::Out;
use super::size::human;
use super::{open, Global};

/// Runs `clear`.
///
/// # Errors
/// Exit 2 when the file cannot be opened; exit 3 when another writer holds
/// it.
pub fn run(a: &ClearArgs, g: Global) -> CliResult {
    let file = a.file.display().to_string();
    let cache = open::read_write(&a.file)?;
    let before = cache.stats().map_err(|e| CliError::op(e, &file))?;
    cache.clear().map_err(|e| CliError::op(e, &file))?;
    let after = cache.stats().map_err(|e| CliError::op(e, &file))?;
    if !g.quiet {
        let mut out = Out::new();
        out.line(format!(
            "cleared {file}: {} entries removed, file {} -> {}",
            before.entries,
            human(before.file_size),
            human(after.file_size)
        ))?;
        out.flush()?;
    }
    Ok(())
}
