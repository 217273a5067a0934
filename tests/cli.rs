//! The `dfcache` command line, run as a user would: the built binary on
//! real files, checked by exit code, stdout, stderr and the files it leaves.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::cli::*;
use dfcache::{CachedDataset, Dataset, DatasetFileCache, DatasetId, Flushable};
use serde_json::Value as Json;

/// Every regular file under `dir`: relative '/'-separated path -> bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let m = fs::symlink_metadata(&path).unwrap();
            if m.is_dir() {
                walk(base, &path, out);
            } else if m.is_file() {
                let rel = path.strip_prefix(base).unwrap();
                let key: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.insert(key.join("/"), fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A folder of mixed files: empty, binary, text, nested, compressible,
/// a large one of several MiB, and (on Unix) a symlink to skip.
fn mixed_folder(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::create_dir_all(dir.join("nested/deeper/deepest")).unwrap();
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::write(dir.join("empty"), b"").unwrap();
    fs::write(dir.join("bin/all-bytes"), (0..=255u8).collect::<Vec<_>>()).unwrap();
    fs::write(dir.join("hello.txt"), b"hello, world\n").unwrap();
    fs::write(dir.join("nested/deeper/deepest/leaf.txt"), b"leaf").unwrap();
    fs::write(dir.join("nested/notes.md"), b"# notes\n".repeat(20)).unwrap();
    let text = b"{\"tile\": [12, 2210, 1343], \"unit\": \"m\"}\n".repeat(20_000);
    fs::write(dir.join("nested/tiles.json"), text).unwrap();
    fs::write(dir.join("big.bin"), noise(5 << 20, 7)).unwrap();
    let expected = tree(dir);
    #[cfg(unix)]
    std::os::unix::fs::symlink("hello.txt", dir.join("link-to-hello")).unwrap();
    expected
}

/// A dataset of `n` blocks, 0..n; blocks past `n` do not exist.
struct Blocks {
    id: DatasetId,
    n: u64,
}

impl Dataset for Blocks {
    fn id(&self) -> DatasetId {
        self.id
    }
    fn read_block(&self, index: u64) -> dfcache::Result<Option<Vec<u8>>> {
        Ok((index < self.n).then(|| vec![index as u8; 3000]))
    }
}

/// Create, import, look, export, remove, verify, compact, then the file
/// made read-only: the realistic session.
#[test]
fn session() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let src = tmp.path().join("src");
    let files = mixed_folder(&src);
    let cache = tmp.path().join("c.dfc");

    let r = ok(dfc(&[
        OsStr::new("create"),
        p(&cache),
        OsStr::new("--max-size"),
        OsStr::new("64M"),
    ]));
    assert!(r.text().contains("64.0 MiB"), "{}", r.text());

    // Import: every regular file, the symlink skipped and named.
    let r = ok(dfc(&[OsStr::new("import"), p(&cache), p(&src)]));
    assert!(r.stderr.contains("skipped symlink"), "{}", r.stderr);
    assert!(!r.stderr.contains('\x1b'), "no progress bar off a terminal");
    assert!(r
        .text()
        .contains(&format!("imported {} files", files.len())));

    // info --json.
    let info = ok(dfc(&[OsStr::new("info"), p(&cache), OsStr::new("--json")])).json();
    assert_eq!(info["entries"], files.len() as u64);
    assert_eq!(info["format_version"], 3);
    assert_eq!(info["header"]["magic"], "894847430d0a1a0a");
    assert_eq!(info["header"]["format_version"], 3);
    assert_eq!(info["maximum_file_size"], 64u64 << 20);
    let raw: u64 = files.values().map(|v| v.len() as u64).sum();
    assert_eq!(info["raw_bytes"], raw);
    let stored = info["stored_bytes"].as_u64().unwrap();
    assert!(stored < raw, "the JSON file compresses: {stored} < {raw}");
    let file_size = fs::metadata(&cache)?.len();
    assert_eq!(info["file_size"], file_size);
    let fill = info["fill_percent"].as_f64().unwrap();
    assert!((fill - file_size as f64 * 100.0 / (64u64 << 20) as f64).abs() < 1e-9);
    assert!(info["maximum_age_ms"].is_null());
    assert!(info["commit"]["sequence"].as_u64().unwrap() >= 1);
    let text = ok(dfc(&[OsStr::new("info"), p(&cache)])).text();
    for label in ["magic", "format version", "entries", "fill", "maximum age"] {
        assert!(text.contains(label), "info shows {label}: {text}");
    }

    // ls: sorted keys, the long form, JSON, prefix.
    let r = ok(dfc(&[OsStr::new("ls"), p(&cache)]));
    let keys: Vec<String> = r.text().lines().map(str::to_string).collect();
    assert_eq!(keys, files.keys().cloned().collect::<Vec<_>>());
    let long = ok(dfc(&[OsStr::new("ls"), p(&cache), OsStr::new("--long")])).text();
    assert!(long.starts_with(char::is_whitespace) && long.contains("CODEC"));
    assert!(
        long.contains("zstd") && long.contains("raw,chunked"),
        "{long}"
    );
    let listing = ok(dfc(&[OsStr::new("ls"), p(&cache), OsStr::new("--json")])).json();
    let entries = listing["entries"].as_array().unwrap();
    assert_eq!(entries.len(), files.len());
    for (e, (k, v)) in entries.iter().zip(&files) {
        assert_eq!(e["key"], k.as_str());
        assert_eq!(e["raw_bytes"], v.len() as u64);
        assert_eq!(e["absent"], false);
        assert!(e["inserted"].as_str().unwrap().ends_with('Z'));
    }
    let nested = ok(dfc(&[
        OsStr::new("ls"),
        p(&cache),
        OsStr::new("--prefix"),
        OsStr::new("nested/"),
    ]))
    .text();
    assert_eq!(
        nested.lines().collect::<Vec<_>>(),
        vec![
            "nested/deeper/deepest/leaf.txt",
            "nested/notes.md",
            "nested/tiles.json"
        ]
    );

    // get: raw bytes to stdout and to a file.
    for (k, v) in &files {
        let r = ok(dfc(&[OsStr::new("get"), p(&cache), OsStr::new(k)]));
        assert!(r.stdout == *v, "get {k}");
    }
    let out = tmp.path().join("big.out");
    ok(dfc(&[
        OsStr::new("get"),
        p(&cache),
        OsStr::new("big.bin"),
        OsStr::new("-o"),
        p(&out),
    ]));
    assert!(fs::read(&out)? == files["big.bin"]);

    // export to a new folder: byte for byte the source (symlink aside).
    let dest = tmp.path().join("restored/here");
    let r = ok(dfc(&[OsStr::new("export"), p(&cache), p(&dest)]));
    assert!(r
        .text()
        .contains(&format!("exported {} files", files.len())));
    assert_eq!(tree(&dest), files);
    // Exporting again would overwrite: refused, nothing changed.
    fs::write(dest.join("hello.txt"), b"mine")?;
    let r = fails(dfc(&[OsStr::new("export"), p(&cache), p(&dest)]), 1);
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);
    assert_eq!(fs::read(dest.join("hello.txt"))?, b"mine");

    // put from stdin (a large value streams through) and from a file.
    let big_in = noise(6 << 20, 99);
    ok(dfc_in(
        &[OsStr::new("put"), p(&cache), OsStr::new("stdin/big")],
        &big_in,
    ));
    let r = ok(dfc(&[
        OsStr::new("get"),
        p(&cache),
        OsStr::new("stdin/big"),
    ]));
    assert!(r.stdout == big_in);
    ok(dfc(&[
        OsStr::new("put"),
        p(&cache),
        OsStr::new("copy-of-hello"),
        p(&src.join("hello.txt")),
    ]));
    ok(dfc_in(
        &[
            OsStr::new("put"),
            p(&cache),
            OsStr::new("dash"),
            OsStr::new("-"),
        ],
        b"from a dash",
    ));
    assert_eq!(
        ok(dfc(&[OsStr::new("get"), p(&cache), OsStr::new("dash")])).stdout,
        b"from a dash"
    );

    // Dataset blocks written by the library show up per dataset in stats.
    let id = DatasetId::new(uuid::Uuid::from_u128(0x5eed), 7);
    {
        let c = std::sync::Arc::new(DatasetFileCache::open(&cache, false)?);
        let ds = CachedDataset::new(Blocks { id, n: 5 }, c.clone());
        for i in 0..8 {
            ds.read_block(i)?;
        }
        c.flush()?;
    }
    let stats = ok(dfc(&[OsStr::new("stats"), p(&cache), OsStr::new("--json")])).json();
    let datasets = stats["datasets"].as_array().unwrap();
    assert_eq!(datasets.len(), 1);
    assert_eq!(datasets[0]["dataset"], id.to_string());
    assert_eq!(datasets[0]["revision"], 7);
    assert_eq!(datasets[0]["entries"], 8);
    assert_eq!(datasets[0]["negative_entries"], 3);
    assert_eq!(datasets[0]["raw_bytes"], 5 * 3000);
    assert_eq!(datasets[0]["first_block"], 0);
    assert_eq!(datasets[0]["last_block"], 7);
    assert_eq!(stats["other"]["entries"], files.len() as u64 + 3);
    assert_eq!(stats["entries"], files.len() as u64 + 3 + 8);
    assert!(stats["compression_ratio"].as_f64().unwrap() > 1.0);
    let largest = stats["largest"].as_array().unwrap();
    assert_eq!(largest.len(), 10);
    assert_eq!(largest[0]["key"], "stdin/big");
    assert_eq!(largest[1]["key"], "big.bin");
    let stored: Vec<u64> = largest
        .iter()
        .map(|l| l["stored_bytes"].as_u64().unwrap())
        .collect();
    assert!(stored.windows(2).all(|w| w[0] >= w[1]), "{stored:?}");
    let text = ok(dfc(&[OsStr::new("stats"), p(&cache)])).text();
    assert!(
        text.contains(&id.to_string()) && text.contains("other"),
        "{text}"
    );

    // Block keys are binary: ls shows them as hex; export refuses them.
    let ls = ok(dfc(&[OsStr::new("ls"), p(&cache)])).text();
    let block0 = id
        .block_key(0)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    assert!(ls.lines().any(|l| l == block0), "{ls}");
    let elsewhere = tmp.path().join("elsewhere");
    let r = fails(dfc(&[OsStr::new("export"), p(&cache), p(&elsewhere)]), 1);
    assert!(r.stderr.contains("UTF-8"), "{}", r.stderr);
    assert!(!elsewhere.exists(), "nothing written");

    // rm, then get and rm of the removed key.
    ok(dfc(&[
        OsStr::new("rm"),
        p(&cache),
        OsStr::new("copy-of-hello"),
        OsStr::new("dash"),
    ]));
    fails(dfc(&[OsStr::new("get"), p(&cache), OsStr::new("dash")]), 1);
    fails(dfc(&[OsStr::new("rm"), p(&cache), OsStr::new("dash")]), 1);

    // verify: sound.
    let r = ok(dfc(&[OsStr::new("verify"), p(&cache)]));
    assert!(r.text().contains("ok"), "{}", r.text());

    // compact in place: smaller, same content, still sound.
    ok(dfc(&[OsStr::new("rm"), p(&cache), OsStr::new("stdin/big")]));
    let before_len = fs::metadata(&cache)?.len();
    let before = ok(dfc(&[OsStr::new("ls"), p(&cache), OsStr::new("--json")])).json();
    let r = ok(dfc(&[OsStr::new("compact"), p(&cache)]));
    assert!(r.text().contains("compacted"), "{}", r.text());
    let after_len = fs::metadata(&cache)?.len();
    assert!(after_len < before_len, "{after_len} < {before_len}");
    let after = ok(dfc(&[OsStr::new("ls"), p(&cache), OsStr::new("--json")])).json();
    let strip = |j: &Json| -> Vec<(Json, Json, Json)> {
        j["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["key_hex"].clone(),
                    e["raw_bytes"].clone(),
                    e["absent"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(strip(&before), strip(&after));
    for (k, v) in &files {
        assert!(ok(dfc(&[OsStr::new("get"), p(&cache), OsStr::new(k)])).stdout == *v);
    }
    ok(dfc(&[OsStr::new("verify"), p(&cache)]));
    let leftovers: Vec<_> = fs::read_dir(tmp.path())?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".compact-"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary file left");

    // compact to OUT; an existing OUT needs --force.
    let copy = tmp.path().join("copy.dfc");
    ok(dfc(&[OsStr::new("compact"), p(&cache), p(&copy)]));
    ok(dfc(&[OsStr::new("verify"), p(&copy)]));
    let copied = ok(dfc(&[OsStr::new("ls"), p(&copy), OsStr::new("--json")])).json();
    assert_eq!(strip(&copied), strip(&after));
    fails(dfc(&[OsStr::new("compact"), p(&cache), p(&copy)]), 2);
    ok(dfc(&[
        OsStr::new("compact"),
        p(&cache),
        p(&copy),
        OsStr::new("--force"),
    ]));

    // A group for the read-only checks.
    ok(dfc(&[
        OsStr::new("put-group"),
        p(&cache),
        OsStr::new("nested"),
        OsStr::new("nested/notes.md"),
        OsStr::new("nested/tiles.json"),
    ]));

    #[cfg(unix)]
    read_only_file(tmp.path(), &cache, &files)?;
    Ok(())
}

/// The cache made read-only: every read-only command works and changes
/// nothing, every write is refused with a clear error.
#[cfg(unix)]
fn read_only_file(tmp: &Path, cache: &Path, files: &BTreeMap<String, Vec<u8>>) -> TestResult {
    set_mode(cache, 0o444);
    // An mtime change would show even within one clock tick of the last write.
    std::thread::sleep(Duration::from_millis(20));
    let before = snapshot(cache);
    let out = tmp.join("ro-out");
    let exported = tmp.join("ro-export");
    let ro_copy = tmp.join("ro-copy.dfc");
    let ro_recompressed = tmp.join("ro-recompressed.dfc");
    let reads: Vec<Vec<&OsStr>> = vec![
        vec!["info".as_ref(), p(cache)],
        vec!["info".as_ref(), p(cache), "--json".as_ref()],
        vec!["stats".as_ref(), p(cache)],
        vec!["stats".as_ref(), p(cache), "--json".as_ref()],
        vec!["ls".as_ref(), p(cache)],
        vec!["ls".as_ref(), p(cache), "--long".as_ref()],
        vec!["ls".as_ref(), p(cache), "--json".as_ref()],
        vec!["get".as_ref(), p(cache), "hello.txt".as_ref()],
        vec![
            "get".as_ref(),
            p(cache),
            "big.bin".as_ref(),
            "-o".as_ref(),
            p(&out),
        ],
        vec![
            "export".as_ref(),
            p(cache),
            p(&exported),
            "--prefix".as_ref(),
            "nested/".as_ref(),
        ],
        vec!["verify".as_ref(), p(cache)],
        vec!["compact".as_ref(), p(cache), p(&ro_copy)],
        vec![
            "compact".as_ref(),
            p(cache),
            p(&ro_recompressed),
            "--recompress".as_ref(),
        ],
        vec![
            "get".as_ref(),
            p(cache),
            "hello.txt".as_ref(),
            "--meta".as_ref(),
        ],
        vec!["dicts".as_ref(), p(cache)],
        vec!["dicts".as_ref(), p(cache), "--json".as_ref()],
        vec!["groups".as_ref(), p(cache)],
        vec!["groups".as_ref(), p(cache), "--json".as_ref()],
        vec!["group".as_ref(), p(cache), "nested".as_ref()],
        vec![
            "group".as_ref(),
            p(cache),
            "nested".as_ref(),
            "--json".as_ref(),
        ],
    ];
    for args in &reads {
        ok(dfc(args));
    }
    let members = ok(dfc(&["group".as_ref(), p(cache), OsStr::new("nested")])).text();
    assert_eq!(members, "nested/notes.md\nnested/tiles.json\n");
    assert!(fs::read(&out)? == files["big.bin"]);
    assert_eq!(tree(&exported).len(), 3);
    let writes: Vec<Vec<&OsStr>> = vec![
        vec!["put".as_ref(), p(cache), "k".as_ref(), "-".as_ref()],
        vec!["rm".as_ref(), p(cache), "hello.txt".as_ref()],
        vec!["clear".as_ref(), p(cache)],
        vec![
            "resize".as_ref(),
            p(cache),
            "--max-size".as_ref(),
            "2M".as_ref(),
        ],
        vec!["import".as_ref(), p(cache), p(&exported)],
        vec!["compact".as_ref(), p(cache)],
        vec!["compact".as_ref(), p(cache), "--recompress".as_ref()],
        vec![
            "create".as_ref(),
            p(cache),
            "--max-size".as_ref(),
            "2M".as_ref(),
            "--force".as_ref(),
        ],
        vec![
            "put".as_ref(),
            p(cache),
            "k".as_ref(),
            "-".as_ref(),
            "--meta".as_ref(),
            "m".as_ref(),
        ],
        vec!["train-dict".as_ref(), p(cache)],
        vec!["put-group".as_ref(), p(cache), "g".as_ref(), "k".as_ref()],
        vec!["rm-group".as_ref(), p(cache), "nested".as_ref()],
    ];
    for args in &writes {
        let r = fails(dfc_in(args, b"value"), 2);
        assert!(r.stderr.contains("read-only"), "{:?}: {}", args, r.stderr);
    }
    assert!(snapshot(cache) == before, "the read-only file is unchanged");
    set_mode(cache, 0o644);
    Ok(())
}

/// A text file (and other non-caches) given to every command: exit 2, one
/// clear line, the file unchanged, nothing created.
#[test]
fn files_that_are_not_caches_are_refused_by_every_command() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let text = tmp.path().join("notes.txt");
    fs::write(&text, "These are my notes.\nNot a cache.\n".repeat(100))?;
    let garbage = tmp.path().join("garbage.bin");
    fs::write(&garbage, noise(20_000, 3))?;
    let empty = tmp.path().join("empty.dfc");
    fs::write(&empty, b"")?;
    let missing = tmp.path().join("missing.dfc");
    let dir = tmp.path().join("dir");
    fs::create_dir(&dir)?;
    let out = tmp.path().join("out");
    fs::write(tmp.path().join("value"), b"v")?;
    let value = tmp.path().join("value");
    for bad in [&text, &garbage, &empty, &missing, &dir] {
        let before = bad.is_file().then(|| snapshot(bad));
        let cmds: Vec<Vec<&OsStr>> = vec![
            vec!["info".as_ref(), p(bad)],
            vec!["info".as_ref(), p(bad), "--json".as_ref()],
            vec!["stats".as_ref(), p(bad)],
            vec!["ls".as_ref(), p(bad)],
            vec!["get".as_ref(), p(bad), "k".as_ref()],
            vec!["get".as_ref(), p(bad), "k".as_ref(), "-o".as_ref(), p(&out)],
            vec!["put".as_ref(), p(bad), "k".as_ref(), p(&value)],
            vec!["rm".as_ref(), p(bad), "k".as_ref()],
            vec!["import".as_ref(), p(bad), p(tmp.path())],
            vec!["export".as_ref(), p(bad), p(&out)],
            vec!["verify".as_ref(), p(bad)],
            vec!["compact".as_ref(), p(bad)],
            vec!["compact".as_ref(), p(bad), p(&out)],
            vec!["compact".as_ref(), p(bad), "--recompress".as_ref()],
            vec!["clear".as_ref(), p(bad)],
            vec!["get".as_ref(), p(bad), "k".as_ref(), "--meta".as_ref()],
            vec![
                "put".as_ref(),
                p(bad),
                "k".as_ref(),
                p(&value),
                "--meta".as_ref(),
                "m".as_ref(),
            ],
            vec!["train-dict".as_ref(), p(bad)],
            vec!["dicts".as_ref(), p(bad)],
            vec!["groups".as_ref(), p(bad)],
            vec!["group".as_ref(), p(bad), "g".as_ref()],
            vec!["put-group".as_ref(), p(bad), "g".as_ref(), "k".as_ref()],
            vec!["rm-group".as_ref(), p(bad), "g".as_ref()],
            vec![
                "resize".as_ref(),
                p(bad),
                "--max-size".as_ref(),
                "8M".as_ref(),
            ],
        ];
        for args in &cmds {
            let r = fails(dfc(args), 2);
            assert!(
                r.stderr.contains(&bad.display().to_string()),
                "names the file: {}",
                r.stderr
            );
            assert!(!out.exists(), "{args:?} created {}", out.display());
        }
        if bad != &empty && bad != &missing {
            // create refuses to replace a file, and with --force a non-cache.
            fails(
                dfc(&[
                    "create".as_ref(),
                    p(bad),
                    "--max-size".as_ref(),
                    OsStr::new("8M"),
                ]),
                2,
            );
            let r = fails(
                dfc(&[
                    "create".as_ref(),
                    p(bad),
                    "--max-size".as_ref(),
                    "8M".as_ref(),
                    "--force".as_ref(),
                ]),
                2,
            );
            if bad != &dir {
                assert!(r.stderr.contains("not a dfcache file"), "{}", r.stderr);
            }
        }
        assert!(
            bad.is_file().then(|| snapshot(bad)) == before,
            "{} unchanged",
            bad.display()
        );
        let strays: Vec<_> = fs::read_dir(tmp.path())?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".compact-"))
            .collect();
        assert!(strays.is_empty());
    }
    // An empty file is a fine place to create a cache.
    ok(dfc(&[
        "create".as_ref(),
        p(&empty),
        "--max-size".as_ref(),
        OsStr::new("0"),
    ]));
    ok(dfc(&["verify".as_ref(), p(&empty)]));
    Ok(())
}

