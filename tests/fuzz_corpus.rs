//! Replays the committed fuzz corpus (fuzz/corpus/TARGET/*) through the same
//! entry points the fuzz targets use, so every CI run exercises it.

use std::path::Path;

fn replay(target: &str, f: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        let data = std::fs::read(&p).unwrap();
        let r = std::panic::catch_unwind(|| f(&data));
        assert!(r.is_ok(), "{target}: input {} fails", p.display());
        n += 1;
    }
    assert!(n > 0, "no corpus for {target}");
}

#[test]
fn headers() {
    replay("headers", dfcache::fuzzing::headers);
}

#[test]
fn node() {
    replay("node", dfcache::fuzzing::node);
}

#[test]
fn record() {
    replay("record", dfcache::fuzzing::record);
}

#[test]
fn open_file() {
    replay("open_file", dfcache::fuzzing::open_file);
}

#[test]
fn ops() {
    replay("ops", dfcache::fuzzing::ops);
}
