//! Deterministic pseudo-random numbers for tests: xorshift64 (Marsaglia's
//! 13/7/17 triple), so every test that walks random input draws from one
//! generator and a seed names its sequence. Test builds only; nothing in
//! the product depends on it.

/// xorshift64 state; the seed must not be 0.
pub struct XorShift64(pub u64);

impl XorShift64 {
    /// The next number (the state after one step).
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
