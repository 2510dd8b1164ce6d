//! The splitter's random source, for requests routed by weight without a sticky key.

use std::sync::atomic::{AtomicU64, Ordering};

/// Lock-free seedable random source: splitmix64 over an atomic counter (one relaxed
/// `fetch_add` a draw, shared by every clone of a split).
#[derive(Debug)]
pub(crate) struct Rng(AtomicU64);

/// Splitmix64's increment (the golden ratio in 64 bits).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(AtomicU64::new(seed))
    }

    #[inline]
    pub(crate) fn next_u64(&self) -> u64 {
        let mut z = self
            .0
            .fetch_add(GAMMA, Ordering::Relaxed)
            .wrapping_add(GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_draws_repeat_and_spread() {
        let (a, b) = (Rng::new(7), Rng::new(7));
        let draws: Vec<u64> = (0..64).map(|_| a.next_u64()).collect();
        assert_eq!(draws, (0..64).map(|_| b.next_u64()).collect::<Vec<_>>());
        let distinct: std::collections::HashSet<_> = draws.iter().collect();
        assert_eq!(distinct.len(), 64);
        assert_ne!(Rng::new(8).next_u64(), draws[0]);
    }
}
