//! Simulated power loss at every point of a workload (spec/FORMAT.md §7).
//!
//! A workload of puts, removes, gets, flushes, reopens, clear, cap changes
//! (raised, lowered, unlimited) and maximum-age changes runs on a recording
//! backend under a maximum file size, so that evictions and automatic
//! commits happen too. Every operation the cache does on its file (write,
//! set_len, sync) is logged. Then, for every point of the log (after every
//! operation, not only at syncs), power-loss images are built: the durable
//! image (everything up to the last sync) plus each unsynced write kept,
//! dropped or torn at 512-byte sectors, unsynced length changes applied or
//! not, and sometimes the last sector of one write holding a mix of old and
//! new bytes. Each image must open read-only and read-write, pass
//! `verify()`, and hold exactly the state of the last completed commit or
//! (when the crash hit after the next commit's record was written) of that
//! next commit. Every commit's state is itself checked against the model of
//! the operation it happened in.
//!
//! Default: two workloads, about 3,000 crash images. `DFCACHE_CRASH_LONG=1`
//! runs 12 workloads with 4 images per point. `DFCACHE_SEED=<n>` reruns one
//! workload seed.

mod common;

use std::time::{Duration, Instant};

use common::{bytes, long, Rng};
use dfcache::fuzzing::sim::{
    allowed_at, check_crash_image, check_image, commit_points, commit_states, crash_check, Harness,
    Op, Replayer,
};
use dfcache::OpenOptions;

const KEYS: u64 = 40;

/// Runs the seeded workload; returns the harness with its log and model.
fn workload(seed: u64, ops: usize, compress: bool) -> (tempfile::TempDir, Harness) {
    let dir = common::scratch();
    let opts = OpenOptions::new()
        .sync(true)
        .compression_level(compress.then_some(3))
        .max_dirty_pages(64);
    let mut h = Harness::create(dir.path(), 1536 << 10, opts).unwrap();
    let mut r = Rng(seed);
    let mut version = 0u64;
    let run = |h: &mut Harness, r: &mut Rng, version: &mut u64| -> Result<(), String> {
        let key = |r: &mut Rng| format!("key-{:02}", r.below(KEYS)).into_bytes();
        let roll = r.below(100);
        match roll {
            0..=54 => {
                let k = key(r);
                let n = match r.below(10) {
                    0..=2 => r.below(250) as usize,
                    3..=6 => 300 + r.below(12_000) as usize,
                    _ => 40_000 + r.below(160_000) as usize,
                };
                *version += 1;
                let v = bytes(n, seed ^ (*version << 20), r.chance(1, 3));
                h.put(&k, &v)
            }
            55..=64 => h.remove(&key(r)),
            65..=74 => h.get(&key(r)),
            75..=86 => h.flush(),
            87..=89 => h.reopen(),
            90 => h.clear(),
            91..=95 => {
                let cap = [1 << 20, 1280 << 10, 1536 << 10, 2 << 20, 0][r.below(5) as usize];
                h.set_cap(cap)
            }
            _ => {
                let age = [
                    None,
                    Some(Duration::from_secs(3600)),
                    Some(Duration::from_secs(7200)),
                ][r.below(3) as usize];
                h.set_age(age)
            }
        }
    };
    for i in 0..ops {
        if let Err(e) = run(&mut h, &mut r, &mut version) {
            panic!("workload seed {seed:#x}, operation {i}: {e}");
        }
    }
    h.flush().unwrap();
    (dir, h)
}

struct Coverage {
    points: usize,
    images: usize,
    newer: usize,
    auto_commits: usize,
    evicted: usize,
    commits: usize,
}

fn crash_everywhere(seed: u64, ops: usize, compress: bool, per_point: u64) -> Coverage {
    let (dir, h) = workload(seed, ops, compress);
    crash_images(seed, compress, &dir, &h, per_point)
}

