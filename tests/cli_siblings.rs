//! The command line's access to the sibling features: trained dictionaries
//! (`train-dict`, `dicts`, `compact --recompress`), groups (`groups`,
//! `group`, `put-group`, `rm-group`), per-entry metadata (`put --meta`,
//! `get --meta`, `ls --long`), values around the 1 MiB streaming boundary,
//! and progress bars on a terminal.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use common::cli::*;
use dfcache::{DatasetFileCache, Flushable, OpenOptions};
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

/// train-dict makes a dictionary the default; a put then uses it (ls shows
/// the id); compact --recompress re-encodes values stored before it and
/// shrinks the file; the values stay the same.
#[test]
fn train_dict_put_ls_and_recompress() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let cache = tmp.path().join("c.dfc");
    docs_cache(&cache, 400)?;
    fs::write(tmp.path().join("new.json"), doc(9999))?;
    let before = listing(&cache);
    assert!(before.iter().all(|e| e["dictionary"] == 0));

    let t = ok(dfc(&[
        OsStr::new("train-dict"),
        p(&cache),
        OsStr::new("--json"),
        OsStr::new("--size"),
        OsStr::new("4K"),
    ]))
    .json();
    assert_eq!(t["id"], 1);
    assert_eq!(
        (t["samples"].as_u64(), t["candidates"].as_u64()),
        (Some(400), Some(400))
    );
    let size = t["size"].as_u64().ok_or("size")?;
    assert!(size > 0 && size <= 4096, "{t}");
    let sample_bytes: u64 = (0..400).map(|i| doc(i).len() as u64).sum();
    assert_eq!(t["sample_bytes"], sample_bytes);
    assert_eq!(
        (t["prefix"].as_str(), t["prefix_hex"].as_str()),
        (Some(""), Some(""))
    );
    // Sampling did not count as a use: the LRU order is as it was.
    let after_training = listing(&cache);
    for (a, b) in before.iter().zip(&after_training) {
        assert_eq!(a["last_use"], b["last_use"], "{}", a["key"]);
    }

    // A new value uses it: the long listing shows the id.
    ok(dfc(&[
        OsStr::new("put"),
        p(&cache),
        OsStr::new("doc/new"),
        p(&tmp.path().join("new.json")),
    ]));
    let long = ok(dfc(&[
        OsStr::new("ls"),
        p(&cache),
        OsStr::new("--long"),
        OsStr::new("--prefix"),
        OsStr::new("doc/"),
    ]))
    .text();
    let line = long
        .lines()
        .find(|l| l.ends_with(" doc/new"))
        .ok_or("doc/new listed")?;
    assert!(line.contains("zstd+dict1"), "{line}");
    let old = long
        .lines()
        .find(|l| l.ends_with(" doc/0001"))
        .ok_or("doc/0001")?;
    assert!(
        !old.contains("+dict"),
        "values stored before keep theirs: {old}"
    );
    let entries = listing(&cache);
    assert_eq!(entry(&entries, "doc/new")["dictionary"], 1);
    let fresh = entry(&entries, "doc/new")["stored_bytes"]
        .as_u64()
        .ok_or("stored")?;
    let stale = entry(&entries, "doc/0001")["stored_bytes"]
        .as_u64()
        .ok_or("stored")?;
    assert!(fresh * 2 < stale, "the dictionary pays: {fresh} vs {stale}");

    // dicts: the dictionary, its use and where it is the default.
    let d = ok(dfc(&[OsStr::new("dicts"), p(&cache), OsStr::new("--json")])).json();
    let list = d["dictionaries"].as_array().ok_or("dictionaries")?;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], 1);
    assert_eq!(list[0]["size"], size);
    assert_eq!(list[0]["values"], 1);
    assert_eq!(list[0]["default_for"][0]["prefix"], "");
    let text = ok(dfc(&[OsStr::new("dicts"), p(&cache)])).text();
    assert!(
        text.lines()
            .nth(1)
            .is_some_and(|l| l.trim_start().starts_with("1 ") && l.ends_with(" *")),
        "{text}"
    );

    // Recompression: smaller than a plain compaction, same values.
    let plain = tmp.path().join("plain.dfc");
    let re = tmp.path().join("re.dfc");
    ok(dfc(&[OsStr::new("compact"), p(&cache), p(&plain)]));
    let r = ok(dfc(&[
        OsStr::new("compact"),
        p(&cache),
        p(&re),
        OsStr::new("--recompress"),
    ]));
    assert!(r.text().contains("recompressed"), "{}", r.text());
    let (plain_len, re_len) = (fs::metadata(&plain)?.len(), fs::metadata(&re)?.len());
    assert!(
        re_len < plain_len,
        "recompressed {re_len} < plain {plain_len}"
    );
    for f in [&plain, &re] {
        ok(dfc(&[OsStr::new("verify"), p(f)]));
        let c = DatasetFileCache::open(f, true)?;
        for i in 0..400u32 {
            let v = c
                .get(format!("doc/{i:04}").as_bytes())?
                .ok_or("value lost")?;
            assert!(*v == doc(i)[..]);
        }
    }
    // In place: every old value now uses the dictionary.
    let len_before = fs::metadata(&cache)?.len();
    ok(dfc(&[
        OsStr::new("compact"),
        p(&cache),
        OsStr::new("--recompress"),
    ]));
    assert!(fs::metadata(&cache)?.len() < len_before);
    let entries = listing(&cache);
    assert!(
        entries.iter().all(|e| e["dictionary"] == 1),
        "all recompressed"
    );
    let d = ok(dfc(&[OsStr::new("dicts"), p(&cache), OsStr::new("--json")])).json();
    assert_eq!(d["dictionaries"][0]["values"], 401);
    ok(dfc(&[OsStr::new("verify"), p(&cache)]));
    Ok(())
}

