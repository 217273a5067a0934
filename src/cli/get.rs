//! `dfcache get FILE KEY [-o OUT]`: one value, as raw bytes.

use std::io::Write;

use super::args::GetArgs;
use super::error::{CliError, CliResult};
use super::keys::{parse_key, show};
use super::output::Out;
use super::{open, Global};

/// Runs `get`.
///
/// # Errors
/// Exit 1 when the key is absent (OUT is then not created), exit 2 when the
/// file cannot be opened or OUT cannot be written.
pub fn run(a: &GetArgs, g: Global) -> CliResult {
    let key = parse_key(&a.key, g.hex)?;
    let shown = show(&key, g.hex);
    let cache = open::read_only(&a.file)?;
    let value = match cache.get(&key).map_err(|e| CliError::op(e, &shown))? {
        Some(v) => v,
        None => {
            let negative = matches!(cache.entry_info(&key), Ok(Some(i)) if i.absent);
            return Err(CliError::not_found(if negative {
                format!("key is a negative entry (cached as absent, no value): {shown}")
            } else {
                format!("key not found: {shown}")
            }));
        }
    };
    match &a.out {
        None => {
            let mut out = Out::new();
            out.bytes(&value)?;
            out.flush()
        }
        Some(path) => {
            let mut f = std::fs::File::create(path)
                .map_err(|e| CliError::io(&e, "cannot create the output file", path))?;
            f.write_all(&value)
                .and_then(|()| f.flush())
                .map_err(|e| CliError::io(&e, "cannot write the output file", path))
        }
    }
}