/// Builds power-loss images at every point of `h`'s log and checks each.
fn crash_images(
    seed: u64,
    compress: bool,
    dir: &tempfile::TempDir,
    h: &Harness,
    per_point: u64,
) -> Coverage {
    let t = Instant::now();
    let log: Vec<Op> = h.log.lock().unwrap().clone();
    let scratch = dir.path().join("crash.dfc");
    let states =
        commit_states(h, &log, &scratch).unwrap_or_else(|e| panic!("workload seed {seed:#x}: {e}"));
    let mut cov = Coverage {
        points: log.len() + 1,
        images: 0,
        newer: 0,
        auto_commits: 0,
        evicted: h.windows.iter().map(|w| w.evicted.len()).sum(),
        commits: states.len(),
    };
    for (p, _) in &states {
        if let Some(w) = h.window_of(p.sync) {
            if !h.windows[w].durable {
                cov.auto_commits += 1;
            }
        }
    }
    let mut rep = Replayer::new(&log);
    let mut r = Rng(seed.wrapping_mul(31) ^ 0xC0FFEE);
    for k in 0..=log.len() {
        rep.advance(k);
        let variants = if rep.synced == k { 1 } else { per_point };
        for v in 0..variants {
            let s = r.next_u64();
            let extra = (k as u64 + v).is_multiple_of(9);
            let got = crash_check(&rep, &states, k, s, &scratch, extra).unwrap_or_else(|e| {
                panic!(
                    "workload seed {seed:#x} (compression {compress}): {e}\n\
                     reproduce: DFCACHE_SEED={seed:#x} cargo test --release --test crash"
                )
            });
            let allowed = allowed_at(&states, k);
            if allowed.len() == 2 && got == *allowed[1] && allowed[0] != allowed[1] {
                cov.newer += 1;
            }
            cov.images += 1;
        }
    }
    eprintln!(
        "crash: seed {seed:#x} compression {compress}: {} log points, {} images, {} commits ({} automatic), {} keys evicted, {} crashes recovered the in-flight commit, {:.1?}",
        cov.points, cov.images, cov.commits, cov.auto_commits, cov.evicted, cov.newer, t.elapsed()
    );
    cov
}

fn run(default_seeds: &[u64], compress: bool) {
    let (seeds, ops, per_point): (Vec<u64>, usize, u64) = if long("DFCACHE_CRASH_LONG") {
        (
            (0..6).map(|i| default_seeds[0] + 1000 * i).collect(),
            400,
            4,
        )
    } else {
        (default_seeds.to_vec(), 500, 2)
    };
    let seeds = match std::env::var("DFCACHE_SEED") {
        Ok(_) => vec![common::seed(0)],
        Err(_) => seeds,
    };
    let mut total = Coverage {
        points: 0,
        images: 0,
        newer: 0,
        auto_commits: 0,
        evicted: 0,
        commits: 0,
    };
    for s in seeds {
        let c = crash_everywhere(s, ops, compress, per_point);
        total.points += c.points;
        total.images += c.images;
        total.newer += c.newer;
        total.auto_commits += c.auto_commits;
        total.evicted += c.evicted;
        total.commits += c.commits;
    }
    // The test must have exercised what it claims to.
    assert!(total.images >= 1000, "only {} crash images", total.images);
    assert!(
        total.auto_commits > 0,
        "no automatic (eviction) commit happened"
    );
    assert!(total.evicted > 0, "nothing was evicted");
    assert!(
        total.newer > 0,
        "no crash ever recovered the commit in flight: tears never completed one"
    );
}

#[test]
fn power_loss_at_every_point_compressed() {
    run(&[0x5eed_0001], true);
}

#[test]
fn power_loss_at_every_point_raw() {
    run(&[0x5eed_0002], false);
}

/// Set-up of the long workloads without flushes: the seed (overridable by
/// `DFCACHE_SEED`), a scratch directory, a harness of maximum size `cap`
/// with `max_dirty_pages(64)` and no compression, its PRNG, and the number
/// of operations (`long` with `DFCACHE_CRASH_LONG`, else `short`).
fn long_workload(
    default_seed: u64,
    cap: u64,
    short: usize,
    long_ops: usize,
) -> (u64, tempfile::TempDir, Harness, Rng, u64) {
    let seed = common::seed(default_seed);
    let dir = common::scratch();
    let opts = OpenOptions::new()
        .sync(true)
        .compression_level(None)
        .max_dirty_pages(64);
    let h = Harness::create(dir.path(), cap, opts).unwrap();
    let ops = if long("DFCACHE_CRASH_LONG") {
        long_ops
    } else {
        short
    };
    (seed, dir, h, Rng(seed), ops as u64)
}

/// One lost write at every one-phase commit: at the point where the record
/// is written but not synced, an image per unsynced write in which only
/// that write is missing. The record's check list must catch every such
/// loss (the state is then the commit before) unless the write no longer
/// matters. Returns how many images were checked.
fn lost_writes_at_one_phase_commits(seed: u64, dir: &tempfile::TempDir, h: &Harness) -> usize {
    let log: Vec<Op> = h.log.lock().unwrap().clone();
    let scratch = dir.path().join("lost.dfc");
    let states =
        commit_states(h, &log, &scratch).unwrap_or_else(|e| panic!("workload seed {seed:#x}: {e}"));
    let mut rep = Replayer::new(&log);
    let mut images = 0;
    for p in commit_points(&log) {
        let one_phase = matches!(&log[p.record_write], Op::Write { data, .. }
            if data.get(124..128).is_some_and(|b| b != [0; 4]));
        if !one_phase {
            continue;
        }
        let k = p.record_write + 1;
        rep.advance(k);
        for lost in rep.unsynced_writes(k) {
            if lost == p.record_write {
                continue;
            }
            let img = rep.lost_write_image(k, lost);
            check_crash_image(
                &states,
                k,
                &img,
                &scratch,
                false,
                &format!("lost write {lost}"),
            )
            .unwrap_or_else(|e| panic!("workload seed {seed:#x}: {e}"));
            images += 1;
        }
    }
    images
}

