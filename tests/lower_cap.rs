//! Regression tests for bugs the reliability tests found (issue 4) in
//! lowering the maximum file size: it failed with `NoSpace` although no
//! `Value` was alive and entries could be evicted, and lowering it to just
//! above the file's length left no room to commit an eviction, so every
//! later put failed. Deterministic.

mod common;

use dfcache::{Flushable, OpenOptions};

/// lowering the maximum file size fails with `NoSpace` ("... bytes
/// in use cannot be made to fit") although no `Value` is alive and the
/// entries could be evicted; the documentation promises `NoSpace` only when
/// live Values hold space past the new size. Found by the `ops` fuzz target
/// (input `fuzz/corpus/ops/bug3-lower-cap-nospace`).
#[test]
fn lowering_the_cap_evicts_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let c = OpenOptions::new()
        .compression_level(None)
        .max_dirty_pages(64)
        .create(dir.path().join("b3.dfc"), 1 << 20)
        .unwrap();
    let v = |n: usize, s: u64| common::bytes(n, s, false);
    c.set_maximum_file_size(2 << 20).unwrap();
    c.put(b"k01", &v(1, 1)).unwrap();
    c.put(b"k02", &v(188_000, 2)).unwrap();
    c.put(b"k03", &v(1, 3)).unwrap();
    c.put(b"k04", &v(168_000, 4)).unwrap();
    c.put(b"k02", &v(176_000, 5)).unwrap();
    c.remove(b"k01").unwrap();
    c.put(b"k08", &v(9000, 6)).unwrap();
    c.put(b"k09", &v(9500, 7)).unwrap();
    c.flush().unwrap();
    c.put(b"k10", &v(0, 8)).unwrap();
    c.set_maximum_file_size(1 << 20).unwrap();
    c.put(b"k03", &v(292_000, 9)).unwrap();
    c.set_maximum_file_size(1536 << 10).unwrap();
    c.put(b"k04", &v(184_000, 10)).unwrap();
    c.put(b"k05", &v(188_000, 11)).unwrap();
    c.put(b"k00", &v(0, 12)).unwrap();
    c.put(b"k01", &v(60, 13)).unwrap();
    c.set_maximum_age(None).unwrap();
    c.put(b"k09", &v(204_000, 14)).unwrap();
    c.flush().unwrap();
    // No Value is alive: lowering the cap must evict what does not fit.
    c.set_maximum_file_size(1 << 20).unwrap();
    assert!(c.verify().unwrap().is_ok());
}

/// Lowering the cap to just above the file's length used to only record it:
/// the file, filled to a few pages under the new cap, had no room left for
/// the pages an eviction's commit needs, so a put that any empty cache
/// holds failed with `NoSpace` ("nothing left to evict") while six entries
/// were there to evict. Found by the `ops` fuzz target (input
/// `fuzz/corpus/ops/bug5-cap-just-above-file`).
#[test]
fn lowering_the_cap_to_just_above_the_file_keeps_room_to_evict() {
    let dir = tempfile::tempdir().unwrap();
    let c = OpenOptions::new()
        .compression_level(None)
        .max_dirty_pages(64)
        .create(dir.path().join("b5.dfc"), 2 << 20)
        .unwrap();
    let v = |n: usize, s: u64| common::bytes(n, s, false);
    let sizes = [180_000, 184_000, 196_000, 192_000, 196_000, 48_000];
    for (i, n) in sizes.into_iter().enumerate() {
        c.put(format!("k{i}").as_bytes(), &v(n, i as u64)).unwrap();
    }
    c.flush().unwrap();
    let len = c.stats().unwrap().file_size;
    assert!(
        len < 1 << 20 && len + (64 << 10) > 1 << 20,
        "file of {len} bytes"
    );
    c.set_maximum_file_size(1 << 20).unwrap();
    c.put(b"big", &v(284_000, 9)).unwrap();
    assert_eq!(c.get(b"big").unwrap().unwrap().to_vec(), v(284_000, 9));
    assert!(c.stats().unwrap().file_size <= 1 << 20);
    assert!(c.verify().unwrap().is_ok());
}

