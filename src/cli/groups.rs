//! Groups, named lists of keys (`groups`, `group`, `put-group`,
//! `rm-group`).
//!
//! A group lists keys; it does not own entries. Its members need not be
//! cached, and evicting or removing an entry leaves the group as it is, so
//! `group` also says which members are no longer cached. Group names are
//! bytes like keys: text, or hex with `--hex`.

use std::io::{self, BufRead, IsTerminal};

use dfcache::Flushable;
use serde::Serialize;

use super::args::{GroupArgs, GroupsArgs, PutGroupArgs, RmGroupArgs};
use super::error::{CliError, CliResult};
use super::keys::{parse_key, show, to_hex, KeyJson};
use super::output::Out;
use super::{open, Global};

/// A group name in JSON: the text (`null` when not UTF-8) and the hex.
#[derive(Serialize, Debug, Clone)]
pub struct NameJson {
    /// The name as UTF-8 text; `null` when it is not valid UTF-8.
    pub name: Option<String>,
    /// The name in lowercase hex.
    pub name_hex: String,
}

impl NameJson {
    /// Both forms of `n`.
    pub fn new(n: &[u8]) -> NameJson {
        NameJson {
            name: std::str::from_utf8(n).ok().map(str::to_string),
            name_hex: to_hex(n),
        }
    }
}

/// One group in `groups --json`.
#[derive(Serialize, Debug)]
pub struct GroupSummary {
    /// Its name.
    #[serde(flatten)]
    pub name: NameJson,
    /// How many keys it lists.
    pub members: u64,
}

/// The `groups --json` document (fields documented in `groups --help` and
/// the README).
#[derive(Serialize, Debug)]
pub struct Groups {
    /// The groups in name order.
    pub groups: Vec<GroupSummary>,
}

/// One member in `group --json`.
#[derive(Serialize, Debug)]
pub struct Member {
    /// The key.
    #[serde(flatten)]
    pub key: KeyJson,
    /// Whether the cache holds an entry for it.
    pub cached: bool,
}

/// The `group --json` document (fields documented in `group --help` and
/// the README).
#[derive(Serialize, Debug)]
pub struct Group {
    /// Its name.
    #[serde(flatten)]
    pub name: NameJson,
    /// How many keys it lists.
    pub members: u64,
    /// How many of them are not cached.
    pub missing: u64,
    /// The members in group order.
    pub keys: Vec<Member>,
}

/// Runs `groups`.
///
/// # Errors
/// Exit 2 when the file cannot be opened; exit 1 for a damaged index.
pub fn list(a: &GroupsArgs, g: Global) -> CliResult {
    let file = a.file.display().to_string();
    let prefix = match &a.prefix {
        Some(p) => parse_key(p, g.hex)?,
        None => Vec::new(),
    };
    let cache = open::read_only(&a.file)?;
    let groups = cache
        .groups_with_prefix(&prefix)
        .map_err(|e| CliError::op(e, &file))?;
    let mut out = Out::new();
    if a.json {
        out.json(&Groups {
            groups: groups
                .iter()
                .map(|(name, members)| GroupSummary {
                    name: NameJson::new(name),
                    members: *members,
                })
                .collect(),
        })?;
    } else {
        for (name, members) in &groups {
            out.line(format!("{members:>10}  {}", show(name, g.hex)))?;
        }
    }
    out.flush()
}

/// Runs `group`.
///
/// # Errors
/// Exit 1 when there is no such group (or the index is damaged); exit 2
/// for a bad name or a file that cannot be opened.
pub fn members(a: &GroupArgs, g: Global) -> CliResult {
    let name = parse_key(&a.name, g.hex)?;
    let shown = show(&name, g.hex);
    let cache = open::read_only(&a.file)?;
    let keys = cache
        .get_group(&name)
        .map_err(|e| CliError::op(e, &shown))?
        .ok_or_else(|| CliError::not_found(format!("no such group: {shown}")))?;
    let mut cached = Vec::with_capacity(keys.len());
    for k in &keys {
        cached.push(
            cache
                .contains_key(k)
                .map_err(|e| CliError::op(e, &show(k, g.hex)))?,
        );
    }
    let missing = cached.iter().filter(|c| !**c).count() as u64;
    let mut out = Out::new();
    if a.json {
        out.json(&Group {
            name: NameJson::new(&name),
            members: keys.len() as u64,
            missing,
            keys: keys
                .iter()
                .zip(&cached)
                .map(|(k, c)| Member {
                    key: KeyJson::new(k),
                    cached: *c,
                })
                .collect(),
        })?;
        return out.flush();
    }
    for (k, c) in keys.iter().zip(&cached) {
        if !a.missing || !c {
            out.line(show(k, g.hex))?;
        }
    }
    out.flush()?;
    if missing > 0 && !a.missing && !g.quiet {
        eprintln!(
            "dfcache: {missing} of {} members are not cached (--missing lists them)",
            keys.len()
        );
    }
    Ok(())
}

