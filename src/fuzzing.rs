//! Entry points for the fuzz targets in `fuzz/` and for the corpus replay
//! test, so both run exactly the same code. Not part of the stable API.
//!
//! Each function feeds arbitrary bytes to one decoder (or to the whole
//! open-and-read path) and panics only if the code under test misbehaves:
//! the decoders themselves must never panic, whatever the input.

use std::ops::Bound;

use crate::btree::node::{NodeView, NODE_SIZE};
use crate::btree::TreeId;
use crate::cache::record::Record;
use crate::header::Headers;
use crate::storage::commit_record::CommitRecord;
use crate::{DatasetFileCache, Error};

/// Decodes the first 96 bytes as headers and the rest as commit records.
pub fn headers(data: &[u8]) {
    let _ = Headers::decode(data);
    if let Ok(r) = CommitRecord::decode(data, 0) {
        // A decoded record re-encodes to the same bytes.
        let b = r.encode();
        assert_eq!(&data[..b.len()], &b[..], "record does not round-trip");
    }
    if data.len() > 96 {
        let _ = CommitRecord::decode(&data[96..], 96);
    }
}

/// Parses a page as a node of every tree and level, and uses it.
pub fn node(data: &[u8]) {
    let mut page = [0u8; NODE_SIZE];
    let n = data.len().min(NODE_SIZE);
    page[..n].copy_from_slice(&data[..n]);
    for tree in TreeId::ALL {
        for level in 0..3 {
            let Ok(v) = NodeView::parse(&page, 0, tree, level) else {
                continue;
            };
            let checked = v.validate().is_ok();
            let _ = v.search(b"key");
            let _ = v.search(&data[..data.len().min(40)]);
            for i in 0..=v.len() {
                let _ = v.key(i);
                let _ = v.val(i);
                let _ = v.child(i);
            }
            if let (true, Ok(node)) = (checked, v.to_node()) {
                // A valid node re-encodes to a valid node with the same keys.
                if let Ok(b) = node.encode(tree, 1) {
                    let w = NodeView::parse(&b, 0, tree, level).expect("re-encoded node parses");
                    w.validate().expect("re-encoded node validates");
                    assert_eq!(w.len(), v.len());
                }
            }
        }
    }
}

/// Decodes an entry record.
pub fn record(data: &[u8]) {
    if let Ok(r) = Record::decode(data) {
        let _ = r.inline(data);
        let _ = r.meta_inline(data);
        let b = r.encode(r.inline(data), r.meta_inline(data).unwrap_or(&[]));
        let again = Record::decode(&b).expect("re-encoded record decodes");
        assert_eq!(again.raw_len, r.raw_len);
        assert_eq!(again.tick, r.tick);
    }
}

/// Treats `data` as a whole cache file: opens it read-only, reads every key
/// and value, and opens it read-write. Every outcome must be a value or a
/// typed error.
pub fn open_file(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let path = dir.path().join("fuzz.dfc");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let check = |e: &Error| {
        assert!(
            !matches!(e, Error::Poisoned { .. }),
            "a read-only handle cannot be poisoned: {e}"
        );
    };
    if let Ok(c) = DatasetFileCache::open(&path, true) {
        read_all(&c, check);
    }
    if let Ok(c) = DatasetFileCache::open(&path, false) {
        read_all(&c, |_| {});
        // Writing to a damaged file fails cleanly or works.
        let _ = c.put(b"fuzz", b"value");
        let _ = c.remove(b"fuzz");
    }
}

fn read_all(c: &DatasetFileCache, check: impl Fn(&Error)) {
    let _ = c.len();
    let keys = match c.keys() {
        Ok(k) => k,
        Err(e) => return check(&e),
    };
    for k in keys.take(10_000) {
        match k {
            Ok(k) => match c.get(&k) {
                Ok(_) => {}
                Err(e) => check(&e),
            },
            Err(e) => return check(&e),
        }
    }
    let _ = c.contains_key(b"x");
    let view = c.view.load();
    let _ = view
        .snap
        .reader(TreeId::LAST_USED)
        .scan(Bound::Unbounded, |_, _| Ok(true));
}
