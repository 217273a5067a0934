//! The command line's access to the sibling features: per-entry metadata
//! (`put --meta`, `get --meta`, `ls --long`), values around the 1 MiB
//! streaming boundary, damaged streamed values, and progress bars on a
//! terminal.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use dfcache::{Flushable, OpenOptions};
use serde_json::Value as Json;

/// JSON documents that look alike (a dictionary pays on them).
fn doc(i: u32) -> Vec<u8> {
    format!(
        r#"{{"id": "{i:08x}-5454-4eef-829d-ed081135aefb", "product": {{"name": "ga_ls8c_ard_3", "platform": "landsat-8"}}, "properties": {{"datetime": "2021-{:02}-{:02}T00:{:02}:13Z", "eo:cloud_cover": {}.{}, "odc:region_code": "{:03}{:03}"}}, "measurements": ["nbart_blue", "nbart_green", "nbart_red", "oa_fmask"]}}"#,
        i % 12 + 1,
        i % 28 + 1,
        i % 60,
        i % 100,
        i % 7,
        i % 200,
        i % 150,
    )
    .into_bytes()
}

/// A new cache at `path` holding `doc/0 .. doc/n-1`, put by the library.
fn docs_cache(path: &Path, n: u32) -> TestResult {
    let c = OpenOptions::new().sync(false).create(path, 0)?;
    for i in 0..n {
        c.put(format!("doc/{i:04}").as_bytes(), &doc(i))?;
    }
    c.flush()?;
    Ok(())
}

fn create(cache: &Path, max: &str) {
    ok(dfc(&[
        OsStr::new("create"),
        p(cache),
        OsStr::new("--max-size"),
        OsStr::new(max),
    ]));
}

/// `ls --json` entries by key.
fn listing(cache: &Path) -> Vec<Json> {
    let j = ok(dfc(&[OsStr::new("ls"), p(cache), OsStr::new("--json")])).json();
    j["entries"].as_array().cloned().unwrap_or_default()
}

fn entry<'a>(entries: &'a [Json], key: &str) -> &'a Json {
    entries
        .iter()
        .find(|e| e["key"] == key)
        .unwrap_or_else(|| panic!("no {key} in the listing"))
}

