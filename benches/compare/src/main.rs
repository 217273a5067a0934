//! Side-by-side benchmark of dfcache against LMDB (heed), redb, SQLite
//! (rusqlite, bundled, WAL) and fjall: the same data, the same order, one
//! engine after the other, in one run. Prints one Markdown table plus the
//! targets, and writes them to BENCHMARKS.md.
//!
//! ```sh
//! cargo run --release --manifest-path benches/compare/Cargo.toml            # full run (~10 min)
//! cargo run --release --manifest-path benches/compare/Cargo.toml -- --smoke # seconds, writes nothing
//! cargo run --release --manifest-path benches/compare/Cargo.toml -- --help
//! ```

mod churn;
mod data;
mod engines;
mod prof;
mod report;
mod sys;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use churn::Variant;
use data::{Content, Data, Zipf};
use engines::{dir_bytes, Kind, Store};
use report::{Fmt, Results};
use sys::{median, percentile, Io};

const MIB: u64 = 1 << 20;

/// Every size and switch of a run.
#[derive(Clone, Debug)]
struct Cfg {
    n: usize,
    value: usize,
    gets: usize,
    reps: usize,
    commits: usize,
    commit_puts: usize,
    reopens: usize,
    big_n: usize,
    big_value: usize,
    large_n: usize,
    large_value: usize,
    large_gets: usize,
    small_n: usize,
    small_value: usize,
    small_gets: usize,
    z_n: usize,
    z_gets: usize,
    churn_nosync: bool,
    churn_ops: usize,
    churn_blocks: usize,
    churn_cap: u64,
    churn_hot: usize,
    churn_hot_reps: usize,
    zipf: f64,
    rss_bytes: u64,
    seq_bytes: u64,
    fsyncs: usize,
    copy_bytes: usize,
    seed: u64,
    dir: PathBuf,
    out: PathBuf,
    engines: Vec<Kind>,
    phases: Vec<String>,
    write: bool,
    smoke: bool,
    keep: bool,
    rss_child: Option<Kind>,
}

const PHASES: [&str; 7] = [
    "main",
    "reopen",
    "large",
    "small",
    "compressible",
    "churn",
    "rss",
];

impl Cfg {
    fn defaults() -> Cfg {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        Cfg {
            n: 100_000,
            value: 4096,
            gets: 1_000_000,
            reps: 3,
            commits: 2_000,
            commit_puts: 10,
            reopens: 5,
            big_n: 1_000_000,
            big_value: 1024,
            large_n: 10_000,
            large_value: 64 << 10,
            large_gets: 100_000,
            small_n: 100_000,
            small_value: 150,
            small_gets: 1_000_000,
            z_n: 25_000,
            z_gets: 100_000,
            churn_nosync: false,
            churn_ops: 1_000_000,
            churn_blocks: 250_000,
            churn_cap: 256 * MIB,
            churn_hot: 1_000,
            churn_hot_reps: 20,
            zipf: 0.99,
            rss_bytes: 1 << 30,
            seq_bytes: 256 * MIB,
            fsyncs: 500,
            copy_bytes: 256 << 20,
            seed: 42,
            dir: here.join("target/bench-data"),
            out: here.join("../../BENCHMARKS.md"),
            engines: Kind::ENGINES.to_vec(),
            phases: PHASES.iter().map(|s| s.to_string()).collect(),
            write: true,
            smoke: false,
            keep: false,
            rss_child: None,
        }
    }

    /// Tiny sizes: every workload and engine in seconds (CI's smoke run).
    fn smoke(&mut self) {
        self.n = 2_000;
        self.gets = 20_000;
        self.reps = 1;
        self.commits = 20;
        self.reopens = 2;
        self.big_n = 5_000;
        self.large_n = 100;
        self.large_gets = 500;
        self.small_n = 5_000;
        self.small_gets = 20_000;
        self.z_n = 1_000;
        self.z_gets = 5_000;
        self.churn_ops = 20_000;
        self.churn_blocks = 4_000;
        self.churn_cap = 8 * MIB;
        self.churn_hot = 50;
        self.churn_hot_reps = 10;
        self.rss_bytes = 16 * MIB;
        self.seq_bytes = 16 * MIB;
        self.fsyncs = 10;
        self.copy_bytes = 16 << 20;
        self.write = false;
        self.smoke = true;
    }

    fn has(&self, phase: &str) -> bool {
        self.phases.iter().any(|p| p == phase)
    }
}

const HELP: &str = "\
dfcache-compare: dfcache vs LMDB, redb, SQLite and fjall on the same data.

