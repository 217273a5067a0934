//! Injected I/O failures: a backend fails the Nth write, the Nth sync or
//! the Nth set_len, for every N a workload reaches. After the failure the
//! handle must refuse writes with `Error::Poisoned` (and make no further
//! write, sync or length change), still serve reads, and after reopening
//! the file must hold the last completed flush (or the flush that failed,
//! if its commit record had become durable) and verify clean.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::{bytes, Rng};
use dfcache::fuzzing::sim::{problems_of, FailPlan, FailState, RecordingBackend};
use dfcache::{DatasetFileCache, Error, Flushable, OpenOptions};

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Clone, Debug)]
enum Step {
    Put(Vec<u8>, Vec<u8>),
    Remove(Vec<u8>),
    Flush,
    Clear,
    Cap(u64),
}

fn workload(seed: u64) -> Vec<Step> {
    let mut r = Rng(seed);
    let mut out = Vec::new();
    for i in 0..60 {
        let k = format!("key-{:02}", r.below(16)).into_bytes();
        let s = match r.below(20) {
            0..=10 => {
                let n = match r.below(4) {
                    0 => r.below(200),
                    1 | 2 => 300 + r.below(9000),
                    _ => 30_000 + r.below(100_000),
                } as usize;
                Step::Put(k, bytes(n, seed ^ i, r.chance(1, 2)))
            }
            11..=13 => Step::Remove(k),
            14..=17 => Step::Flush,
            18 => Step::Clear,
            _ => Step::Cap([0, 4 << 20, 2 << 20][r.below(3) as usize]),
        };
        out.push(s);
    }
    out.push(Step::Flush);
    out
}

/// Applies a step to the model; returns whether it commits.
fn model_step(m: &mut Map, s: &Step) -> bool {
    match s {
        Step::Put(k, v) => {
            m.insert(k.clone(), v.clone());
            false
        }
        Step::Remove(k) => {
            m.remove(k);
            false
        }
        Step::Clear => {
            m.clear();
            true
        }
        Step::Flush | Step::Cap(_) => true,
    }
}

fn do_step(c: &DatasetFileCache, s: &Step) -> dfcache::Result<()> {
    match s {
        Step::Put(k, v) => c.put(k, v),
        Step::Remove(k) => c.remove(k).map(|_| ()),
        Step::Flush => c.flush(),
        Step::Clear => c.clear(),
        Step::Cap(n) => c.set_maximum_file_size(*n),
    }
}

fn read_all(c: &DatasetFileCache) -> Map {
    let mut m = Map::new();
    for k in c.keys().unwrap() {
        let k = k.unwrap();
        let v = c.get(&k).unwrap().expect("listed key has a value").to_vec();
        m.insert(k, v);
    }
    m
}

/// Runs the workload with one injected failure; returns whether the
/// failure was reached.
fn run(seed: u64, plan: FailPlan) -> bool {
    let ctx = format!("seed {seed:#x}, plan {plan:?}");
    let steps = workload(seed);
    let dir = common::scratch();
    let path = dir.path().join("poison.dfc");
    let state = Arc::new(FailState::default());
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .unwrap();
    let backend = RecordingBackend::new(file, Default::default(), plan, state.clone());
    let opts = OpenOptions::new().sync(true);
    let c = match opts.create_backend(Box::new(backend), 0) {
        Ok(c) => c,
        Err(e) => {
            assert!(
                state.failed_at.load(Ordering::SeqCst) != 0,
                "{ctx}: create failed without an injected failure: {e}"
            );
            // A failed create: the file is refused with a typed error or
            // opens empty.
            match DatasetFileCache::open(&path, true) {
                Ok(c) => assert!(c.is_empty(), "{ctx}: failed create left entries"),
                Err(Error::NotACache { .. } | Error::Corrupt { .. }) => {}
                Err(e) => panic!("{ctx}: failed create gives {e}"),
            }
            return true;
        }
    };
    let mut model = Map::new();
    let mut flushed = Map::new();
    for (i, s) in steps.iter().enumerate() {
        let before = model.clone();
        let commits = model_step(&mut model, s);
        match do_step(&c, s) {
            Ok(()) => {
                if commits {
                    flushed = model.clone();
                }
            }
            Err(e) => {
                assert!(
                    state.failed_at.load(Ordering::SeqCst) != 0,
                    "{ctx}: step {i} {s:?} failed without an injected failure: {e}"
                );
                let ctx = format!("{ctx}, failure at step {i} ({e})");
                after_failure(&c, &before, &model, &ctx);
                assert_eq!(
                    state.after_failure.load(Ordering::SeqCst),
                    0,
                    "{ctx}: the handle wrote, synced or resized after the failure"
                );
                drop(c);
                assert_eq!(
                    state.after_failure.load(Ordering::SeqCst),
                    0,
                    "{ctx}: dropping the poisoned handle wrote to the file"
                );
                let mut allowed = vec![flushed.clone()];
                if commits {
                    allowed.push(model.clone());
                }
                reopen_check(&path, &allowed, &ctx);
                return true;
            }
        }
    }
    assert_eq!(model, read_all(&c), "{ctx}: final state");
    false
}

