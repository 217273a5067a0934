//! `dfcache put` and `get` stream a value larger than 64 MiB in constant
//! memory: the peak resident set of every `dfcache` process this test runs
//! stays far below the value's size.
//!
//! Its own test binary, with one test: `getrusage(RUSAGE_CHILDREN)` gives
//! the largest peak RSS of all the children a process has waited for.

mod common;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::process::{Command, Stdio};

use common::cli::*;
use nix::sys::resource::{getrusage, UsageWho};

/// The value: 80 MiB, more than 64 MiB, half incompressible.
const LEN: u64 = 80 << 20;
/// The most any dfcache process may hold resident (KiB): a few frames of
/// 1 MiB, buffers, the binary.
const MAX_RSS_KIB: i64 = 32 << 10;

/// Byte `i` of the value: mixes stretches that compress with ones that do
/// not (every 1 MiB frame is compressed or stored raw on its own).
fn byte_at(i: u64) -> u8 {
    if (i >> 20).is_multiple_of(2) {
        (i % 251) as u8
    } else {
        let mut z = (i / 8).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z >> ((i % 8) * 8)) as u8
    }
}

/// Writes the value to `w` in 64 KiB pieces; returns its CRC-32.
fn write_value(w: &mut dyn Write) -> std::io::Result<u32> {
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut at = 0u64;
    while at < LEN {
        let n = (LEN - at).min(buf.len() as u64) as usize;
        for (j, b) in buf[..n].iter_mut().enumerate() {
            *b = byte_at(at + j as u64);
        }
        w.write_all(&buf[..n])?;
        h.update(&buf[..n]);
        at += n as u64;
    }
    Ok(h.finalize())
}

/// (length, CRC-32) of all `r` yields.
fn digest(r: &mut dyn Read) -> std::io::Result<(u64, u32)> {
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut len = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok((len, h.finalize()));
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
}

/// How a run ended: exit code, (length, CRC-32) of stdout, stderr.
type Ended = (i32, (u64, u32), String);

/// Runs `dfcache ARGS`, feeding the value on stdin (when `feed`) and
/// digesting stdout; returns (exit code, stdout digest, stderr).
fn run(args: &[&OsStr], feed: bool) -> Result<Ended, Box<dyn std::error::Error>> {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(if feed { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let feeder = child
        .stdin
        .take()
        .map(|mut stdin| std::thread::spawn(move || write_value(&mut stdin)));
    let mut stdout = child.stdout.take().ok_or("stdout")?;
    let mut stderr = child.stderr.take().ok_or("stderr")?;
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let got = digest(&mut stdout)?;
    let status = child.wait()?;
    if let Some(f) = feeder {
        f.join().map_err(|_| "feeder panicked")??;
    }
    let errors = errors.join().map_err(|_| "stderr reader panicked")?;
    Ok((status.code().unwrap_or(-1), got, errors))
}

#[test]
fn put_and_get_stream_a_large_value_in_constant_memory() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let cache = tmp.path().join("c.dfc");
    let want_crc = write_value(&mut std::io::sink())?;
    let (code, _, err) = run(
        &[
            OsStr::new("create"),
            p(&cache),
            OsStr::new("--max-size"),
            OsStr::new("1G"),
        ],
        false,
    )?;
    assert_eq!(code, 0, "{err}");

    // put from stdin, get to stdout.
    let (code, _, err) = run(&[OsStr::new("put"), p(&cache), OsStr::new("big")], true)?;
    assert_eq!(code, 0, "{err}");
    let (code, got, err) = run(&[OsStr::new("get"), p(&cache), OsStr::new("big")], false)?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(got, (LEN, want_crc), "get returns the value");

    // put from a file, get to a file.
    let src = tmp.path().join("value");
    write_value(&mut std::io::BufWriter::new(std::fs::File::create(&src)?))?;
    // With metadata: stored in the same change as the streamed value.
    let meta = r#"{"source": "value"}"#;
    let (code, _, err) = run(
        &[
            OsStr::new("put"),
            p(&cache),
            OsStr::new("big2"),
            p(&src),
            OsStr::new("--meta"),
            OsStr::new(meta),
        ],
        false,
    )?;
    assert_eq!(code, 0, "{err}");
    let (code, got, err) = run(
        &[
            OsStr::new("get"),
            p(&cache),
            OsStr::new("big2"),
            OsStr::new("--meta"),
        ],
        false,
    )?;
    assert_eq!(code, 0, "{err}");
    let with_newline = format!("{meta}\n");
    assert!(
        got == (meta.len() as u64, crc32fast::hash(meta.as_bytes()))
            || got
                == (
                    with_newline.len() as u64,
                    crc32fast::hash(with_newline.as_bytes())
                ),
        "get --meta printed {got:?}"
    );
    let out = tmp.path().join("out");
    let (code, _, err) = run(
        &[
            OsStr::new("get"),
            p(&cache),
            OsStr::new("big2"),
            OsStr::new("-o"),
            p(&out),
        ],
        false,
    )?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(digest(&mut std::fs::File::open(&out)?)?, (LEN, want_crc));

    let peak = getrusage(UsageWho::RUSAGE_CHILDREN)?.max_rss(); // KiB on Linux
    eprintln!("streamed {LEN} bytes in and out twice; largest dfcache peak RSS {peak} KiB");
    assert!(peak > 0, "getrusage reports the children");
    assert!(
        peak < MAX_RSS_KIB,
        "a dfcache process peaked at {peak} KiB for a {} MiB value",
        LEN >> 20
    );
    Ok(())
}
