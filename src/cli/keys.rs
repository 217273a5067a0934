//! Keys on the command line and in output.
//!
//! Keys are UTF-8 text by default; with `--hex` every key (and prefix) is
//! taken and printed as hex, so binary keys can be named. Text output prints
//! a key that is not printable UTF-8 (invalid UTF-8 or control characters
//! such as a newline) as hex, so one key stays one line; JSON output always
//! gives both forms (`key`, `key_hex`).

use serde::Serialize;

use super::error::{CliError, CliResult};

/// Lowercase hex of `b`.
pub fn to_hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(DIGITS[(x >> 4) as usize] as char);
        s.push(DIGITS[(x & 15) as usize] as char);
    }
    s
}

/// Decodes hex (either case).
///
/// # Errors
/// A usage error for an odd length or a non-hex digit.
pub fn from_hex(s: &str) -> CliResult<Vec<u8>> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    if !s.len().is_multiple_of(2) {
        return Err(CliError::usage(format!(
            "hex key has an odd number of digits: {s}"
        )));
    }
    s.as_bytes()
        .chunks(2)
        .map(|p| match (digit(p[0]), digit(p[1])) {
            (Some(h), Some(l)) => Ok(h << 4 | l),
            _ => Err(CliError::usage(format!("not a hex key: {s}"))),
        })
        .collect()
}

/// A key (or prefix) as given on the command line: its UTF-8 bytes, or its
/// hex decoding with `--hex`.
///
/// # Errors
/// A usage error for bad hex.
pub fn parse_key(s: &str, hex: bool) -> CliResult<Vec<u8>> {
    if hex {
        from_hex(s)
    } else {
        Ok(s.as_bytes().to_vec())
    }
}

/// The key as printable text, if it is valid UTF-8 without control
/// characters.
pub fn printable(k: &[u8]) -> Option<&str> {
    std::str::from_utf8(k)
        .ok()
        .filter(|s| !s.chars().any(char::is_control))
}

/// A key for text output: hex with `--hex` or when it is not printable
/// UTF-8, else the text itself.
pub fn show(k: &[u8], hex: bool) -> String {
    match printable(k) {
        Some(s) if !hex => s.to_string(),
        _ => to_hex(k),
    }
}

/// A key in JSON output: the text when it is valid UTF-8, and always the
/// hex.
#[derive(Serialize, Debug, Clone)]
pub struct KeyJson {
    /// The key as UTF-8 text; `null` when it is not valid UTF-8.
    pub key: Option<String>,
    /// The key's bytes in lowercase hex.
    pub key_hex: String,
}

impl KeyJson {
    /// Both forms of `k`.
    pub fn new(k: &[u8]) -> KeyJson {
        KeyJson {
            key: std::str::from_utf8(k).ok().map(str::to_string),
            key_hex: to_hex(k),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let k = [0u8, 1, 0x7f, 0x80, 0xff];
        assert_eq!(to_hex(&k), "00017f80ff");
        assert_eq!(from_hex("00017F80ff").unwrap(), k);
        assert!(from_hex("abc").is_err());
        assert!(from_hex("zz").is_err());
        assert_eq!(from_hex("").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn keys_show_as_text_or_hex() {
        assert_eq!(show(b"tiles/1.png", false), "tiles/1.png");
        assert_eq!(show(b"tiles/1.png", true), "74696c65732f312e706e67");
        assert_eq!(show(&[0xff, 0x00], false), "ff00");
        assert_eq!(show(b"two\nlines", false), "74776f0a6c696e6573");
        let j = KeyJson::new(&[0xff]);
        assert_eq!((j.key, j.key_hex.as_str()), (None, "ff"));
    }
}
