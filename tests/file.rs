//! File-level behaviour: the header bytes, bad files, read-only, locking,
//! space reuse.

use std::fs;
use std::path::Path;

use dfcache::{DatasetFileCache, Error, Flushable, OpenOptions};

fn snapshot(p: &Path) -> (Vec<u8>, std::time::SystemTime) {
    (
        fs::read(p).unwrap(),
        fs::metadata(p).unwrap().modified().unwrap(),
    )
}

#[test]
fn fresh_file_header_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("h.dfc");
    drop(DatasetFileCache::create(&p, 64 << 20).unwrap());
    let b = fs::read(&p).unwrap();
    let mut want = [0u8; 96];
    want[0..8].copy_from_slice(&[0x89, 0x48, 0x47, 0x43, 0x0D, 0x0A, 0x1A, 0x0A]);
    want[8..10].copy_from_slice(&3i16.to_le_bytes());
    want[10..18].copy_from_slice(&(64i64 << 20).to_le_bytes());
    // 18..40 reserved zero; 40..48 primary root: empty (0); 48..56 zero;
    // 56..64 LastUsed root: empty (0).
    want[64..72].copy_from_slice(&[0x89, 0x42, 0x53, 0x54, 0x0D, 0x0A, 0x1A, 0x0A]);
    want[72..74].copy_from_slice(&1i16.to_le_bytes());
    // 74..82 allocations root, 82..90 free-chunks root: empty; 90..96 zero.
    assert_eq!(&b[..96], &want[..]);
    assert!(b[96..4096].iter().all(|&x| x == 0));
    assert_eq!(b.len(), 12288, "header page and two commit slots");
}

#[test]
fn header_mirrors_the_roots_after_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.dfc");
    let c = DatasetFileCache::create(&p, 0).unwrap();
    c.put(b"k", b"v").unwrap();
    c.flush().unwrap();
    drop(c);
    let b = fs::read(&p).unwrap();
    let root = i64::from_le_bytes(b[40..48].try_into().unwrap());
    let lru = i64::from_le_bytes(b[56..64].try_into().unwrap());
    assert!(root >= 12288 && root % 4096 == 0, "primary root {root}");
    assert!(
        lru >= 12288 && lru % 4096 == 0 && lru != root,
        "LastUsed root {lru}"
    );
    assert_eq!(&b[root as usize..root as usize + 4], b"DFBT");
}

fn expect_untouched(p: &Path, f: impl FnOnce(&Path) -> dfcache::Result<DatasetFileCache>) -> Error {
    let before = snapshot(p);
    let e = f(p).expect_err("must fail");
    assert_eq!(snapshot(p), before, "file changed by a failed open");
    e
}