Flags (defaults in brackets):
  --smoke                 tiny sizes, all workloads and engines; never writes BENCHMARKS.md
  --no-write              print only, do not write BENCHMARKS.md
  --out PATH              where to write the tables [BENCHMARKS.md at the repository root]
  --dir PATH              where the engines' files go [benches/compare/target/bench-data]
  --engines a,b,..        dfcache,lmdb,redb,sqlite,fjall [all]
  --phases a,b,..         main,reopen,large,small,compressible,churn,rss [all]
  --keep                  keep the engines' files after each phase
  --seed N                [42]
  --n N                   entries of the main data set [100000]
  --value BYTES           value size of the main data set [4096]
  --gets N                random gets per measurement [1000000]
  --reps N                repetitions of cheap measurements (median) [3]
  --commits N             durable commits [2000]
  --commit-puts N         puts per durable commit [10]
  --reopens N             reopen repetitions (median) [5]
  --big-n N               entries of the reopen data set [1000000]
  --big-value BYTES       its value size [1024]
  --large-n N             entries of the large-value set [10000]
  --large-value BYTES     [65536]
  --large-gets N          [100000]
  --small-n N             entries of the small-value set [100000]
  --small-value BYTES     [150]
  --small-gets N          [1000000]
  --z-n N                 entries of the compressible set (main value size) [25000]
  --z-gets N              gets of the compressible set [100000]
  --churn-nosync          also run the churn with dfcache sync(false)
  --churn-ops N           Zipf reads through the capped cache [1000000]
  --churn-blocks N        distinct blocks of the source [250000]
  --churn-cap-mib N       the cache's cap [256]
  --zipf S                Zipf exponent [0.99]
  --rss-mib N             bytes bulk-loaded in the memory measurement [1024]
";

fn parse_args() -> Result<Cfg> {
    let mut c = Cfg::defaults();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--smoke") {
        c.smoke();
    }
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| -> Result<String> {
            it.next()
                .with_context(|| format!("{name} needs a value (see --help)"))
        };
        macro_rules! num {
            ($field:expr) => {{
                let s = val(&a)?;
                $field = s
                    .replace('_', "")
                    .parse()
                    .with_context(|| format!("{a}: not a number: {s:?}"))?;
            }};
        }
        match a.as_str() {
            "--help" | "-h" => {
                print!("{HELP}");
                std::process::exit(0);
            }
            "--smoke" => {}
            "--no-write" => c.write = false,
            "--keep" => c.keep = true,
            "--out" => c.out = PathBuf::from(val(&a)?),
            "--dir" => c.dir = PathBuf::from(val(&a)?),
            "--engines" => {
                c.engines = val(&a)?
                    .split(',')
                    .map(Kind::parse)
                    .collect::<Result<_>>()?
            }
            "--phases" => {
                let v = val(&a)?;
                c.phases = v.split(',').map(str::to_string).collect();
                if let Some(p) = c.phases.iter().find(|p| !PHASES.contains(&p.as_str())) {
                    bail!("unknown phase {p:?}; phases: {}", PHASES.join(","));
                }
            }
            "--rss-child" => c.rss_child = Some(Kind::parse(&val(&a)?)?),
            "--seed" => num!(c.seed),
            "--n" => num!(c.n),
            "--value" => num!(c.value),
            "--gets" => num!(c.gets),
            "--reps" => num!(c.reps),
            "--commits" => num!(c.commits),
            "--commit-puts" => num!(c.commit_puts),
            "--reopens" => num!(c.reopens),
            "--big-n" => num!(c.big_n),
            "--big-value" => num!(c.big_value),
            "--large-n" => num!(c.large_n),
            "--large-value" => num!(c.large_value),
            "--large-gets" => num!(c.large_gets),
            "--small-n" => num!(c.small_n),
            "--small-value" => num!(c.small_value),
            "--small-gets" => num!(c.small_gets),
            "--z-n" => num!(c.z_n),
            "--z-gets" => num!(c.z_gets),
            "--churn-nosync" => c.churn_nosync = true,
            "--churn-ops" => num!(c.churn_ops),
            "--churn-blocks" => num!(c.churn_blocks),
            "--churn-cap-mib" => {
                num!(c.churn_cap);
                c.churn_cap *= MIB;
            }
            "--zipf" => num!(c.zipf),
            "--rss-mib" => {
                num!(c.rss_bytes);
                c.rss_bytes *= MIB;
            }
            _ => bail!("unknown argument {a:?} (see --help)"),
        }
    }
    c.reps = c.reps.max(1);
    c.reopens = c.reopens.max(1);
    Ok(c)
}

/// Logs progress on stderr (the tables go to stdout).
macro_rules! log {
    ($($t:tt)*) => { eprintln!("[{:>7.1}s] {}", START.get_or_init(Instant::now).elapsed().as_secs_f64(), format!($($t)*)) };
}

static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn fresh_dir(cfg: &Cfg, name: &str) -> Result<PathBuf> {
    let d = cfg.dir.join(name);
    if d.exists() {
        std::fs::remove_dir_all(&d).with_context(|| format!("removing {}", d.display()))?;
    }
    Ok(d)
}