/// Another writer holds the file: writes exit 3, reads still work.
#[test]
fn a_locked_file_exits_3() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let cache = tmp.path().join("c.dfc");
    ok(dfc(&[
        "create".as_ref(),
        p(&cache),
        "--max-size".as_ref(),
        OsStr::new("8M"),
    ]));
    ok(dfc_in(&["put".as_ref(), p(&cache), OsStr::new("k")], b"v"));
    let writer = DatasetFileCache::open(&cache, false)?;
    let dir = tmp.path().join("in");
    fs::create_dir(&dir)?;
    fs::write(dir.join("f"), b"x")?;
    for args in [
        vec!["put".as_ref(), p(&cache), OsStr::new("k2"), OsStr::new("-")],
        vec!["rm".as_ref(), p(&cache), OsStr::new("k")],
        vec!["clear".as_ref(), p(&cache)],
        vec![
            "resize".as_ref(),
            p(&cache),
            OsStr::new("--max-size"),
            OsStr::new("4M"),
        ],
        vec!["import".as_ref(), p(&cache), p(&dir)],
        vec!["compact".as_ref(), p(&cache)],
        vec![
            "create".as_ref(),
            p(&cache),
            OsStr::new("--max-size"),
            OsStr::new("4M"),
            OsStr::new("--force"),
        ],
        vec!["train-dict".as_ref(), p(&cache)],
        vec![
            "put-group".as_ref(),
            p(&cache),
            OsStr::new("g"),
            OsStr::new("k"),
        ],
        vec!["rm-group".as_ref(), p(&cache), OsStr::new("g")],
    ] {
        let r = fails(dfc_in(&args, b"v"), 3);
        assert!(r.stderr.contains("locked"), "{}", r.stderr);
    }
    assert_eq!(
        ok(dfc(&["get".as_ref(), p(&cache), OsStr::new("k")])).stdout,
        b"v"
    );
    ok(dfc(&["info".as_ref(), p(&cache)]));
    ok(dfc(&["verify".as_ref(), p(&cache)]));
    ok(dfc(&["dicts".as_ref(), p(&cache)]));
    ok(dfc(&["groups".as_ref(), p(&cache)]));
    drop(writer);
    ok(dfc(&["rm".as_ref(), p(&cache), OsStr::new("k")]));
    Ok(())
}

