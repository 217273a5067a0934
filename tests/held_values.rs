//! A [`Value`](dfcache::Value) keeps its bytes while it is held, whatever
//! the writer does meanwhile: the space of a freed value is reused only
//! after every reader that could see it has let go (spec §9).

mod common;

use common::bytes;
use dfcache::{Flushable, OpenOptions};

/// `clear()` quarantines the whole old file from the start of the data
/// area. A value freed earlier at that same offset, still waiting for an
/// older reader, used to share the quarantine's entry with it: when that
/// reader let go, the whole old file became reusable although a newer
/// reader still held a value in it, and new puts overwrote that value.
#[test]
fn values_held_across_a_clear_keep_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let c = OpenOptions::new()
        .sync(false)
        .compression_level(None)
        .create(dir.path().join("h.dfc"), 0)
        .unwrap();
    let v = |i: u64| bytes(4096, 1000 + i, false);
    // The first value put takes the first extent of the data area.
    for i in 0..3u64 {
        c.put(&i.to_be_bytes(), &v(i)).unwrap();
    }
    c.flush().unwrap();
    // Pins are per thread slot: take the two readers' values on two
    // threads, so that one can let go while the other holds on.
    let get_on_a_thread = |k: u64| {
        std::thread::scope(|s| {
            s.spawn(|| c.get(&k.to_be_bytes()).unwrap().unwrap())
                .join()
                .unwrap()
        })
    };
    let older = get_on_a_thread(1);
    // Frees the first extent; it waits for `older`.
    c.remove(&0u64.to_be_bytes()).unwrap();
    c.flush().unwrap();
    let newer = get_on_a_thread(2);
    c.clear().unwrap();
    drop(older);
    for i in 0..64u64 {
        c.put(&(100 + i).to_be_bytes(), &bytes(4096, 5000 + i, false))
            .unwrap();
    }
    c.flush().unwrap();
    assert!(newer[..] == v(2)[..], "a held value was overwritten");
}
