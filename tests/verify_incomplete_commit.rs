//! Regression test for a bug the reliability tests found (issue 4):
//! `verify()` reported a problem for the state a crash during a one-phase
//! commit legitimately leaves.

mod common;

use common::format;
use dfcache::{DatasetFileCache, Flushable};

/// `verify()` reports a problem for the state a crash during a
/// one-phase commit leaves (spec §7.4: the record is written, one of its
/// ranges is torn, so the file opens at the commit before). That state is
/// sound; verify should at most note the incomplete record.
#[test]
fn verify_accepts_an_incomplete_one_phase_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b1.dfc");
    let c = DatasetFileCache::create(&path, 0).unwrap();
    c.put(b"a", &vec![1u8; 5000]).unwrap();
    c.flush().unwrap(); // commit 2 (grows the file: two-phase)
    c.put(b"b", &vec![2u8; 3000]).unwrap();
    c.flush().unwrap(); // commit 3: one-phase
    drop(c);
    let mut img = std::fs::read(&path).unwrap();
    let (rec, _) = format::chosen(&img).unwrap();
    assert!(rec.one_phase && rec.seq == 3, "commit 3 is one-phase");
    // Tear the first range commit 3 wrote, as a power loss may.
    let (off, _, _) = rec.checks[0];
    img[off as usize] ^= 0xFF;
    std::fs::write(&path, &img).unwrap();
    let c = DatasetFileCache::open(&path, true).unwrap();
    assert_eq!(c.get(b"a").unwrap().unwrap().to_vec(), vec![1u8; 5000]);
    assert!(c.get(b"b").unwrap().is_none(), "opened at commit 2");
    let rep = c.verify().unwrap();
    assert_eq!(rep.commit, 2);
    assert!(rep.is_ok(), "verify: {:?}", rep.problems);
}