/// Lowering the cap below the file's length moves what lies past the new
/// size; when free space below it is in pieces none of which can take a
/// value, the move failed with `NoSpace` ("292000 more bytes would take the
/// file to ...") and the cap stayed. The entry is evicted instead. Found by
/// the `ops` fuzz target (input `fuzz/corpus/ops/bug6-lower-cap-move`).
#[test]
fn lowering_the_cap_evicts_an_entry_that_cannot_be_moved() {
    let dir = tempfile::tempdir().unwrap();
    let c = OpenOptions::new()
        .compression_level(None)
        .max_dirty_pages(64)
        .create(dir.path().join("b6.dfc"), 1 << 20)
        .unwrap();
    let v = |n: usize, s: u64| common::bytes(n, s, false);
    c.set_maximum_file_size(0).unwrap();
    let puts: [(&str, usize); 11] = [
        ("k00", 168_000),
        ("k01", 172_000),
        ("k02", 176_000),
        ("k02", 3),
        ("k01", 4),
        ("k01", 0),
        ("k00", 5),
        ("k01", 6),
        ("k08", 200_000),
        ("k09", 204_000),
        ("k02", 6000),
    ];
    for (i, (k, n)) in puts.into_iter().enumerate() {
        c.put(k.as_bytes(), &v(n, i as u64)).unwrap();
    }
    c.remove(b"k01").unwrap();
    c.flush().unwrap();
    c.put(b"k08", &v(200_000, 20)).unwrap();
    c.put(b"k09", &v(204_000, 21)).unwrap();
    c.put(b"k08", &v(0, 22)).unwrap();
    c.put(b"k02", &v(6000, 23)).unwrap();
    c.put(b"k15", &v(292_000, 24)).unwrap();
    c.put(b"k02", &v(6000, 25)).unwrap();
    c.put(b"k02", &v(6000, 26)).unwrap();
    c.set_maximum_file_size(1 << 20).unwrap();
    assert!(c.stats().unwrap().file_size <= 1 << 20);
    // Whatever stayed is intact; the small entries fit and stay.
    assert_eq!(c.get(b"k02").unwrap().unwrap().to_vec(), v(6000, 26));
    assert_eq!(c.get(b"k00").unwrap().unwrap().to_vec(), v(5, 6));
    if let Some(x) = c.get(b"k15").unwrap() {
        assert_eq!(x.to_vec(), v(292_000, 24));
    }
    c.put(b"k01", &v(3, 27)).unwrap();
    assert!(c.verify().unwrap().is_ok());
}

/// A long transaction keeps spare pages (spilled index nodes that a later
/// change copied again) for its next dirty nodes. Lowering the cap in the
/// middle of it used them even when they lay past the new size, so the
/// relocated index ended past it and the call failed with `NoSpace`
/// ("still referenced by live Values") with no Value alive. Found by the
/// `ops` fuzz target in its spilling mode (two decoded pages, below the
/// public minimum of `max_dirty_pages`), so the input is replayed as is.
#[test]
fn lowering_the_cap_during_a_spilling_transaction_keeps_spares_below_it() {
    replay_spilling("bug6-spare-past-lowered-cap");
}

/// A page spilled in a long transaction and written again at its commit
/// (copy-on-write handed it back) kept the check of its first write in the
/// one-phase commit's list, beside the new one: the ranges overlapped, the
/// record could never verify, and a reader (or the next open) took the
/// commit before it, so puts the writer had committed were gone. Found by
/// the `ops` fuzz target in its spilling mode (a put, then lowering the cap
/// moves index nodes and commits), replayed as is.
#[test]
fn a_spilled_page_written_again_is_checked_once() {
    replay_spilling("bug7-rewritten-spilled-page-check");
}

/// Lowering the cap right after a put replaced a large value: the space
/// the old value held was freed in the open transaction, so it counted as
/// free but stayed quarantined until a commit. Nothing evicted (the live
/// data fitted), nothing committed before the moves below the new cap,
/// and the commit found no page there for its dirty nodes: the handle was
/// poisoned with "no page for a dirty node at commit", losing the puts not
/// yet flushed. Found by the `ops` fuzz target (spilling mode, multi-extent
/// puts), replayed as is.
#[test]
fn lowering_the_cap_commits_space_a_replaced_value_freed() {
    replay_spilling("bug9-lower-cap-with-a-replaced-value-quarantined");
}

/// Replays input `name` of the `ops` fuzz corpus, which must run in the
/// target's spilling mode.
fn replay_spilling(name: &str) {
    let input = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus/ops")
            .join(name),
    )
    .unwrap();
    assert_eq!(input[0] & 8, 8, "the input runs in spilling mode");
    dfcache::fuzzing::ops(&input);
}