/// Runs `put-group`.
///
/// # Errors
/// Exit 2 for a bad name or key or a file that cannot be opened; exit 3
/// when another writer holds it; exit 4 when writing fails.
pub fn put(a: &PutGroupArgs, g: Global) -> CliResult {
    let name = parse_key(&a.name, g.hex)?;
    let shown = show(&name, g.hex);
    let file = a.file.display().to_string();
    if name.is_empty() || name.len() > dfcache::MAX_GROUP_NAME {
        // Checked before stdin is read; the library would say the same.
        let e = dfcache::Error::InvalidArgument(format!(
            "group names are 1 to {} bytes, not {}",
            dfcache::MAX_GROUP_NAME,
            name.len()
        ));
        return Err(CliError::op(e, &shown));
    }
    let mut keys = a
        .keys
        .iter()
        .map(|k| parse_key(k, g.hex))
        .collect::<CliResult<Vec<_>>>()?;
    // Open the cache first: a bad cache fails before stdin is consumed.
    let cache = open::read_write(&a.file)?;
    if a.keys.is_empty() {
        if io::stdin().is_terminal() && !g.quiet {
            eprintln!("dfcache: reading keys from standard input, one per line (end with Ctrl-D)");
        }
        // Lines as bytes: keys need not be UTF-8 (with --hex, they are hex).
        for line in io::stdin().lock().split(b'\n') {
            let line = line.map_err(|e| {
                CliError::io(
                    &e,
                    "cannot read the keys",
                    std::path::Path::new("standard input"),
                )
            })?;
            if line.is_empty() {
                continue;
            }
            keys.push(if g.hex {
                parse_key(&String::from_utf8_lossy(&line), true)?
            } else {
                line
            });
        }
    }
    for k in &keys {
        if k.is_empty() || k.len() > dfcache::MAX_KEY_LEN {
            return Err(CliError::usage(format!(
                "invalid key of {} bytes: keys are 1 to {} bytes: {}",
                k.len(),
                dfcache::MAX_KEY_LEN,
                show(k, g.hex)
            )));
        }
    }
    let n = cache
        .put_group(&name, &keys)
        .map_err(|e| CliError::op(e, &shown))?;
    cache.flush().map_err(|e| CliError::op(e, &file))?;
    if !g.quiet {
        let mut missing = 0u64;
        for k in &keys {
            if !cache.contains_key(k).map_err(|e| CliError::op(e, &file))? {
                missing += 1;
            }
        }
        let mut out = Out::new();
        out.line(format!(
            "group {shown}: {n} keys{}",
            if missing > 0 {
                format!(" ({missing} not cached)")
            } else {
                String::new()
            }
        ))?;
        out.flush()?;
    }
    Ok(())
}

/// Runs `rm-group`.
///
/// # Errors
/// Exit 1 when there is no such group; exit 2 for a bad name or a file that
/// cannot be opened; exit 3 when another writer holds it.
pub fn remove(a: &RmGroupArgs, g: Global) -> CliResult {
    let name = parse_key(&a.name, g.hex)?;
    let shown = show(&name, g.hex);
    let file = a.file.display().to_string();
    let cache = open::read_write(&a.file)?;
    let existed = cache
        .remove_group(&name)
        .map_err(|e| CliError::op(e, &shown))?;
    cache.flush().map_err(|e| CliError::op(e, &file))?;
    if existed {
        Ok(())
    } else {
        Err(CliError::not_found(format!("no such group: {shown}")))
    }
}