/// put --meta / --meta-file, get --meta, and the metadata size in ls.
#[test]
fn metadata_in_and_out() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let cache = tmp.path().join("c.dfc");
    create(&cache, "64M");
    let meta = r#"{"crs": "EPSG:3577", "shape": [4000, 4000]}"#;
    ok(dfc_in(
        &[
            OsStr::new("put"),
            p(&cache),
            OsStr::new("tile"),
            OsStr::new("--meta"),
            OsStr::new(meta),
        ],
        b"the value",
    ));
    let r = ok(dfc(&[
        OsStr::new("get"),
        p(&cache),
        OsStr::new("tile"),
        OsStr::new("--meta"),
    ]));
    assert_eq!(r.stdout, meta.as_bytes());
    assert_eq!(
        ok(dfc(&[OsStr::new("get"), p(&cache), OsStr::new("tile")])).stdout,
        b"the value"
    );
    // A longer binary metadata file, and a streamed (chunked) value.
    let meta_file = tmp.path().join("meta.bin");
    let long_meta = noise(40_000, 3);
    fs::write(&meta_file, &long_meta)?;
    let big = noise(3 << 20, 4);
    ok(dfc_in(
        &[
            OsStr::new("put"),
            p(&cache),
            OsStr::new("big"),
            OsStr::new("-"),
            OsStr::new("--meta-file"),
            p(&meta_file),
        ],
        &big,
    ));
    let out = tmp.path().join("meta.out");
    ok(dfc(&[
        OsStr::new("get"),
        p(&cache),
        OsStr::new("big"),
        OsStr::new("--meta"),
        OsStr::new("-o"),
        p(&out),
    ]));
    assert!(fs::read(&out)? == long_meta);
    assert!(ok(dfc(&[OsStr::new("get"), p(&cache), OsStr::new("big")])).stdout == big);
    // ls shows the sizes: --long's META column and meta_bytes.
    let long = ok(dfc(&[OsStr::new("ls"), p(&cache), OsStr::new("--long")])).text();
    let header: Vec<&str> = long
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let col = header
        .iter()
        .position(|h| *h == "META")
        .ok_or("META column")?;
    for (key, len) in [("tile", meta.len()), ("big", long_meta.len())] {
        let row: Vec<&str> = long
            .lines()
            .find(|l| l.ends_with(&format!(" {key}")))
            .ok_or("listed")?
            .split_whitespace()
            .collect();
        assert_eq!(row[col], len.to_string(), "{long}");
    }
    let entries = listing(&cache);
    assert_eq!(entry(&entries, "tile")["meta_bytes"], meta.len());
    assert_eq!(entry(&entries, "big")["meta_bytes"], long_meta.len());
    assert_eq!(entry(&entries, "big")["chunked"], true);
    let info = ok(dfc(&[OsStr::new("info"), p(&cache), OsStr::new("--json")])).json();
    assert_eq!(info["meta_bytes"], meta.len() + long_meta.len());

    // No metadata: nothing printed, exit 0. A put without --meta drops it.
    ok(dfc_in(
        &[OsStr::new("put"), p(&cache), OsStr::new("tile")],
        b"new value",
    ));
    let r = ok(dfc(&[
        OsStr::new("get"),
        p(&cache),
        OsStr::new("tile"),
        OsStr::new("--meta"),
    ]));
    assert!(r.stdout.is_empty());
    // Absent key: exit 1, OUT not created.
    let none = tmp.path().join("none.out");
    let r = fails(
        dfc(&[
            OsStr::new("get"),
            p(&cache),
            OsStr::new("nope"),
            OsStr::new("--meta"),
            OsStr::new("-o"),
            p(&none),
        ]),
        1,
    );
    assert_eq!(r.stderr, "dfcache: key not found: nope\n");
    assert!(!none.exists());
    // Over 64 KiB: refused before anything is stored (exit 2); both flags
    // at once are a usage error.
    fs::write(&meta_file, vec![b'm'; (64 << 10) + 1])?;
    let r = fails(
        dfc_in(
            &[
                OsStr::new("put"),
                p(&cache),
                OsStr::new("k2"),
                OsStr::new("--meta-file"),
                p(&meta_file),
            ],
            b"v",
        ),
        2,
    );
    assert!(r.stderr.contains("64.0 KiB"), "{}", r.stderr);
    let too_long = "m".repeat((64 << 10) + 1);
    fails(
        dfc_in(
            &[
                OsStr::new("put"),
                p(&cache),
                OsStr::new("k2"),
                OsStr::new("--meta"),
                OsStr::new(&too_long),
            ],
            b"v",
        ),
        2,
    );
    fails(
        dfc_in(
            &[
                OsStr::new("put"),
                p(&cache),
                OsStr::new("k2"),
                OsStr::new("--meta"),
                OsStr::new("m"),
                OsStr::new("--meta-file"),
                p(&meta_file),
            ],
            b"v",
        ),
        2,
    );
    let missing_meta = tmp.path().join("no-such-meta");
    fails(
        dfc_in(
            &[
                OsStr::new("put"),
                p(&cache),
                OsStr::new("k2"),
                OsStr::new("--meta-file"),
                p(&missing_meta),
            ],
            b"v",
        ),
        2,
    );
    fails(dfc(&[OsStr::new("get"), p(&cache), OsStr::new("k2")]), 1);
    // Exactly 64 KiB is fine.
    fs::write(&meta_file, vec![b'm'; 64 << 10])?;
    ok(dfc_in(
        &[
            OsStr::new("put"),
            p(&cache),
            OsStr::new("k3"),
            OsStr::new("--meta-file"),
            p(&meta_file),
        ],
        b"v",
    ));
    let r = ok(dfc(&[
        OsStr::new("get"),
        p(&cache),
        OsStr::new("k3"),
        OsStr::new("--meta"),
    ]));
    assert_eq!(r.stdout.len(), 64 << 10);
    ok(dfc(&[OsStr::new("verify"), p(&cache)]));
    Ok(())
}

/// Values just under, at and over 1 MiB (whole vs streamed), from stdin and
/// from a file, round-trip exactly; the whole ones use the dictionary.
#[test]
fn values_around_the_streaming_boundary() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let cache = tmp.path().join("c.dfc");
    create(&cache, "0");
    for (i, len) in [
        0usize,
        1,
        (1 << 20) - 1,
        1 << 20,
        (1 << 20) + 1,
        (5 << 20) + 3,
    ]
    .into_iter()
    .enumerate()
    {
        let v = noise(len, i as u64 + 10);
        let key = format!("v{len}");
        ok(dfc_in(
            &[OsStr::new("put"), p(&cache), OsStr::new(&key)],
            &v,
        ));
        let file = tmp.path().join(&key);
        fs::write(&file, &v)?;
        let fkey = format!("f{len}");
        ok(dfc(&[
            OsStr::new("put"),
            p(&cache),
            OsStr::new(&fkey),
            p(&file),
        ]));
        for k in [&key, &fkey] {
            let r = ok(dfc(&[OsStr::new("get"), p(&cache), OsStr::new(k)]));
            assert!(r.stdout == v, "{k}: {} bytes back", r.stdout.len());
        }
        let out = tmp.path().join(format!("{key}.out"));
        ok(dfc(&[
            OsStr::new("get"),
            p(&cache),
            OsStr::new(&key),
            OsStr::new("-o"),
            p(&out),
        ]));
        assert!(fs::read(&out)? == v);
        let entries = listing(&cache);
        assert_eq!(entry(&entries, &key)["raw_bytes"], len);
        assert_eq!(entry(&entries, &key)["chunked"], len > 1 << 20, "{key}");
    }
    // import and export take the same paths.
    let src = tmp.path().join("src");
    fs::create_dir(&src)?;
    fs::write(src.join("small"), noise(1000, 1))?;
    fs::write(src.join("large"), noise((2 << 20) + 5, 2))?;
    ok(dfc(&[OsStr::new("import"), p(&cache), p(&src)]));
    let dest = tmp.path().join("dest");
    ok(dfc(&[
        OsStr::new("export"),
        p(&cache),
        p(&dest),
        OsStr::new("--prefix"),
        OsStr::new("l"),
    ]));
    assert!(fs::read(dest.join("large"))? == fs::read(src.join("large"))?);
    let dest2 = tmp.path().join("dest2");
    ok(dfc(&[
        OsStr::new("export"),
        p(&cache),
        p(&dest2),
        OsStr::new("--prefix"),
        OsStr::new("s"),
    ]));
    assert!(fs::read(dest2.join("small"))? == fs::read(src.join("small"))?);
    ok(dfc(&[OsStr::new("verify"), p(&cache)]));
    Ok(())
}