/// `--prefix`: the sample comes from keys under P and the dictionary is
/// the default only for them.
#[test]
fn train_dict_for_a_prefix() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let cache = tmp.path().join("c.dfc");
    docs_cache(&cache, 100)?;
    {
        let c = DatasetFileCache::open(&cache, false)?;
        for i in 0..30u32 {
            c.put(format!("other/{i}").as_bytes(), &noise(2000, i as u64))?;
        }
        c.put(b"big/one", &noise(3 << 20, 1))?; // never a sample: over 1 MiB
    }
    let r = ok(dfc(&[
        OsStr::new("train-dict"),
        p(&cache),
        OsStr::new("--prefix"),
        OsStr::new("doc/"),
    ]));
    let text = r.text();
    assert!(text.starts_with("dictionary 1: "), "{text}");
    assert!(text.contains("100 of 100 values under 'doc/'"), "{text}");
    let j = ok(dfc(&[OsStr::new("dicts"), p(&cache), OsStr::new("--json")])).json();
    assert_eq!(j["dictionaries"][0]["default_for"][0]["prefix"], "doc/");
    assert_eq!(
        j["dictionaries"][0]["default_for"][0]["prefix_hex"],
        "646f632f"
    );
    // A new doc uses it, a new other value does not.
    ok(dfc_in(
        &[OsStr::new("put"), p(&cache), OsStr::new("doc/x")],
        &doc(5),
    ));
    ok(dfc_in(
        &[OsStr::new("put"), p(&cache), OsStr::new("plain/x")],
        &doc(5),
    ));
    let entries = listing(&cache);
    assert_eq!(entry(&entries, "doc/x")["dictionary"], 1);
    assert_eq!(entry(&entries, "plain/x")["dictionary"], 0);
    // Candidates: only values of 1 byte to 1 MiB (the 3 MiB one is not).
    let j = ok(dfc(&[
        OsStr::new("train-dict"),
        p(&cache),
        OsStr::new("--json"),
    ]))
    .json();
    assert_eq!(j["id"], 2);
    assert_eq!(j["candidates"], 100 + 30 + 2);
    Ok(())
}