fn done_with(cfg: &Cfg, dir: &Path) -> Result<()> {
    if !cfg.keep {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(())
}

/// Runs of a get measurement are repeated (up to `--reps`) only while the
/// runs so far took less than this: medians where cheap.
const GET_BUDGET: Duration = Duration::from_secs(4);

/// Times up to `reps` runs of the gets in `seq` split over `threads`
/// threads (see [`GET_BUDGET`]); returns the median ops/s.
#[allow(clippy::too_many_arguments)]
fn time_gets(
    section: &str,
    engine: Kind,
    s: &dyn Store,
    d: &Data,
    seq: &[u32],
    threads: usize,
    one_txn: bool,
    reps: usize,
) -> Result<f64> {
    let _p = prof::section(section, engine.name());
    let mut rates = Vec::new();
    let start = Instant::now();
    for _ in 0..reps {
        if !rates.is_empty() && start.elapsed() > GET_BUDGET {
            break;
        }
        let t = Instant::now();
        if threads == 1 {
            s.gets(d, seq, one_txn)?;
        } else {
            let per = seq.len().div_ceil(threads);
            std::thread::scope(|sc| -> Result<()> {
                let hs: Vec<_> = seq
                    .chunks(per)
                    .map(|part| sc.spawn(move || s.gets(d, part, one_txn)))
                    .collect();
                for h in hs {
                    h.join().expect("get thread panicked")?;
                }
                Ok(())
            })?;
        }
        rates.push(seq.len() as f64 / secs(t.elapsed()));
    }
    Ok(median(rates))
}

/// Opens the store and does one get, `reps` times; the median in ms. The
/// close before each open is not timed.
fn time_reopen(kind: Kind, dir: &Path, d: &Data, i: u32, reps: usize) -> Result<f64> {
    let mut ms = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        let s = kind.open(dir)?;
        s.gets(d, &[i], false)?;
        ms.push(secs(t.elapsed()) * 1e3);
        drop(s);
    }
    Ok(median(ms))
}

/// Loads a fresh store; returns it, the load time, and the file size after
/// a close (the size at rest).
fn load_fresh(
    section: &str,
    kind: Kind,
    dir: &Path,
    d: &Data,
    order: &[u32],
) -> Result<(Box<dyn Store>, Duration, u64)> {
    let s = kind.create(dir)?;
    let p = prof::section(section, kind.name());
    let t = Instant::now();
    s.load(d, order)
        .with_context(|| format!("{}: bulk load", kind.name()))?;
    let took = t.elapsed();
    drop(p);
    drop(s);
    let bytes = dir_bytes(dir)?;
    Ok((kind.open(dir)?, took, bytes))
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let cfg = parse_args()?;
    START.get_or_init(Instant::now);
    if let Some(kind) = cfg.rss_child {
        return rss_child(&cfg, kind);
    }
    std::fs::create_dir_all(&cfg.dir).with_context(|| format!("creating {}", cfg.dir.display()))?;
    let t_all = Instant::now();
    let mut r = Results::default();
    log!("machine limits");
    let lim = sys::limits(&cfg.dir, cfg.seq_bytes, cfg.fsyncs, cfg.copy_bytes)?;
    let all: Vec<Kind> = cfg.engines.clone();
    let with_map = |v: &[Kind]| -> Vec<Kind> {
        let mut v = v.to_vec();
        v.push(Kind::HashMap);
        v
    };

    if cfg.has("main") {
        phase_main(&cfg, &mut r, &with_map(&all))?;
    }
    if cfg.has("reopen") {
        phase_reopen(&cfg, &mut r, &all)?;
    }
    if cfg.has("large") {
        phase_large(&cfg, &mut r, &with_map(&all))?;
    }
    if cfg.has("small") {
        phase_small(&cfg, &mut r, &with_map(&all))?;
    }
    if cfg.has("compressible") {
        phase_compressible(&cfg, &mut r, &all)?;
    }
    if cfg.has("churn") {
        phase_churn(&cfg, &mut r, &all)?;
    }
    if cfg.has("rss") {
        phase_rss(&cfg, &mut r, &all)?;
    }
    let total = t_all.elapsed();
    log!("done in {:.0} s", secs(total));

    let mut cols: Vec<&str> = all.iter().map(|k| k.name()).collect();
    cols.push(Kind::HashMap.name());
    let table = r.table(&cols);
    let ts = report::targets(&r);
    let ttable = report::target_table(&ts);
    let limits = format!(
        "| physical limit (same run, same filesystem) | value |\n|---|---:|\n\
         | sequential write of {} MiB in 1 MiB writes + fdatasync | {} MB/s |\n\
         | 4 KiB pwrite + fdatasync, median of {} | {:.3} ms |\n\
         | 4 KiB pwrite + fdatasync, p99 | {:.3} ms |\n\
         | 4 KiB append + fdatasync, median | {:.3} ms |\n\
         | memcpy ({} MiB buffers) | {:.1} GB/s |\n",
        lim.seq_bytes / MIB,
        report::fmt(lim.seq_write_mbs, Fmt::Int),
        lim.fsyncs,
        lim.fsync_p50_ms,
        lim.fsync_p99_ms,
        lim.append_p50_ms,
        cfg.copy_bytes >> 20,
        lim.memcpy_gbs
    );
    let command = command_line();
    println!("\n## Results\n\n{table}\n## Targets (dfcache against the others in this run)\n\n{ttable}\n{limits}");
    println!("Command: `{command}` (total {:.0} s)", secs(total));

    if cfg.write && !cfg.smoke {
        let mut facts = String::from("| fact | value |\n|---|---|\n");
        for (k, v) in sys::facts(&cfg.dir) {
            facts.push_str(&format!("| {k} | {v} |\n"));
        }
        let gen = format!(
            "## Machine\n\n{facts}\n## Command\n\n```sh\n{command}\n```\n\n\
             Total time of the run: {:.0} s. Sizes: {}.\n\n\
             ## Results\n\n{table}\n\
             ## Targets\n\nRatios are dfcache's number over the named engine's in the same run.\n\n{ttable}\n\
             ## Physical limits\n\n{limits}\n{}",
            secs(total),
            sizes(&cfg),
            report::METHOD,
        );
        report::write_benchmarks_md(&cfg.out, &gen, PREAMBLE)?;
        log!("wrote {}", cfg.out.display());
    }
    Ok(())
}