/// `--hex` takes and prints keys as hex; binary keys round-trip through
/// put/get/ls/rm and through export/import.
#[test]
fn hex_keys_round_trip() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let cache = tmp.path().join("c.dfc");
    ok(dfc(&[
        "create".as_ref(),
        p(&cache),
        "--max-size".as_ref(),
        OsStr::new("0"),
    ]));
    let keys: [(&str, &[u8]); 3] = [
        ("00ff10", b"binary key"),
        ("0a0b", b"newline-ish"),
        ("74657874", b"the key 'text'"),
    ];
    for (k, v) in keys {
        ok(dfc_in(
            &[
                "put".as_ref(),
                p(&cache),
                OsStr::new(k),
                OsStr::new("--hex"),
            ],
            v,
        ));
    }
    let ls = ok(dfc(&["ls".as_ref(), p(&cache), OsStr::new("--hex")])).text();
    assert_eq!(
        ls.lines().collect::<Vec<_>>(),
        vec!["00ff10", "0a0b", "74657874"]
    );
    // Without --hex, keys that are not printable UTF-8 are shown as hex.
    let ls = ok(dfc(&["ls".as_ref(), p(&cache)])).text();
    assert_eq!(
        ls.lines().collect::<Vec<_>>(),
        vec!["00ff10", "0a0b", "text"]
    );
    let j = ok(dfc(&["ls".as_ref(), p(&cache), OsStr::new("--json")])).json();
    assert!(j["entries"][0]["key"].is_null());
    assert_eq!(j["entries"][0]["key_hex"], "00ff10");
    assert_eq!(j["entries"][2]["key"], "text");
    let r = ok(dfc(&[
        "--hex".as_ref(),
        OsStr::new("get"),
        p(&cache),
        OsStr::new("00FF10"),
    ]));
    assert_eq!(r.stdout, b"binary key");
    assert_eq!(
        ok(dfc(&["get".as_ref(), p(&cache), OsStr::new("text")])).stdout,
        b"the key 'text'"
    );
    let prefixed = ok(dfc(&[
        "ls".as_ref(),
        p(&cache),
        OsStr::new("--hex"),
        OsStr::new("--prefix"),
        OsStr::new("0a"),
    ]))
    .text();
    assert_eq!(prefixed, "0a0b\n");

    // export --hex names files by hex; import --hex reads them back.
    let out = tmp.path().join("out");
    ok(dfc(&[
        "export".as_ref(),
        p(&cache),
        p(&out),
        OsStr::new("--hex"),
    ]));
    assert_eq!(fs::read(out.join("00ff10"))?, b"binary key");
    let copy = tmp.path().join("copy.dfc");
    ok(dfc(&[
        "create".as_ref(),
        p(&copy),
        "--max-size".as_ref(),
        OsStr::new("0"),
    ]));
    ok(dfc(&[
        "import".as_ref(),
        p(&copy),
        p(&out),
        OsStr::new("--hex"),
    ]));
    let a = ok(dfc(&["ls".as_ref(), p(&cache), OsStr::new("--hex")])).text();
    let b = ok(dfc(&["ls".as_ref(), p(&copy), OsStr::new("--hex")])).text();
    assert_eq!(a, b);
    for (k, v) in keys {
        let r = ok(dfc(&[
            "get".as_ref(),
            p(&copy),
            OsStr::new(k),
            OsStr::new("--hex"),
        ]));
        assert_eq!(r.stdout, v);
    }
    // import --hex refuses names that are not hex, before writing.
    fs::write(out.join("not-hex"), b"x")?;
    let r = fails(
        dfc(&["import".as_ref(), p(&copy), p(&out), OsStr::new("--hex")]),
        1,
    );
    assert!(r.stderr.contains("not-hex"), "{}", r.stderr);

    ok(dfc(&[
        "rm".as_ref(),
        p(&cache),
        OsStr::new("00ff10"),
        OsStr::new("--hex"),
    ]));
    fails(
        dfc(&[
            "get".as_ref(),
            p(&cache),
            OsStr::new("00ff10"),
            OsStr::new("--hex"),
        ]),
        1,
    );
    for bad in ["abc", "zz", ""] {
        fails(
            dfc(&[
                "get".as_ref(),
                p(&cache),
                OsStr::new(bad),
                OsStr::new("--hex"),
            ]),
            2,
        );
    }
    Ok(())
}

