//! SHA-256 compression of up to eight independent blocks at once, one per
//! 32-bit lane of the AVX2 registers (multi-buffer hashing, as Intel's
//! isa-l_crypto `sha256_mb` does). Called only by the QUIC Initial key
//! schedule (`proto/quic.rs`), which derives the keys of several new
//! connections together on a CPU without the SHA extensions: there one
//! block costs ~2,100 instructions with ring's AVX code, and eight blocks
//! side by side cost ~3,700 here.
//!
//! Pure: no I/O, no allocation, no state. Where AVX2 is absent each job is
//! compressed on its own with `sha2::block_api::compress256`. The only
//! `unsafe` is the call into the function compiled for AVX2, after the CPU
//! was asked whether it has it.

/// Blocks compressed side by side.
pub const LANES: usize = 8;

/// One compression to do: a hash state and the next 64-byte block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Job {
    pub state: [u32; 8],
    pub block: [u8; 64],
}

impl Default for Job {
    fn default() -> Self {
        Job {
            state: [0; 8],
            block: [0; 64],
        }
    }
}

/// Whether this CPU runs the eight-lane code (AVX2).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Compress every job's block into its state (FIPS 180-4 §6.2.2), eight at
/// a time where the CPU has AVX2.
pub fn compress_all(jobs: &mut [Job]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static AVX2: OnceLock<bool> = OnceLock::new();
        if *AVX2.get_or_init(available) {
            for chunk in jobs.chunks_mut(LANES) {
                // SAFETY: the CPU has AVX2 (checked above), the only
                // requirement of a `target_feature(enable = "avx2")` function.
                unsafe { avx2::compress(chunk) };
            }
            return;
        }
    }
    compress_each(jobs);
}

/// One job at a time (the reference the eight-lane code is tested against).
pub fn compress_each(jobs: &mut [Job]) {
    for j in jobs {
        sha2::block_api::compress256(&mut j.state, &[j.block]);
    }
}

