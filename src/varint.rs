//! Unsigned LEB128 varints (spec/FORMAT.md §1), shared by the allocations
//! index (storage) and entry records (cache).

/// Appends `v` as a varint (1 to 10 bytes).
pub(crate) fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Decodes the varint at `b[*at..]` and advances `*at` past it. `None` if it
/// is truncated, longer than 10 bytes, or overflows 64 bits.
pub(crate) fn get(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let x = *b.get(*at)?;
        *at += 1;
        if i == 9 && x > 1 {
            return None;
        }
        v |= ((x & 0x7f) as u64) << (7 * i);
        if x & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn roundtrip_and_rejects_overlong() {
        for v in [0, 1, 127, 128, 300, 1 << 35, u64::MAX] {
            let mut b = Vec::new();
            super::put(&mut b, v);
            let mut at = 0;
            assert_eq!(super::get(&b, &mut at), Some(v));
            assert_eq!(at, b.len());
            assert_eq!(super::get(&b[..b.len() - 1], &mut 0), None);
        }
        assert_eq!(super::get(&[0xff; 10], &mut 0), None);
        assert_eq!(
            super::get(
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2],
                &mut 0
            ),
            None
        );
    }
}
