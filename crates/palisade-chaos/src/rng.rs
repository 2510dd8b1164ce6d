//! A lock-free, seedable random source shared by every clone of a layer.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64 over an atomic counter: one `fetch_add` per draw, no lock, and the same
/// sequence for the same seed (in the order the draws happen).
#[derive(Debug)]
pub(crate) struct Rng {
    state: AtomicU64,
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            state: AtomicU64::new(seed),
        }
    }

    /// A seed from the process's random hasher keys (no extra dependency).
    pub(crate) fn random_seed() -> u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x5EED);
        h.finish()
    }

    pub(crate) fn reseed(&self, seed: u64) {
        self.state.store(seed, Ordering::Relaxed);
    }

    /// Up to [`BLOCK`] draws for one request, reserved with a single atomic add on the first
    /// draw (none at all if nothing is drawn).
    #[inline]
    pub(crate) fn draws(&self) -> Draws<'_> {
        Draws {
            rng: self,
            state: None,
        }
    }
}

/// Draws reserved per request; more would overlap the next request's block.
pub(crate) const BLOCK: u64 = 16;

/// The draws of one request (see [`Rng::draws`]).
#[derive(Debug)]
pub(crate) struct Draws<'a> {
    rng: &'a Rng,
    state: Option<u64>,
}

impl Draws<'_> {
    #[inline]
    pub(crate) fn next_u64(&mut self) -> u64 {
        let base = match self.state {
            Some(s) => s,
            None => self
                .rng
                .state
                .fetch_add(GAMMA.wrapping_mul(BLOCK), Ordering::Relaxed),
        };
        let mut z = base.wrapping_add(GAMMA);
        self.state = Some(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// A probability, stored as a threshold on a `u64` draw so the check is one comparison
/// (and no draw at all for 0 and 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chance(u64);

impl Chance {
    pub(crate) const NEVER: Self = Self(0);
    pub(crate) const ALWAYS: Self = Self(u64::MAX);

    /// `p` clamped to `[0, 1]`; NaN counts as 0.
    pub(crate) fn new(p: f64) -> Self {
        if p.is_nan() || p <= 0.0 {
            Self::NEVER
        } else if p >= 1.0 {
            Self::ALWAYS
        } else {
            Self((p * 18_446_744_073_709_551_616.0) as u64)
        }
    }

    /// A fraction `numerator / denominator` (Envoy's header percentages).
    pub(crate) fn fraction(numerator: u64, denominator: u64) -> Self {
        if denominator == 0 || numerator == 0 {
            Self::NEVER
        } else if numerator >= denominator {
            Self::ALWAYS
        } else {
            Self(((u128::from(numerator) << 64) / u128::from(denominator)) as u64)
        }
    }

    /// The smaller of two chances.
    pub(crate) fn min(self, other: Self) -> Self {
        Self(self.0.min(other.0))
    }

    #[inline]
    pub(crate) fn fires(self, rng: &mut Draws<'_>) -> bool {
        match self.0 {
            0 => false,
            u64::MAX => true,
            t => rng.next_u64() < t,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_chance_bounds() {
        let (a, b) = (Rng::new(7), Rng::new(7));
        let xs: Vec<u64> = (0..5).map(|_| a.draws().next_u64()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.draws().next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs[0], xs[1]);
        assert_eq!(Chance::new(f64::NAN), Chance::NEVER);
        assert_eq!(Chance::new(-1.0), Chance::NEVER);
        assert_eq!(Chance::new(1.5), Chance::ALWAYS);
        assert_eq!(Chance::fraction(100, 100), Chance::ALWAYS);
        assert_eq!(Chance::fraction(0, 100), Chance::NEVER);
        // 30 % fires close to 30 % of 100 000 draws.
        let rng = Rng::new(1);
        let chance = Chance::new(0.3);
        let fired = (0..100_000)
            .filter(|_| chance.fires(&mut rng.draws()))
            .count();
        assert!((29_000..31_000).contains(&fired), "{fired}");
        let mut draws = rng.draws();
        assert_ne!(draws.next_u64(), draws.next_u64());
        assert!((0.0..1.0).contains(&draws.next_f64()));
    }
}
