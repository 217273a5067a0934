//! A value larger than memory is written and read back in constant memory.
//! Its own test binary: peak RSS is a property of the whole process.
//!
//! 64 MiB always; 2 GiB with `DFCACHE_STREAM_2G=1`. Either way peak RSS
//! stays under 64 MiB.

use std::io::Read;

use dfcache::{Flushable, OpenOptions};

/// Reads a field (in KiB) of /proc/self/status.
fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

fn byte_at(i: u64) -> u8 {
    let mut z = (i / 8).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z >> ((i % 8) * 8)) as u8
}

struct Gen {
    pos: u64,
    len: u64,
    crc: crc32fast::Hasher,
}

impl Read for Gen {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = ((self.len - self.pos) as usize).min(out.len());
        for (j, b) in out[..n].iter_mut().enumerate() {
            *b = byte_at(self.pos + j as u64);
        }
        self.crc.update(&out[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

#[test]
fn streaming_uses_constant_memory() {
    let len: u64 = if std::env::var_os("DFCACHE_STREAM_2G").is_some() {
        2 << 30
    } else {
        64 << 20
    };
    let dir = tempfile::tempdir().unwrap();
    let c = OpenOptions::new()
        .create(dir.path().join("big.dfc"), 0)
        .unwrap();
    // Start the peak measurement here: reset VmHWM (Linux >= 4.0).
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let mut src = Gen {
        pos: 0,
        len,
        crc: crc32fast::Hasher::new(),
    };
    assert_eq!(c.put_stream(b"big", &mut src).unwrap(), len);
    c.flush().unwrap();
    let want = src.crc.finalize();
    let mut r = c.get_stream(b"big").unwrap().unwrap();
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        total += n as u64;
    }
    assert_eq!(total, len);
    assert_eq!(h.finalize(), want);
    let peak = status_kib("VmHWM:");
    assert!(
        peak < 64 << 10,
        "peak RSS {peak} KiB for a {len}-byte value"
    );
    eprintln!("streamed {len} bytes in and out; peak RSS {peak} KiB");
}
