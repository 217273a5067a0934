//! Results, the Markdown tables, the targets and BENCHMARKS.md.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

/// How a metric's numbers are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fmt {
    /// Whole numbers with thousands separators (ops/s, MB/s).
    Int,
    /// Three decimals (ratios, milliseconds).
    Dec3,
    /// Two decimals.
    Dec2,
    /// A percentage.
    Pct,
}

/// One row of the main table.
#[derive(Clone, Debug)]
struct Row {
    id: &'static str,
    label: String,
    unit: &'static str,
    fmt: Fmt,
}

/// Every measurement of the run, by metric and column.
#[derive(Default)]
pub struct Results {
    rows: Vec<Row>,
    vals: HashMap<(&'static str, String), f64>,
    notes: HashMap<(&'static str, String), String>,
}

impl Results {
    /// Declares a row (rows print in declaration order).
    pub fn row(
        &mut self,
        id: &'static str,
        label: impl Into<String>,
        unit: &'static str,
        fmt: Fmt,
    ) {
        if !self.rows.iter().any(|r| r.id == id) {
            self.rows.push(Row {
                id,
                label: label.into(),
                unit,
                fmt,
            });
        }
    }

    /// Records `v` for metric `id` in column `col`.
    pub fn set(&mut self, id: &'static str, col: &str, v: f64) {
        self.vals.insert((id, col.to_string()), v);
    }

    /// Adds a footnote-like remark to a cell.
    pub fn note(&mut self, id: &'static str, col: &str, s: impl Into<String>) {
        self.notes.insert((id, col.to_string()), s.into());
    }

    /// The value of metric `id` in column `col`.
    pub fn get(&self, id: &'static str, col: &str) -> Option<f64> {
        self.vals.get(&(id, col.to_string())).copied()
    }

    /// The main table: one row per metric, one column per engine.
    pub fn table(&self, cols: &[&str]) -> String {
        let mut s = String::new();
        let _ = write!(s, "| workload | unit |");
        for c in cols {
            let _ = write!(s, " {c} |");
        }
        s.push('\n');
        let _ = write!(s, "|---|---|");
        for _ in cols {
            s.push_str("---:|");
        }
        s.push('\n');
        for r in &self.rows {
            let _ = write!(s, "| {} | {} |", r.label, r.unit);
            for c in cols {
                let cell = match self.get(r.id, c) {
                    Some(v) => fmt(v, r.fmt),
                    None => "–".into(),
                };
                match self.notes.get(&(r.id, c.to_string())) {
                    Some(n) => {
                        let _ = write!(s, " {cell} {n} |");
                    }
                    None => {
                        let _ = write!(s, " {cell} |");
                    }
                }
            }
            s.push('\n');
        }
        s
    }
}

/// Formats a number for the tables.
pub fn fmt(v: f64, f: Fmt) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    match f {
        Fmt::Int => {
            let n = v.round() as i64;
            let digits = n.unsigned_abs().to_string();
            let mut out = String::new();
            for (i, ch) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i).is_multiple_of(3) {
                    out.push(',');
                }
                out.push(ch);
            }
            if n < 0 {
                format!("-{out}")
            } else {
                out
            }
        }
        Fmt::Dec3 => format!("{v:.3}"),
        Fmt::Dec2 => format!("{v:.2}"),
        Fmt::Pct => format!("{:.1} %", v * 100.0),
    }
}

/// One target: what it asks, what was measured, whether it passed.
pub struct Target {
    /// What the target asks.
    pub what: String,
    /// The requirement, e.g. "≥ 1.5x".
    pub need: String,
    /// The measured ratio or value, formatted.
    pub got: String,
    /// Pass, miss, or not measured (`None`).
    pub pass: Option<bool>,
}

fn ratio(r: &Results, id: &'static str, a: &str, b: &str) -> Option<f64> {
    Some(r.get(id, a)? / r.get(id, b)?)
}