/// `import` skips what is not a regular file, and the cache itself, and
/// says so; files that can never fit are refused before anything is written.
#[cfg(unix)]
#[test]
fn import_skips_special_files_and_the_cache_itself() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("d");
    fs::create_dir(&dir)?;
    let cache = dir.join("c.dfc");
    ok(dfc(&[
        "create".as_ref(),
        p(&cache),
        "--max-size".as_ref(),
        OsStr::new("1M"),
    ]));
    fs::write(dir.join("regular"), b"data")?;
    let _socket = std::os::unix::net::UnixListener::bind(dir.join("sock"))?;
    std::os::unix::fs::symlink("/etc/hostname", dir.join("link"))?;
    let r = ok(dfc(&[OsStr::new("import"), p(&cache), p(&dir)]));
    for what in [
        "skipped socket",
        "skipped symlink",
        "skipped the cache file itself",
    ] {
        assert!(r.stderr.contains(what), "{what}: {}", r.stderr);
    }
    let ls = ok(dfc(&["ls".as_ref(), p(&cache)])).text();
    assert_eq!(ls, "regular\n");
    // A file larger than the cap: refused up front, nothing imported.
    fs::write(dir.join("huge"), noise(2 << 20, 1))?;
    fs::write(dir.join("another"), b"x")?;
    let r = fails(dfc(&[OsStr::new("import"), p(&cache), p(&dir)]), 1);
    assert!(r.stderr.contains("huge"), "{}", r.stderr);
    assert_eq!(ok(dfc(&["ls".as_ref(), p(&cache)])).text(), "regular\n");
    Ok(())
}

