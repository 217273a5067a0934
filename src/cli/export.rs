//! `dfcache export FILE DIR [--prefix P]`: write entries out as files.
//!
//! Everything that could go wrong with the names is checked before the
//! first byte is written: every key must map to a safe relative path (see
//! [`paths`](super::paths)), no key may need to be both a file and a folder,
//! no target may exist already, and no folder on the way may be a symlink or
//! a file. Then DIR and the folders are created and each file is created
//! new (never overwriting, never following a symlink).
//!
//! Values larger than 1 MiB are copied with `get_stream`, one frame at a
//! time, so memory use does not grow with the size of a value.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::args::ExportArgs;
use super::error::{CliError, CliResult};
use super::keys::{parse_key, show};
use super::output::Out;
use super::paths::key_to_relpath;
use super::progress::Progress;
use super::size::human;
use super::values::{copy_out, CopyFailed, WHOLE_MAX};
use super::{open, Global};

/// Refuses with a one-line summary of the first few offenders.
fn refuse(what: &str, bad: &[(String, String)], dir: &Path) -> CliError {
    let shown: Vec<String> = bad
        .iter()
        .take(5)
        .map(|(k, why)| format!("{k} ({why})"))
        .collect();
    CliError::not_found(format!(
        "refusing to export, nothing written: {} {what}: {}{}: {}",
        bad.len(),
        shown.join(", "),
        if bad.len() > 5 { ", ..." } else { "" },
        dir.display()
    ))
}

/// Creates a new file at `path`: never overwriting, never following a
/// symlink.
fn create_new(path: &Path) -> CliResult<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| CliError::io(&e, "cannot create", path))
}

/// Runs `export`.
///
/// # Errors
/// Exit 1 when keys cannot be exported as files (nothing is written then)
/// or a value is damaged; exit 2 when the cache cannot be opened or DIR
/// cannot be used; exit 4 when writing fails part-way.
pub fn run(a: &ExportArgs, g: Global) -> CliResult {
    let file = a.file.display().to_string();
    let prefix = match &a.prefix {
        Some(p) => parse_key(p, g.hex)?,
        None => Vec::new(),
    };
    let cache = open::read_only(&a.file)?;

    // 1. Every entry and its path; negative entries have no value.
    let mut todo: Vec<(Vec<u8>, PathBuf, u64)> = Vec::new();
    let mut unsafe_keys = Vec::new();
    let mut negative = 0u64;
    for item in cache.entries(&prefix).map_err(|e| CliError::op(e, &file))? {
        let (key, info) = item.map_err(|e| CliError::op(e, &file))?;
        if info.absent {
            negative += 1;
            continue;
        }
        match key_to_relpath(&key, g.hex) {
            Ok(rel) => todo.push((key, rel, info.raw_len)),
            Err(why) => unsafe_keys.push((show(&key, g.hex), why.to_string())),
        }
    }
    if !unsafe_keys.is_empty() {
        return Err(refuse(
            "keys that are not safe relative file paths",
            &unsafe_keys,
            &a.dir,
        ));
    }

    // 2. Keys that would need one path as both a file and a folder.
    let files: HashSet<&Path> = todo.iter().map(|(_, rel, _)| rel.as_path()).collect();
    let mut folders: BTreeSet<&Path> = BTreeSet::new();
    for (_, rel, _) in &todo {
        let mut p = rel.parent();
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            if !folders.insert(d) {
                break;
            }
            p = d.parent();
        }
    }
    let clashes: Vec<(String, String)> = folders
        .iter()
        .filter(|d| files.contains(*d))
        .map(|d| {
            (
                d.display().to_string(),
                "a key and a folder of other keys".to_string(),
            )
        })
        .collect();
    if !clashes.is_empty() {
        return Err(refuse(
            "paths needed as both file and folder",
            &clashes,
            &a.dir,
        ));
    }

    // 3. What is already in DIR.
    match fs::metadata(&a.dir) {
        Ok(m) if !m.is_dir() => {
            return Err(CliError::usage(format!(
                "not a folder: {}",
                a.dir.display()
            )))
        }
        Ok(_) => {
            let mut in_the_way = Vec::new();
            for d in &folders {
                let p = a.dir.join(d);
                if let Ok(m) = fs::symlink_metadata(&p) {
                    if !m.is_dir() {
                        in_the_way.push((
                            p.display().to_string(),
                            "exists and is not a folder (or is a symlink)".to_string(),
                        ));
                    }
                }
            }
            for (_, rel, _) in &todo {
                let p = a.dir.join(rel);
                if fs::symlink_metadata(&p).is_ok() {
                    in_the_way.push((p.display().to_string(), "already exists".to_string()));
                }
            }
            if !in_the_way.is_empty() {
                return Err(refuse(
                    "paths already taken in the folder",
                    &in_the_way,
                    &a.dir,
                ));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(CliError::io(&e, "cannot use the folder", &a.dir)),
    }

    // 4. Write.
    fs::create_dir_all(&a.dir).map_err(|e| CliError::io(&e, "cannot create the folder", &a.dir))?;
    for d in &folders {
        let p = a.dir.join(d);
        fs::create_dir_all(&p).map_err(|e| CliError::io(&e, "cannot create the folder", &p))?;
    }
    let total: u64 = todo.iter().map(|t| t.2).sum();
    let mut p = Progress::new("exporting", "files", todo.len() as u64, total, g.quiet);
    let (mut written, mut bytes, mut vanished) = (0u64, 0u64, 0u64);
    for (key, rel, len) in &todo {
        let shown = show(key, g.hex);
        let path = a.dir.join(rel);
        let n = if *len > WHOLE_MAX {
            let Some(mut value) = cache.get_stream(key).map_err(|e| CliError::op(e, &shown))?
            else {
                // Expired (past the maximum age) since it was listed.
                vanished += 1;
                continue;
            };
            let mut f = create_new(&path)?;
            copy_out(&mut value, &mut f, |n| p.add(0, n)).map_err(|e| match e {
                CopyFailed::Read(e) => CopyFailed::read_error(&e, &shown),
                CopyFailed::Write(e) => CliError::io(&e, "cannot write", &path),
            })?
        } else {
            let Some(value) = cache.get(key).map_err(|e| CliError::op(e, &shown))? else {
                vanished += 1;
                continue;
            };
            let mut f = create_new(&path)?;
            f.write_all(&value)
                .map_err(|e| CliError::io(&e, "cannot write", &path))?;
            p.add(0, value.len() as u64);
            value.len() as u64
        };
        written += 1;
        bytes += n;
        p.add(1, 0);
    }
    p.finish();
    if !g.quiet {
        let mut out = Out::new();
        out.line(format!(
            "exported {written} files ({}) to {}{}{}",
            human(bytes),
            a.dir.display(),
            if negative > 0 {
                format!(", skipped {negative} negative entries")
            } else {
                String::new()
            },
            if vanished > 0 {
                format!(", {vanished} expired entries")
            } else {
                String::new()
            },
        ))?;
        out.flush()?;
    }
    Ok(())
}
