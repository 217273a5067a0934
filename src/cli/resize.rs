//! `dfcache resize FILE --max-size SIZE`: change the cap in place.

use super::args::ResizeArgs;
use super::error::{CliError, CliResult};
use super::output::Out;
use super::size::{human, human_cap};
use super::{open, Global};

/// Runs `resize`.
///
/// # Errors
/// Exit 2 when the file cannot be opened; exit 3 when another writer holds
/// it; exit 4 when the cache cannot be made to fit (nothing is lost then).
pub fn run(a: &ResizeArgs, g: Global) -> CliResult {
    let file = a.file.display().to_string();
    let cache = open::read_write(&a.file)?;
    let before = cache.stats().map_err(|e| CliError::op(e, &file))?;
    cache
        .set_maximum_file_size(a.max_size)
        .map_err(|e| CliError::op(e, &file))?;
    let after = cache.stats().map_err(|e| CliError::op(e, &file))?;
    if !g.quiet {
        let mut out = Out::new();
        out.line(format!(
            "resized {file}: maximum size {} -> {}, {} entries evicted ({}), file {} -> {}",
            human_cap(before.maximum_file_size),
            human_cap(after.maximum_file_size),
            after.evictions,
            human(after.bytes_evicted),
            human(before.file_size),
            human(after.file_size)
        ))?;
        out.flush()?;
    }
    Ok(())
}