fn best_of(r: &Results, ids: &[&'static str], col: &str) -> Option<f64> {
    ids.iter()
        .filter_map(|id| r.get(id, col))
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
}

/// Evaluates the issue's targets against the results.
pub fn targets(r: &Results) -> Vec<Target> {
    let d = "dfcache";
    let mut t = Vec::new();
    let mut ratio_target = |what: &str, got: Option<f64>, need: f64, at_least: bool| {
        t.push(Target {
            what: what.to_string(),
            need: format!("{} {need}x", if at_least { "≥" } else { "≤" }),
            got: got.map_or("–".into(), |g| format!("{g:.2}x")),
            pass: got.map(|g| if at_least { g >= need } else { g <= need }),
        });
    };
    // Random gets: against LMDB's faster variant (one read txn per get, or
    // one for all gets).
    let lmdb_get = best_of(r, &["get4k_1t", "get4k_1t_txn"], "LMDB");
    ratio_target(
        "random get 4 KiB, 1 thread, vs LMDB (its faster variant)",
        r.get("get4k_1t", d).zip(lmdb_get).map(|(a, b)| a / b),
        1.5,
        true,
    );
    ratio_target(
        "random get 4 KiB, 1 thread, vs in-memory HashMap",
        ratio(r, "get4k_1t", d, "HashMap"),
        0.5,
        true,
    );
    ratio_target(
        "bulk load 4 KiB vs LMDB",
        ratio(r, "load4k_mbs", d, "LMDB"),
        2.0,
        true,
    );
    ratio_target(
        "bulk load 4 KiB vs fjall",
        ratio(r, "load4k_mbs", d, "fjall"),
        1.0,
        true,
    );
    ratio_target(
        "durable commits of 10 × 4 KiB vs redb",
        ratio(r, "commit_rate", d, "redb"),
        1.3,
        true,
    );
    t.push(Target {
        what: "file size / payload, 4 KiB values".into(),
        need: "≤ 1.05".into(),
        got: r.get("size4k", d).map_or("–".into(), |g| format!("{g:.3}")),
        pass: r.get("size4k", d).map(|g| g <= 1.05),
    });
    let mut abs = |what: &str, got: Option<f64>, need: f64, unit: &str, dec: usize| {
        t.push(Target {
            what: what.to_string(),
            need: format!("< {need} {unit}"),
            got: got.map_or("–".into(), |g| format!("{g:.dec$} {unit}")),
            pass: got.map(|g| g < need),
        });
    };
    abs(
        "durable commit p99 latency",
        r.get("commit_p99", d),
        10.0,
        "ms",
        2,
    );
    abs(
        "reopen + get, small file",
        r.get("reopen_small", d),
        1.0,
        "ms",
        3,
    );
    abs(
        "reopen + get, large file",
        r.get("reopen_large", d),
        1.0,
        "ms",
        3,
    );
    let mut ratio_target = |what: &str, got: Option<f64>, need: f64| {
        t.push(Target {
            what: what.to_string(),
            need: format!("≥ {need}x"),
            got: got.map_or("–".into(), |g| format!("{g:.2}x")),
            pass: got.map(|g| g >= need),
        });
    };
    ratio_target("full scan vs LMDB", ratio(r, "scan_mbs", d, "LMDB"), 1.0);
    ratio_target(
        "64 KiB gets vs LMDB",
        ratio(r, "get64k_mbs", d, "LMDB"),
        1.0,
    );
    // Churn: against the best hand-built LRU.
    let others = ["LMDB", "redb", "SQLite", "fjall"];
    let best = others
        .iter()
        .filter_map(|c| Some((*c, r.get("churn_ops", c)?)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    match best {
        Some((bc, bv)) => {
            ratio_target(
                &format!("churn ops/s vs the best hand-built LRU ({bc})"),
                r.get("churn_ops", d).map(|v| v / bv),
                3.0,
            );
            let (dh, bh) = (r.get("churn_hit", d), r.get("churn_hit", bc));
            t.push(Target {
                what: format!("churn hit ratio vs {bc}'s"),
                need: "≥".into(),
                got: match (dh, bh) {
                    (Some(a), Some(b)) => format!("{} vs {}", fmt(a, Fmt::Pct), fmt(b, Fmt::Pct)),
                    _ => "–".into(),
                },
                pass: dh.zip(bh).map(|(a, b)| a >= b),
            });
        }
        None => ratio_target("churn ops/s vs the best hand-built LRU", None, 3.0),
    }
    let wb = r.get("churn_hot_wbytes", d);
    let wc = r.get("churn_hot_wchar", d);
    t.push(Target {
        what: "churn: no disk write by a read (hit-only phase, /proc/self/io)".into(),
        need: "0 bytes".into(),
        got: match (wb, wc) {
            (Some(b), Some(c)) => format!(
                "write_bytes {} B, wchar {} B",
                fmt(b, Fmt::Int),
                fmt(c, Fmt::Int)
            ),
            _ => "–".into(),
        },
        pass: wb.zip(wc).map(|(b, c)| b == 0.0 && c == 0.0),
    });
    let anon = r.get("rss_anon_mib", d).zip(r.get("rss_base_mib", d));
    t.push(Target {
        what:
            "peak memory beyond the page cache while bulk-loading (anonymous RSS above the start)"
                .into(),
        need: "< 128 MiB".into(),
        got: anon.map_or("–".into(), |(a, b)| format!("{:.1} MiB", a - b)),
        pass: anon.map(|(a, b)| a - b < 128.0),
    });
    t
}

/// The targets as a Markdown table.
pub fn target_table(ts: &[Target]) -> String {
    let mut s = String::from("| target | needed | dfcache | result |\n|---|---|---|---|\n");
    for t in ts {
        let verdict = match t.pass {
            Some(true) => "pass",
            Some(false) => "**miss**",
            None => "not measured",
        };
        let _ = writeln!(s, "| {} | {} | {} | {} |", t.what, t.need, t.got, verdict);
    }
    s
}

/// Marks the generated part of BENCHMARKS.md; text outside stays as written.
pub const BEGIN: &str = "<!-- BEGIN GENERATED by benches/compare: do not edit by hand -->";
/// End of the generated part.
pub const END: &str = "<!-- END GENERATED -->";

/// Writes `generated` into `path` between the markers, keeping the rest.
pub fn write_benchmarks_md(path: &Path, generated: &str, preamble: &str) -> Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let block = format!("{BEGIN}\n{generated}\n{END}");
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(a), Some(b)) if b > a => {
            format!("{}{}{}", &old[..a], block, &old[b + END.len()..])
        }
        _ => format!("{preamble}\n{block}\n"),
    };
    std::fs::write(path, new).with_context(|| format!("writing {}", path.display()))
}