/// Too few samples: exit 1 with one line, no dictionary stored; bad sizes
/// exit 2. Ten one-byte values would crash zstd's trainer: refused first.
#[test]
fn train_dict_refuses_too_few_samples() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let cache = tmp.path().join("c.dfc");
    create(&cache, "0");
    let r = fails(dfc(&[OsStr::new("train-dict"), p(&cache)]), 1);
    assert!(r.stderr.contains("too few samples"), "{}", r.stderr);
    assert!(r.stderr.trim_end().ends_with(&cache.display().to_string()));
    for i in 0..10 {
        ok(dfc_in(
            &[OsStr::new("put"), p(&cache), OsStr::new(&format!("k{i}"))],
            b"x",
        ));
    }
    let r = fails(dfc(&[OsStr::new("train-dict"), p(&cache)]), 1);
    assert!(r.stderr.contains("10 values"), "{}", r.stderr);
    // Values exist, but none under the prefix.
    docs_cache(&cache, 50)?;
    let r = fails(
        dfc(&[
            OsStr::new("train-dict"),
            p(&cache),
            OsStr::new("--prefix"),
            OsStr::new("nothing/"),
        ]),
        1,
    );
    assert!(
        r.stderr.contains("0 values") && r.stderr.contains("nothing/"),
        "{}",
        r.stderr
    );
    for bad in ["100", "2M", "0", "big"] {
        let r = fails(
            dfc(&[
                OsStr::new("train-dict"),
                p(&cache),
                OsStr::new("--size"),
                OsStr::new(bad),
            ]),
            2,
        );
        assert!(r.stderr.contains("--size"), "{}", r.stderr);
    }
    let d = ok(dfc(&[OsStr::new("dicts"), p(&cache), OsStr::new("--json")])).json();
    assert_eq!(d["dictionaries"].as_array().map(Vec::len), Some(0));
    // An empty listing still has its header.
    let text = ok(dfc(&[OsStr::new("dicts"), p(&cache)])).text();
    assert_eq!(text.lines().count(), 1, "{text}");
    Ok(())
}

