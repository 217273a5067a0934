//! Helpers shared by the reliability tests (crash, poison, corruption,
//! stress, kill). Each test binary uses a part of them.
#![allow(dead_code)]

pub mod cli;
pub mod format;

use std::path::PathBuf;

pub use dfcache::fuzzing::sim::Rng;

/// Whether the long mode of a test is asked for (`NAME=1`).
pub fn long(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v != "0" && !v.is_empty())
}

/// A seed: from `DFCACHE_SEED` when set (to reproduce a failure), else
/// `default`.
pub fn seed(default: u64) -> u64 {
    match std::env::var("DFCACHE_SEED") {
        Ok(s) => {
            let s = s.trim();
            let v = if let Some(h) = s.strip_prefix("0x") {
                u64::from_str_radix(h, 16)
            } else {
                s.parse()
            };
            v.expect("DFCACHE_SEED must be a number")
        }
        Err(_) => default,
    }
}

/// A scratch directory, in memory when the machine has /dev/shm.
pub fn scratch() -> tempfile::TempDir {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::tempdir_in(&shm) {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

/// `n` bytes of a value: random (incompressible) or repetitive
/// (compressible), from `seed`.
pub fn bytes(n: usize, seed: u64, compressible: bool) -> Vec<u8> {
    let mut r = Rng(seed);
    if compressible {
        let a = r.next_u64() as u8;
        (0..n).map(|i| a.wrapping_add((i / 13) as u8)).collect()
    } else {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&r.next_u64().to_le_bytes());
        }
        out.truncate(n);
        out
    }
}

/// A self-checking value: header (magic, key id, version, length, CRC of
/// the body) and a body derived from them. [`check_value`] recognises it.
pub fn sc_value(key: u32, version: u32, len: usize) -> Vec<u8> {
    let len = len.max(20);
    let body = bytes(
        len - 20,
        ((key as u64) << 32) | version as u64,
        version.is_multiple_of(3),
    );
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(b"SCV1");
    v.extend_from_slice(&key.to_le_bytes());
    v.extend_from_slice(&version.to_le_bytes());
    v.extend_from_slice(&(len as u32).to_le_bytes());
    v.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    v.extend_from_slice(&body);
    v
}

/// Checks a self-checking value; returns (key id, version).
pub fn check_value(v: &[u8]) -> Result<(u32, u32), String> {
    if v.len() < 20 || &v[..4] != b"SCV1" {
        return Err(format!("not a self-checking value ({} bytes)", v.len()));
    }
    let u = |i: usize| u32::from_le_bytes(v[i..i + 4].try_into().unwrap());
    let (key, version, len, crc) = (u(4), u(8), u(12) as usize, u(16));
    if len != v.len() {
        return Err(format!("length {} but header says {len}", v.len()));
    }
    if crc32fast::hash(&v[20..]) != crc {
        return Err(format!("body checksum fails (key {key} version {version})"));
    }
    if sc_value(key, version, len) != v {
        return Err(format!(
            "body is not the one of key {key} version {version}"
        ));
    }
    Ok((key, version))
}