/// Keys that would escape DIR (or alias, or clash) are refused before
/// anything is written.
#[test]
fn export_refuses_keys_that_escape_the_folder() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let cache = tmp.path().join("c.dfc");
    ok(dfc(&[
        "create".as_ref(),
        p(&cache),
        "--max-size".as_ref(),
        OsStr::new("8M"),
    ]));
    ok(dfc_in(
        &["put".as_ref(), p(&cache), OsStr::new("fine.txt")],
        b"fine",
    ));
    let base = tmp.path().join("a/b");
    fs::create_dir_all(&base)?;
    let dest = base.join("out");
    let abs = format!("/dfcache-test-{}", std::process::id());
    for bad in [
        "../x",
        abs.as_str(),
        "a/../../b",
        "a//b",
        "./y",
        "z/.",
        "t/",
    ] {
        ok(dfc_in(
            &["put".as_ref(), p(&cache), OsStr::new(bad)],
            b"escape",
        ));
        let r = fails(dfc(&["export".as_ref(), p(&cache), p(&dest)]), 1);
        assert!(r.stderr.contains(bad), "names {bad}: {}", r.stderr);
        assert!(r.stderr.contains("nothing written"), "{}", r.stderr);
        assert!(!dest.exists(), "{bad}: nothing written");
        ok(dfc(&["rm".as_ref(), p(&cache), OsStr::new(bad)]));
    }
    // A NUL byte in a key.
    ok(dfc_in(
        &[
            "put".as_ref(),
            p(&cache),
            OsStr::new("61006200"),
            OsStr::new("--hex"),
        ],
        b"nul",
    ));
    fails(dfc(&["export".as_ref(), p(&cache), p(&dest)]), 1);
    ok(dfc(&[
        "rm".as_ref(),
        p(&cache),
        OsStr::new("61006200"),
        OsStr::new("--hex"),
    ]));
    assert!(!dest.exists());
    assert!(!Path::new(&abs).exists());
    assert!(!tmp.path().join("a/x").exists() && !tmp.path().join("b").exists());
    assert!(!tmp.path().join("a/b/x").exists() && !base.join("y").exists());

    // A key that is a file and a folder of another key.
    ok(dfc_in(
        &["put".as_ref(), p(&cache), OsStr::new("d")],
        b"file d",
    ));
    ok(dfc_in(
        &["put".as_ref(), p(&cache), OsStr::new("d/e")],
        b"file d/e",
    ));
    let r = fails(dfc(&["export".as_ref(), p(&cache), p(&dest)]), 1);
    assert!(r.stderr.contains("both file and folder"), "{}", r.stderr);
    assert!(!dest.exists());
    ok(dfc(&["rm".as_ref(), p(&cache), OsStr::new("d")]));

    // A symlink inside DIR that points outside is not followed.
    #[cfg(unix)]
    {
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside)?;
        fs::create_dir(&dest)?;
        std::os::unix::fs::symlink(&outside, dest.join("d"))?;
        let r = fails(dfc(&["export".as_ref(), p(&cache), p(&dest)]), 1);
        assert!(r.stderr.contains("symlink"), "{}", r.stderr);
        assert_eq!(fs::read_dir(&outside)?.count(), 0);
        assert!(!dest.join("fine.txt").exists(), "nothing written");
        fs::remove_file(dest.join("d"))?;
    }
    ok(dfc(&["export".as_ref(), p(&cache), p(&dest)]));
    assert_eq!(fs::read(dest.join("d/e"))?, b"file d/e");
    assert_eq!(fs::read(dest.join("fine.txt"))?, b"fine");
    Ok(())
}

