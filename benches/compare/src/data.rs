//! The data every engine sees: keys, values from a seeded PRNG, their
//! CRC-32s, the load order and the read sequences.
//!
//! Everything is a pure function of the seed, so each engine gets exactly the
//! same bytes in exactly the same order.

use anyhow::{bail, Result};
use dfcache::DatasetId;

/// A small, fast, seeded PRNG (wyrand). Not cryptographic; only here to make
/// incompressible bytes and random orders that repeat from run to run.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose stream is fixed by `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x2545_f491_4f6c_dd1d)
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    }

    /// A uniform number in `0..n` (n > 0).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A uniform float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What the values look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Content {
    /// Bytes straight from the PRNG: no compressor can shrink them.
    Random,
    /// Words from a small vocabulary: zstd and lz4 shrink them about 3-4x.
    Compressible,
}

/// Words the compressible values are made of.
const WORDS: [&[u8]; 32] = [
    b"elevation ",
    b"tile ",
    b"0.000 ",
    b"1.250 ",
    b"null ",
    b"raster ",
    b"band ",
    b"nodata ",
    b"-9999 ",
    b"12.5 ",
    b"block ",
    b"pixel ",
    b"{\"x\": ",
    b"\"y\": ",
    b"}, ",
    b"[ ",
    b"] ",
    b"0 ",
    b"1 ",
    b"2 ",
    b"3 ",
    b"255 ",
    b"128 ",
    b"64 ",
    b"true ",
    b"false ",
    b"dataset ",
    b"revision ",
    b"level ",
    b"row ",
    b"col ",
    b"\n",
];

/// A data set: `n` blocks of `value_len` bytes each under 28-byte dataset
/// keys, with the CRC-32 of every value.
pub struct Data {
    /// Which dataset the keys belong to.
    pub id: DatasetId,
    /// Number of blocks that the CRC table covers.
    pub n: usize,
    /// Bytes per value.
    pub value_len: usize,
    /// What the values look like.
    pub content: Content,
    seed: u64,
    crc: Vec<u32>,
}

impl Data {
    /// The data set of `n` values of `value_len` bytes under `seed`; computes
    /// the CRC of every value.
    pub fn new(seed: u64, n: usize, value_len: usize, content: Content) -> Data {
        let id = DatasetId::new(
            uuid::Uuid::from_u128(0x5eed_0000_0000_0000 ^ seed as u128),
            1,
        );
        let mut d = Data {
            id,
            n,
            value_len,
            content,
            seed,
            crc: Vec::new(),
        };
        let mut buf = vec![0u8; value_len];
        d.crc = (0..n as u64)
            .map(|i| {
                d.fill(i, &mut buf);
                crc32fast::hash(&buf)
            })
            .collect();
        d
    }

    /// The key of block `i`, as dfcache's dataset layer encodes it.
    #[inline]
    pub fn key(&self, i: u64) -> [u8; 28] {
        self.id.block_key(i)
    }

    /// The block index a key encodes.
    #[inline]
    pub fn index_of(key: &[u8]) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&key[key.len() - 8..]);
        u64::from_be_bytes(b)
    }

    /// Writes value `i` into `buf` (which must be `value_len` long).
    pub fn fill(&self, i: u64, buf: &mut [u8]) {
        let mut r = Rng::new(self.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i);
        match self.content {
            Content::Random => {
                let mut chunks = buf.chunks_exact_mut(8);
                for c in &mut chunks {
                    c.copy_from_slice(&r.next_u64().to_le_bytes());
                }
                let tail = chunks.into_remainder();
                let last = r.next_u64().to_le_bytes();
                let l = tail.len();
                tail.copy_from_slice(&last[..l]);
            }
            Content::Compressible => {
                let mut at = 0;
                while at < buf.len() {
                    let w = WORDS[r.below(WORDS.len() as u64) as usize];
                    let take = w.len().min(buf.len() - at);
                    buf[at..at + take].copy_from_slice(&w[..take]);
                    at += take;
                }
            }
        }
    }

    /// Value `i` as a new vector.
    pub fn value(&self, i: u64) -> Vec<u8> {
        let mut v = vec![0u8; self.value_len];
        self.fill(i, &mut v);
        v
    }

    /// Checks that `v` is value `i` by length and CRC-32; values past the
    /// CRC table (written later by the commit phase) are checked by length.
    #[inline]
    pub fn check(&self, i: u64, v: &[u8]) -> Result<()> {
        if v.len() != self.value_len {
            bail!(
                "block {i}: value of {} bytes, expected {}",
                v.len(),
                self.value_len
            );
        }
        if let Some(&want) = self.crc.get(i as usize) {
            let got = crc32fast::hash(v);
            if got != want {
                bail!("block {i}: CRC {got:08x}, expected {want:08x}");
            }
        }
        Ok(())
    }

    /// Checks a (key, value) pair as a scan returns it.
    #[inline]
    pub fn check_kv(&self, k: &[u8], v: &[u8]) -> Result<()> {
        if k.len() != 28 {
            bail!("key of {} bytes, expected 28", k.len());
        }
        self.check(Self::index_of(k), v)
    }

    /// Bytes of payload (values only) of the `n` blocks.
    pub fn payload(&self) -> u64 {
        (self.n * self.value_len) as u64
    }
}

/// A random permutation of `0..n` (the load order).
pub fn shuffled(n: usize, seed: u64) -> Vec<u32> {
    let mut v: Vec<u32> = (0..n as u32).collect();
    let mut r = Rng::new(seed ^ 0x0bad_5eed);
    for i in (1..v.len()).rev() {
        let j = r.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
    v
}

/// `count` uniform random indices in `0..n` (the get sequence).
pub fn uniform(count: usize, n: usize, seed: u64) -> Vec<u32> {
    let mut r = Rng::new(seed ^ 0x6e75_6e69);
    (0..count).map(|_| r.below(n as u64) as u32).collect()
}

/// Zipf-distributed block indices: rank `k` (1 = hottest) has weight
/// `1 / k^s`; ranks are mapped to block indices through a random permutation
/// so hot blocks are spread over the key space.
pub struct Zipf {
    cdf: Vec<f64>,
    rank_to_block: Vec<u32>,
}

impl Zipf {
    /// A Zipf(`s`) distribution over `n` blocks.
    pub fn new(n: usize, s: f64, seed: u64) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for k in 1..=n {
            sum += 1.0 / (k as f64).powf(s);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Zipf {
            cdf,
            rank_to_block: shuffled(n, seed ^ 0x21bf),
        }
    }

    /// The block of rank `r` (0 = hottest).
    pub fn block_of_rank(&self, r: usize) -> u32 {
        self.rank_to_block[r]
    }

    /// `count` draws.
    pub fn sample(&self, count: usize, seed: u64) -> Vec<u32> {
        let mut r = Rng::new(seed ^ 0x7a1f);
        (0..count)
            .map(|_| {
                let u = r.unit();
                let rank = self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1);
                self.rank_to_block[rank]
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_repeat_and_check() {
        let d = Data::new(7, 10, 150, Content::Random);
        let v = d.value(3);
        assert_eq!(v, d.value(3));
        assert!(d.check(3, &v).is_ok());
        assert!(d.check(4, &v).is_err());
        assert_eq!(Data::index_of(&d.key(3)), 3);
    }

    #[test]
    fn zipf_is_skewed() {
        let z = Zipf::new(1000, 0.99, 1);
        let s = z.sample(100_000, 2);
        let hot = s.iter().filter(|&&b| b == z.block_of_rank(0)).count();
        assert!(hot > 5_000, "{hot}");
    }
}
