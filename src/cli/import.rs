//! `dfcache import FILE DIR`: store every regular file under DIR, keyed by
//! its path relative to DIR with `/` separators.
//!
//! The folder is walked first (sorted, so runs are reproducible): files
//! whose names cannot be keys, or that are larger than the cache's maximum
//! size, are reported before anything is written;
//! symlinks, sockets, FIFOs and devices are skipped and named on stderr, and
//! so is the cache file itself should it lie under DIR.
//!
//! Files are stored as [`put`](super::put) stores them: up to 1 MiB whole,
//! larger ones streamed in 1 MiB frames, so memory use does not grow with
//! the size of a file.

use std::fs::{self, Metadata};
use std::path::{Path, PathBuf};

use dfcache::{Flushable, MAX_KEY_LEN};

use super::args::ImportArgs;
use super::error::{CliError, CliResult};
use super::keys::show;
use super::output::Out;
use super::paths::relpath_to_key;
use super::progress::Progress;
use super::size::human;
use super::values::{put_from, PutFailed};
use super::{open, Global};

/// A file to import.
struct Item {
    path: PathBuf,
    key: Vec<u8>,
    len: u64,
}

/// What the walk found.
#[derive(Default)]
struct Walk {
    items: Vec<Item>,
    /// (path, what it is) of what is skipped.
    skipped: Vec<(PathBuf, &'static str)>,
    /// (path, why) of files whose name cannot be a key.
    unusable: Vec<(PathBuf, String)>,
}

fn kind(m: &Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_symlink() {
        return "symlink";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_socket() {
            return "socket";
        }
        if t.is_fifo() {
            return "FIFO";
        }
        if t.is_block_device() || t.is_char_device() {
            return "device";
        }
    }
    "special file"
}

/// Whether two metadata describe the same file.
fn same_file(a: &Metadata, b: &Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        a.dev() == b.dev() && a.ino() == b.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        false
    }
}

fn walk(dir: &Path, rel: &Path, cache: &Metadata, hex: bool, w: &mut Walk) -> CliResult {
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(|e| CliError::io(&e, "cannot read the folder", dir))?
        .map(|d| d.map(|d| d.file_name()))
        .collect::<Result<_, _>>()
        .map_err(|e| CliError::io(&e, "cannot read the folder", dir))?;
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let rel = rel.join(&name);
        let m = fs::symlink_metadata(&path).map_err(|e| CliError::io(&e, "cannot read", &path))?;
        if m.is_dir() {
            walk(&path, &rel, cache, hex, w)?;
        } else if !m.is_file() {
            w.skipped.push((path, kind(&m)));
        } else if same_file(&m, cache) {
            w.skipped.push((path, "the cache file itself"));
        } else {
            match relpath_to_key(&rel, hex) {
                Ok(key) if key.is_empty() || key.len() > MAX_KEY_LEN => w.unusable.push((
                    path,
                    format!("key of {} bytes (keys are 1 to {MAX_KEY_LEN})", key.len()),
                )),
                Ok(key) => w.items.push(Item {
                    path,
                    key,
                    len: m.len(),
                }),
                Err(why) => w.unusable.push((path, why)),
            }
        }
    }
    Ok(())
}

/// Runs `import`.
///
/// # Errors
/// Exit 1 when files cannot be imported (names that cannot be keys, files
/// larger than the maximum size; nothing is imported then); exit 2
/// when the cache or DIR cannot be opened; exit 3 when another writer holds
/// the cache; exit 4 when reading a file or writing the cache fails
/// part-way (what was imported before stays).
pub fn run(a: &ImportArgs, g: Global) -> CliResult {
    let file = a.file.display().to_string();
    let cache = open::read_write(&a.file)?;
    let cache_meta = fs::metadata(&a.file).map_err(|e| CliError::io(&e, "cannot open", &a.file))?;
    match fs::metadata(&a.dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(CliError::usage(format!(
                "not a folder: {}",
                a.dir.display()
            )))
        }
        Err(e) => return Err(CliError::io(&e, "cannot open the folder", &a.dir)),
    }
    let mut w = Walk::default();
    walk(&a.dir, Path::new(""), &cache_meta, g.hex, &mut w)?;
    // A value can never be larger than the file that holds it.
    let cap = cache.maximum_file_size();
    for item in w.items.iter().filter(|i| cap != 0 && i.len > cap) {
        w.unusable.push((
            item.path.clone(),
            format!(
                "{} is larger than the maximum size of {}",
                human(item.len),
                human(cap)
            ),
        ));
    }
    if let Some((first, why)) = w.unusable.first() {
        return Err(CliError::not_found(format!(
            "{} file(s) cannot be imported, nothing imported (first: {why}): {}",
            w.unusable.len(),
            first.display()
        )));
    }
    let total: u64 = w.items.iter().map(|i| i.len).sum();
    let mut p = Progress::new("importing", "files", w.items.len() as u64, total, g.quiet);
    for (path, what) in &w.skipped {
        p.note(&format!("skipped {what}: {}", path.display()));
    }
    let mut bytes = 0u64;
    for item in &w.items {
        let f =
            fs::File::open(&item.path).map_err(|e| CliError::io(&e, "cannot read", &item.path))?;
        let n = put_from(&cache, &item.key, f, None, |n| p.add(0, n)).map_err(|e| match e {
            PutFailed::Input(e) => CliError::io(&e, "cannot read", &item.path),
            PutFailed::Cache(e) => CliError::op(e, &show(&item.key, g.hex)),
        })?;
        bytes += n;
        p.add(1, 0);
    }
    cache.flush().map_err(|e| CliError::op(e, &file))?;
    p.finish();
    if !g.quiet {
        let s = cache.stats().map_err(|e| CliError::op(e, &file))?;
        let mut out = Out::new();
        out.line(format!(
            "imported {} files ({}) into {file}, skipped {}{}",
            w.items.len(),
            human(bytes),
            w.skipped.len(),
            if s.evictions > 0 {
                format!(
                    "; {} entries evicted to stay under the maximum size",
                    s.evictions
                )
            } else {
                String::new()
            }
        ))?;
        out.flush()?;
    }
    Ok(())
}
