//! `dfcache train-dict FILE [--size SIZE] [--prefix P] [--json]`: train a
//! zstd dictionary on values already in the cache, store it in the file and
//! make it the default for new values (under P with `--prefix`).
//!
//! The sample is bounded: at most [`MAX_SAMPLES`] values of 1 byte to
//! 1 MiB (longer values are stored in frames that never use a dictionary),
//! spread evenly over the candidates in key order, at most
//! [`MAX_SAMPLE_BYTES`] in all. Two passes over the index (count, then
//! pick) keep memory to the chosen keys and values; the values are read
//! with one `get_many`, in file order.
//!
//! The file is opened read-write first (the writer lock: nothing changes
//! while sampling), and sampled through a second, read-only handle, whose
//! reads do not count as uses: training leaves the LRU order alone.

use dfcache::{DatasetFileCache, Flushable};
use serde::Serialize;

use super::args::TrainDictArgs;
use super::error::{CliError, CliResult};
use super::keys::{parse_key, show, to_hex};
use super::output::Out;
use super::size::human;
use super::values::WHOLE_MAX;
use super::{open, Global};

/// Most values sampled.
pub const MAX_SAMPLES: u64 = 1000;
/// Most bytes sampled in all.
pub const MAX_SAMPLE_BYTES: u64 = 32 << 20;
/// Fewest candidates worth trying (zstd wants dozens).
pub const MIN_SAMPLES: u64 = 8;
/// Fewest sample bytes worth trying. A dictionary trained on less is of no
/// use, and zstd's trainer crashes the process (SIGSEGV, SIGFPE) on some
/// samples of a few bytes in all (8 to 10 one-byte values): the library
/// passes them on, so they must not reach it.
pub const MIN_SAMPLE_BYTES: u64 = 1 << 10;

/// A key prefix in JSON: the text (`""` for all keys, `null` when not
/// UTF-8) and the hex.
#[derive(Serialize, Debug, Clone)]
pub struct PrefixJson {
    /// The prefix as UTF-8 text; `null` when it is not valid UTF-8.
    pub prefix: Option<String>,
    /// The prefix in lowercase hex.
    pub prefix_hex: String,
}

impl PrefixJson {
    /// Both forms of `p`.
    pub fn new(p: &[u8]) -> PrefixJson {
        PrefixJson {
            prefix: std::str::from_utf8(p).ok().map(str::to_string),
            prefix_hex: to_hex(p),
        }
    }
}

/// The `--json` document (fields documented in `train-dict --help` and the
/// README).
#[derive(Serialize, Debug)]
pub struct Trained {
    /// The path as given.
    pub file: String,
    /// The new dictionary's id.
    pub id: u32,
    /// Its size in bytes.
    pub size: u64,
    /// Values it was trained on.
    pub samples: u64,
    /// Their total length.
    pub sample_bytes: u64,
    /// Values that could have been sampled.
    pub candidates: u64,
    /// The prefix it is the default for.
    #[serde(flatten)]
    pub prefix: PrefixJson,
}

/// Whether an entry can be a sample.
fn candidate(e: &dfcache::EntryInfo) -> bool {
    !e.absent && e.raw_len >= 1 && e.raw_len <= WHOLE_MAX
}

