//! `dfcache get FILE KEY [-o OUT] [--meta]`: one value as raw bytes, or its
//! metadata.
//!
//! The value is read with `get_stream` and copied one frame (at most
//! 1 MiB) at a time, so a value larger than memory streams through.

use std::fs;
use std::io::Write;
use std::path::Path;

use super::args::GetArgs;
use super::error::{CliError, CliResult};
use super::keys::{parse_key, show};
use super::output::Out;
use super::values::{copy_out, CopyFailed};
use super::{open, Global};

/// Runs `get`.
///
/// # Errors
/// Exit 1 when the key is absent (OUT is then not created) or the value is
/// damaged; exit 2 when the file cannot be opened or OUT cannot be
/// created; exit 4 when writing fails or the value is replaced while it is
/// read (a partial OUT is removed).
pub fn run(a: &GetArgs, g: Global) -> CliResult {
    let key = parse_key(&a.key, g.hex)?;
    let shown = show(&key, g.hex);
    let cache = open::read_only(&a.file)?;
    let absent = |negative: bool| {
        CliError::not_found(if negative {
            format!("key is a negative entry (cached as absent, no value): {shown}")
        } else {
            format!("key not found: {shown}")
        })
    };
    if a.meta {
        let meta = cache
            .meta(&key)
            .map_err(|e| CliError::op(e, &shown))?
            .ok_or_else(|| absent(false))?;
        return match &a.out {
            None => {
                let mut out = Out::new();
                out.bytes(&meta)?;
                out.flush()
            }
            Some(path) => fs::write(path, &meta)
                .map_err(|e| CliError::io(&e, "cannot write the output file", path)),
        };
    }
    let Some(mut value) = cache
        .get_stream(&key)
        .map_err(|e| CliError::op(e, &shown))?
    else {
        let negative = matches!(cache.entry_info(&key), Ok(Some(i)) if i.absent);
        return Err(absent(negative));
    };
    match &a.out {
        None => {
            let mut out = Out::new();
            match copy_out(&mut value, out.writer(), |_| {}) {
                Ok(_) => out.flush(),
                Err(CopyFailed::Read(e)) => {
                    // What was copied so far is the start of the value; the
                    // error says it is not all of it.
                    let _ = out.flush();
                    Err(CopyFailed::read_error(&e, &shown))
                }
                Err(CopyFailed::Write(e)) => Err(CliError::stdout(e)),
            }
        }
        Some(path) => {
            let mut f = fs::File::create(path)
                .map_err(|e| CliError::io(&e, "cannot create the output file", path))?;
            let copied = copy_out(&mut value, &mut f, |_| {});
            let r = match copied {
                Ok(_) => f
                    .flush()
                    .map_err(|e| CliError::io(&e, "cannot write the output file", path)),
                Err(CopyFailed::Read(e)) => Err(CopyFailed::read_error(&e, &shown)),
                Err(CopyFailed::Write(e)) => {
                    Err(CliError::io(&e, "cannot write the output file", path))
                }
            };
            if r.is_err() {
                drop(f);
                remove_partial(path);
            }
            r
        }
    }
}

/// Removes a partly written OUT when it is a regular file: never a device
/// such as /dev/null, and never a symlink (the link and its target stay).
fn remove_partial(path: &Path) {
    if fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) {
        let _ = fs::remove_file(path);
    }
}
