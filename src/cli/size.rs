//! Sizes on the command line (`--max-size 64M`) and in human output.
//!
//! A SIZE is a whole number of bytes, optionally followed by `K`, `M`, `G`,
//! `T` or `P` (powers of 1024, case-insensitive, an optional `iB` or `B`
//! after the letter): `1048576`, `512K`, `64M`, `10G`, `1T`, `2GiB`. `0`
//! means unlimited.

/// The smallest maximum file size the library accepts besides 0.
pub const MIN_MAX_SIZE: u64 = 1 << 20;

/// Parses a SIZE into bytes.
///
/// # Errors
/// A message saying what is wrong with `s`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty size (expected bytes or a number with K, M, G, T)".into());
    }
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = t.split_at(digits);
    if num.is_empty() {
        return Err(format!(
            "'{s}' is not a size (expected bytes or a number with K, M, G, T, e.g. 64M)"
        ));
    }
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        "P" | "PB" | "PIB" => 50,
        _ => {
            return Err(format!(
                "'{s}' has an unknown unit '{unit}' (use K, M, G or T: powers of 1024)"
            ))
        }
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is too large a size"))?;
    n.checked_mul(1u64 << shift)
        .filter(|&b| b <= i64::MAX as u64)
        .ok_or_else(|| format!("'{s}' is too large a size"))
}

/// Parses a maximum file size: a SIZE that is 0 (unlimited) or at least
/// 1 MiB. Used as clap's value parser for `--max-size`.
///
/// # Errors
/// A message saying what is wrong with `s`.
pub fn parse_max_size(s: &str) -> Result<u64, String> {
    let n = parse_size(s)?;
    if n != 0 && n < MIN_MAX_SIZE {
        return Err(format!(
            "{} is below the minimum maximum size of 1 MiB (0 means unlimited)",
            human(n)
        ));
    }
    Ok(n)
}

/// The smallest dictionary `train-dict` makes (zstd's own minimum).
pub const MIN_DICT_SIZE: u64 = 256;

/// Parses a dictionary size: a SIZE from 256 bytes to 1 MiB. Used as clap's
/// value parser for `train-dict --size`.
///
/// # Errors
/// A message saying what is wrong with `s`.
pub fn parse_dict_size(s: &str) -> Result<usize, String> {
    let n = parse_size(s)?;
    let max = dfcache::MAX_DICTIONARY_SIZE as u64;
    if !(MIN_DICT_SIZE..=max).contains(&n) {
        return Err(format!(
            "a dictionary size is 256 bytes to {}, not {}",
            human(max),
            human(n)
        ));
    }
    usize::try_from(n).map_err(|_| format!("'{s}' is too large a size"))
}

/// Bytes for people: `512 B`, `1.5 KiB`, `64.0 MiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// A maximum file size for people: `unlimited` for 0.
pub fn human_cap(bytes: u64) -> String {
    if bytes == 0 {
        "unlimited".into()
    } else {
        human(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_powers_of_1024() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("10G"), Ok(10 << 30));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size("1t"), Ok(1 << 40));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("3MB"), Ok(3 << 20));
        assert_eq!(parse_size("100B"), Ok(100));
    }

    #[test]
    fn bad_sizes_are_refused() {
        for bad in [
            "",
            "M",
            "-1",
            "1.5G",
            "12X",
            "64 M",
            "0x10",
            "1KK",
            "8E",
            "99999999999999999999",
            "9000P",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} parsed");
        }
        assert!(parse_max_size("512K").unwrap_err().contains("1 MiB"));
        assert_eq!(parse_max_size("0"), Ok(0));
        assert_eq!(parse_max_size("1M"), Ok(1 << 20));
    }

    #[test]
    fn dictionary_sizes_are_256_bytes_to_1_mib() {
        assert_eq!(parse_dict_size("8K"), Ok(8 << 10));
        assert_eq!(parse_dict_size("256"), Ok(256));
        assert_eq!(parse_dict_size("1M"), Ok(1 << 20));
        assert!(parse_dict_size("255").unwrap_err().contains("256 bytes"));
        assert!(parse_dict_size("0").is_err());
        assert!(parse_dict_size("2M").unwrap_err().contains("1.0 MiB"));
        assert!(parse_dict_size("8Q").is_err());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(64 << 20), "64.0 MiB");
        assert_eq!(human_cap(0), "unlimited");
    }
}