/// How a spilling workload went: the puts that spilled (wrote index nodes
/// without a sync), and the one-phase commits (records with a check list,
/// §7.2) that followed a spill since the commit before.
fn spill_coverage(h: &Harness) -> (usize, usize) {
    let log: Vec<Op> = h.log.lock().unwrap().clone();
    let spilling: std::collections::BTreeSet<usize> = h
        .windows
        .iter()
        .filter(|w| w.what.starts_with("put"))
        .filter(|w| {
            let ops = &log[w.start..w.end];
            !ops.iter().any(|o| matches!(o, Op::Sync))
                && ops
                    .iter()
                    .any(|o| matches!(o, Op::Write { data, .. } if data.starts_with(b"DFBT")))
        })
        .map(|w| w.start)
        .collect();
    let mut spilled = false;
    let mut one_phase = 0;
    for (i, o) in log.iter().enumerate() {
        if spilling.contains(&i) {
            spilled = true;
        }
        if let Op::Write {
            off: 4096 | 8192,
            data,
        } = o
        {
            let checks = data
                .get(124..128)
                .map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap()));
            if checks > 0 && spilled {
                one_phase += 1;
            }
            spilled = false;
        }
    }
    (spilling.len(), one_phase)
}

/// Many small entries between flushes, with `max_dirty_pages(64)`: puts
/// write dirty index nodes out without committing (spills), and a commit
/// later covers them. A power loss at any point, spills included, must
/// leave the last commit (or the one in flight).
#[test]
fn power_loss_while_a_long_transaction_spills_nodes() {
    let (seed, dir, mut h, mut r, ops) = long_workload(0x5eed_0003, 0, 3000, 9000);
    for i in 0..ops {
        let k = format!("bulk-{:05}", r.below(5000)).into_bytes();
        let res = match r.below(100) {
            0..=89 => {
                let v = bytes(20 + r.below(200) as usize, seed ^ (i << 20), false);
                h.put(&k, &v)
            }
            90..=95 => h.remove(&k),
            96..=97 => h.get(&k),
            98 => h.flush(),
            _ => h.reopen(),
        };
        if let Err(e) = res {
            panic!("spill workload seed {seed:#x}, operation {i}: {e}");
        }
    }
    h.flush().unwrap();
    let (spills, one_phase) = spill_coverage(&h);
    assert!(spills >= 3, "only {spills} puts spilled nodes");
    assert!(
        one_phase >= 2,
        "only {one_phase} one-phase commits followed spills"
    );
    let lost = lost_writes_at_one_phase_commits(seed, &dir, &h);
    assert!(lost >= 100, "only {lost} lost-write images");
    let c = crash_images(seed, false, &dir, &h, 2);
    assert!(c.images >= 200, "only {} crash images", c.images);
}

/// `put_many` batches of keys in random order (some twice) among puts and
/// removes, with `max_dirty_pages(64)`: a batch spills index nodes on the
/// way and commits once at its end. A power loss at any point must leave
/// the last commit (or the one in flight), never part of a batch.
#[test]
fn power_loss_during_put_many_batches() {
    let (seed, dir, mut h, mut r, ops) = long_workload(0x5eed_0004, 0, 60, 600);
    for i in 0..ops {
        let res = match r.below(10) {
            0..=3 => {
                // Keys in random order, some twice (the last value wins).
                let items: Vec<(Vec<u8>, Vec<u8>)> = (0..20 + r.below(180))
                    .map(|j| {
                        let k = format!("many-{:05}", r.below(4000)).into_bytes();
                        let len = match r.below(8) {
                            0 => 300 + r.below(6000) as usize,
                            _ => 10 + r.below(240) as usize,
                        };
                        (k, bytes(len, seed ^ (i << 20) ^ j, false))
                    })
                    .collect();
                h.put_many(&items)
            }
            4..=6 => {
                let k = format!("many-{:05}", r.below(4000)).into_bytes();
                h.put(
                    &k,
                    &bytes(10 + r.below(500) as usize, seed ^ (i << 20), false),
                )
            }
            7 => h.remove(&format!("many-{:05}", r.below(4000)).into_bytes()),
            8 => h.flush(),
            _ => h.reopen(),
        };
        if let Err(e) = res {
            panic!("put_many workload seed {seed:#x}, operation {i}: {e}");
        }
    }
    h.flush().unwrap();
    let batches = h
        .windows
        .iter()
        .filter(|w| w.what.starts_with("put_many"))
        .count();
    assert!(batches >= 12, "only {batches} put_many batches");
    let c = crash_images(seed, false, &dir, &h, 2);
    assert!(c.images >= 200, "only {} crash images", c.images);
}