/// Picks the sample from the entries under `prefix`: (values, candidates).
///
/// # Errors
/// Exit 1 for a damaged index or value.
fn sample(cache: &DatasetFileCache, prefix: &[u8], file: &str) -> CliResult<(Vec<Vec<u8>>, u64)> {
    let op = |e| CliError::op(e, file);
    // Pass 1: how many candidates, how many bytes.
    let (mut n, mut bytes) = (0u64, 0u64);
    for item in cache.entries(prefix).map_err(op)? {
        let (_, e) = item.map_err(op)?;
        if candidate(&e) {
            n += 1;
            bytes += e.raw_len;
        }
    }
    if n < MIN_SAMPLES {
        return Ok((Vec::new(), n));
    }
    // As many as fit the byte budget at the average size, at most 1000.
    let average = bytes.div_ceil(n).max(1);
    let k = n
        .min(MAX_SAMPLES)
        .min((MAX_SAMPLE_BYTES / average).max(MIN_SAMPLES));
    // Pass 2: candidates number floor(j * n / k), j = 0..k: spread evenly.
    let mut keys = Vec::new();
    let (mut i, mut j, mut taken) = (0u64, 0u64, 0u64);
    for item in cache.entries(prefix).map_err(op)? {
        let (key, e) = item.map_err(op)?;
        if !candidate(&e) {
            continue;
        }
        if j < k && i == j * n / k {
            if taken + e.raw_len > MAX_SAMPLE_BYTES && keys.len() as u64 >= MIN_SAMPLES {
                break;
            }
            taken += e.raw_len;
            keys.push(key);
            j += 1;
        }
        i += 1;
    }
    let values = cache.get_many(&keys).map_err(op)?;
    // A value expired meanwhile is simply not a sample.
    Ok((
        values.into_iter().flatten().map(|v| v.into_vec()).collect(),
        n,
    ))
}

/// Runs `train-dict`.
///
/// # Errors
/// Exit 1 when there are too few samples (or zstd cannot train on them);
/// exit 2 when the file cannot be opened; exit 3 when another writer holds
/// it; exit 4 when storing the dictionary fails.
pub fn run(a: &TrainDictArgs, g: Global) -> CliResult {
    let file = a.file.display().to_string();
    let prefix = match &a.prefix {
        Some(p) => parse_key(p, g.hex)?,
        None => Vec::new(),
    };
    let under = if prefix.is_empty() {
        String::new()
    } else {
        format!(" under '{}'", show(&prefix, g.hex))
    };
    let cache = open::read_write(&a.file)?;
    let (samples, candidates) = {
        let reader = open::read_only(&a.file)?;
        sample(&reader, &prefix, &file)?
    };
    let count = samples.len() as u64;
    let sample_bytes: u64 = samples.iter().map(|s| s.len() as u64).sum();
    if count < MIN_SAMPLES || sample_bytes < MIN_SAMPLE_BYTES {
        // Too few candidates, or (rarely) too few left after some expired.
        let found = if candidates < MIN_SAMPLES {
            candidates
        } else {
            count
        };
        return Err(CliError::not_found(format!(
            "too few samples to train a dictionary: {found} values of 1 byte to 1 MiB{under}, \
             {} in all (at least {MIN_SAMPLES} values and {} are needed; dozens of values \
             are better): {file}",
            human(sample_bytes),
            human(MIN_SAMPLE_BYTES)
        )));
    }
    let id = cache
        .train_dictionary_for(&prefix, &samples, a.size)
        .map_err(|e| match e {
            dfcache::Error::InvalidArgument(why) => {
                CliError::not_found(format!("cannot train a dictionary: {why}: {file}"))
            }
            e => CliError::op(e, &file),
        })?;
    drop(samples);
    cache.flush().map_err(|e| CliError::op(e, &file))?;
    let size = cache
        .dictionaries()
        .map_err(|e| CliError::op(e, &file))?
        .into_iter()
        .find(|d| d.id == id)
        .map_or(0, |d| d.size);
    let t = Trained {
        file: file.clone(),
        id,
        size,
        samples: count,
        sample_bytes,
        candidates,
        prefix: PrefixJson::new(&prefix),
    };
    let mut out = Out::new();
    if a.json {
        out.json(&t)?;
    } else {
        out.line(format!(
            "dictionary {id}: {}, trained on {count} of {candidates} values{under} ({}); \
             now the default for new values{under}",
            human(size),
            human(sample_bytes),
        ))?;
        if !g.quiet {
            out.line(format!(
                "values already stored keep their encoding until 'dfcache compact {file} --recompress'"
            ))?;
        }
    }
    out.flush()
}
