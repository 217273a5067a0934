//! Real process kills (harness = false: the test spawns itself). A child
//! process writes and flushes in a loop and prints the number of every
//! iteration whose flush returned; the parent kills it with SIGKILL at a
//! random moment, reopens the file and checks that it verifies clean and
//! holds exactly the state of the last acknowledged flush or of the one
//! after it (the child may have finished it without printing yet). The
//! next child continues from there. 40 kills by default,
//! `DFCACHE_KILL_LONG=1` for 300; `DFCACHE_SEED` to reproduce.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{long, sc_value, Rng};
use dfcache::{DatasetFileCache, Flushable, OpenOptions};

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// The changes of iteration `it` (deterministic).
fn changes(it: u64) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let mut r = Rng(it ^ 0xA11CE);
    let n = 2 + r.below(6);
    (0..n)
        .map(|_| {
            let key = r.below(64) as u32;
            let k = format!("k{key:02}").into_bytes();
            if r.chance(1, 6) {
                (k, None)
            } else {
                let len = match r.below(4) {
                    0 => 20 + r.below(200),
                    1 | 2 => 300 + r.below(6000),
                    _ => 20_000 + r.below(60_000),
                } as usize;
                (k, Some(sc_value(key, it as u32, len)))
            }
        })
        .collect()
}

fn apply(m: &mut Map, it: u64) {
    for (k, v) in changes(it) {
        match v {
            Some(v) => {
                m.insert(k, v);
            }
            None => {
                m.remove(&k);
            }
        }
    }
}

fn child(path: &str, start: u64, sync: bool) {
    let c = OpenOptions::new()
        .sync(sync)
        .open(path)
        .expect("child open");
    let out = std::io::stdout();
    for it in start.. {
        for (k, v) in changes(it) {
            match v {
                Some(v) => c.put(&k, &v).unwrap(),
                None => {
                    c.remove(&k).unwrap();
                }
            }
        }
        c.flush().unwrap();
        let mut o = out.lock();
        writeln!(o, "{it}").unwrap();
        o.flush().unwrap();
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

fn main() {
    if let Ok(path) = std::env::var("DFCACHE_KILL_CHILD") {
        let start = std::env::var("DFCACHE_KILL_START")
            .unwrap()
            .parse()
            .unwrap();
        let sync = std::env::var("DFCACHE_KILL_SYNC").unwrap() == "1";
        child(&path, start, sync);
        return;
    }
    // Ignore the test harness's arguments (`--nocapture`, filters).
    let seed = common::seed(0x4B11_0001);
    let kills: u64 = if long("DFCACHE_KILL_LONG") { 300 } else { 40 };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kill.dfc");
    drop(DatasetFileCache::create(&path, 0).unwrap());
    let exe = std::env::current_exe().unwrap();
    let mut r = Rng(seed);
    // The state the file holds: after iteration `next - 1` (none: empty).
    let mut next = 0u64;
    let mut state = Map::new();
    let (mut acked_kills, mut in_flight) = (0, 0);
    let t = Instant::now();
    for kill in 0..kills {
        let ctx = format!("seed {seed:#x}, kill {kill}");
        let sync = kill.is_multiple_of(2);
        let mut ch = Command::new(&exe)
            .env("DFCACHE_KILL_CHILD", &path)
            .env("DFCACHE_KILL_START", next.to_string())
            .env("DFCACHE_KILL_SYNC", if sync { "1" } else { "0" })
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = ch.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) => {
                        if tx.send(l).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
        let wait = match r.below(4) {
            0 => r.below(5),
            1 => 5 + r.below(30),
            _ => 30 + r.below(120),
        };
        std::thread::sleep(Duration::from_millis(wait));
        ch.kill().unwrap(); // SIGKILL
        let status = ch.wait().unwrap();
        reader.join().unwrap();
        assert!(
            !status.success(),
            "{ctx}: the child exited on its own: {status:?}"
        );
        let acks: Vec<u64> = rx.try_iter().map(|l| l.parse().unwrap()).collect();
        // The last acknowledged flush, as the state after it.
        let mut acked = state.clone();
        let mut last = next; // first iteration not yet acknowledged
        for &a in &acks {
            assert_eq!(a, last, "{ctx}: acknowledgements out of order");
            apply(&mut acked, a);
            last = a + 1;
        }
        if !acks.is_empty() {
            acked_kills += 1;
        }
        let mut one_more = acked.clone();
        apply(&mut one_more, last);
        let c = DatasetFileCache::open(&path, true)
            .unwrap_or_else(|e| panic!("{ctx}: reopen after the kill: {e}"));
        let rep = c.verify().unwrap();
        assert!(
            rep.is_ok(),
            "{ctx}: verify after the kill: {:?}",
            rep.problems
        );
        let got = read_all(&c);
        drop(c);
        if got == acked {
            next = last;
            state = acked;
        } else if got == one_more {
            next = last + 1;
            state = one_more;
            in_flight += 1;
        } else {
            panic!(
                "{ctx}: after acknowledgements {acks:?} the file holds {} entries, \
                 neither the last acknowledged flush ({}) nor the next ({})",
                got.len(),
                acked.len(),
                one_more.len()
            );
        }
    }
    assert!(acked_kills > 0, "no child ever acknowledged a flush");
    println!(
        "kill: {kills} SIGKILLs ({acked_kills} after acknowledged flushes, {in_flight} found the unacknowledged flush done), {next} flushes in all, {:.1?}",
        t.elapsed()
    );
}