/// Small values under a tight maximum size, without flushes: inline puts
/// and removals take no extent, so before each change the cache makes sure
/// the pages its commit needs are free (committing and evicting ahead).
/// This run used to end with a commit that found no page and poisoned the
/// handle. A power loss at any point must leave the last commit.
#[test]
fn power_loss_under_a_tight_cap_with_small_values() {
    let (seed, dir, mut h, mut r, ops) = long_workload(0x5eed_0004, 1 << 20, 1800, 6000);
    for i in 0..ops {
        let k = format!("capped-{:05}", r.below(3000)).into_bytes();
        let res = match r.below(100) {
            0..=84 => {
                let n = if r.chance(1, 6) {
                    2000 + r.below(6000)
                } else {
                    20 + r.below(200)
                };
                let v = bytes(n as usize, seed ^ (i << 20), false);
                h.put(&k, &v)
            }
            85..=92 => h.remove(&k),
            93..=96 => h.get(&k),
            97..=98 => h.flush(),
            _ => h.reopen(),
        };
        if let Err(e) = res {
            panic!("tight cap workload seed {seed:#x}, operation {i}: {e}");
        }
    }
    h.flush().unwrap();
    let evicted: usize = h.windows.iter().map(|w| w.evicted.len()).sum();
    assert!(evicted > 0, "nothing was evicted");
    let lost = lost_writes_at_one_phase_commits(seed, &dir, &h);
    assert!(lost >= 100, "only {lost} lost-write images");
    let c = crash_images(seed, false, &dir, &h, 1);
    assert!(c.images >= 200, "only {} crash images", c.images);
}

/// A put with metadata, a streamed put and a chunked put write several
/// extents for one entry; under a full cap, making room for a later one
/// evicts and commits. Those commits must not record the earlier extents
/// before the entry that owns them: a crash there would leave space that
/// `verify` reports as leaked. The entry's extents are reserved until it
/// is installed. Before, 2-12 commits per variant here held a leaked
/// extent. Every commit's clean image must open and verify.
#[test]
fn every_commit_of_multi_extent_puts_under_a_cap_verifies() {
    for variant in 0..3u64 {
        let dir = tempfile::tempdir().unwrap();
        let cap = if variant == 2 { 8 << 20 } else { 1 << 20 };
        let opts = OpenOptions::new().sync(true).compression_level(None);
        let mut h = Harness::create(dir.path(), cap, opts).unwrap();
        let mut r = Rng(0xC0FFEE ^ variant);
        for i in 0..30u32 {
            h.put(
                format!("k{i:02}").as_bytes(),
                &bytes(20_000, r.next_u64(), false),
            )
            .unwrap();
        }
        h.flush().unwrap();
        let meta = vec![b'm'; 3000];
        for j in 0..24u64 {
            let key = format!("big{j}");
            let len = match variant {
                2 => (1 << 20) + 300_000 + j as usize * 1000,
                _ => 60_000 + j as usize * 3001,
            };
            let v = bytes(len, r.next_u64(), false);
            match (variant, j % 2) {
                (0, _) | (2, 0) => h.c().put_with_meta(key.as_bytes(), &v, &meta).unwrap(),
                _ => {
                    h.c()
                        .put_stream_with_meta(key.as_bytes(), &v[..], &meta)
                        .unwrap();
                }
            }
        }
        // (Not the harness's flush: its model does not know these puts.)
        dfcache::Flushable::flush(h.c()).unwrap();
        let log = h.log.lock().unwrap().clone();
        let scratch = dir.path().join("scratch.dfc");
        let points = commit_points(&log);
        assert!(
            points.len() > 10,
            "variant {variant}: the puts committed to make room"
        );
        let mut rep = Replayer::new(&log);
        for p in &points {
            rep.advance(p.sync + 1);
            if let Err(e) = check_image(&scratch, rep.durable(), false) {
                panic!(
                    "variant {variant}: the commit synced at log {}: {e}",
                    p.sync
                );
            }
        }
    }
}
