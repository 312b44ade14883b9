//! The seeded random stream every reproducible choice draws from: query
//! picks, parameters, retry jitter, bootstrap resamples.

/// A small, fast, reproducible PRNG (xoshiro256**, seeded by splitmix64).
/// Its sequence is fixed forever, so a seed means the same requests on every
/// machine and every poolbench version.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    /// The generator of worker `index` under `seed`: each worker has its own
    /// stream, the same for every strategy.
    pub fn for_worker(seed: u64, index: u32) -> Rng {
        Rng::for_stream(seed, u64::from(index))
    }

    /// Stream `n` of `seed` (worker `n`, or arrival `n` in open loop).
    pub fn for_stream(seed: u64, n: u64) -> Rng {
        Rng::new(seed ^ n.wrapping_add(1).wrapping_mul(0xA076_1D64_78BD_642F))
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, n) for n > 0 (Lemire's multiply-shift; the bias is
    /// below 2^-64 · n, irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}