#[test]
fn bad_files_give_typed_errors_and_stay_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    fs::write(
        &text,
        "These are my notes. Do not overwrite them.\n".repeat(300),
    )
    .unwrap();
    let empty = dir.path().join("empty");
    fs::write(&empty, b"").unwrap();
    let tiny = dir.path().join("tiny");
    fs::write(&tiny, b"\x89HG").unwrap();

    for ro in [false, true] {
        assert!(matches!(
            expect_untouched(&text, |p| DatasetFileCache::open(p, ro)),
            Error::NotACache { .. }
        ));
        assert!(matches!(
            expect_untouched(&empty, |p| DatasetFileCache::open(p, ro)),
            Error::NotACache { .. }
        ));
        assert!(matches!(
            expect_untouched(&tiny, |p| DatasetFileCache::open(p, ro)),
            Error::NotACache { .. }
        ));
    }
    assert!(matches!(
        expect_untouched(&text, |p| DatasetFileCache::create(p, 0)),
        Error::NotACache { .. }
    ));
    assert!(matches!(
        expect_untouched(&text, |p| DatasetFileCache::create_or_open(p, 0)),
        Error::NotACache { .. }
    ));
    let e = DatasetFileCache::open(&text, false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not a dfcache file") && e.contains("notes.txt"),
        "{e}"
    );

    // A newer format version.
    let newer = dir.path().join("newer.dfc");
    drop(DatasetFileCache::create(&newer, 0).unwrap());
    let mut b = fs::read(&newer).unwrap();
    b[8] = 9;
    // Make the commit records unreadable for this version too.
    b[4096 + 8] = 9;
    b[8192 + 8] = 9;
    fs::write(&newer, &b).unwrap();
    for ro in [false, true] {
        assert!(matches!(
            expect_untouched(&newer, |p| DatasetFileCache::open(p, ro)),
            Error::UnsupportedVersion { found: 9, .. }
        ));
    }
    assert!(matches!(
        expect_untouched(&newer, |p| DatasetFileCache::create_or_open(p, 0)),
        Error::UnsupportedVersion { .. }
    ));

    // A truncated cache.
    let cut = dir.path().join("cut.dfc");
    let c = DatasetFileCache::create(&cut, 0).unwrap();
    for i in 0..200u32 {
        c.put(&i.to_be_bytes(), &vec![i as u8; 3000]).unwrap();
    }
    drop(c);
    let len = fs::metadata(&cut).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&cut)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    for ro in [false, true] {
        let e = expect_untouched(&cut, |p| DatasetFileCache::open(p, ro));
        assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    }
    // Cut inside the commit slots.
    fs::OpenOptions::new()
        .write(true)
        .open(&cut)
        .unwrap()
        .set_len(5000)
        .unwrap();
    assert!(matches!(
        expect_untouched(&cut, |p| DatasetFileCache::open(p, true)),
        Error::Corrupt { .. }
    ));
}

/// A file of an older format version (1 or 2) is refused, not read as
/// damaged: its header gives its version and its commit records are intact
/// (with that version and a CRC that checks out), so no slot is valid for
/// this build and the header decides. Were the records accepted, the header
/// would count as damaged and the next commit would rewrite it over nodes
/// of the old version.
#[test]
fn a_file_of_an_older_version_is_refused_and_left_alone() {
    assert_eq!(dfcache::FORMAT_VERSION, 3);
    for version in [1u16, 2] {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.dfc");
        {
            let c = DatasetFileCache::create(&old, 0).unwrap();
            c.put(b"key", b"value").unwrap();
        }
        let mut b = fs::read(&old).unwrap();
        b[8..10].copy_from_slice(&version.to_le_bytes());
        for slot in [4096usize, 8192] {
            let len = u32::from_le_bytes(b[slot + 12..slot + 16].try_into().unwrap()) as usize;
            if b[slot..slot + 8] != *b"\x89DFCREC\n" {
                continue;
            }
            b[slot + 8..slot + 10].copy_from_slice(&version.to_le_bytes());
            let crc = crc32fast::hash(&b[slot..slot + len - 4]);
            b[slot + len - 4..slot + len].copy_from_slice(&crc.to_le_bytes());
        }
        fs::write(&old, &b).unwrap();
        let found = i64::from(version);
        for ro in [false, true] {
            let e = expect_untouched(&old, |p| DatasetFileCache::open(p, ro));
            assert!(
                matches!(
                    e,
                    Error::UnsupportedVersion { found: f, supported: 3, .. } if f == found
                ),
                "{e}"
            );
        }
        let e = expect_untouched(&old, |p| DatasetFileCache::create_or_open(p, 0));
        assert!(
            matches!(e, Error::UnsupportedVersion { found: f, .. } if f == found),
            "{e}"
        );
    }
}

