//! `dfcache info FILE [--json]`: what the file is and how full it is.

use serde::Serialize;

use super::args::InfoArgs;
use super::error::{CliError, CliResult};
use super::header::{self, Commit, Header};
use super::output::{field, Out};
use super::size::{human, human_cap};
use super::{open, Global};

/// The `--json` document (fields documented in `info --help` and the
/// README).
#[derive(Serialize, Debug)]
pub struct Info {
    /// The path as given.
    pub file: String,
    /// The file format version.
    pub format_version: i16,
    /// Bytes 0..96 as stored.
    pub header: Option<Header>,
    /// The newest valid commit record.
    pub commit: Option<Commit>,
    /// Entries, negative ones included.
    pub entries: u64,
    /// Sum of the values' lengths.
    pub raw_bytes: u64,
    /// Bytes the values take in the file.
    pub stored_bytes: u64,
    /// Bytes of per-entry metadata.
    pub meta_bytes: u64,
    /// Length of the file.
    pub file_size: u64,
    /// The cap, 0 = unlimited.
    pub maximum_file_size: u64,
    /// `file_size / maximum_file_size`, in percent.
    pub fill_percent: Option<f64>,
    /// The maximum entry age in milliseconds.
    pub maximum_age_ms: Option<u64>,
}

/// Gathers the facts about the cache at `a.file`.
///
/// # Errors
/// Exit 2 when the file cannot be opened.
pub fn gather(a: &InfoArgs) -> CliResult<Info> {
    let file = a.file.display().to_string();
    let cache = open::read_only(&a.file)?;
    let s = cache.stats().map_err(|e| CliError::op(e, &file))?;
    let head = header::read_head(&a.file).map_err(|e| CliError::io(&e, "cannot read", &a.file))?;
    let header = header::header(&head);
    let fill_percent =
        (s.maximum_file_size > 0).then(|| s.file_size as f64 * 100.0 / s.maximum_file_size as f64);
    Ok(Info {
        file,
        format_version: header
            .as_ref()
            .map_or(dfcache::FORMAT_VERSION, |h| h.format_version),
        commit: header::newest_commit(&head),
        header,
        entries: s.entries,
        raw_bytes: s.raw_bytes,
        stored_bytes: s.stored_bytes,
        meta_bytes: s.meta_bytes,
        file_size: s.file_size,
        maximum_file_size: s.maximum_file_size,
        fill_percent,
        maximum_age_ms: s
            .maximum_age
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    })
}

fn bytes(n: u64) -> String {
    format!("{} ({n} bytes)", human(n))
}

/// Runs `info`.
///
/// # Errors
/// Exit 2 when the file cannot be opened.
pub fn run(a: &InfoArgs, _g: Global) -> CliResult {
    let i = gather(a)?;
    let mut out = Out::new();
    if a.json {
        out.json(&i)?;
        return out.flush();
    }
    let mut lines = vec![field("file", &i.file)];
    if let Some(h) = &i.header {
        lines.push(field("magic", &h.magic));
        lines.push(field("format version", h.format_version));
        lines.push(field(
            "header max size",
            human_cap(u64::try_from(h.maximum_file_size).unwrap_or(0)),
        ));
        lines.push(field(
            "header roots",
            format!(
                "primary {}, last-used {}, allocations {}, free chunks {}",
                h.primary_root, h.last_used_root, h.allocations_root, h.free_chunks_root
            ),
        ));
        lines.push(field(
            "block storage",
            format!(
                "magic {}, version {}",
                h.block_storage_magic, h.block_storage_version
            ),
        ));
    }
    if let Some(c) = &i.commit {
        lines.push(field(
            "last commit",
            format!("#{} ({}) at {}", c.sequence, c.kind, c.committed_at),
        ));
        lines.push(field("free space", bytes(c.free_bytes)));
    }
    lines.push(field("entries", i.entries));
    lines.push(field("live raw", bytes(i.raw_bytes)));
    lines.push(field("live stored", bytes(i.stored_bytes)));
    lines.push(field("metadata", bytes(i.meta_bytes)));
    lines.push(field("file size", bytes(i.file_size)));
    lines.push(field(
        "maximum size",
        match i.maximum_file_size {
            0 => "unlimited".to_string(),
            n => bytes(n),
        },
    ));
    lines.push(field(
        "fill",
        match i.fill_percent {
            Some(p) => format!("{p:.1} %"),
            None => "- (no maximum)".into(),
        },
    ));
    lines.push(field(
        "maximum age",
        match i.maximum_age_ms {
            Some(ms) => format!("{:.3} s", ms as f64 / 1000.0),
            None => "none".into(),
        },
    ));
    for l in lines {
        out.line(l)?;
    }
    out.flush()
}
