//! `dfcache ls FILE [--prefix P] [--long] [--json]`: the keys, in order.
//!
//! Output is streamed entry by entry (the JSON document too), so listing a
//! large cache needs no memory for the whole list.

use dfcache::EntryInfo;
use serde::Serialize;

use super::args::LsArgs;
use super::error::{CliError, CliResult};
use super::keys::{parse_key, show, KeyJson};
use super::output::Out;
use super::stats::codec_name;
use super::time::{rfc3339, unix_ms};
use super::{open, Global};

/// One entry of the `--json` document (fields documented in `ls --help`
/// and the README).
#[derive(Serialize, Debug)]
pub struct Entry {
    /// The key.
    #[serde(flatten)]
    pub key: KeyJson,
    /// The value's length.
    pub raw_bytes: u64,
    /// Bytes it takes in the file.
    pub stored_bytes: u64,
    /// "raw" or "zstd".
    pub codec: &'static str,
    /// Compression dictionary id, 0 = none.
    pub dictionary: u32,
    /// Stored in chunks.
    pub chunked: bool,
    /// A negative entry.
    pub absent: bool,
    /// Bytes of metadata.
    pub meta_bytes: u64,
    /// LRU tick; larger is more recent.
    pub last_use: u64,
    /// Insertion time, RFC 3339 UTC.
    pub inserted: String,
    /// Insertion time, Unix milliseconds.
    pub inserted_unix_ms: u64,
}

impl Entry {
    /// The JSON form of one entry.
    pub fn new(key: &[u8], e: &EntryInfo) -> Entry {
        Entry {
            key: KeyJson::new(key),
            raw_bytes: e.raw_len,
            stored_bytes: e.stored_len,
            codec: codec_name(e.codec),
            dictionary: e.dictionary,
            chunked: e.chunked,
            absent: e.absent,
            meta_bytes: e.meta_len,
            last_use: e.last_use,
            inserted: rfc3339(e.inserted),
            inserted_unix_ms: unix_ms(e.inserted),
        }
    }
}

/// The codec column of `--long`: `raw`, `zstd`, `zstd+dict7`, with
/// `,chunked`; `absent` for negative entries.
fn codec_column(e: &EntryInfo) -> String {
    if e.absent {
        return "absent".into();
    }
    let mut s = codec_name(e.codec).to_string();
    if e.dictionary != 0 {
        s.push_str(&format!("+dict{}", e.dictionary));
    }
    if e.chunked {
        s.push_str(",chunked");
    }
    s
}

/// Runs `ls`.
///
/// # Errors
/// Exit 2 when the file cannot be opened; exit 1 for a damaged index.
pub fn run(a: &LsArgs, g: Global) -> CliResult {
    let file = a.file.display().to_string();
    let prefix = match &a.prefix {
        Some(p) => parse_key(p, g.hex)?,
        None => Vec::new(),
    };
    let cache = open::read_only(&a.file)?;
    let entries = cache.entries(&prefix).map_err(|e| CliError::op(e, &file))?;
    let mut out = Out::new();
    if a.json {
        out.bytes(b"{\"entries\": [")?;
    } else if a.long {
        out.line(format!(
            "{:>12} {:>12} {:<12} {:>6} {:>10} {:<24} KEY",
            "RAW", "STORED", "CODEC", "META", "LAST_USE", "INSERTED"
        ))?;
    }
    let mut first = true;
    for item in entries {
        let (key, e) = item.map_err(|e| CliError::op(e, &file))?;
        if a.json {
            let doc = serde_json::to_string(&Entry::new(&key, &e))
                .map_err(|e| CliError::stdout(e.into()))?;
            out.bytes(if first { b"\n  " } else { b",\n  " })?;
            out.bytes(doc.as_bytes())?;
        } else if a.long {
            out.line(format!(
                "{:>12} {:>12} {:<12} {:>6} {:>10} {:<24} {}",
                e.raw_len,
                e.stored_len,
                codec_column(&e),
                e.meta_len,
                e.last_use,
                rfc3339(e.inserted),
                show(&key, g.hex)
            ))?;
        } else {
            out.line(show(&key, g.hex))?;
        }
        first = false;
    }
    if a.json {
        out.bytes(if first { b"]}\n" } else { b"\n]}\n" })?;
    }
    out.flush()
}