/// SHA-256 round constants (FIPS 180-4 §4.2.2).
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Job, K, LANES};
    use core::arch::x86_64::*;

    /// Rotate each lane right by `n` bits.
    macro_rules! ror {
        ($x:expr, $n:literal) => {
            _mm256_or_si256(
                _mm256_srli_epi32::<$n>($x),
                _mm256_slli_epi32::<{ 32 - $n }>($x),
            )
        };
    }

    /// One round (FIPS 180-4 §6.2.2 step 3) with the working variables
    /// named in their current order: updates `d` and `h` in place (the
    /// caller rotates the names instead of the values).
    macro_rules! round {
        ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident, $t:expr, $w:expr) => {
            let s1 = _mm256_xor_si256(_mm256_xor_si256(ror!($e, 6), ror!($e, 11)), ror!($e, 25));
            let ch = _mm256_xor_si256(_mm256_and_si256($e, $f), _mm256_andnot_si256($e, $g));
            let kw = _mm256_add_epi32(_mm256_set1_epi32(K[$t] as i32), $w);
            let t1 = _mm256_add_epi32(_mm256_add_epi32($h, s1), _mm256_add_epi32(ch, kw));
            let s0 = _mm256_xor_si256(_mm256_xor_si256(ror!($a, 2), ror!($a, 13)), ror!($a, 22));
            let maj = _mm256_or_si256(
                _mm256_and_si256($a, $b),
                _mm256_and_si256($c, _mm256_or_si256($a, $b)),
            );
            $d = _mm256_add_epi32($d, t1);
            $h = _mm256_add_epi32(t1, _mm256_add_epi32(s0, maj));
        };
    }

    /// Message schedule step (§6.2.2 step 1) on a 16-word ring:
    /// W[t] = σ1(W[t-2]) + W[t-7] + σ0(W[t-15]) + W[t-16], in `w16`'s place.
    macro_rules! schedule {
        ($w16:ident, $w15:ident, $w7:ident, $w2:ident) => {
            let s0 = _mm256_xor_si256(
                _mm256_xor_si256(ror!($w15, 7), ror!($w15, 18)),
                _mm256_srli_epi32::<3>($w15),
            );
            let s1 = _mm256_xor_si256(
                _mm256_xor_si256(ror!($w2, 17), ror!($w2, 19)),
                _mm256_srli_epi32::<10>($w2),
            );
            $w16 = _mm256_add_epi32(_mm256_add_epi32($w16, s0), _mm256_add_epi32($w7, s1));
        };
    }

    /// Sixteen rounds from round `$base`, the working variables rotating
    /// through the names every round.
    macro_rules! sixteen {
        ($base:expr, $v:ident, $w:ident) => {
            let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = $v;
            let [w0, w1, w2, w3, w4, w5, w6, w7, w8, w9, w10, w11, w12, w13, w14, w15] = $w;
            round!(a, b, c, d, e, f, g, h, $base, w0);
            round!(h, a, b, c, d, e, f, g, $base + 1, w1);
            round!(g, h, a, b, c, d, e, f, $base + 2, w2);
            round!(f, g, h, a, b, c, d, e, $base + 3, w3);
            round!(e, f, g, h, a, b, c, d, $base + 4, w4);
            round!(d, e, f, g, h, a, b, c, $base + 5, w5);
            round!(c, d, e, f, g, h, a, b, $base + 6, w6);
            round!(b, c, d, e, f, g, h, a, $base + 7, w7);
            round!(a, b, c, d, e, f, g, h, $base + 8, w8);
            round!(h, a, b, c, d, e, f, g, $base + 9, w9);
            round!(g, h, a, b, c, d, e, f, $base + 10, w10);
            round!(f, g, h, a, b, c, d, e, $base + 11, w11);
            round!(e, f, g, h, a, b, c, d, $base + 12, w12);
            round!(d, e, f, g, h, a, b, c, $base + 13, w13);
            round!(c, d, e, f, g, h, a, b, $base + 14, w14);
            round!(b, c, d, e, f, g, h, a, $base + 15, w15);
            $v = [a, b, c, d, e, f, g, h];
        };
    }

    /// The next sixteen schedule words, in place.
    macro_rules! next_sixteen {
        ($w:ident) => {
            let [
                mut w0, mut w1, mut w2, mut w3, mut w4, mut w5, mut w6, mut w7,
                mut w8, mut w9, mut w10, mut w11, mut w12, mut w13, mut w14, mut w15,
            ] = $w;
            schedule!(w0, w1, w9, w14);
            schedule!(w1, w2, w10, w15);
            schedule!(w2, w3, w11, w0);
            schedule!(w3, w4, w12, w1);
            schedule!(w4, w5, w13, w2);
            schedule!(w5, w6, w14, w3);
            schedule!(w6, w7, w15, w4);
            schedule!(w7, w8, w0, w5);
            schedule!(w8, w9, w1, w6);
            schedule!(w9, w10, w2, w7);
            schedule!(w10, w11, w3, w8);
            schedule!(w11, w12, w4, w9);
            schedule!(w12, w13, w5, w10);
            schedule!(w13, w14, w6, w11);
            schedule!(w14, w15, w7, w12);
            schedule!(w15, w0, w8, w13);
            $w = [w0, w1, w2, w3, w4, w5, w6, w7, w8, w9, w10, w11, w12, w13, w14, w15];
        };
    }

    /// Transpose eight rows of eight 32-bit words: row `i`'s word `j`
    /// becomes row `j`'s word `i`.
    #[target_feature(enable = "avx2")]
    fn transpose(r: [__m256i; 8]) -> [__m256i; 8] {
        let [r0, r1, r2, r3, r4, r5, r6, r7] = r;
        let (t0, t1) = (_mm256_unpacklo_epi32(r0, r1), _mm256_unpackhi_epi32(r0, r1));
        let (t2, t3) = (_mm256_unpacklo_epi32(r2, r3), _mm256_unpackhi_epi32(r2, r3));
        let (t4, t5) = (_mm256_unpacklo_epi32(r4, r5), _mm256_unpackhi_epi32(r4, r5));
        let (t6, t7) = (_mm256_unpacklo_epi32(r6, r7), _mm256_unpackhi_epi32(r6, r7));
        // Each u holds two columns of four rows: (j, j + 4).
        let (u0, u1) = (_mm256_unpacklo_epi64(t0, t2), _mm256_unpackhi_epi64(t0, t2));
        let (u2, u3) = (_mm256_unpacklo_epi64(t1, t3), _mm256_unpackhi_epi64(t1, t3));
        let (u4, u5) = (_mm256_unpacklo_epi64(t4, t6), _mm256_unpackhi_epi64(t4, t6));
        let (u6, u7) = (_mm256_unpacklo_epi64(t5, t7), _mm256_unpackhi_epi64(t5, t7));
        [
            _mm256_permute2x128_si256::<0x20>(u0, u4),
            _mm256_permute2x128_si256::<0x20>(u1, u5),
            _mm256_permute2x128_si256::<0x20>(u2, u6),
            _mm256_permute2x128_si256::<0x20>(u3, u7),
            _mm256_permute2x128_si256::<0x31>(u0, u4),
            _mm256_permute2x128_si256::<0x31>(u1, u5),
            _mm256_permute2x128_si256::<0x31>(u2, u6),
            _mm256_permute2x128_si256::<0x31>(u3, u7),
        ]
    }

    /// Compress up to [`LANES`] jobs side by side (more are ignored).
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn compress(jobs: &mut [Job]) {
        // Each 32-bit word's bytes reversed (the block is big-endian).
        let bswap = _mm256_setr_epi8(
            3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12, 3, 2, 1, 0, 7, 6, 5, 4, 11, 10,
            9, 8, 15, 14, 13, 12,
        );
        // Lane-major rows (a lane without a job hashes zeros, never read back).
        let zero = _mm256_setzero_si256();
        let (mut states, mut lo, mut hi) = ([zero; 8], [zero; 8], [zero; 8]);
        for (((s, l), h), j) in states.iter_mut().zip(&mut lo).zip(&mut hi).zip(jobs.iter()) {
            // SAFETY: unaligned loads of 32 bytes from a [u32; 8] and from
            // the two halves of a [u8; 64].
            *s = _mm256_loadu_si256(j.state.as_ptr().cast());
            let (a, b) = j.block.split_at(32);
            *l = _mm256_shuffle_epi8(_mm256_loadu_si256(a.as_ptr().cast()), bswap);
            *h = _mm256_shuffle_epi8(_mm256_loadu_si256(b.as_ptr().cast()), bswap);
        }
        let init = transpose(states);
        let [w0, w1, w2, w3, w4, w5, w6, w7] = transpose(lo);
        let [w8, w9, w10, w11, w12, w13, w14, w15] = transpose(hi);
        let mut w = [
            w0, w1, w2, w3, w4, w5, w6, w7, w8, w9, w10, w11, w12, w13, w14, w15,
        ];
        let mut v = init;
        sixteen!(0, v, w);
        next_sixteen!(w);
        sixteen!(16, v, w);
        next_sixteen!(w);
        sixteen!(32, v, w);
        next_sixteen!(w);
        sixteen!(48, v, w);
        // Feed-forward, then back to each job's row.
        let mut sum = init;
        for (s, x) in sum.iter_mut().zip(v) {
            *s = _mm256_add_epi32(*s, x);
        }
        for (row, j) in transpose(sum).into_iter().zip(jobs.iter_mut()).take(LANES) {
            // SAFETY: an unaligned store of 32 bytes into a [u32; 8].
            _mm256_storeu_si256(j.state.as_mut_ptr().cast(), row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testrng::XorShift64;

    fn random_jobs(rng: &mut XorShift64, n: usize) -> Vec<Job> {
        (0..n)
            .map(|_| {
                let mut j = Job::default();
                for s in &mut j.state {
                    *s = rng.next() as u32;
                }
                for b in &mut j.block {
                    *b = rng.next() as u8;
                }
                j
            })
            .collect()
    }

    #[test]
    fn eight_lanes_compress_as_one_at_a_time() {
        assert!(
            available() || std::env::var_os("CI").is_none(),
            "no AVX2 on this CPU: the eight-lane code is not tested"
        );
        if !available() {
            eprintln!("SKIP: no AVX2 on this CPU, the eight-lane code is not tested");
            return;
        }
        let mut rng = XorShift64(0x5eed_0fa1);
        // Every count of jobs, partial chunks of eight included.
        for n in 0..=3 * LANES + 1 {
            let mut a = random_jobs(&mut rng, n);
            let mut b = a.clone();
            compress_all(&mut a);
            compress_each(&mut b);
            assert_eq!(a, b, "{n} jobs");
        }
    }

    #[test]
    fn empty_message_hash_is_the_known_one() {
        // SHA-256("") from FIPS 180-4's IV and the one padding block.
        let iv = [
            0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
            0x5be0cd19,
        ];
        let mut block = [0u8; 64];
        block[0] = 0x80;
        let mut jobs = vec![Job { state: iv, block }; 3];
        compress_all(&mut jobs);
        for j in jobs {
            assert_eq!(
                j.state,
                [
                    0xe3b0c442, 0x98fc1c14, 0x9afbf4c8, 0x996fb924, 0x27ae41e4, 0x649b934c,
                    0xa495991b, 0x7852b855
                ]
            );
        }
    }
}