/// The text BENCHMARKS.md starts with when it is first written.
const PREAMBLE: &str = "# Benchmarks\n\nWritten by `benches/compare` (see its --help).\n";

fn sizes(c: &Cfg) -> String {
    format!(
        "main set {} × {} B, {} gets (up to {} runs, median), {} commits × {} puts, \
         reopen set {} × {} B, large {} × {} B with {} gets, small {} × {} B with {} gets, \
         compressible {} × {} B with {} gets, \
         churn {} reads over {} blocks under {} MiB (hot phase {} × {}), memory: {} MiB load, seed {}",
        c.n,
        c.value,
        c.gets,
        c.reps,
        c.commits,
        c.commit_puts,
        c.big_n,
        c.big_value,
        c.large_n,
        c.large_value,
        c.large_gets,
        c.small_n,
        c.small_value,
        c.small_gets,
        c.z_n,
        c.value,
        c.z_gets,
        c.churn_ops,
        c.churn_blocks,
        c.churn_cap / MIB,
        c.churn_hot,
        c.churn_hot_reps,
        c.rss_bytes / MIB,
        c.seed
    )
}

fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut s = String::from("cargo run --release --manifest-path benches/compare/Cargo.toml");
    if !args.is_empty() {
        s.push_str(" -- ");
        s.push_str(&args.join(" "));
    }
    s
}

fn kib(b: usize) -> String {
    if b >= 1024 && b.is_multiple_of(1024) {
        format!("{} KiB", b / 1024)
    } else {
        format!("{b} B")
    }
}

fn count(n: usize) -> String {
    report::fmt(n as f64, Fmt::Int)
}

