//! `dfcache stats FILE [--json]`: what the cache holds, per dataset.
//!
//! Keys of 28 bytes are the dataset layer's block keys (GUID, revision,
//! block index; spec/FORMAT.md §12) and are grouped by [`DatasetId`]. A
//! 28-byte key made only of printable ASCII is taken for text (a block key
//! would need 28 printable bytes, including the high bytes of its block
//! index) and counted with the other keys.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use dfcache::{Codec, DatasetId, EntryInfo};
use serde::Serialize;

use super::args::StatsArgs;
use super::error::{CliError, CliResult};
use super::keys::{show, KeyJson};
use super::output::{field, Out};
use super::size::human;
use super::{open, Global};

/// How many of the largest entries are listed.
pub const TOP: usize = 10;

/// Counts and sizes of a group of entries.
#[derive(Serialize, Debug, Default, Clone, PartialEq, Eq)]
pub struct Totals {
    /// Entries, negative ones included.
    pub entries: u64,
    /// Negative entries.
    pub negative_entries: u64,
    /// Sum of the values' lengths.
    pub raw_bytes: u64,
    /// Bytes the values take in the file.
    pub stored_bytes: u64,
}

impl Totals {
    fn add(&mut self, e: &EntryInfo) {
        self.entries += 1;
        self.negative_entries += u64::from(e.absent);
        self.raw_bytes += e.raw_len;
        self.stored_bytes += e.stored_len;
    }
}

/// One dataset revision's entries.
#[derive(Serialize, Debug, Clone)]
pub struct DatasetStats {
    /// `GUID@REVISION`.
    pub dataset: String,
    /// The dataset's GUID.
    pub guid: String,
    /// The revision.
    pub revision: i32,
    /// Its counts and sizes.
    #[serde(flatten)]
    pub totals: Totals,
    /// The lowest block index cached.
    pub first_block: u64,
    /// The highest block index cached.
    pub last_block: u64,
}

/// One of the largest entries.
#[derive(Serialize, Debug, Clone)]
pub struct Largest {
    /// The key.
    #[serde(flatten)]
    pub key: KeyJson,
    /// The value's length.
    pub raw_bytes: u64,
    /// Bytes it takes in the file.
    pub stored_bytes: u64,
    /// "raw" or "zstd".
    pub codec: &'static str,
    /// The key's bytes, for text output.
    #[serde(skip)]
    pub raw_key: Vec<u8>,
}

/// The `--json` document (fields documented in `stats --help` and the
/// README).
#[derive(Serialize, Debug)]
pub struct Stats {
    /// The path as given.
    pub file: String,
    /// All entries.
    #[serde(flatten)]
    pub totals: Totals,
    /// Bytes of per-entry metadata.
    pub meta_bytes: u64,
    /// `raw_bytes / stored_bytes`.
    pub compression_ratio: Option<f64>,
    /// Per dataset revision, in key order.
    pub datasets: Vec<DatasetStats>,
    /// Keys that are not block keys.
    pub other: Totals,
    /// The largest entries by stored bytes.
    pub largest: Vec<Largest>,
}

/// The codec's name in output.
pub fn codec_name(c: Codec) -> &'static str {
    match c {
        Codec::Raw => "raw",
        Codec::Zstd => "zstd",
    }
}

/// The dataset block a key addresses, if it is a block key.
pub fn block_of(key: &[u8]) -> Option<(DatasetId, u64)> {
    if key.iter().all(|b| (0x20..0x7f).contains(b)) {
        return None;
    }
    DatasetId::from_block_key(key)
}

