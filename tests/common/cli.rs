//! What the command-line tests share: running the built `dfcache` binary
//! and checking how it ended.

// Each test binary uses some of these.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::SystemTime;

use serde_json::Value as Json;

pub const BIN: &str = env!("CARGO_BIN_EXE_dfcache");

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// What a run of the binary did.
pub struct Run {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn json(&self) -> Json {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

pub fn finish(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `dfcache ARGS` with no input.
pub fn dfc<S: AsRef<OsStr>>(args: &[S]) -> Run {
    dfc_in(args, b"")
}

/// Runs `dfcache ARGS` with `input` on stdin.
pub fn dfc_in<S: AsRef<OsStr>>(args: &[S], input: &[u8]) -> Run {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the dfcache binary runs");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = input.to_vec();
    // Written from a thread: the child may stop reading (or never start).
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("dfcache finishes");
    let _ = writer.join();
    finish(out)
}

/// Asserts a successful run.
#[track_caller]
pub fn ok(r: Run) -> Run {
    assert_eq!(r.code, 0, "stderr: {}\nstdout: {}", r.stderr, r.text());
    r
}

/// Asserts a failure with exit `code` and a one-line `dfcache: ...` error.
#[track_caller]
pub fn fails(r: Run, code: i32) -> Run {
    assert_eq!(r.code, code, "stderr: {}\nstdout: {}", r.stderr, r.text());
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one error line, got: {:?}", r.stderr);
    assert!(lines[0].starts_with("dfcache: "), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    r
}

pub fn p(path: &Path) -> &OsStr {
    path.as_os_str()
}

/// Deterministic incompressible bytes.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The file's bytes and modification time.
pub fn snapshot(path: &Path) -> (Vec<u8>, SystemTime) {
    (
        fs::read(path).unwrap(),
        fs::metadata(path).unwrap().modified().unwrap(),
    )
}

#[cfg(unix)]
pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}