/// Workloads 1, 2, 3, 4 (small file) and 5 on the main data set.
fn phase_main(cfg: &Cfg, r: &mut Results, kinds: &[Kind]) -> Result<()> {
    let d = Data::new(cfg.seed, cfg.n, cfg.value, Content::Random);
    let order = data::shuffled(cfg.n, cfg.seed);
    let seq = data::uniform(cfg.gets, cfg.n, cfg.seed);
    let v = kib(cfg.value);
    r.row(
        "load4k_mbs",
        format!(
            "1. bulk load {} × {v}, random order, 1 durable commit",
            count(cfg.n)
        ),
        "MB/s",
        Fmt::Int,
    );
    r.row(
        "size4k",
        format!("1. file size / payload ({v} values)"),
        "ratio",
        Fmt::Dec3,
    );
    r.row(
        "get4k_1t",
        format!("2. random get {v}, 1 thread (read txn per get)"),
        "ops/s",
        Fmt::Int,
    );
    r.row(
        "get4k_1t_txn",
        format!("2. random get {v}, 1 thread, one read txn for all gets"),
        "ops/s",
        Fmt::Int,
    );
    r.row(
        "get4k_2t",
        format!("2. random get {v}, 2 threads (read txn per get)"),
        "ops/s",
        Fmt::Int,
    );
    r.row(
        "commit_rate",
        format!("3. durable commits of {} × {v} puts", cfg.commit_puts),
        "commits/s",
        Fmt::Int,
    );
    r.row(
        "commit_p50",
        "3. durable commit latency p50",
        "ms",
        Fmt::Dec3,
    );
    r.row(
        "commit_p99",
        "3. durable commit latency p99",
        "ms",
        Fmt::Dec3,
    );
    r.row(
        "commit_max",
        "3. durable commit latency max (the first commit after the reads above)",
        "ms",
        Fmt::Dec3,
    );
    r.row(
        "commit_disk_p50",
        "3. (the disk right before: 4 KiB pwrite + fdatasync p50)",
        "ms",
        Fmt::Dec3,
    );
    r.row(
        "reopen_small",
        format!("4. reopen + 1 get, {} × {v} entries (warm)", count(cfg.n)),
        "ms",
        Fmt::Dec3,
    );
    r.row(
        "scan_mbs",
        "5. full scan in key order, every value checked",
        "MB/s",
        Fmt::Int,
    );
    let probe = data::uniform(1, cfg.n, cfg.seed ^ 77)[0];
    for &k in kinds {
        let col = k.name();
        let dir = fresh_dir(cfg, &format!("main-{}", col.to_lowercase()))?;
        log!("main: {col}: bulk load");
        let s = if k == Kind::HashMap {
            let s = k.create(&dir)?;
            s.load(&d, &order)?;
            s
        } else {
            let (s, took, bytes) = load_fresh("load", k, &dir, &d, &order)?;
            r.set("load4k_mbs", col, d.payload() as f64 / secs(took) / 1e6);
            r.set("size4k", col, bytes as f64 / d.payload() as f64);
            drop(s);
            log!("main: {col}: reopen");
            r.set(
                "reopen_small",
                col,
                time_reopen(k, &dir, &d, probe, cfg.reopens)?,
            );
            k.open(&dir)?
        };
        log!("main: {col}: gets");
        r.set(
            "get4k_1t",
            col,
            time_gets("gets1", k, &*s, &d, &seq, 1, false, cfg.reps)?,
        );
        if k.has_read_txn() {
            r.set(
                "get4k_1t_txn",
                col,
                time_gets("gets1-txn", k, &*s, &d, &seq, 1, true, 1)?,
            );
        }
        r.set(
            "get4k_2t",
            col,
            time_gets("gets2", k, &*s, &d, &seq, 2, false, 1)?,
        );
        if k != Kind::HashMap {
            log!("main: {col}: scan");
            let mut rates = Vec::new();
            let p = prof::section("scan", col);
            for _ in 0..cfg.reps {
                let t = Instant::now();
                let seen = s.scan(&d)?;
                if seen != cfg.n as u64 {
                    bail!("{col}: scan saw {seen} entries, expected {}", cfg.n);
                }
                rates.push(d.payload() as f64 / secs(t.elapsed()) / 1e6);
            }
            drop(p);
            r.set("scan_mbs", col, median(rates));
            log!("main: {col}: durable commits");
            let probe = sys::fsync_probe(&cfg.dir, cfg.fsyncs.min(100))?;
            r.set("commit_disk_p50", col, probe.0);
            let mut lat = Vec::with_capacity(cfg.commits);
            let p = prof::section("commits", col);
            let t = Instant::now();
            let mut next = cfg.n as u64;
            for _ in 0..cfg.commits {
                let idx: Vec<u64> = (next..next + cfg.commit_puts as u64).collect();
                next += cfg.commit_puts as u64;
                let c = Instant::now();
                s.commit(&d, &idx)?;
                lat.push(secs(c.elapsed()) * 1e3);
            }
            r.set("commit_rate", col, cfg.commits as f64 / secs(t.elapsed()));
            drop(p);
            lat.sort_by(f64::total_cmp);
            r.set("commit_p50", col, percentile(&lat, 50.0));
            r.set("commit_p99", col, percentile(&lat, 99.0));
            r.set("commit_max", col, lat.last().copied().unwrap_or(f64::NAN));
        }
        drop(s);
        done_with(cfg, &dir)?;
    }
    Ok(())
}

/// Workload 4 on a large file: reopen + one get.
fn phase_reopen(cfg: &Cfg, r: &mut Results, kinds: &[Kind]) -> Result<()> {
    let d = Data::new(cfg.seed ^ 1, cfg.big_n, cfg.big_value, Content::Random);
    let order = data::shuffled(cfg.big_n, cfg.seed ^ 1);
    let v = kib(cfg.big_value);
    r.row(
        "reopen_large",
        format!(
            "4. reopen + 1 get, {} × {v} entries (warm)",
            count(cfg.big_n)
        ),
        "ms",
        Fmt::Dec3,
    );
    r.row(
        "load1k_mbs",
        format!(
            "4. (bulk load of that file: {} × {v}, 1 durable commit)",
            count(cfg.big_n)
        ),
        "MB/s",
        Fmt::Int,
    );
    let probe = data::uniform(1, cfg.big_n, cfg.seed ^ 78)[0];
    for &k in kinds {
        let col = k.name();
        let dir = fresh_dir(cfg, &format!("reopen-{}", col.to_lowercase()))?;
        log!("reopen: {col}: bulk load");
        let (s, took, _) = load_fresh("load-reopen", k, &dir, &d, &order)?;
        r.set("load1k_mbs", col, d.payload() as f64 / secs(took) / 1e6);
        drop(s);
        log!("reopen: {col}: reopen");
        r.set(
            "reopen_large",
            col,
            time_reopen(k, &dir, &d, probe, cfg.reopens)?,
        );
        done_with(cfg, &dir)?;
    }
    Ok(())
}