#[test]
fn create_overwrites_a_cache_and_create_or_open_matches_size() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.dfc");
    let c = DatasetFileCache::create(&p, 8 << 20).unwrap();
    c.put(b"a", b"1").unwrap();
    drop(c);
    let c = DatasetFileCache::create_or_open(&p, 8 << 20).unwrap();
    assert_eq!(c.get(b"a").unwrap().unwrap().to_vec(), b"1");
    drop(c);
    let c = DatasetFileCache::create_or_open(&p, 16 << 20).unwrap();
    assert!(c.is_empty(), "another size recreates");
    assert_eq!(c.maximum_file_size(), 16 << 20);
    c.put(b"b", b"2").unwrap();
    drop(c);
    let c = DatasetFileCache::create(&p, 0).unwrap();
    assert!(c.is_empty());
    assert!(matches!(
        DatasetFileCache::create(dir.path().join("x"), 1000),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn read_only_never_writes() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ro.dfc");
    let c = DatasetFileCache::create(&p, 0).unwrap();
    for i in 0..100u32 {
        c.put(&i.to_be_bytes(), &vec![i as u8; 5000]).unwrap();
    }
    drop(c);
    let mut perm = fs::metadata(&p).unwrap().permissions();
    perm.set_readonly(true);
    fs::set_permissions(&p, perm.clone()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let before = snapshot(&p);
    {
        let r = DatasetFileCache::open(&p, true).unwrap();
        for i in 0..100u32 {
            assert_eq!(
                r.get(&i.to_be_bytes()).unwrap().unwrap().to_vec(),
                vec![i as u8; 5000]
            );
        }
        assert_eq!(r.keys().unwrap().count(), 100);
        assert!(matches!(r.put(b"x", b"y"), Err(Error::ReadOnly)));
        assert!(matches!(r.remove(b"x"), Err(Error::ReadOnly)));
        assert!(matches!(r.clear(), Err(Error::ReadOnly)));
        r.flush().unwrap();
        // Two read-only handles at once, and no side files.
        let r2 = DatasetFileCache::open(&p, true).unwrap();
        assert_eq!(r2.len(), 100);
    }
    assert_eq!(snapshot(&p), before);
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "no side files: {names:?}");
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    fs::set_permissions(&p, perm).unwrap();
}

#[test]
fn second_writer_is_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("l.dfc");
    let c = DatasetFileCache::create(&p, 0).unwrap();
    assert!(matches!(
        DatasetFileCache::open(&p, false),
        Err(Error::Locked { .. })
    ));
    assert!(matches!(
        DatasetFileCache::create(&p, 0),
        Err(Error::Locked { .. })
    ));
    // Readers are not locked out.
    let r = DatasetFileCache::open(&p, true).unwrap();
    drop(r);
    drop(c);
    let c2 = DatasetFileCache::open(&p, false).unwrap();
    drop(c2);
}