/// A value that outgrows a capped cache while it streams in from stdin is
/// refused (exit 2) and leaves nothing behind.
#[test]
fn a_stream_that_outgrows_the_cap_stores_nothing() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let cache = tmp.path().join("c.dfc");
    create(&cache, "4M");
    ok(dfc_in(
        &[OsStr::new("put"), p(&cache), OsStr::new("k")],
        b"old",
    ));
    let r = fails(
        dfc_in(
            &[OsStr::new("put"), p(&cache), OsStr::new("k")],
            &noise(9 << 20, 1),
        ),
        2,
    );
    assert!(
        r.stderr.contains("maximum size of 4.0 MiB") && r.stderr.ends_with("standard input\n"),
        "{}",
        r.stderr
    );
    assert_eq!(
        ok(dfc(&[OsStr::new("get"), p(&cache), OsStr::new("k")])).stdout,
        b"old"
    );
    assert!(fs::metadata(&cache)?.len() <= 4 << 20);
    ok(dfc(&[OsStr::new("verify"), p(&cache)]));
    Ok(())
}

/// `verify` and `compact` draw bars (entries and bytes) on a terminal, and
/// not with --quiet. `script` gives the command a pseudo-terminal.
#[test]
fn progress_bars_on_a_terminal() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let cache = tmp.path().join("c.dfc");
    docs_cache(&cache, 600)?;
    let under_tty = |cmd: String| -> Result<String, Box<dyn std::error::Error>> {
        let out = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("script (util-linux) runs: {e}"))?;
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let file = cache.display();
    let copy = tmp.path().join("copy.dfc");
    let shown = under_tty(format!("{BIN} verify {file}"))?;
    assert!(
        shown.contains("verifying [") && shown.contains("/600 entries"),
        "{shown:?}"
    );
    assert!(shown.contains("ok (commit"), "{shown:?}");
    let shown = under_tty(format!("{BIN} compact {file} {}", copy.display()))?;
    assert!(
        shown.contains("compacting [") && shown.contains("/600 entries"),
        "{shown:?}"
    );
    let quiet = under_tty(format!(
        "{BIN} --quiet verify {file} && {BIN} -q compact {file}"
    ))?;
    assert!(
        !quiet.contains("verifying") && !quiet.contains('\x1b'),
        "{quiet:?}"
    );
    Ok(())
}

/// `get` of a value that fails its checksum: exit 1, and a partial OUT is
/// removed.
#[test]
fn a_damaged_streamed_value_is_a_problem_found() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let cache = tmp.path().join("c.dfc");
    create(&cache, "0");
    let v = noise(3 << 20, 9);
    ok(dfc_in(
        &[OsStr::new("put"), p(&cache), OsStr::new("big")],
        &v,
    ));
    // Flip a byte in the middle of the value's frames (incompressible, so
    // stored as is: find it by content).
    let mut bytes = fs::read(&cache)?;
    let needle = &v[(2 << 20) + 100..(2 << 20) + 164];
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .ok_or("the third frame is in the file")?;
    bytes[at] ^= 0xff;
    fs::write(&cache, &bytes)?;
    let out = tmp.path().join("out");
    let r = fails(
        dfc(&[
            OsStr::new("get"),
            p(&cache),
            OsStr::new("big"),
            OsStr::new("-o"),
            p(&out),
        ]),
        1,
    );
    assert!(
        r.stderr.contains("checksum") && r.stderr.contains("big"),
        "{}",
        r.stderr
    );
    assert!(!out.exists(), "the partial output is removed");
    let r = fails(dfc(&[OsStr::new("get"), p(&cache), OsStr::new("big")]), 1);
    assert!(
        r.stdout.len() >= 2 << 20 && r.stdout.len() < v.len(),
        "the frames before it"
    );
    Ok(())
}