/// Workload 6: large values.
fn phase_large(cfg: &Cfg, r: &mut Results, kinds: &[Kind]) -> Result<()> {
    let d = Data::new(cfg.seed ^ 2, cfg.large_n, cfg.large_value, Content::Random);
    let order = data::shuffled(cfg.large_n, cfg.seed ^ 2);
    let seq = data::uniform(cfg.large_gets, cfg.large_n, cfg.seed ^ 2);
    let v = kib(cfg.large_value);
    r.row(
        "load64k_mbs",
        format!(
            "6. bulk load {} × {v}, 1 durable commit",
            count(cfg.large_n)
        ),
        "MB/s",
        Fmt::Int,
    );
    r.row(
        "get64k_mbs",
        format!("6. random get {v}, 1 thread"),
        "MB/s",
        Fmt::Int,
    );
    for &k in kinds {
        let col = k.name();
        let dir = fresh_dir(cfg, &format!("large-{}", col.to_lowercase()))?;
        log!("large: {col}");
        let s = if k == Kind::HashMap {
            let s = k.create(&dir)?;
            s.load(&d, &order)?;
            s
        } else {
            let (s, took, _) = load_fresh("load-large", k, &dir, &d, &order)?;
            r.set("load64k_mbs", col, d.payload() as f64 / secs(took) / 1e6);
            s
        };
        let ops = time_gets("gets-large", k, &*s, &d, &seq, 1, false, cfg.reps)?;
        r.set("get64k_mbs", col, ops * cfg.large_value as f64 / 1e6);
        drop(s);
        done_with(cfg, &dir)?;
    }
    Ok(())
}

/// Workload 8: workloads 1 and 2 with small values (redb's benchmark shape).
fn phase_small(cfg: &Cfg, r: &mut Results, kinds: &[Kind]) -> Result<()> {
    let d = Data::new(cfg.seed ^ 3, cfg.small_n, cfg.small_value, Content::Random);
    let order = data::shuffled(cfg.small_n, cfg.seed ^ 3);
    let seq = data::uniform(cfg.small_gets, cfg.small_n, cfg.seed ^ 3);
    let v = kib(cfg.small_value);
    r.row(
        "load150_ops",
        format!(
            "8. bulk load {} × {v}, random order, 1 durable commit",
            count(cfg.small_n)
        ),
        "entries/s",
        Fmt::Int,
    );
    r.row("load150_mbs", "8. same, payload rate", "MB/s", Fmt::Int);
    r.row(
        "size150",
        format!("8. file size / payload ({v} values)"),
        "ratio",
        Fmt::Dec3,
    );
    r.row(
        "get150_1t",
        format!("8. random get {v}, 1 thread"),
        "ops/s",
        Fmt::Int,
    );
    r.row(
        "get150_2t",
        format!("8. random get {v}, 2 threads"),
        "ops/s",
        Fmt::Int,
    );
    for &k in kinds {
        let col = k.name();
        let dir = fresh_dir(cfg, &format!("small-{}", col.to_lowercase()))?;
        log!("small: {col}");
        let s = if k == Kind::HashMap {
            let s = k.create(&dir)?;
            s.load(&d, &order)?;
            s
        } else {
            let (s, took, bytes) = load_fresh("load-small", k, &dir, &d, &order)?;
            r.set("load150_ops", col, cfg.small_n as f64 / secs(took));
            r.set("load150_mbs", col, d.payload() as f64 / secs(took) / 1e6);
            r.set("size150", col, bytes as f64 / d.payload() as f64);
            s
        };
        r.set(
            "get150_1t",
            col,
            time_gets("gets-small", k, &*s, &d, &seq, 1, false, cfg.reps)?,
        );
        r.set(
            "get150_2t",
            col,
            time_gets("gets2-small", k, &*s, &d, &seq, 2, false, 1)?,
        );
        drop(s);
        done_with(cfg, &dir)?;
    }
    Ok(())
}

/// Compressible values: the one row where compression may help.
fn phase_compressible(cfg: &Cfg, r: &mut Results, kinds: &[Kind]) -> Result<()> {
    let d = Data::new(cfg.seed ^ 4, cfg.z_n, cfg.value, Content::Compressible);
    let order = data::shuffled(cfg.z_n, cfg.seed ^ 4);
    let seq = data::uniform(cfg.z_gets, cfg.z_n, cfg.seed ^ 4);
    let v = kib(cfg.value);
    r.row(
        "loadz_mbs",
        format!(
            "compressible {v} values (~3x with zstd): bulk load {}",
            count(cfg.z_n)
        ),
        "MB/s",
        Fmt::Int,
    );
    r.row(
        "sizez",
        "compressible: file size / payload",
        "ratio",
        Fmt::Dec3,
    );
    r.row(
        "getz_1t",
        format!("compressible: {} random gets, 1 thread", count(cfg.z_gets)),
        "ops/s",
        Fmt::Int,
    );
    for &k in kinds {
        let col = k.name();
        let dir = fresh_dir(cfg, &format!("z-{}", col.to_lowercase()))?;
        log!("compressible: {col}");
        let (s, took, bytes) = load_fresh("load-z", k, &dir, &d, &order)?;
        r.set("loadz_mbs", col, d.payload() as f64 / secs(took) / 1e6);
        r.set("sizez", col, bytes as f64 / d.payload() as f64);
        r.set(
            "getz_1t",
            col,
            time_gets("gets-z", k, &*s, &d, &seq, 1, false, cfg.reps)?,
        );
        drop(s);
        done_with(cfg, &dir)?;
    }
    Ok(())
}

