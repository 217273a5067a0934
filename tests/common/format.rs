//! An independent reader of the file layout, written from spec/FORMAT.md
//! alone (it shares no code with the library): which bytes of a file the
//! committed state uses and protects by a checksum. The corruption sweep
//! uses it to know where the spec promises that damage is detected.

/// A decoded, valid commit record (spec §5).
#[derive(Clone, Debug)]
pub struct Record {
    pub slot_offset: u64,
    /// `L`.
    pub len: u64,
    pub seq: u64,
    pub file_len: u64,
    pub one_phase: bool,
    /// (tree id, height, root page, root crc)
    pub trees: Vec<(u32, u8, u64, u32)>,
    /// (offset, length, crc)
    pub checks: Vec<(u64, u32, u32)>,
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(i..i + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], i: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(i..i + 8)?.try_into().ok()?))
}

/// Decodes the record in the slot at `slot_offset` of `file`.
pub fn record(file: &[u8], slot_offset: u64) -> Option<Record> {
    let b = file.get(slot_offset as usize..slot_offset as usize + 4096)?;
    if b[..8] != *b"\x89DFCREC\n" || u16_at(b, 8)? != 3 || b[10] > 1 || b[11] != 0 {
        return None;
    }
    let len = u32_at(b, 12)? as usize;
    let t = u32_at(b, 120)? as usize;
    let c = u32_at(b, 124)? as usize;
    if len > 4096 || len != 128 + 24 * t + 16 * c + 4 {
        return None;
    }
    if crc32fast::hash(&b[..len - 4]) != u32_at(b, len - 4)? {
        return None;
    }
    let trees = (0..t)
        .map(|i| {
            let e = 128 + 24 * i;
            (
                u32_at(b, e).unwrap(),
                b[e + 4],
                u64_at(b, e + 8).unwrap(),
                u32_at(b, e + 16).unwrap(),
            )
        })
        .collect();
    let checks = (0..c)
        .map(|i| {
            let e = 128 + 24 * t + 16 * i;
            (
                u64_at(b, e).unwrap(),
                u32_at(b, e + 8).unwrap(),
                u32_at(b, e + 12).unwrap(),
            )
        })
        .collect();
    Some(Record {
        slot_offset,
        len: len as u64,
        seq: u64_at(b, 16)?,
        file_len: u64_at(b, 24)?,
        one_phase: b[10] == 1,
        trees,
        checks,
    })
}

/// The record a reader uses (spec §10), and the other valid one.
pub fn chosen(file: &[u8]) -> Option<(Record, Option<Record>)> {
    let mut v: Vec<Record> = [4096, 8192]
        .iter()
        .filter_map(|&o| record(file, o))
        .collect();
    v.sort_by_key(|r| std::cmp::Reverse(r.seq));
    let first = v.first()?.clone();
    let checks_ok = first.checks.iter().all(|&(o, l, c)| {
        file.get(o as usize..o as usize + l as usize)
            .is_some_and(|b| crc32fast::hash(b) == c)
    });
    if checks_ok {
        Some((first, v.get(1).cloned()))
    } else {
        let second = v.get(1)?.clone();
        (second.seq + 1 == first.seq).then_some((second, Some(first)))
    }
}

/// What the committed state uses.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    /// The record in use: (slot offset, L).
    pub record: (u64, u64),
    /// The other slot, if it holds a valid record: (slot offset, L).
    pub other: Option<(u64, u64)>,
    pub file_len: u64,
    /// Node pages of every tree.
    pub nodes: Vec<u64>,
    /// Byte ranges covered by a checksum: value bodies, chunk tables,
    /// chunks, metadata extents.
    pub checked: Vec<(u64, u64)>,
    /// Entries in the primary index.
    pub entries: usize,
    /// The ranges a one-phase record in use lists (damage there makes the
    /// commit count as incomplete).
    pub one_phase_checks: Vec<(u64, u64)>,
}

impl Layout {
    /// Whether byte `pos` is one the spec says a reader checks.
    pub fn protected(&self, pos: u64) -> bool {
        let in_range = |(o, l): (u64, u64)| pos >= o && pos < o + l;
        in_range(self.record)
            || self.nodes.iter().any(|&p| in_range((p, 4096)))
            || self.checked.iter().any(|&r| in_range(r))
    }
}

fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for n in 0..10 {
        let x = *b.get(*i)?;
        *i += 1;
        v |= ((x & 0x7f) as u64) << (7 * n);
        if x & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The extents an entry record (spec §11.1) refers to, as checked ranges.
fn entry_ranges(file: &[u8], rec: &[u8], out: &mut Vec<(u64, u64)>) -> Option<()> {
    let flags = *rec.first()?;
    // The CRC field (4 bytes) exists for extent and chunked bodies only.
    let mut i = if matches!(flags & 7, 1 | 2) { 5 } else { 1 };
    for _ in 0..4 {
        varint(rec, &mut i)?; // raw length, tick, inserted, dictionary
    }
    match flags & 7 {
        // Inline: a length only when metadata follows; otherwise the bytes
        // run to the end of the record.
        0 if flags & 0x40 != 0 => {
            let n = varint(rec, &mut i)? as usize;
            i += n;
        }
        0 => i = rec.len(),
        1 => {
            let off = varint(rec, &mut i)?;
            let len = varint(rec, &mut i)?;
            out.push((off, len));
        }
        2 => {
            let off = varint(rec, &mut i)?;
            let len = varint(rec, &mut i)?;
            out.push((off, len));
            let t = file.get(off as usize..(off + len) as usize)?;
            let m = u32_at(t, 4)? as usize;
            for c in 0..m {
                let e = 16 + 24 * c;
                out.push((u64_at(t, e)?, u32_at(t, e + 8)? as u64));
            }
        }
        _ => {}
    }
    if flags & 0x40 != 0 {
        match *rec.get(i)? {
            0 => {}
            _ => {
                i += 1;
                let off = varint(rec, &mut i)?;
                let len = varint(rec, &mut i)?;
                out.push((off, len));
            }
        }
    }
    Some(())
}

fn walk(file: &[u8], tree: u32, page: u64, level: u8, l: &mut Layout) -> Option<()> {
    let b = file.get(page as usize..page as usize + 4096)?;
    l.nodes.push(page);
    let n = u16_at(b, 18)? as usize;
    let p = u16_at(b, 20)? as usize;
    if level > 0 {
        for c in 0..=n {
            let at = 28 + p + 12 * c;
            walk(file, tree, u64_at(b, at)?, level - 1, l)?;
        }
    } else if tree == 1 {
        // Layout 0: 4-byte slots (key offset, key length); 1: 2-byte slots
        // (key offset), every key suffix `ks` bytes; 2: no slots, entries
        // of `ks` + `vs` bytes back to back. A value runs from the end of
        // its key to the next key, or to `end` for the last.
        let (ks, vs) = (b[25] as usize, u16_at(b, 26)? as usize);
        let heap = 28 + p;
        let slot = |s: usize| -> Option<(usize, usize)> {
            match b[24] {
                0 => Some((
                    u16_at(b, heap + 4 * s)? as usize,
                    u16_at(b, heap + 4 * s + 2)? as usize,
                )),
                1 => Some((u16_at(b, heap + 2 * s)? as usize, ks)),
                2 => Some((heap + s * (ks + vs), ks)),
                _ => None,
            }
        };
        let end = u16_at(b, 22)? as usize;
        for s in 0..n {
            let (ko, kl) = slot(s)?;
            let next = if s + 1 < n { slot(s + 1)?.0 } else { end };
            let rec = b.get(ko + kl..next)?;
            l.entries += 1;
            entry_ranges(file, rec, &mut l.checked)?;
        }
    }
    Some(())
}

/// The layout of an undamaged file.
pub fn layout(file: &[u8]) -> Option<Layout> {
    let (r, other) = chosen(file)?;
    let mut l = Layout {
        record: (r.slot_offset, r.len),
        other: other.map(|o| (o.slot_offset, o.len)),
        file_len: r.file_len,
        one_phase_checks: r.checks.iter().map(|&(o, l, _)| (o, l as u64)).collect(),
        ..Default::default()
    };
    for &(id, height, page, _) in &r.trees {
        if height > 0 {
            walk(file, id, page, height - 1, &mut l)?;
        }
    }
    Some(l)
}
