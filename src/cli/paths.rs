//! Keys as file paths, for `import` and `export`.
//!
//! A key maps to a path relative to the export folder by splitting it at
//! `/`. Only keys that are plain relative paths qualify: valid UTF-8, not
//! absolute, no empty, `.` or `..` component, no NUL. Anything else could
//! escape the folder or alias another key, so `export` refuses it. With
//! `--hex`, each key is one file named by its hex instead, which is always
//! safe (up to 127-byte keys, as file names are limited to 255 bytes).

use std::path::{Component, Path, PathBuf};

use super::keys::{from_hex, to_hex};

/// The longest key `--hex` naming can export (its hex must fit in one
/// 255-byte file name).
pub const MAX_HEX_NAMED_KEY: usize = 127;

/// The relative path a key is exported to, or why it cannot be one.
///
/// # Errors
/// A short reason, for messages.
pub fn key_to_relpath(key: &[u8], hex: bool) -> Result<PathBuf, &'static str> {
    if hex {
        if key.len() > MAX_HEX_NAMED_KEY {
            return Err("longer than 127 bytes: too long for a hex file name");
        }
        return Ok(PathBuf::from(to_hex(key)));
    }
    let s = std::str::from_utf8(key).map_err(|_| "not valid UTF-8 (export with --hex)")?;
    if s.contains('\0') {
        return Err("contains NUL");
    }
    if s.starts_with('/') {
        return Err("absolute path");
    }
    if cfg!(windows) && (s.contains('\\') || s.contains(':')) {
        return Err("contains '\\' or ':'");
    }
    let mut p = PathBuf::new();
    for c in s.split('/') {
        match c {
            "" => return Err("empty path component"),
            "." | ".." => return Err("'.' or '..' path component"),
            _ => p.push(c),
        }
    }
    // The checks above are the rule; this re-checks the result the way the
    // file system will see it.
    if !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err("not a plain relative path");
    }
    Ok(p)
}

/// The key a file at `rel` (relative to the import folder) is stored under.
///
/// # Errors
/// A short reason, for messages.
pub fn relpath_to_key(rel: &Path, hex: bool) -> Result<Vec<u8>, String> {
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => parts.push(
                n.to_str()
                    .ok_or_else(|| "file name is not valid UTF-8".to_string())?,
            ),
            _ => return Err("not a plain relative path".into()),
        }
    }
    if hex {
        if parts.len() != 1 {
            return Err("with --hex, files must lie directly in the folder".into());
        }
        return from_hex(parts[0])
            .map_err(|_| "with --hex, file names must be keys in hex".to_string());
    }
    Ok(parts.join("/").into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_keys_become_relative_paths() {
        assert_eq!(
            key_to_relpath(b"a/b/c.txt", false),
            Ok(PathBuf::from("a").join("b").join("c.txt"))
        );
        assert_eq!(
            key_to_relpath(b"..x/y..", false),
            Ok(PathBuf::from("..x/y.."))
        );
        assert_eq!(key_to_relpath(&[0xff, 0], true), Ok(PathBuf::from("ff00")));
    }

    #[test]
    fn unsafe_keys_are_refused() {
        for k in [
            &b"../x"[..],
            b"/abs",
            b"a/../../b",
            b"a//b",
            b"a/",
            b".",
            b"./a",
            b"a/./b",
            b"..",
            b"a\0b",
            &[0xff, b'a'],
        ] {
            assert!(key_to_relpath(k, false).is_err(), "{k:?} accepted");
        }
        assert!(key_to_relpath(&[1; 128], true).is_err());
    }

    #[test]
    fn paths_become_keys() {
        let p = Path::new("a").join("b.txt");
        assert_eq!(relpath_to_key(&p, false), Ok(b"a/b.txt".to_vec()));
        assert_eq!(relpath_to_key(Path::new("00ff"), true), Ok(vec![0, 0xff]));
        assert!(relpath_to_key(Path::new("zz"), true).is_err());
        assert!(relpath_to_key(&p, true).is_err());
        assert!(relpath_to_key(Path::new("../a"), false).is_err());
    }
}