/// Workload 7: cache churn under a cap.
fn phase_churn(cfg: &Cfg, r: &mut Results, kinds: &[Kind]) -> Result<()> {
    let d = Arc::new(Data::new(
        cfg.seed ^ 5,
        cfg.churn_blocks,
        cfg.value,
        Content::Random,
    ));
    let z = Zipf::new(cfg.churn_blocks, cfg.zipf, cfg.seed ^ 5);
    let seq = z.sample(cfg.churn_ops, cfg.seed ^ 5);
    let hot: Vec<u32> = (0..cfg.churn_hot.min(cfg.churn_blocks))
        .map(|i| z.block_of_rank(i))
        .collect();
    let cap = cfg.churn_cap;
    r.row(
        "churn_ops",
        format!(
            "7. churn: {} Zipf({}) reads of {} distinct {} blocks through a {} MiB LRU",
            count(cfg.churn_ops),
            cfg.zipf,
            count(cfg.churn_blocks),
            kib(cfg.value),
            cap / MIB
        ),
        "ops/s",
        Fmt::Int,
    );
    r.row("churn_hit", "7. churn: hit ratio", "", Fmt::Pct);
    r.row(
        "churn_held",
        "7. churn: blocks held at the end",
        "blocks",
        Fmt::Int,
    );
    r.row(
        "churn_hot_ops",
        format!(
            "7. churn, hit-only phase: {} × {} hot blocks",
            cfg.churn_hot_reps,
            hot.len()
        ),
        "ops/s",
        Fmt::Int,
    );
    r.row(
        "churn_hot_wbytes",
        "7. hit-only phase: write_bytes (/proc/self/io)",
        "bytes",
        Fmt::Int,
    );
    r.row(
        "churn_hot_wchar",
        "7. hit-only phase: bytes passed to write syscalls (wchar)",
        "bytes",
        Fmt::Int,
    );
    r.row(
        "churn_file_mib",
        "7. churn: files at the end",
        "MiB",
        Fmt::Dec2,
    );
    if cfg.churn_nosync {
        r.row(
            "churn_nosync_ops",
            "7. churn with dfcache `sync(false)`",
            "ops/s",
            Fmt::Int,
        );
        r.row(
            "churn_nosync_hit",
            "7. churn with dfcache `sync(false)`: hit ratio",
            "",
            Fmt::Pct,
        );
    }
    let roomy = churn::roomy_cap(cap);
    let mut variants: Vec<Variant> = kinds.iter().map(|&k| Variant::Default(k)).collect();
    if kinds.contains(&Kind::Dfcache) {
        r.row(
            "churn_roomy_hit",
            format!(
                "7. churn, dfcache's file capped at {:.0} MiB instead: hit ratio",
                roomy as f64 / MIB as f64
            ),
            "",
            Fmt::Pct,
        );
        r.row(
            "churn_roomy_held",
            "7. same: blocks held at the end",
            "blocks",
            Fmt::Int,
        );
        r.row(
            "churn_roomy_mib",
            "7. same: file at the end",
            "MiB",
            Fmt::Dec2,
        );
        variants.insert(1, Variant::DfcacheRoomy);
    }
    if cfg.churn_nosync && kinds.contains(&Kind::Dfcache) {
        variants.insert(1, Variant::DfcacheNoSync);
    }
    for v in variants {
        let name = v.name();
        let col = match v {
            Variant::Default(k) => k.name(),
            Variant::DfcacheNoSync | Variant::DfcacheRoomy => Kind::Dfcache.name(),
        };
        let dir = fresh_dir(
            cfg,
            &format!("churn-{}", name.replace(['(', ')', ' '], "").to_lowercase()),
        )?;
        log!("churn: {name}");
        let mut c = v.build(&dir, d.clone(), cap)?;
        let p = prof::section("churn", name);
        let t = Instant::now();
        let mut hits = 0u64;
        for &i in &seq {
            hits += c.read(i as u64)? as u64;
        }
        let ops = seq.len() as f64 / secs(t.elapsed());
        drop(p);
        let hit = hits as f64 / seq.len() as f64;
        if v == Variant::DfcacheNoSync {
            r.set("churn_nosync_ops", col, ops);
            r.set("churn_nosync_hit", col, hit);
        } else if v == Variant::DfcacheRoomy {
            r.set("churn_roomy_hit", col, hit);
            r.set("churn_roomy_held", col, c.held()? as f64);
            drop(c);
            r.set("churn_roomy_mib", col, dir_bytes(&dir)? as f64 / MIB as f64);
        } else {
            r.set("churn_held", col, c.held()? as f64);
            r.set("churn_ops", col, ops);
            r.set("churn_hit", col, hit);
            // Hit-only phase: make the hot blocks resident, then read only
            // them and watch the process's writes.
            for &i in &hot {
                c.read(i as u64)?;
            }
            let io = Io::now();
            let t = Instant::now();
            let mut misses = 0u64;
            for _ in 0..cfg.churn_hot_reps {
                for &i in &hot {
                    misses += (!c.read(i as u64)?) as u64;
                }
            }
            let hot_ops = (cfg.churn_hot_reps * hot.len()) as f64 / secs(t.elapsed());
            let w = Io::since(io);
            r.set("churn_hot_ops", col, hot_ops);
            r.set("churn_hot_wbytes", col, w.write_bytes as f64);
            r.set("churn_hot_wchar", col, w.wchar as f64);
            if misses > 0 {
                r.note("churn_hot_ops", col, format!("({misses} misses)"));
            }
            drop(c);
            r.set("churn_file_mib", col, dir_bytes(&dir)? as f64 / MIB as f64);
        }
        done_with(cfg, &dir)?;
    }
    Ok(())
}