#[test]
fn a_dropped_writer_releases_the_file_while_processes_are_spawned() {
    // A child process being started holds copies of its parent's file
    // descriptors until it runs its program; the writer lock belongs to
    // the open file, so closing the handle's descriptor alone left it
    // locked, and opening the file again at once failed (16-30 % of the
    // time in a loop like this one before dropping the handle unlocked it).
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("spawn.dfc");
    drop(DatasetFileCache::create(&p, 0).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let spawned = Arc::new(AtomicU32::new(0));
    let spawner = {
        let (stop, spawned) = (stop.clone(), spawned.clone());
        std::thread::spawn(move || {
            let me = std::env::current_exe().unwrap();
            while !stop.load(Ordering::Relaxed) {
                std::process::Command::new(&me)
                    .arg("--list")
                    .stdout(std::process::Stdio::null())
                    .status()
                    .unwrap();
                spawned.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let start = std::time::Instant::now();
    let mut opens = 0;
    while (opens < 500 || spawned.load(Ordering::Relaxed) < 20)
        && start.elapsed() < std::time::Duration::from_secs(20)
    {
        match DatasetFileCache::open(&p, false) {
            Ok(c) => drop(c),
            Err(e) => panic!("open {opens} failed: {e}"),
        }
        opens += 1;
    }
    stop.store(true, Ordering::Relaxed);
    spawner.join().unwrap();
    assert!(
        spawned.load(Ordering::Relaxed) >= 20,
        "too few processes spawned"
    );
}

#[test]
fn space_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("reuse.dfc");
    let c = OpenOptions::new()
        .sync(false)
        .compression_level(None)
        .create(&p, 0)
        .unwrap();
    // 100 MiB of values of mixed sizes.
    let sizes = [700usize, 4096, 9000, 33_000, 150_000];
    let mut keys = Vec::new();
    let mut total = 0usize;
    let mut i = 0u64;
    while total < 100 << 20 {
        let n = sizes[(i % 5) as usize];
        keys.push((i, n));
        total += n;
        i += 1;
    }
    for round in 0..10u8 {
        for &(k, n) in &keys {
            c.put(&k.to_be_bytes(), &vec![round ^ k as u8; n]).unwrap();
        }
        c.flush().unwrap();
        if round < 9 {
            for &(k, _) in &keys {
                assert!(c.remove(&k.to_be_bytes()).unwrap());
            }
            c.flush().unwrap();
        }
    }
    let len = fs::metadata(&p).unwrap().len();
    let ratio = len as f64 / total as f64;
    assert!(ratio < 1.3, "file {len} for {total} live bytes: {ratio:.3}");
    for &(k, n) in keys.iter().step_by(97) {
        assert_eq!(
            c.get(&k.to_be_bytes()).unwrap().unwrap().to_vec(),
            vec![9 ^ k as u8; n]
        );
    }
}

#[test]
fn verify_finds_damage_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v.dfc");
    let c = OpenOptions::new()
        .compression_level(None)
        .create(&p, 0)
        .unwrap();
    for i in 0..300u32 {
        c.put(&i.to_be_bytes(), &vec![i as u8; 1000 + i as usize * 10])
            .unwrap();
    }
    c.put(b"big", &vec![5u8; 3 << 20]).unwrap();
    c.flush().unwrap();
    let r = c.verify().unwrap();
    assert!(r.is_ok(), "{:#?}", r.problems);
    assert_eq!(r.entries, 301);
    assert!(r.nodes > 4 && r.extents > 300);
    assert!(r.value_bytes > 3 << 20);
    drop(c);
    // Damage one byte of the value of key 7.
    let ro = DatasetFileCache::open(&p, true).unwrap();
    let v = ro.get(&7u32.to_be_bytes()).unwrap().unwrap().to_vec();
    drop(ro);
    let mut b = fs::read(&p).unwrap();
    let at = b.windows(v.len()).position(|w| w == v.as_slice()).unwrap();
    b[at + 10] ^= 1;
    fs::write(&p, &b).unwrap();
    let ro = DatasetFileCache::open(&p, true).unwrap();
    let r = ro.verify().unwrap();
    assert_eq!(r.problems.len(), 1, "{:#?}", r.problems);
    let pr = &r.problems[0];
    assert_eq!(pr.what, "value");
    assert_eq!(pr.offset, at as u64);
    assert_eq!(pr.key.as_deref(), Some(&7u32.to_be_bytes()[..]));
    // Read-only: the damaged value is an error; read-write: a miss, dropped.
    assert!(ro.get(&7u32.to_be_bytes()).unwrap_err().is_corrupt());
    drop(ro);
    let rw = DatasetFileCache::open(&p, false).unwrap();
    assert!(rw.get(&7u32.to_be_bytes()).unwrap().is_none());
    assert_eq!(rw.stats().unwrap().corrupt_drops, 1);
    rw.flush().unwrap();
    assert!(!rw.contains_key(&7u32.to_be_bytes()).unwrap(), "dropped");
    assert!(rw.verify().unwrap().is_ok());
}

/// A handle checks a value's crc32 once and then trusts the mapped bytes
/// (spec §9); `check_every_read` checks on every read, so damage done
/// behind an open handle is still a miss there, and `verify` always finds it.
#[test]
fn damage_behind_an_open_handle_is_found_by_check_every_read_and_verify() {
    for every in [false, true] {
        let (_dir, p, c, v) = one_value(every, 4096);
        assert_eq!(c.get(b"k").unwrap().unwrap().to_vec(), v);
        let at = damage_value(&p, &v);
        let r = c.verify().unwrap();
        assert_eq!(r.problems.len(), 1, "{:#?}", r.problems);
        assert_eq!(r.problems[0].offset, at as u64);
        if every {
            assert!(c.get(b"k").unwrap().is_none(), "damaged value served");
            assert_eq!(c.stats().unwrap().corrupt_drops, 1);
        } else {
            // Checked at the first read: the handle does not look again.
            assert!(c.get(b"k").unwrap().is_some());
        }
    }
}

/// A handle remembers a checked 4 KiB value by its page; a new value
/// written into that page later is checked again at its first read, so
/// damage to it is found (the page's old check must not carry over).
#[test]
fn a_new_value_in_the_space_of_a_checked_one_is_checked_again() {
    let (_dir, p, c, v) = one_value(false, 4096);
    assert_eq!(c.get(b"k").unwrap().unwrap().to_vec(), v);
    let at = fs::read(&p)
        .unwrap()
        .windows(v.len())
        .position(|w| w == v.as_slice())
        .unwrap();
    c.remove(b"k").unwrap();
    c.flush().unwrap();
    let w: Vec<u8> = (0..4096u32).map(|i| (i * 13 % 241) as u8 ^ 0x5a).collect();
    c.put(b"j", &w).unwrap();
    c.flush().unwrap();
    let at_w = damage_value(&p, &w);
    assert_eq!(at_w, at, "the new value should reuse the freed page");
    assert!(c.get(b"j").unwrap().is_none(), "damaged value served");
    assert_eq!(c.stats().unwrap().corrupt_drops, 1);
}

/// The same for a value small enough to be stored inline in its index
/// page, whose checksum is the page's (format version 2 on): a handle that
/// checks every read checks the page again, read-only handles too.
#[test]
fn damage_to_an_inline_value_behind_an_open_handle() {
    for every in [false, true] {
        let (_dir, p, c, v) = one_value(every, 200);
        let ro = DatasetFileCache::open(&p, true).unwrap();
        assert_eq!(c.get(b"k").unwrap().unwrap().to_vec(), v);
        assert_eq!(ro.get(b"k").unwrap().unwrap().to_vec(), v);
        let at = damage_value(&p, &v);
        // verify names the page first (then what it could not reach).
        let r = c.verify().unwrap();
        assert_eq!(r.problems[0].what, "B-tree node", "{:#?}", r.problems);
        assert_eq!(r.problems[0].offset, at as u64 / 4096 * 4096);
        assert!(
            matches!(ro.get(b"k"), Err(Error::Corrupt { .. })),
            "a read-only handle checks every read"
        );
        assert!(
            matches!(ro.get_stream(b"k"), Err(Error::Corrupt { .. })),
            "and every stream it opens"
        );
        let scanned = |h: &DatasetFileCache| -> dfcache::Result<Vec<Vec<u8>>> {
            h.scan(b"")?.map(|e| e.map(|(_, v)| v.to_vec())).collect()
        };
        assert!(
            matches!(scanned(&ro), Err(Error::Corrupt { .. })),
            "and every scan"
        );
        if every {
            assert!(
                matches!(scanned(&c), Err(Error::Corrupt { .. })),
                "damaged page scanned"
            );
            assert!(c.get(b"k").unwrap().is_none(), "damaged value served");
            assert_eq!(c.stats().unwrap().corrupt_drops, 1);
        } else {
            assert_eq!(scanned(&c).unwrap().len(), 1);
            assert!(c.get(b"k").unwrap().is_some());
        }
    }
}

#[test]
fn compaction_makes_a_minimal_equal_copy() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.dfc");
    let c = OpenOptions::new().sync(false).create(&p, 64 << 20).unwrap();
    let val = |i: u32| -> Vec<u8> {
        (0..(i as usize * 37) % 9000)
            .map(|j| (j as u32 ^ i) as u8)
            .collect()
    };
    for i in 0..2000u32 {
        c.put(&i.to_be_bytes(), &val(i)).unwrap();
    }
    c.put(b"chunked", &vec![3u8; 2 << 20]).unwrap();
    for i in (0..2000u32).step_by(2) {
        c.remove(&i.to_be_bytes()).unwrap();
    }
    for i in (1..2000u32).step_by(10) {
        assert!(c.get(&i.to_be_bytes()).unwrap().is_some());
    }
    c.set_maximum_age(Some(std::time::Duration::from_secs(3600)))
        .unwrap();
    let before = c.stats().unwrap();
    // Later than the source's creation: the copy's own creation time must
    // not shift the entries' insertion times (records count them from the
    // file's time base, which the copy takes over).
    std::thread::sleep(std::time::Duration::from_millis(30));
    let out = dir.path().join("small.dfc");
    let r = c.compact_to(&out).unwrap();
    assert_eq!(r.entries, 1001);
    assert!(r.bytes_after < r.bytes_before, "{r:?}");
    let d = DatasetFileCache::open(&out, false).unwrap();
    let after = d.stats().unwrap();
    assert_eq!(
        (after.entries, after.raw_bytes, after.stored_bytes),
        (before.entries, before.raw_bytes, before.stored_bytes)
    );
    assert_eq!(after.maximum_file_size, 64 << 20);
    assert_eq!(
        after.maximum_age,
        Some(std::time::Duration::from_secs(3600))
    );
    // Same LRU order: entries keep their last-use ticks (checked before
    // the reads below, which are uses themselves).
    for i in (1..2000u32).step_by(20) {
        let (a, b) = (
            d.entry_info(&i.to_be_bytes()).unwrap().unwrap(),
            c.entry_info(&i.to_be_bytes()).unwrap().unwrap(),
        );
        assert_eq!((a.last_use, a.inserted), (b.last_use, b.inserted));
    }
    for i in (1..2000u32).step_by(2) {
        assert_eq!(d.get(&i.to_be_bytes()).unwrap().unwrap().to_vec(), val(i));
    }
    assert_eq!(
        d.get(b"chunked").unwrap().unwrap().to_vec(),
        vec![3u8; 2 << 20]
    );
    assert!(d.verify().unwrap().is_ok());
    // Minimal: the live data plus the index pages, no free space left.
    let len = fs::metadata(&out).unwrap().len();
    let slack = len - after.stored_bytes;
    assert!(
        slack < 200 << 10,
        "compacted file has {slack} bytes beyond the values"
    );
}

#[test]
fn growth_reuses_the_tail_and_compaction_is_minimal() {
    // Values that do not fit the rest of a growth step must not strand it
    // (reported with 200 x 100,000 random bytes: 28 MB for 20 MB).
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("g.dfc");
    let c = OpenOptions::new().sync(false).create(&p, 0).unwrap();
    let mut x = 1u64;
    for i in 0..200u32 {
        let v: Vec<u8> = (0..100_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        c.put(format!("f{i}").as_bytes(), &v).unwrap();
    }
    c.flush().unwrap();
    let len = fs::metadata(&p).unwrap().len();
    assert!(
        len < 20_000_000 * 102 / 100,
        "{len} bytes for 20,000,000 of values"
    );
    let out = dir.path().join("o.dfc");
    let r = c.compact_to(&out).unwrap();
    assert!(r.bytes_after < 20_000_000 + 200 * 1024, "{r:?}");
    assert!(DatasetFileCache::open(&out, true)
        .unwrap()
        .verify()
        .unwrap()
        .is_ok());
}

#[test]
fn compaction_refuses_its_own_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("self.dfc");
    let c = DatasetFileCache::create(&p, 0).unwrap();
    for i in 0..50u32 {
        c.put(&i.to_be_bytes(), &vec![i as u8; 50_000]).unwrap();
    }
    drop(c);
    let before = fs::read(&p).unwrap();
    let ro = DatasetFileCache::open(&p, true).unwrap();
    assert!(matches!(ro.compact_to(&p), Err(Error::InvalidArgument(_))));
    let link = dir.path().join("link.dfc");
    fs::hard_link(&p, &link).unwrap();
    assert!(matches!(
        ro.compact_to(&link),
        Err(Error::InvalidArgument(_))
    ));
    drop(ro);
    assert_eq!(fs::read(&p).unwrap(), before);
}

/// A cache (uncompressed, `check_every_read(every)`) holding one committed
/// value of `len` bytes under `k`: (directory, path, handle, value).
fn one_value(
    every: bool,
    len: u32,
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    DatasetFileCache,
    Vec<u8>,
) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.dfc");
    let c = OpenOptions::new()
        .compression_level(None)
        .check_every_read(every)
        .create(&p, 0)
        .unwrap();
    let v: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    c.put(b"k", &v).unwrap();
    c.flush().unwrap();
    (dir, p, c, v)
}

/// Flips a bit of byte 100 of `v` where the file at `p` holds it, behind
/// any open handle; returns the value's offset.
fn damage_value(p: &Path, v: &[u8]) -> usize {
    use std::os::unix::fs::FileExt;
    let b = fs::read(p).unwrap();
    let at = b.windows(v.len()).position(|w| w == v).unwrap();
    let f = fs::OpenOptions::new().write(true).open(p).unwrap();
    f.write_at(&[v[100] ^ 0x40], (at + 100) as u64).unwrap();
    at
}

/// Page ranges of B-tree nodes each commit wrote (ended by the write of
/// its commit record, in the file's first pages), adjacent pages merged:
/// each range is one request to the disk when the commit syncs. Only
/// nodes `pick(tree id, level)` selects count (spec §6.2).
fn node_ranges_per_commit(
    log: &[dfcache::fuzzing::sim::Op],
    pick: impl Fn(u8, u8) -> bool,
) -> Vec<usize> {
    use dfcache::fuzzing::sim::Op;
    let mut out = Vec::new();
    let mut pages: Vec<u64> = Vec::new();
    for op in log {
        let Op::Write { off, data } = op else {
            continue;
        };
        if *off < 4 * 4096 {
            if !pages.is_empty() {
                pages.sort_unstable();
                pages.dedup();
                let breaks = pages.windows(2).filter(|w| w[1] != w[0] + 1).count();
                out.push(breaks + 1);
                pages.clear();
            }
            continue;
        }
        for (i, page) in data.chunks(4096).enumerate() {
            if page.starts_with(b"DFBT") && pick(page[16], page[17]) {
                pages.push(off / 4096 + i as u64);
            }
        }
    }
    out
}

#[test]
fn a_small_commit_writes_its_nodes_in_few_pieces() {
    // Every separate range a commit writes costs the disk a request when it
    // syncs. Ten puts of random keys change ten primary leaves, each where
    // its key falls; the nodes that change at the same places in every
    // commit (branches, LastUsed, the allocator's indexes) go side by side.
    use dfcache::fuzzing::sim::{Log, RecordingBackend};
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("runs.dfc");
    let log = Log::default();
    let b = RecordingBackend::open(&p, log.clone()).unwrap();
    // Spilling during the load scatters the nodes among the values, as a
    // long-lived cache's are: the holes commits free are then apart.
    let c = OpenOptions::new()
        .compression_level(None)
        .max_dirty_pages(64)
        .create_backend(Box::new(b), 0)
        .unwrap();
    let mut x = 7u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let v = vec![5u8; 4096];
    for _ in 0..20_000 {
        c.put(&next().to_be_bytes(), &v).unwrap();
    }
    c.flush().unwrap();
    log.lock().unwrap().clear();
    for _ in 0..100 {
        for _ in 0..10 {
            c.put(&next().to_be_bytes(), &v).unwrap();
        }
        c.flush().unwrap();
    }
    let log = log.lock().unwrap();
    // Branches, and every node of LastUsed (2), allocations (3) and free
    // chunks (4).
    let mut hot = node_ranges_per_commit(&log, |t, l| l > 0 || (2..=4).contains(&t));
    let mut all = node_ranges_per_commit(&log, |_, _| true);
    assert_eq!(hot.len(), 100);
    hot.sort_unstable();
    all.sort_unstable();
    assert!(hot[90] <= 2, "hot node ranges per commit, sorted: {hot:?}");
    assert!(all[50] <= 12, "node ranges per commit, sorted: {all:?}");
    // And the holes the commits leave are reused: the file holds the
    // values and little else.
    drop(c);
    let len = fs::metadata(&p).unwrap().len();
    let payload = 21_000 * 4096;
    assert!(
        len < payload * 106 / 100,
        "{len} bytes for {payload} of values"
    );
}

#[test]
fn commits_leave_no_hole_at_the_end_of_the_file() {
    // The growth step past the data is written (with zeros) by the commit
    // that grows the file: a later commit writing into a hole would make
    // its sync store the file system's block map too.
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("holes.dfc");
    let c = OpenOptions::new()
        .compression_level(None)
        .create(&p, 0)
        .unwrap();
    for round in 0..30u64 {
        for i in 0..10u64 {
            c.put(&(round * 10 + i).to_be_bytes(), &vec![round as u8; 4096])
                .unwrap();
        }
        c.flush().unwrap();
        let m = fs::metadata(&p).unwrap();
        assert!(
            m.blocks() * 512 >= m.len(),
            "after commit {round}: {} bytes in blocks, file of {}",
            m.blocks() * 512,
            m.len()
        );
    }
    for k in (0..300u64).step_by(37) {
        assert_eq!(
            c.get(&k.to_be_bytes()).unwrap().unwrap().to_vec(),
            vec![(k / 10) as u8; 4096]
        );
    }
}

#[test]
fn a_long_random_run_of_writes_through_spills_reads_back_exactly() {
    // With `max_dirty_pages(64)` the run spills hundreds of times, and the
    // writer takes most of the nodes it changes again back from the
    // decoded copies a spill keeps instead of reading their pages.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("spills.dfc");
    let c = OpenOptions::new()
        .compression_level(None)
        .sync(false)
        .max_dirty_pages(64)
        .create(&p, 0)
        .unwrap();
    let mut rng = dfcache::fuzzing::sim::Rng(0x2545_f491_4f6c_dd1du64);
    let mut next = move || rng.next_u64();
    let mut model = std::collections::HashMap::new();
    for _ in 0..30_000 {
        let r = next();
        // 12,000 keys: many puts replace, some remove.
        let key = (r % 12_000).to_be_bytes().to_vec();
        if (r >> 40) % 7 == 0 {
            assert_eq!(c.remove(&key).unwrap(), model.remove(&key).is_some());
        } else {
            // Inline values and values in extents of their own.
            let v = vec![(r >> 8) as u8; (r >> 16) as usize % 600];
            c.put(&key, &v).unwrap();
            model.insert(key, v);
        }
    }
    let check = |c: &DatasetFileCache| {
        assert_eq!(c.len(), model.len() as u64);
        for k in 0..12_000u64 {
            let k = k.to_be_bytes().to_vec();
            let got = c.get(&k).unwrap().map(|v| v.to_vec());
            assert_eq!(got.as_ref(), model.get(&k), "key {k:?}");
        }
    };
    // Before the commit: what readers see of the uncommitted run.
    check(&c);
    c.flush().unwrap();
    drop(c);
    let c = DatasetFileCache::open(&p, false).unwrap();
    assert!(c.verify().unwrap().is_ok());
    check(&c);
}
