//! `dfcache dicts FILE [--json]`: the compression dictionaries stored in
//! the file, how many values use each, and the key prefixes each is the
//! default for. Read-only; one pass over the index counts the values.

use std::collections::BTreeMap;

use serde::Serialize;

use super::args::DictsArgs;
use super::error::{CliError, CliResult};
use super::keys::show;
use super::output::Out;
use super::size::human;
use super::train_dict::PrefixJson;
use super::{open, Global};

/// One dictionary in the `--json` document (fields documented in
/// `dicts --help` and the README).
#[derive(Serialize, Debug)]
pub struct Dict {
    /// Its id.
    pub id: u32,
    /// Its size in bytes.
    pub size: u64,
    /// Entries whose value is compressed with it.
    pub values: u64,
    /// The key prefixes it is the default for.
    pub default_for: Vec<PrefixJson>,
}

/// The `--json` document.
#[derive(Serialize, Debug)]
pub struct Dicts {
    /// The dictionaries in id order.
    pub dictionaries: Vec<Dict>,
}

/// Runs `dicts`.
///
/// # Errors
/// Exit 2 when the file cannot be opened; exit 1 for a damaged index.
pub fn run(a: &DictsArgs, g: Global) -> CliResult {
    let file = a.file.display().to_string();
    let cache = open::read_only(&a.file)?;
    let list = cache.dictionaries().map_err(|e| CliError::op(e, &file))?;
    let mut uses: BTreeMap<u32, u64> = BTreeMap::new();
    if !list.is_empty() {
        for item in cache.entries(b"").map_err(|e| CliError::op(e, &file))? {
            let (_, e) = item.map_err(|e| CliError::op(e, &file))?;
            if e.dictionary != 0 {
                *uses.entry(e.dictionary).or_default() += 1;
            }
        }
    }
    let mut out = Out::new();
    if a.json {
        let doc = Dicts {
            dictionaries: list
                .iter()
                .map(|d| Dict {
                    id: d.id,
                    size: d.size,
                    values: uses.get(&d.id).copied().unwrap_or(0),
                    default_for: d.default_for.iter().map(|p| PrefixJson::new(p)).collect(),
                })
                .collect(),
        };
        out.json(&doc)?;
        return out.flush();
    }
    out.line(format!(
        "{:>6} {:>10} {:>10}  DEFAULT_FOR",
        "ID", "SIZE", "VALUES"
    ))?;
    for d in &list {
        let defaults: Vec<String> = d
            .default_for
            .iter()
            .map(|p| {
                if p.is_empty() {
                    "*".to_string()
                } else {
                    show(p, g.hex)
                }
            })
            .collect();
        out.line(format!(
            "{:>6} {:>10} {:>10}  {}",
            d.id,
            human(d.size),
            uses.get(&d.id).copied().unwrap_or(0),
            if defaults.is_empty() {
                "-".to_string()
            } else {
                defaults.join(", ")
            }
        ))?;
    }
    out.flush()
}