/// The memory measurement: each engine bulk-loads `rss_bytes` in a child
/// process of its own, which reports its peak resident memory.
fn phase_rss(cfg: &Cfg, r: &mut Results, kinds: &[Kind]) -> Result<()> {
    let mib = cfg.rss_bytes / MIB;
    r.row(
        "rss_hwm_mib",
        format!(
            "memory: peak RSS (VmHWM) bulk-loading {mib} MiB of {} values, 1 commit",
            kib(cfg.value)
        ),
        "MiB",
        Fmt::Int,
    );
    r.row(
        "rss_anon_mib",
        "memory: peak anonymous RSS (sampled every 2 ms)",
        "MiB",
        Fmt::Int,
    );
    r.row(
        "rss_base_mib",
        "memory: anonymous RSS before the load",
        "MiB",
        Fmt::Int,
    );
    let exe = std::env::current_exe().context("finding this program's path")?;
    for &k in kinds {
        let col = k.name();
        let dir = fresh_dir(cfg, &format!("rss-{}", col.to_lowercase()))?;
        log!("memory: {col}");
        let out = Command::new(&exe)
            .arg("--rss-child")
            .arg(col)
            .arg("--dir")
            .arg(&dir)
            .arg("--rss-mib")
            .arg(mib.to_string())
            .arg("--value")
            .arg(cfg.value.to_string())
            .arg("--seed")
            .arg(cfg.seed.to_string())
            .output()
            .context("running the memory child")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "{col}: memory child failed: {}{}",
                stdout,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let line = stdout
            .lines()
            .find(|l| l.starts_with("RSS "))
            .with_context(|| format!("{col}: memory child printed no result: {stdout}"))?;
        let field = |name: &str| -> Result<f64> {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
                .with_context(|| format!("no {name} in {line:?}"))?
                .parse::<f64>()
                .with_context(|| format!("bad {name} in {line:?}"))
        };
        r.set("rss_hwm_mib", col, field("hwm_kib")? / 1024.0);
        r.set("rss_anon_mib", col, field("anon_peak_kib")? / 1024.0);
        r.set("rss_base_mib", col, field("anon_base_kib")? / 1024.0);
        done_with(cfg, &dir)?;
    }
    Ok(())
}

/// The memory child: bulk-loads `rss_bytes` into a fresh store in `dir` and
/// prints its peak resident memory.
fn rss_child(cfg: &Cfg, kind: Kind) -> Result<()> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let n = (cfg.rss_bytes / cfg.value as u64) as usize;
    let d = Data::new(cfg.seed ^ 6, 0, cfg.value, Content::Random);
    let order = data::shuffled(n, cfg.seed ^ 6);
    let base = sys::rss_kib().1;
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(base));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let (_, anon, _, shmem) = sys::rss_kib();
                peak.fetch_max(anon + shmem, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let s = kind.create(&cfg.dir)?;
    let t = Instant::now();
    s.load(&d, &order)?;
    let took = t.elapsed();
    let (_, anon, _, shmem) = sys::rss_kib();
    peak.fetch_max(anon + shmem, Ordering::Relaxed);
    drop(s);
    stop.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler panicked");
    let (hwm, _, _, _) = sys::rss_kib();
    println!(
        "RSS hwm_kib={hwm} anon_peak_kib={} anon_base_kib={base} secs={:.2}",
        peak.load(Ordering::Relaxed),
        secs(took)
    );
    Ok(())
}