/// `get` and `rm` of absent keys exit 1; `rm` still removes the others.
#[test]
fn missing_keys_exit_1() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let cache = tmp.path().join("c.dfc");
    ok(dfc(&[
        "create".as_ref(),
        p(&cache),
        "--max-size".as_ref(),
        OsStr::new("8M"),
    ]));
    ok(dfc_in(
        &["put".as_ref(), p(&cache), OsStr::new("here")],
        b"v",
    ));
    let out = tmp.path().join("out");
    let r = fails(
        dfc(&[
            "get".as_ref(),
            p(&cache),
            OsStr::new("nope"),
            OsStr::new("-o"),
            p(&out),
        ]),
        1,
    );
    assert_eq!(r.stderr, "dfcache: key not found: nope\n");
    assert!(r.stdout.is_empty() && !out.exists());
    let r = fails(dfc(&["rm".as_ref(), p(&cache), OsStr::new("nope")]), 1);
    assert!(r.stderr.contains("nope"));
    let r = fails(
        dfc(&[
            "rm".as_ref(),
            p(&cache),
            OsStr::new("here"),
            OsStr::new("gone"),
        ]),
        1,
    );
    assert!(
        r.stderr.contains("gone") && !r.stderr.contains("here"),
        "{}",
        r.stderr
    );
    fails(dfc(&["get".as_ref(), p(&cache), OsStr::new("here")]), 1);
    // An empty key is a usage error, not "not found".
    fails(dfc(&["get".as_ref(), p(&cache), OsStr::new("")]), 2);
    Ok(())
}

/// SIZE arguments: 512K, 64M, 10G, 1T, 0, and bad values.
#[test]
fn sizes() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let cache = tmp.path().join("c.dfc");
    let max = |c: &Path| {
        ok(dfc(&["info".as_ref(), p(c), OsStr::new("--json")])).json()["maximum_file_size"].as_u64()
    };
    for (arg, bytes) in [
        ("1M", 1u64 << 20),
        ("64M", 64 << 20),
        ("10G", 10 << 30),
        ("1T", 1 << 40),
        ("0", 0),
        ("3145728", 3 << 20),
    ] {
        ok(dfc(&[
            "create".as_ref(),
            p(&cache),
            "--max-size".as_ref(),
            OsStr::new(arg),
            "--force".as_ref(),
        ]));
        assert_eq!(max(&cache), Some(bytes), "{arg}");
        ok(dfc(&[
            "resize".as_ref(),
            p(&cache),
            "--max-size".as_ref(),
            OsStr::new("2M"),
        ]));
        assert_eq!(max(&cache), Some(2 << 20));
    }
    let fresh = tmp.path().join("fresh.dfc");
    // 512K parses, but is under the 1 MiB minimum of a maximum size.
    let r = fails(
        dfc(&[
            "create".as_ref(),
            p(&fresh),
            "--max-size".as_ref(),
            OsStr::new("512K"),
        ]),
        2,
    );
    assert!(r.stderr.contains("1 MiB"), "{}", r.stderr);
    for bad in ["", "abc", "12Q", "-5", "1.5G", "64 M", "99999999999T"] {
        let r = fails(
            dfc(&[
                "create".as_ref(),
                p(&fresh),
                "--max-size".as_ref(),
                OsStr::new(bad),
            ]),
            2,
        );
        assert!(r.stderr.contains("--max-size"), "{}", r.stderr);
        fails(
            dfc(&[
                "resize".as_ref(),
                p(&cache),
                "--max-size".as_ref(),
                OsStr::new(bad),
            ]),
            2,
        );
    }
    assert!(!fresh.exists());
    fails(dfc(&["create".as_ref(), p(&fresh)]), 2);
    let r = ok(dfc(&["info".as_ref(), p(&cache)]));
    assert!(r.text().contains("2.0 MiB"), "{}", r.text());
    Ok(())
}

