//! Corruption sweep: flip one byte of a cache file (every byte of a small
//! file's interesting parts plus a random sample; with
//! `DFCACHE_CORRUPT_FULL=1` every byte of the small file and 20,000
//! positions of the large one), then open it read-only and read-write, list
//! and get every key, and verify. Each result must be the correct value of
//! the committed state (or of the one before it, when the damage hit the
//! newest commit) or a typed error — never a wrong value, never a panic,
//! never a hang, never an allocation beyond 4x the file size + 1 MiB. Where
//! the spec promises detection (the commit record in use, every node page,
//! every checksummed value, chunk table and chunk — see
//! `common::format`), the flip must be detected: open or a read fails,
//! `verify()` reports a problem, or the file falls back to the previous
//! commit. In read-write mode a value failing its checksum is a miss
//! counted in `corrupt_drops`; in read-only mode it is `Error::Corrupt`.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{bytes, format, long, Rng};
use dfcache::fuzzing::sim::problems_of;
use dfcache::{CachedDataset, Dataset, DatasetFileCache, DatasetId, Error, Flushable, OpenOptions};

// ---- the largest single allocation, per thread ----

struct Counting;

thread_local! {
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn note(n: usize) {
    let _ = PEAK.try_with(|p| {
        if n > p.get() {
            p.set(n)
        }
    });
}

// SAFETY: forwards to the system allocator; only records sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note(l.size());
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        note(l.size());
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        note(n);
        unsafe { System.realloc(p, l, n) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

// ---- the file under test ----

/// Expected content: key -> value (`None`: a negative entry).
type State = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

struct Src;
impl Dataset for Src {
    fn id(&self) -> DatasetId {
        DatasetId::new(uuid::Uuid::from_u128(0xC0DE), 1)
    }
    fn read_block(&self, i: u64) -> dfcache::Result<Option<Vec<u8>>> {
        Ok(i.is_multiple_of(2).then(|| vec![i as u8; 100 + i as usize]))
    }
}

/// Builds a cache with two commits after the create; returns the state of
/// the newest commit and of the one before.
fn build(path: &Path, chunked: bool) -> (State, State) {
    let c = Arc::new(OpenOptions::new().create(path, 0).unwrap());
    let mut s = State::new();
    let put = |c: &DatasetFileCache, s: &mut State, k: String, v: Vec<u8>| {
        c.put(k.as_bytes(), &v).unwrap();
        s.insert(k.into_bytes(), Some(v));
    };
    for i in 0..24u64 {
        let n = match i % 4 {
            0 => 20 + i as usize,
            1 => 200 + 10 * i as usize,
            2 => 1000 + 300 * i as usize,
            _ => 5000 + 100 * i as usize,
        };
        put(&c, &mut s, format!("key-{i:02}"), bytes(n, i, i % 3 == 0));
    }
    // Enough small entries that the indexes have branch nodes.
    for i in 0..200u64 {
        let n = 10 + (i as usize * 7) % 110;
        put(
            &c,
            &mut s,
            format!("small-{i:03}"),
            bytes(n, 500 + i, i % 2 == 0),
        );
    }
    if chunked {
        put(
            &c,
            &mut s,
            "big".into(),
            bytes((1 << 20) + 70_000, 99, false),
        );
    }
    // Dataset blocks, one of them a negative entry.
    let ds = CachedDataset::new(Src, c.clone());
    for i in 0..3 {
        let v = ds.read_block(i).unwrap();
        s.insert(Src.id().block_key(i).to_vec(), v);
    }
    c.put(b"marker", b"commit A").unwrap();
    s.insert(b"marker".to_vec(), Some(b"commit A".to_vec()));
    c.flush().unwrap();
    let prev = s.clone();
    // A second, smaller commit: replace, remove, add.
    for i in [1u64, 2, 3, 6] {
        put(
            &c,
            &mut s,
            format!("key-{i:02}"),
            bytes(150 + 700 * i as usize, 1000 + i, false),
        );
    }
    for i in [4u64, 9] {
        c.remove(format!("key-{i:02}").as_bytes()).unwrap();
        s.remove(format!("key-{i:02}").as_bytes());
    }
    put(&c, &mut s, "marker".into(), b"commit B".to_vec());
    c.flush().unwrap();
    drop(ds);
    drop(c);
    (s, prev)
}

// ---- one flipped byte ----

#[derive(Default, Debug)]
struct Tally {
    cases: u64,
    open_refused: u64,
    fell_back: u64,
    read_errors: u64,
    verify_reported: u64,
    corrupt_drops: u64,
    undetected_unprotected: u64,
    max_alloc: usize,
}

/// Reads every key of `c` and checks it against `want`. Returns whether
/// anything failed (an error or a dropped value).
fn read_check(c: &DatasetFileCache, want: &State, ro: bool, ctx: &str) -> bool {
    let mut failed = false;
    match c.keys() {
        Ok(it) => {
            let mut listed = BTreeSet::new();
            for k in it {
                match k {
                    Ok(k) => {
                        listed.insert(k);
                    }
                    Err(e) => {
                        typed(&e, ctx);
                        failed = true;
                        break;
                    }
                }
            }
            if !failed {
                let expected: BTreeSet<Vec<u8>> = want.keys().cloned().collect();
                assert!(
                    listed == expected,
                    "{ctx}: keys() lists {} keys, the state has {}",
                    listed.len(),
                    expected.len()
                );
            }
        }
        Err(e) => {
            typed(&e, ctx);
            failed = true;
        }
    }
    let drops = |c: &DatasetFileCache| c.stats().map(|s| s.corrupt_drops).unwrap_or(0);
    let mut keys: BTreeSet<Vec<u8>> = want.keys().cloned().collect();
    keys.insert(b"key-nonexistent".to_vec());
    for k in keys {
        let before = drops(c);
        match c.get(&k) {
            Ok(Some(v)) => assert!(
                want.get(&k) == Some(&Some(v.to_vec())),
                "{ctx}: get({}) returned a wrong value of {} bytes",
                String::from_utf8_lossy(&k),
                v.len()
            ),
            Ok(None) => {
                let ok = matches!(want.get(&k), None | Some(None));
                if !ok {
                    // Only a read-write handle may drop a damaged value,
                    // and it must count it.
                    assert!(
                        !ro && drops(c) > before,
                        "{ctx}: get({}) is a miss, not an error or a counted drop (read-only {ro})",
                        String::from_utf8_lossy(&k)
                    );
                    failed = true;
                }
            }
            Err(e) => {
                typed(&e, ctx);
                failed = true;
            }
        }
    }
    failed
}

fn typed(e: &Error, ctx: &str) {
    assert!(
        matches!(e, Error::Corrupt { .. }),
        "{ctx}: a damaged file gives {e:?}, not Error::Corrupt"
    );
}

fn one_case(
    path: &Path,
    img: &[u8],
    pos: usize,
    mask: u8,
    states: (&State, &State),
    layout: &format::Layout,
    t: &mut Tally,
) {
    let mut bad = img.to_vec();
    bad[pos] ^= mask;
    std::fs::write(path, &bad).unwrap();
    let ctx = format!("byte {pos} ^ {mask:#04x}");
    let limit = 4 * img.len() + (1 << 20);
    PEAK.with(|p| p.set(0));
    let mut detected = false;
    // Read-only.
    match DatasetFileCache::open(path, true) {
        Err(e) => {
            assert!(
                matches!(
                    e,
                    Error::Corrupt { .. }
                        | Error::NotACache { .. }
                        | Error::UnsupportedVersion { .. }
                ),
                "{ctx}: open gives {e:?}"
            );
            t.open_refused += 1;
            detected = true;
        }
        Ok(c) => {
            let rep = c
                .verify()
                .unwrap_or_else(|e| panic!("{ctx}: verify fails: {e}"));
            let want = match rep.commit {
                3 => states.0,
                2 => {
                    t.fell_back += 1;
                    detected = true;
                    states.1
                }
                n => panic!("{ctx}: opened commit {n}"),
            };
            if read_check(&c, want, true, &ctx) {
                t.read_errors += 1;
                detected = true;
            }
            if !problems_of(&rep).is_empty() {
                t.verify_reported += 1;
                detected = true;
            }
        }
    }
    // Read-write: damaged values are dropped as counted misses.
    match DatasetFileCache::open(path, false) {
        Err(e) => assert!(
            matches!(
                e,
                Error::Corrupt { .. } | Error::NotACache { .. } | Error::UnsupportedVersion { .. }
            ),
            "{ctx}: read-write open gives {e:?}"
        ),
        Ok(c) => {
            let rep = c
                .verify()
                .unwrap_or_else(|e| panic!("{ctx}: verify fails: {e}"));
            let want = if rep.commit == 3 { states.0 } else { states.1 };
            read_check(&c, want, false, &ctx);
            t.corrupt_drops += c.stats().unwrap().corrupt_drops;
            drop(c);
        }
    }
    let peak = PEAK.with(|p| p.get());
    t.max_alloc = t.max_alloc.max(peak);
    assert!(
        peak <= limit,
        "{ctx}: one allocation of {peak} bytes for a file of {} bytes",
        img.len()
    );
    let p = pos as u64;
    let in_checks = layout
        .one_phase_checks
        .iter()
        .any(|&(o, l)| p >= o && p < o + l);
    if layout.protected(p) || in_checks {
        assert!(detected, "{ctx}: damage to a checked byte went undetected");
    } else if !detected {
        t.undetected_unprotected += 1;
    }
    t.cases += 1;
}

fn sweep(chunked: bool, sample: usize, seed: u64) {
    let dir = common::scratch();
    let path = dir.path().join("orig.dfc");
    let (last, prev) = build(&path, chunked);
    let img = std::fs::read(&path).unwrap();
    let layout = format::layout(&img).expect("the spec reader reads the undamaged file");
    assert_eq!(
        layout.entries,
        last.len(),
        "the spec reader sees every entry"
    );
    // Positions: every byte of the header page and both slots, every byte
    // of the record in use, and a random sample of the rest (or all).
    // The full sweep flips every byte of the small file and 20,000 sampled
    // positions of the large one.
    let full = long("DFCACHE_CORRUPT_FULL");
    let sample = if full { 20_000 } else { sample };
    let mut r = Rng(seed);
    let mut positions: Vec<usize> = if full && !chunked {
        (0..img.len()).collect()
    } else {
        let mut p: BTreeSet<usize> = (0..96)
            .chain(4096..4096 + 700)
            .chain(8192..8192 + 700)
            .collect();
        let (ro, rl) = layout.record;
        p.extend(ro as usize..(ro + rl) as usize);
        while p.len() < sample.min(img.len()) {
            p.insert(r.below(img.len() as u64) as usize);
        }
        p.into_iter().collect()
    };
    positions.sort_unstable();
    let scratch = dir.path().join("flip.dfc");
    let progress = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let (progress, done) = (progress.clone(), done.clone());
        std::thread::spawn(move || {
            let mut last = (u64::MAX, Instant::now());
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let p = progress.load(Ordering::Relaxed);
                if p != last.0 {
                    last = (p, Instant::now());
                } else if last.1.elapsed() > Duration::from_secs(60) {
                    eprintln!("corruption: seed {seed:#x}: hang at byte {p}");
                    std::process::abort();
                }
            }
        })
    };
    let start = Instant::now();
    let mut t = Tally::default();
    for pos in positions {
        progress.store(pos as u64, Ordering::Relaxed);
        let mask = 1 + r.below(255) as u8;
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            one_case(&scratch, &img, pos, mask, (&last, &prev), &layout, &mut t)
        }));
        if let Err(e) = res {
            done.store(true, Ordering::Relaxed);
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!(
                "corruption sweep (chunked {chunked}, seed {seed:#x}, file {} bytes): {msg}\n\
                 reproduce: DFCACHE_SEED={seed:#x} cargo test --release --test corruption",
                img.len()
            );
        }
    }
    done.store(true, Ordering::Relaxed);
    watchdog.join().unwrap();
    eprintln!(
        "corruption: chunked {chunked}: file {} bytes, {} nodes, {} checked ranges; {t:?}; {:.1?}",
        img.len(),
        layout.nodes.len(),
        layout.checked.len(),
        start.elapsed()
    );
    // The sweep reached every kind of outcome it claims to check.
    assert!(t.fell_back > 0 && t.read_errors > 0 && t.verify_reported > 0 && t.corrupt_drops > 0);
}

#[test]
fn every_flipped_byte_is_a_right_value_or_a_typed_error() {
    sweep(false, 4000, common::seed(0xF11B_0001));
}

#[test]
fn sampled_flips_in_a_file_with_a_chunked_value() {
    sweep(true, 2000, common::seed(0xF11B_0002));
}