/// A candidate for the largest entries: (stored bytes, key reversed so
/// that ties keep the smaller key, raw bytes, codec).
type Candidate = (u64, Reverse<Vec<u8>>, u64, &'static str);

/// Reads every entry of the cache at `a.file` and sums them up.
///
/// # Errors
/// Exit 2 when the file cannot be opened; exit 1 for a damaged index.
pub fn gather(a: &StatsArgs) -> CliResult<Stats> {
    let file = a.file.display().to_string();
    let cache = open::read_only(&a.file)?;
    let s = cache.stats().map_err(|e| CliError::op(e, &file))?;
    let mut all = Totals::default();
    let mut other = Totals::default();
    let mut datasets: BTreeMap<DatasetId, (Totals, u64, u64)> = BTreeMap::new();
    // A min-heap of the TOP largest so far: (stored, Reverse(key)) so that
    // ties keep the smaller key.
    let mut top: BinaryHeap<Reverse<Candidate>> = BinaryHeap::new();
    for item in cache.entries(b"").map_err(|e| CliError::op(e, &file))? {
        let (key, e) = item.map_err(|e| CliError::op(e, &file))?;
        all.add(&e);
        match block_of(&key) {
            Some((id, block)) => {
                let d = datasets
                    .entry(id)
                    .or_insert((Totals::default(), block, block));
                d.0.add(&e);
                d.1 = d.1.min(block);
                d.2 = d.2.max(block);
            }
            None => other.add(&e),
        }
        if !e.absent {
            top.push(Reverse((
                e.stored_len,
                Reverse(key),
                e.raw_len,
                codec_name(e.codec),
            )));
            if top.len() > TOP {
                top.pop();
            }
        }
    }
    let mut largest: Vec<_> = top.into_iter().map(|Reverse(x)| x).collect();
    largest.sort_by(|a, b| b.cmp(a));
    Ok(Stats {
        file,
        compression_ratio: (all.stored_bytes > 0)
            .then(|| all.raw_bytes as f64 / all.stored_bytes as f64),
        totals: all,
        meta_bytes: s.meta_bytes,
        datasets: datasets
            .into_iter()
            .map(|(id, (totals, first_block, last_block))| DatasetStats {
                dataset: id.to_string(),
                guid: id.guid.to_string(),
                revision: id.revision,
                totals,
                first_block,
                last_block,
            })
            .collect(),
        other,
        largest: largest
            .into_iter()
            .map(|(stored, Reverse(key), raw, codec)| Largest {
                key: KeyJson::new(&key),
                raw_bytes: raw,
                stored_bytes: stored,
                codec,
                raw_key: key,
            })
            .collect(),
    })
}

fn row(name: &str, t: &Totals, extra: &str) -> String {
    format!(
        "  {name:<44} {:>9} {:>9} {:>11} {:>11}{extra}",
        t.entries,
        t.negative_entries,
        human(t.raw_bytes),
        human(t.stored_bytes)
    )
}

/// Runs `stats`.
///
/// # Errors
/// As [`gather`].
pub fn run(a: &StatsArgs, g: Global) -> CliResult {
    let s = gather(a)?;
    let mut out = Out::new();
    if a.json {
        out.json(&s)?;
        return out.flush();
    }
    out.line(field("file", &s.file))?;
    out.line(field(
        "entries",
        format!(
            "{} ({} negative)",
            s.totals.entries, s.totals.negative_entries
        ),
    ))?;
    out.line(field("raw bytes", human(s.totals.raw_bytes)))?;
    out.line(field("stored bytes", human(s.totals.stored_bytes)))?;
    out.line(field("metadata", human(s.meta_bytes)))?;
    out.line(field(
        "compression",
        match s.compression_ratio {
            Some(r) => format!("{r:.2}x (raw / stored)"),
            None => "- (nothing stored)".into(),
        },
    ))?;
    out.line("")?;
    out.line(format!(
        "  {:<44} {:>9} {:>9} {:>11} {:>11}  BLOCKS",
        "DATASET", "ENTRIES", "NEGATIVE", "RAW", "STORED"
    ))?;
    for d in &s.datasets {
        out.line(row(
            &d.dataset,
            &d.totals,
            &format!("  {}..={}", d.first_block, d.last_block),
        ))?;
    }
    out.line(row("other", &s.other, ""))?;
    out.line("")?;
    out.line(format!("largest entries (top {TOP} by stored bytes):"))?;
    for l in &s.largest {
        let key = show(&l.raw_key, g.hex);
        out.line(format!(
            "  {:>11} {:>11}  {:<4}  {key}",
            human(l.stored_bytes),
            human(l.raw_bytes),
            l.codec
        ))?;
    }
    out.flush()
}