/// `put` stops reading input that can never fit under the cap.
#[test]
fn put_refuses_input_larger_than_the_cap() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let cache = tmp.path().join("c.dfc");
    ok(dfc(&[
        "create".as_ref(),
        p(&cache),
        "--max-size".as_ref(),
        OsStr::new("1M"),
    ]));
    let r = fails(
        dfc_in(
            &["put".as_ref(), p(&cache), OsStr::new("big")],
            &noise(3 << 20, 5),
        ),
        2,
    );
    assert!(r.stderr.contains("maximum size"), "{}", r.stderr);
    let big = tmp.path().join("big");
    fs::write(&big, noise(2 << 20, 6))?;
    fails(
        dfc(&["put".as_ref(), p(&cache), OsStr::new("big"), p(&big)]),
        2,
    );
    let j = ok(dfc(&["info".as_ref(), p(&cache), OsStr::new("--json")])).json();
    assert_eq!(j["entries"], 0);
    Ok(())
}

/// Output into a closed pipe stops quietly instead of panicking.
#[test]
fn a_closed_stdout_is_not_a_panic() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let cache = tmp.path().join("c.dfc");
    ok(dfc(&[
        "create".as_ref(),
        p(&cache),
        "--max-size".as_ref(),
        OsStr::new("0"),
    ]));
    ok(dfc_in(
        &["put".as_ref(), p(&cache), OsStr::new("v")],
        &noise(1 << 20, 1),
    ));
    for args in [
        vec!["get".as_ref(), p(&cache), OsStr::new("v")],
        vec!["ls".as_ref(), p(&cache), OsStr::new("--long")],
    ] {
        let mut child = Command::new(BIN)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        drop(child.stdout.take());
        let r = finish(child.wait_with_output()?);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(r.stderr.is_empty(), "{}", r.stderr);
    }
    Ok(())
}

/// A compaction killed at any moment leaves the original intact.
#[cfg(unix)]
#[test]
fn a_killed_compaction_leaves_the_original_intact() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let cache = tmp.path().join("c.dfc");
    {
        let c = DatasetFileCache::create(&cache, 0)?;
        for i in 0..200u64 {
            c.put(format!("k{i:03}").as_bytes(), &noise(40_000, i))?;
        }
        for i in (0..200u64).step_by(2) {
            c.remove(format!("k{i:03}").as_bytes())?;
        }
        c.flush()?;
    }
    // Quick after each kill (verify checks every value's checksum); the
    // values themselves at the end.
    let check = |cache: &Path, values: bool| -> TestResult {
        let c = DatasetFileCache::open(cache, true)?;
        assert!(c.verify()?.is_ok());
        assert_eq!(c.len(), 100);
        for i in (1..200u64).step_by(2).filter(|_| values) {
            let v = c.get(format!("k{i:03}").as_bytes())?.ok_or("value lost")?;
            assert!(*v == noise(40_000, i)[..]);
        }
        Ok(())
    };
    // Kill it later and later, until it finishes on its own; a kill that
    // lands mid-way leaves its temporary file behind (nothing cleans up
    // after SIGKILL), which shows that some kills did land mid-way.
    let mut delay = 0.0f64;
    let mut finished = false;
    let mut kills = 0;
    while !finished {
        let mut child = Command::new(BIN)
            .args([OsStr::new("compact"), p(&cache)])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        std::thread::sleep(Duration::from_secs_f64(delay / 1000.0));
        finished = child.try_wait()?.is_some();
        if !finished {
            let _ = child.kill();
            kills += 1;
        }
        let _ = child.wait();
        check(&cache, false)?;
        delay = delay * 1.5 + 1.0;
        assert!(delay < 60_000.0, "compaction never finished");
    }
    let strays = fs::read_dir(tmp.path())?
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".c.dfc.compact-")
        })
        .count();
    assert!(kills > 0 && strays > 0, "{kills} kills, {strays} cut short");
    check(&cache, true)?;
    ok(dfc(&[OsStr::new("compact"), p(&cache)]));
    check(&cache, true)?;
    Ok(())
}

/// Every command's `--help` has a one-line description and an example.
#[test]
fn every_command_has_help_with_an_example() {
    let commands = [
        "create",
        "info",
        "stats",
        "ls",
        "get",
        "put",
        "rm",
        "import",
        "export",
        "verify",
        "compact",
        "clear",
        "resize",
        "train-dict",
        "dicts",
        "groups",
        "group",
        "put-group",
        "rm-group",
        "demo",
    ];
    let main = ok(dfc(&["--help"])).text();
    for c in commands {
        assert!(main.contains(&format!("  {c} ")), "{c} listed in --help");
        let help = ok(dfc(&[c, "--help"])).text();
        let first = help.lines().next().unwrap_or("");
        assert!(
            !first.is_empty() && !first.starts_with("Usage"),
            "{c}: {help}"
        );
        assert!(help.contains("Example:"), "{c}: {help}");
        assert!(help.contains(&format!("dfcache {c}")), "{c}: {help}");
    }
    let r = fails(dfc(&["frobnicate"]), 2);
    assert!(r.stderr.contains("frobnicate"));
    fails(dfc(&["ls", "a", "--bogus"]), 2);
}

