//! `dfcache rm FILE KEY...`: remove entries.

use dfcache::Flushable;

use super::args::RmArgs;
use super::error::{CliError, CliResult};
use super::keys::{parse_key, show};
use super::{open, Global};

/// Runs `rm`. Every present key is removed even when some are absent.
///
/// # Errors
/// Exit 1 when a key was absent; exit 2 for bad keys or a file that cannot
/// be opened; exit 3 when another writer holds the cache.
pub fn run(a: &RmArgs, g: Global) -> CliResult {
    let keys = a
        .keys
        .iter()
        .map(|k| parse_key(k, g.hex))
        .collect::<CliResult<Vec<_>>>()?;
    let cache = open::read_write(&a.file)?;
    let mut missing = Vec::new();
    for k in &keys {
        let shown = show(k, g.hex);
        if !cache.remove(k).map_err(|e| CliError::op(e, &shown))? {
            missing.push(shown);
        }
    }
    cache
        .flush()
        .map_err(|e| CliError::op(e, &a.file.display().to_string()))?;
    match missing.len() {
        0 => Ok(()),
        1 => Err(CliError::not_found(format!(
            "key not found: {}",
            missing[0]
        ))),
        n => Err(CliError::not_found(format!(
            "{n} keys not found: {}",
            missing.join(", ")
        ))),
    }
}