/// How the numbers are made and each engine's settings (part of the
/// generated block, so it changes with the code).
pub const METHOD: &str = r#"## How it is measured

- **One run, one engine after the other, same data.** Every phase creates a
  fresh directory per engine under `--dir` (default
  `benches/compare/target/bench-data/`, on the filesystem listed above),
  runs the engine, closes it and deletes the directory before the next
  engine starts. Nothing else is cleared between phases (the page cache
  stays warm: reads are served from memory, as a warm cache would be).
- **Keys** are 28 bytes, `DatasetId::block_key(index)` (GUID, revision,
  big-endian block index). **Values** are bytes from a seeded PRNG (wyrand):
  incompressible, so compression cannot flatter anyone; one row uses
  compressible values (words from a 32-word vocabulary, about 3x with zstd;
  25,000 entries).
  The same seed gives every engine the same bytes in the same order.
- **Every get checks the value's length and CRC-32** against a table made
  before the run, for every engine (the HashMap baseline too); scans check
  every value they return.
- **Bulk loads** put the entries in a random key order in one write
  transaction and make it durable once (dfcache: `put` in a loop, then one
  `flush()`, which is what `put_many` does). The time includes making the
  values (about 0.3 µs per 4 KiB, the same for all). File size / payload is
  measured after closing the engine: all files in its directory over the
  values' bytes.
- **Gets** are 1,000,000 uniform random gets of existing keys (a fixed
  sequence), one read transaction per get unless the row says "one read
  txn"; with 2 threads the sequence is split in halves. The 1-thread
  measurements are repeated up to `--reps` (3) times while the runs so far
  took under 4 s, and the median is reported ("medians where cheap").
  Loads, commits, churn, the one-read-txn and 2-thread gets and the memory
  run are single runs; scans are the median of 3; reopen the median of 5.
