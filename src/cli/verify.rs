//! `dfcache verify FILE`: a full check of the file, read-only.
//!
//! Exit 0 when the file is sound, 1 when problems were found (each listed
//! on stdout), 2 when it could not be opened. On a terminal a bar follows
//! the library's progress reports: entries and value bytes checked, rate
//! and ETA.

use dfcache::Problem;

use super::args::VerifyArgs;
use super::error::{CliError, CliResult, Exit};
use super::keys::show;
use super::output::Out;
use super::progress::Progress;
use super::size::human;
use super::{open, Global};

/// A problem for output, keys shown the command line's way.
fn problem_line(p: &Problem, hex: bool) -> String {
    let mut s = format!("problem: {} at offset {}", p.what, p.offset);
    if let Some(k) = &p.key {
        s.push_str(&format!(" (key {})", show(k, hex)));
    }
    s.push_str(&format!(": {}", p.detail));
    s
}

/// Runs `verify`.
///
/// # Errors
/// Exit 1 with the number of problems found; exit 2 when the file cannot be
/// opened or checked.
pub fn run(a: &VerifyArgs, g: Global) -> CliResult {
    let file = a.file.display().to_string();
    let cache = open::read_only(&a.file)?;
    let s = cache.stats().map_err(|e| CliError::op(e, &file))?;
    let mut p = Progress::new("verifying", "entries", s.entries, s.stored_bytes, g.quiet);
    let report = cache.verify_with_progress(&mut |done| p.report(done));
    p.finish();
    let r = match report {
        Ok(r) => r,
        Err(e) if e.is_corrupt() => {
            return Err(CliError::new(
                Exit::NotFound,
                format!("verification stopped: {e}: {file}"),
            ))
        }
        Err(e) => {
            return Err(CliError::new(
                Exit::Usage,
                format!("cannot verify: {e}: {file}"),
            ))
        }
    };
    let mut out = Out::new();
    for n in &r.notes {
        out.line(format!("note: {n}"))?;
    }
    for problem in &r.problems {
        out.line(problem_line(problem, g.hex))?;
    }
    if r.is_ok() && !g.quiet {
        out.line(format!(
            "{file}: ok (commit #{}: {} entries, {} index nodes, {} extents, {} of values checked)",
            r.commit,
            r.entries,
            r.nodes,
            r.extents,
            human(r.value_bytes)
        ))?;
    }
    out.flush()?;
    if r.is_ok() {
        Ok(())
    } else {
        Err(CliError::not_found(format!(
            "{} problem(s) found: {file}",
            r.problems.len()
        )))
    }
}
