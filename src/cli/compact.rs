//! `dfcache compact FILE [OUT] [--recompress]`: rewrite the cache at its
//! minimum size.
//!
//! The copy (`DatasetFileCache::compact_to_with_progress`; with
//! `--recompress`, values re-encoded with the current default dictionary
//! for their key) is always written to a
//! temporary file beside its target, synced, then renamed over the target
//! and the folder synced. A crash at any point leaves the target as it was
//! (plus, at worst, a stray `.NAME.compact-*` file): the rename is the only
//! step that changes what the target path names, and it is atomic.
//!
//! In place, FILE is opened read-write for the whole run so that no other
//! writer changes it while it is copied; into OUT, FILE is only read.

use std::fs;
use std::path::{Path, PathBuf};

use dfcache::{CompactOptions, CompactReport, DatasetFileCache};

use super::args::CompactArgs;
use super::error::{CliError, CliResult, Exit};
use super::output::Out;
use super::progress::Progress;
use super::size::human;
use super::{open, Global};

/// Runs `compact`.
///
/// # Errors
/// Exit 2 when FILE cannot be opened or OUT may not be replaced; exit 3
/// when another writer holds FILE (in place) or OUT; exit 4 when writing
/// the copy fails (the original is untouched then).
pub fn run(a: &CompactArgs, g: Global) -> CliResult {
    let file = a.file.display().to_string();
    let opts = CompactOptions {
        recompress: a.recompress,
    };
    let in_place = match &a.out {
        None => true,
        Some(out) => same_path(&a.file, out),
    };
    let (report, target) = if in_place {
        // Replace the file the path names, even through a symlink.
        let target = fs::canonicalize(&a.file).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => CliError::usage(format!("no such file: {file}")),
            _ => CliError::io(&e, "cannot open", &a.file),
        })?;
        let cache = open::read_write(&target).map_err(|mut e| {
            e.message = e.message.replace(&target.display().to_string(), &file);
            e
        })?;
        let r = compact_into(&cache, &target, None, opts, g)?;
        (r, file.clone())
    } else {
        let out = a.out.as_deref().unwrap_or(&a.file);
        let cache = open::read_only(&a.file)?;
        // Hold the writer lock on an existing OUT until it is replaced.
        let _guard = check_out(out, a.force)?;
        let perms = fs::metadata(&a.file)
            .ok()
            .map(|m| writable(m.permissions()));
        let r = compact_into(&cache, out, perms, opts, g)?;
        (r, out.display().to_string())
    };
    if !g.quiet {
        let mut o = Out::new();
        o.line(format!(
            "compacted {file} -> {target}: {} entries{}, {} -> {} ({} saved)",
            report.entries,
            if a.recompress { " recompressed" } else { "" },
            human(report.bytes_before),
            human(report.bytes_after),
            human(report.bytes_before.saturating_sub(report.bytes_after))
        ))?;
        o.flush()?;
    }
    Ok(())
}

/// Whether two paths name the same file (when both exist).
fn same_path(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Permissions for a new OUT: the source's, writable by its owner.
fn writable(p: fs::Permissions) -> fs::Permissions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::Permissions::from_mode(p.mode() | 0o200)
    }
    #[cfg(not(unix))]
    {
        let mut p = p;
        if p.readonly() {
            #[allow(clippy::permissions_set_readonly_false)]
            p.set_readonly(false);
        }
        p
    }
}

/// Checks that OUT may be written: absent or empty, or (with `--force`) a
/// cache file no other writer holds, which stays locked until replaced.
fn check_out(out: &Path, force: bool) -> CliResult<Option<DatasetFileCache>> {
    match fs::metadata(out) {
        Err(_) => Ok(None),
        Ok(m) if m.is_dir() => Err(CliError::usage(format!(
            "is a directory: {}",
            out.display()
        ))),
        Ok(m) if m.len() == 0 => Ok(None),
        Ok(_) if !force => Err(CliError::usage(format!(
            "the output already exists (use --force to replace a cache file): {}",
            out.display()
        ))),
        Ok(_) => open::read_write(out).map(Some),
    }
}

/// Compacts `cache` into a temporary file beside `target` and renames it
/// over `target`. `perms`: the new file's permissions when `target` does
/// not exist yet (an existing target keeps its own).
fn compact_into(
    cache: &DatasetFileCache,
    target: &Path,
    perms: Option<fs::Permissions>,
    opts: CompactOptions,
    g: Global,
) -> CliResult<CompactReport> {
    let shown = target.display().to_string();
    let dir: PathBuf = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "cache".into());
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.compact-"))
        .tempfile_in(&dir)
        .map_err(|e| CliError::io(&e, "cannot create a temporary file", &dir))?;
    let s = cache.stats().map_err(|e| CliError::op(e, &shown))?;
    let mut p = Progress::new("compacting", "entries", s.entries, s.stored_bytes, g.quiet);
    let report = cache
        .compact_to_with_progress(tmp.path(), opts, &mut |done| p.report(done))
        .map_err(|e| CliError::op(e, &shown));
    p.finish();
    let report = report?;
    let perms = fs::metadata(target).ok().map(|m| m.permissions()).or(perms);
    if let Some(p) = perms {
        fs::set_permissions(tmp.path(), p)
            .map_err(|e| CliError::io(&e, "cannot set permissions", tmp.path()))?;
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| CliError::io(&e, "cannot sync", tmp.path()))?;
    tmp.persist(target).map_err(|e| {
        CliError::new(
            Exit::Failed,
            format!("cannot replace the file: {}: {shown}", e.error),
        )
    })?;
    // Make the rename durable; some file systems cannot sync a folder, and
    // the data is safe either way (old or new file).
    if let Ok(d) = fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(report)
}