/// A poisoned handle: writes fail with Poisoned, reads still work and give
/// the value from before or after the failed step.
fn after_failure(c: &DatasetFileCache, before: &Map, after: &Map, ctx: &str) {
    let poisoned = |r: dfcache::Result<()>, what: &str| match r {
        Err(Error::Poisoned { .. }) => {}
        other => panic!("{ctx}: {what} after the failure gives {other:?}, not Poisoned"),
    };
    poisoned(c.put(b"key-new", b"value"), "put");
    poisoned(c.remove(b"key-00").map(|_| ()), "remove");
    poisoned(c.flush(), "flush");
    poisoned(c.clear(), "clear");
    poisoned(c.set_maximum_file_size(8 << 20), "set_maximum_file_size");
    poisoned(c.set_maximum_age(None), "set_maximum_age");
    let keys: std::collections::BTreeSet<&Vec<u8>> = before.keys().chain(after.keys()).collect();
    for k in keys {
        let got = c
            .get(k)
            .unwrap_or_else(|e| panic!("{ctx}: get after the failure: {e}"))
            .map(|v| v.to_vec());
        assert!(
            got.as_ref() == before.get(k) || got.as_ref() == after.get(k),
            "{ctx}: get {k:?} after the failure returns {:?} bytes (before {:?}, after {:?})",
            got.map(|v| v.len()),
            before.get(k).map(|v| v.len()),
            after.get(k).map(|v| v.len()),
        );
    }
}

fn reopen_check(path: &std::path::Path, allowed: &[Map], ctx: &str) {
    let ro = DatasetFileCache::open(path, true)
        .unwrap_or_else(|e| panic!("{ctx}: reopen read-only: {e}"));
    let got = read_all(&ro);
    assert!(
        allowed.contains(&got),
        "{ctx}: reopened with {} entries; allowed {:?}",
        got.len(),
        allowed.iter().map(|m| m.len()).collect::<Vec<_>>()
    );
    let p = problems_of(&ro.verify().unwrap());
    assert!(p.is_empty(), "{ctx}: verify after reopen: {p:?}");
    drop(ro);
    // The file is usable again.
    let rw = DatasetFileCache::open(path, false)
        .unwrap_or_else(|e| panic!("{ctx}: reopen read-write: {e}"));
    rw.put(b"key-after", b"after the failure").unwrap();
    rw.flush().unwrap();
    let rep = rw.verify().unwrap();
    assert!(
        rep.is_ok(),
        "{ctx}: verify after a new flush: {:?}",
        rep.problems
    );
    let mut want = got;
    want.insert(b"key-after".to_vec(), b"after the failure".to_vec());
    assert_eq!(read_all(&rw), want, "{ctx}: state after a new flush");
}

fn sweep(kind: &str, plan: impl Fn(u64) -> FailPlan) {
    let seeds: Vec<u64> = match std::env::var("DFCACHE_SEED") {
        Ok(_) => vec![common::seed(0)],
        Err(_) => (0..4).map(|i| 0x9015_0000 + i).collect(),
    };
    for seed in seeds {
        let mut n = 1;
        while run(seed, plan(n)) {
            n += 1;
            assert!(n < 100_000, "runaway");
        }
        assert!(
            n > 2,
            "{kind}: the workload reached only {} failure points",
            n - 1
        );
        eprintln!(
            "poison: seed {seed:#x}: {kind}: failed each of {} operations",
            n - 1
        );
    }
}

#[test]
fn failed_writes_poison_the_handle() {
    sweep("write", |n| FailPlan {
        write: Some(n),
        ..Default::default()
    });
}

#[test]
fn failed_syncs_poison_the_handle() {
    sweep("sync", |n| FailPlan {
        sync: Some(n),
        ..Default::default()
    });
}

#[test]
fn failed_set_len_poisons_the_handle() {
    sweep("set_len", |n| FailPlan {
        set_len: Some(n),
        ..Default::default()
    });
}
