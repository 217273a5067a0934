//! One writer process and two read-only reader processes on the same file
//! (harness = false: the test spawns itself). The writer rewrites every key
//! each round (all values of round g carry g) and flushes. Readers open the
//! file read-only again and again while the writer runs and read every
//! key twice, a little apart. Each read must be a well-formed value of its
//! key, or the open or read fails with a typed error. Each get sees the
//! newest commit when it runs (spec §9.1), so within a pass the rounds never
//! go back, and a handle never goes back from one pass to the next. Never
//! wrong data, never a panic or a signal. The readers report what they saw.
//! `DFCACHE_SHARED_SECS` sets the duration (default 3).

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{check_value, sc_value, Rng};
use dfcache::{DatasetFileCache, Error, Flushable, OpenOptions};

const KEYS: u32 = 48;

fn key(k: u32) -> Vec<u8> {
    format!("key-{k:02}").into_bytes()
}

fn len(k: u32, g: u32) -> usize {
    let mut r = Rng(((k as u64) << 32) | g as u64);
    let n = match r.below(3) {
        0 => 40 + r.below(200),
        1 => 300 + r.below(5000),
        _ => 8000 + r.below(20_000),
    };
    n as usize
}

fn writer(path: &str, secs: u64) {
    let c = OpenOptions::new()
        .sync(false)
        .open(path)
        .expect("writer open");
    let until = Instant::now() + Duration::from_secs(secs);
    let mut g = 1;
    while Instant::now() < until {
        for k in 0..KEYS {
            c.put(&key(k), &sc_value(k, g, len(k, g))).unwrap();
        }
        c.flush().unwrap();
        g += 1;
    }
    println!("rounds={}", g - 1);
}

#[derive(Default, Debug)]
struct Seen {
    opens: u64,
    open_errors: u64,
    consistent_passes: u64,
    passes_with_read_errors: u64,
    read_errors: u64,
    empty_states: u64,
    second_pass_newer: u64,
    passes_across_commits: u64,
    rounds: BTreeSet<u32>,
    errors: BTreeSet<String>,
}

fn typed(e: &Error, who: &str) -> String {
    match e {
        Error::Corrupt { what, .. } => format!("Corrupt({what})"),
        Error::NotACache { .. } => "NotACache".into(),
        Error::Io { op, .. } => format!("Io({op})"),
        other => panic!("{who}: unexpected error kind: {other:?}"),
    }
}

/// One pass over every key: the round of the last value read, `None` if
/// the state stayed empty; errors are counted. Panics on wrong data and on
/// a get that sees an older commit than the get before it.
fn pass(c: &DatasetFileCache, s: &mut Seen, who: &str) -> Option<u32> {
    let mut rounds = BTreeSet::new();
    let mut last: Option<u32> = None;
    let mut errors = 0;
    let mut present = 0;
    for k in 0..KEYS {
        match c.get(&key(k)) {
            Ok(Some(v)) => {
                let (id, g) =
                    check_value(&v).unwrap_or_else(|e| panic!("{who}: key {k}: wrong data: {e}"));
                assert_eq!(id, k, "{who}: key {k} holds the value of key {id}");
                if let Some(p) = last {
                    assert!(g >= p, "{who}: key {k} is of round {g} after round {p}");
                }
                last = Some(g);
                rounds.insert(g);
                present += 1;
            }
            Ok(None) => {
                // Every flushed state holds every key: absent only before
                // the first flush, so never after a value was seen.
                assert!(
                    last.is_none(),
                    "{who}: key {k} absent after round {last:?} was seen"
                );
            }
            Err(e) => {
                s.errors.insert(typed(&e, who));
                errors += 1;
            }
        }
    }
    s.read_errors += errors;
    if errors > 0 {
        s.passes_with_read_errors += 1;
        return last;
    }
    s.consistent_passes += 1;
    if rounds.len() > 1 {
        s.passes_across_commits += 1;
    }
    if present == 0 {
        s.empty_states += 1;
    }
    s.rounds.extend(rounds);
    last
}

fn reader(path: &str, secs: u64, who: &str) {
    let until = Instant::now() + Duration::from_secs(secs);
    let mut s = Seen::default();
    while Instant::now() < until {
        s.opens += 1;
        let c = match DatasetFileCache::open(path, true) {
            Ok(c) => c,
            Err(e) => {
                s.errors.insert(typed(&e, who));
                s.open_errors += 1;
                continue;
            }
        };
        let first = pass(&c, &mut s, who);
        std::thread::sleep(Duration::from_millis(3));
        let second = pass(&c, &mut s, who);
        if let (Some(a), Some(b)) = (first, second) {
            assert!(b >= a, "{who}: a handle went back from round {a} to {b}");
            if b > a {
                s.second_pass_newer += 1;
            }
        }
    }
    println!(
        "{who}: opens={} open_errors={} consistent_passes={} passes_with_read_errors={} read_errors={} empty={} second_pass_newer={} passes_across_commits={} rounds_seen={} errors={:?}",
        s.opens,
        s.open_errors,
        s.consistent_passes,
        s.passes_with_read_errors,
        s.read_errors,
        s.empty_states,
        s.second_pass_newer,
        s.passes_across_commits,
        s.rounds.len(),
        s.errors
    );
    // A sound file read while a writer commits: opens and reads retry
    // instead of failing (spec §9.1).
    assert!(
        s.open_errors == 0 && s.read_errors == 0,
        "{who}: errors on a sound file: {:?}",
        s.errors
    );
    assert!(s.consistent_passes > 0, "{who}: never read");
}

fn main() {
    let secs: u64 = std::env::var("DFCACHE_SHARED_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    if let Ok(role) = std::env::var("DFCACHE_SHARED_ROLE") {
        let path = std::env::var("DFCACHE_SHARED_PATH").unwrap();
        if role == "writer" {
            writer(&path, secs);
        } else {
            reader(&path, secs, &role);
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.dfc");
    drop(DatasetFileCache::create(&path, 0).unwrap());
    let exe = std::env::current_exe().unwrap();
    let spawn = |role: &str| {
        Command::new(&exe)
            .env("DFCACHE_SHARED_ROLE", role)
            .env("DFCACHE_SHARED_PATH", &path)
            .env("DFCACHE_SHARED_SECS", secs.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let children = vec![spawn("writer"), spawn("reader-1"), spawn("reader-2")];
    let mut failed = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        print!("shared_writer: {text}");
        if !out.status.success() {
            failed.push(format!(
                "{:?}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(failed.is_empty(), "a process failed: {failed:#?}");
    // The writer's last flush is there.
    let c = DatasetFileCache::open(&path, true).unwrap();
    let rep = c.verify().unwrap();
    assert!(rep.is_ok(), "verify: {:?}", rep.problems);
    assert_eq!(c.len(), KEYS as u64);
}