/// put-group (arguments and stdin), groups, group (text, --missing,
/// --json), rm-group; exit codes.
#[test]
fn groups_list_and_show_members() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let cache = tmp.path().join("c.dfc");
    create(&cache, "0");
    for k in ["12/1", "12/2", "12/3", "13/1"] {
        ok(dfc_in(
            &[OsStr::new("put"), p(&cache), OsStr::new(k)],
            k.as_bytes(),
        ));
    }
    let r = ok(dfc(&[
        OsStr::new("put-group"),
        p(&cache),
        OsStr::new("albers/z12"),
        OsStr::new("12/3"),
        OsStr::new("12/1"),
        OsStr::new("12/gone"),
    ]));
    assert_eq!(r.text(), "group albers/z12: 3 keys (1 not cached)\n");
    // From stdin: a listing becomes a group.
    let listed = ok(dfc(&[
        OsStr::new("ls"),
        p(&cache),
        OsStr::new("--prefix"),
        OsStr::new("12/"),
    ]));
    ok(dfc_in(
        &[OsStr::new("put-group"), p(&cache), OsStr::new("all-12")],
        &listed.stdout,
    ));
    ok(dfc_in(
        &[OsStr::new("put-group"), p(&cache), OsStr::new("albers/z13")],
        b"13/1\n\n",
    ));

    let groups = ok(dfc(&[OsStr::new("groups"), p(&cache)])).text();
    let rows: Vec<Vec<&str>> = groups
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        vec![
            vec!["3", "albers/z12"],
            vec!["1", "albers/z13"],
            vec!["3", "all-12"]
        ]
    );
    let j = ok(dfc(&[
        OsStr::new("groups"),
        p(&cache),
        OsStr::new("--prefix"),
        OsStr::new("albers/"),
        OsStr::new("--json"),
    ]))
    .json();
    let g = j["groups"].as_array().ok_or("groups")?;
    assert_eq!(g.len(), 2);
    assert_eq!(
        (&g[0]["name"], &g[0]["members"]),
        (&Json::from("albers/z12"), &Json::from(3))
    );
    assert_eq!(g[1]["name_hex"], "616c626572732f7a3133");

    // group: members in group order, missing ones noted on stderr.
    let r = ok(dfc(&[
        OsStr::new("group"),
        p(&cache),
        OsStr::new("albers/z12"),
    ]));
    assert_eq!(r.text(), "12/3\n12/1\n12/gone\n");
    assert!(
        r.stderr.contains("1 of 3 members are not cached"),
        "{}",
        r.stderr
    );
    let r = ok(dfc(&[OsStr::new("group"), p(&cache), OsStr::new("all-12")]));
    assert_eq!(
        (r.text().as_str(), r.stderr.as_str()),
        ("12/1\n12/2\n12/3\n", "")
    );
    let r = ok(dfc(&[
        OsStr::new("group"),
        p(&cache),
        OsStr::new("albers/z12"),
        OsStr::new("--missing"),
    ]));
    assert_eq!(r.text(), "12/gone\n");
    // Evicted or removed members stay in the group, now missing.
    ok(dfc(&[OsStr::new("rm"), p(&cache), OsStr::new("12/1")]));
    let j = ok(dfc(&[
        OsStr::new("group"),
        p(&cache),
        OsStr::new("albers/z12"),
        OsStr::new("--json"),
    ]))
    .json();
    assert_eq!(
        (
            j["name"].as_str(),
            j["members"].as_u64(),
            j["missing"].as_u64()
        ),
        (Some("albers/z12"), Some(3), Some(2))
    );
    let cached: Vec<(&str, bool)> = j["keys"]
        .as_array()
        .ok_or("keys")?
        .iter()
        .map(|k| (k["key"].as_str().unwrap_or(""), k["cached"] == true))
        .collect();
    assert_eq!(
        cached,
        vec![("12/3", true), ("12/1", false), ("12/gone", false)]
    );

    // Replacing a group; no such group; bad names.
    ok(dfc(&[
        OsStr::new("put-group"),
        p(&cache),
        OsStr::new("all-12"),
        OsStr::new("12/2"),
    ]));
    assert_eq!(
        ok(dfc(&[OsStr::new("group"), p(&cache), OsStr::new("all-12")])).text(),
        "12/2\n"
    );
    let r = fails(
        dfc(&[OsStr::new("group"), p(&cache), OsStr::new("nope")]),
        1,
    );
    assert_eq!(r.stderr, "dfcache: no such group: nope\n");
    fails(dfc(&[OsStr::new("group"), p(&cache), OsStr::new("")]), 2);
    let long = "n".repeat(257);
    fails(
        dfc(&[
            OsStr::new("put-group"),
            p(&cache),
            OsStr::new(&long),
            OsStr::new("k"),
        ]),
        2,
    );
    fails(
        dfc(&[
            OsStr::new("put-group"),
            p(&cache),
            OsStr::new("g"),
            OsStr::new(""),
        ]),
        2,
    );
    fails(
        dfc(&[
            OsStr::new("group"),
            p(&cache),
            OsStr::new("--missing"),
            OsStr::new("all-12"),
            OsStr::new("--json"),
        ]),
        2,
    );
    ok(dfc(&[
        OsStr::new("rm-group"),
        p(&cache),
        OsStr::new("all-12"),
    ]));
    let r = fails(
        dfc(&[OsStr::new("rm-group"), p(&cache), OsStr::new("all-12")]),
        1,
    );
    assert!(r.stderr.contains("no such group: all-12"), "{}", r.stderr);
    // The entries themselves stay.
    ok(dfc(&[OsStr::new("get"), p(&cache), OsStr::new("12/2")]));
    let groups = ok(dfc(&[OsStr::new("groups"), p(&cache)])).text();
    assert_eq!(groups.lines().count(), 2, "{groups}");

    // Binary names and keys with --hex.
    ok(dfc(&[
        OsStr::new("put-group"),
        p(&cache),
        OsStr::new("00ff"),
        OsStr::new("31322f32"),
        OsStr::new("--hex"),
    ]));
    let listed = ok(dfc(&[OsStr::new("groups"), p(&cache)])).text();
    assert!(listed.lines().any(|l| l.ends_with("  00ff")), "{listed}");
    let r = ok(dfc(&[
        OsStr::new("group"),
        p(&cache),
        OsStr::new("00ff"),
        OsStr::new("--hex"),
    ]));
    assert_eq!(r.text(), "31322f32\n");
    // Keys on stdin are bytes: a line that is not UTF-8 is a key as it is.
    ok(dfc_in(
        &[OsStr::new("put-group"), p(&cache), OsStr::new("binary")],
        b"12/2\n\xff\xfe\n",
    ));
    let r = ok(dfc(&[OsStr::new("group"), p(&cache), OsStr::new("binary")]));
    assert_eq!(r.text(), "12/2\nfffe\n");
    let r = fails(
        dfc_in(
            &[
                OsStr::new("put-group"),
                p(&cache),
                OsStr::new("68"),
                OsStr::new("--hex"),
            ],
            b"zz\n",
        ),
        2,
    );
    assert!(r.stderr.contains("not a hex key"), "{}", r.stderr);
    let j = ok(dfc(&[
        OsStr::new("groups"),
        p(&cache),
        OsStr::new("--json"),
    ]))
    .json();
    assert!(j["groups"][0]["name"].is_null(), "not UTF-8: {j}");
    ok(dfc(&[OsStr::new("verify"), p(&cache)]));
    Ok(())
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