/// Every field of every `--json` document is documented in the command's
/// `--help` and in the README.
#[test]
fn json_fields_are_documented() -> TestResult {
    fn names(j: &Json, out: &mut Vec<String>) {
        match j {
            Json::Object(m) => {
                for (k, v) in m {
                    out.push(k.clone());
                    names(v, out);
                }
            }
            Json::Array(a) => a.iter().for_each(|v| names(v, out)),
            _ => {}
        }
    }
    let tmp = tempfile::tempdir()?;
    let cache = tmp.path().join("c.dfc");
    {
        let c = std::sync::Arc::new(DatasetFileCache::create(&cache, 16 << 20)?);
        c.put(b"text", b"hello")?;
        let ds = CachedDataset::new(
            Blocks {
                id: DatasetId::new(uuid::Uuid::from_u128(1), 1),
                n: 1,
            },
            c.clone(),
        );
        ds.read_block(0)?;
        ds.read_block(1)?;
        for i in 0..50u32 {
            c.put_with_meta(
                format!("doc/{i}").as_bytes(),
                format!(
                    "{{\"doc\": {i}, \"text\": \"{}\"}}",
                    "lorem ipsum ".repeat(8)
                )
                .as_bytes(),
                b"{}",
            )?;
        }
        c.put_group(b"docs", [b"doc/1".as_slice(), b"doc/99"])?;
        c.flush()?;
    }
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))?;
    let reference = &readme[readme
        .find("### JSON output")
        .ok_or("README: no JSON section")?..];
    // train-dict first: dicts then lists a dictionary with its prefixes.
    let commands: [(&str, &[&str]); 7] = [
        ("train-dict", &["--prefix", "doc/"]),
        ("info", &[]),
        ("stats", &[]),
        ("ls", &[]),
        ("dicts", &[]),
        ("groups", &[]),
        ("group", &["docs"]),
    ];
    for (cmd, extra) in commands {
        let mut args = vec![OsStr::new(cmd), p(&cache), OsStr::new("--json")];
        args.extend(extra.iter().map(OsStr::new));
        let doc = ok(dfc(&args)).json();
        let help = ok(dfc(&[cmd, "--help"])).text();
        let mut fields = Vec::new();
        names(&doc, &mut fields);
        assert!(fields.len() >= 4, "{cmd}: {fields:?}");
        for f in fields {
            assert!(help.contains(&f), "{cmd} --help documents {f}");
            assert!(
                reference.contains(&format!("`{f}`")),
                "README documents {cmd}'s {f}"
            );
        }
    }
    Ok(())
}

/// The README's shell blocks: the CLI session runs as written, with the
/// built `dfcache` first on PATH, in an empty folder.
#[test]
fn readme_shell_blocks() -> TestResult {
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))?;
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```sh") => current = Some(String::new()),
            (Some(b), "```") => {
                blocks.push(std::mem::take(b));
                current = None;
            }
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    let (sessions, others): (Vec<_>, Vec<_>) = blocks
        .into_iter()
        .partition(|b| b.lines().any(|l| l.starts_with("dfcache ")));
    // The CLI sessions: the tour, then the sibling features; each is run
    // below and checked by what it must print.
    assert_eq!(sessions.len(), 2, "two CLI sessions in the README");
    // The other shell blocks are the set-up commands (the demo runs in
    // `demo_runs`, the test suite is this), the comparison benchmark (CI's
    // `.ci/run` runs its smoke command; the full run takes minutes) and the
    // fuzzing commands, which need cargo-fuzz; a new block must be added
    // here with its test.
    assert_eq!(others.len(), 3, "{others:?}");
    assert!(others[0].contains("cargo run --release -- demo"));
    assert!(others[0].contains("cargo test --release"));
    let ci = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/run"))?;
    let smoke = others[1]
        .lines()
        .find(|l| l.contains("--smoke"))
        .ok_or("README: no smoke command")?;
    let smoke_args = smoke
        .split('#')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(3);
    assert!(
        ci.lines().any(|l| l.contains("benches/compare/Cargo.toml")
            && smoke_args.clone().all(|a| l.contains(a))),
        "CI runs the README's smoke command"
    );
    assert!(others[2].contains("cargo fuzz run"));

    // Each session in an empty folder of its own, with the built dfcache
    // first on PATH.
    let run_session =
        |session: &str| -> Result<(tempfile::TempDir, String), Box<dyn std::error::Error>> {
            let tmp = tempfile::tempdir()?;
            let bin_dir = Path::new(BIN).parent().ok_or("binary path")?;
            let path = std::env::join_paths(std::iter::once(bin_dir.to_path_buf()).chain(
                std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
            ))?;
            let out = Command::new("sh")
                .arg("-ec")
                .arg(session)
                .current_dir(tmp.path())
                .env("PATH", path)
                .stdin(Stdio::null())
                .output()?;
            let r = finish(out);
            assert_eq!(
                r.code,
                0,
                "the README session failed:\n{}\n{}",
                r.text(),
                r.stderr
            );
            Ok((tmp, r.text()))
        };

    let (tmp, text) = run_session(&sessions[0])?;
    assert!(
        text.contains("elevation 1343"),
        "get printed the value: {text}"
    );
    assert!(text.contains("exit code 1"), "{text}");
    assert!(text.contains("\"datasets\""), "{text}");
    assert!(text.contains("ok"), "{text}");
    let restored: PathBuf = tmp.path().join("restored");
    assert_eq!(tree(&restored), tree(&tmp.path().join("tiles")));

    let (tmp, text) = run_session(&sessions[1])?;
    assert!(text.contains("dictionary 1: "), "train-dict: {text}");
    let new_doc = text
        .lines()
        .find(|l| l.ends_with(" 301.json"))
        .ok_or("ls listed 301.json")?;
    assert!(new_doc.contains("zstd+dict1"), "{new_doc}");
    assert!(text.contains("301 entries recompressed"), "{text}");
    assert!(
        text.contains("{\"source\": \"docs/1.json\"}"),
        "get --meta: {text}"
    );
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["11", "tens"]),
        "groups: {text}"
    );
    assert!(text.contains("\"cached\": true"), "group --json: {text}");
    let docs = DatasetFileCache::open(tmp.path().join("docs.dfc"), true)?;
    let old = docs.entry_info(b"150.json")?.ok_or("150.json cached")?;
    assert_eq!(old.dictionary, 1, "compact --recompress re-encoded it");
    let scene = docs.entry_info(b"scene")?.ok_or("scene cached")?;
    assert!(scene.chunked && scene.raw_len == 100_000_000);
    Ok(())
}

/// `dfcache demo`, which `cargo run --release -- demo` in the README runs.
#[test]
fn demo_runs() {
    let r = ok(dfc(&["demo"]));
    let text = r.text();
    assert!(text.starts_with("dfcache demo\n"), "{text}");
    assert!(text.contains("bad blocks 0"), "{text}");
}