- **Durable commits** add 10 new 4 KiB entries per commit to the 100,000-entry
  store, 2,000 times; latency per commit is timed. The disk's sync latency on
  this virtual machine drifts by 10x over minutes, so a 4 KiB pwrite +
  fdatasync probe runs right before each engine's commits and is reported
  beside them. The commits run right after the gets and scans on the same
  store: dfcache applies the LRU uses recorded by those reads at its next
  commit, so its first commit carries that work (the "max" row).
- **Reopen** = open the store and do one (checked) get, warm page cache; the
  close before it is not timed.
- **Churn**: Zipf(0.99) reads over 250,000 blocks; the rank → block map is a
  random permutation. The source is zero-latency (it generates the block).
  dfcache: `CachedDataset` over a `DatasetFileCache` created with **default
  options** (fsync on commit, zstd level 3) and the cap as its maximum file
  size (metadata included). Others: an LRU built the way a user would: a
  data table, a last-use table (key → tick) and an LRU table (tick → key);
  each read is one write transaction that reads the value and on a hit moves
  the key to a new tick (a write per hit), on a miss reads the source,
  evicts the oldest entries while the payload would exceed the cap, and
  inserts. Their cap counts payload only (their files are not capped), and
  they use their non-durable modes (no fsync per read): LMDB `NO_SYNC`, redb
  `Durability::None`, SQLite `synchronous=OFF`, fjall's default (journal to
  OS buffers, no persist). "Blocks held" counts what each cache holds at
  the end. dfcache runs a second time with its file capped a sixteenth
  higher, to show its LRU given room for as much payload as the others
  (its file still smaller than theirs). Hit-only phase: the 1,000 hottest blocks are
  read once, then 20 more times each, and `/proc/self/io` is compared before
  and after (`write_bytes`: pages this process dirtied, memory-mapped writes
  included; `wchar`: bytes passed to write syscalls).
- **Memory**: each engine bulk-loads 1 GiB of 4 KiB values (one commit) in a
  child process of its own; it reports VmHWM (peak RSS, page-cache pages
  mapped into the process included) and the peak of RssAnon + RssShmem
  sampled every 2 ms (memory beyond the page cache).
- **HashMap**: `std::collections::HashMap<[u8; 28], Vec<u8>>` with the
  default hasher, read under one `RwLock` read guard per measurement, doing
  the same CRC check: what a get costs with no storage engine at all.

### Engine settings and APIs

| engine | version | settings | API used |
|---|---|---|---|
| dfcache | this repository | `OpenOptions::new()` defaults: fsync on flush, zstd level 3 when it saves 10 %, no cap except in the churn | `put`, `flush`, `get` (zero-copy `Value`), `scan` (leaves walked in batches, values not copied, not counted as uses) for the scan; `CachedDataset` for the churn |
| LMDB | heed 0.22 (LMDB mdb.master) | default flags (fsync on commit), map size 64 GiB, one unnamed database; churn: `NO_SYNC` | one `RwTxn` per load/commit, `RoTxn` + zero-copy `get`, cursor `iter` for the scan |
| redb | 4 | defaults: `Durability::Immediate`, 1 GiB cache; churn: `Durability::None` | `insert` in one write txn, `begin_read` + `open_table` + `get` (an `AccessGuard`), `range(..)` for the scan; `pop_first` for LRU eviction |
| SQLite | rusqlite 0.41, bundled | `journal_mode=WAL`, `synchronous=FULL` (churn: `OFF`), `mmap_size` 16 GiB, `cache_size` 64 MiB; table `kv(id INTEGER PRIMARY KEY, k BLOB UNIQUE, v BLOB)` (2-10x faster here than a `WITHOUT ROWID` table keyed by `k` for values of 1 KiB and more) | `BEGIN IMMEDIATE` … `COMMIT` with cached prepared statements; `SELECT v FROM kv WHERE k = ?` read as a borrowed blob; one connection per reading thread |
| fjall | 3 | 1 GiB block cache, key-value separation (blob files for values ≥ 1 KiB, fjall's advice for large values), lz4 (default); durable = `PersistMode::SyncAll` | `insert` + `persist(SyncAll)` for loads, a `WriteBatch` with `durability(SyncAll)` per commit, `get`, `iter` |
"#;
