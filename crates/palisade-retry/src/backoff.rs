//! Backoff schedules, as in the AWS "Exponential Backoff And Jitter" simulator
//! (`../shared/SPECS.md` §4.1). `attempt` is 0-based: the first retry uses `expo(0) = base`.

use std::time::Duration;

use rand::Rng;

/// How long to wait before each retry.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum Backoff {
    /// Always `base`.
    Constant,
    /// `min(cap, base · multiplier^n)`.
    Exponential,
    /// `U(0, expo(n))` — the AWS default and ours.
    FullJitter,
    /// `v = expo(n); v/2 + U(0, v/2)`.
    EqualJitter,
    /// `min(cap, U(base, 3 · previous))`.
    Decorrelated,
}

/// A backoff schedule: kind, base delay, multiplier and cap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// The kind.
    pub kind: Backoff,
    /// The first delay (`base`).
    pub base: Duration,
    /// Growth per attempt for the exponential kinds.
    pub multiplier: f64,
    /// The longest delay.
    pub cap: Duration,
}

impl Schedule {
    /// `min(cap, base · multiplier^attempt)`.
    pub fn expo(&self, attempt: u32) -> Duration {
        let f = self.multiplier.powi(attempt.min(1_000) as i32);
        let secs = (self.base.as_secs_f64() * f).min(self.cap.as_secs_f64());
        Duration::from_secs_f64(secs.max(0.0))
    }

    /// The delay before retry number `attempt` (0-based), given the previous delay (for
    /// decorrelated jitter).
    pub fn delay(&self, attempt: u32, previous: Duration, rng: &mut impl Rng) -> Duration {
        let uniform = |rng: &mut dyn rand::RngCore, lo: Duration, hi: Duration| -> Duration {
            if hi <= lo {
                return lo;
            }
            let n = rng.random_range(lo.as_nanos() as u64..hi.as_nanos() as u64);
            Duration::from_nanos(n)
        };
        match self.kind {
            Backoff::Constant => self.base.min(self.cap),
            Backoff::Exponential => self.expo(attempt),
            Backoff::FullJitter => uniform(rng, Duration::ZERO, self.expo(attempt)),
            Backoff::EqualJitter => {
                let v = self.expo(attempt);
                v / 2 + uniform(rng, Duration::ZERO, v / 2)
            }
            Backoff::Decorrelated => {
                let prev = if previous.is_zero() {
                    self.base
                } else {
                    previous
                };
                uniform(rng, self.base, prev * 3).min(self.cap)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    const MS: Duration = Duration::from_millis(1);

    fn s(kind: Backoff) -> Schedule {
        Schedule {
            kind,
            base: 100 * MS,
            multiplier: 2.0,
            cap: 1000 * MS,
        }
    }

    #[test]
    fn exponential_and_constant_exact() {
        let mut rng = SmallRng::seed_from_u64(1);
        let e = s(Backoff::Exponential);
        let got: Vec<_> = (0..6)
            .map(|n| e.delay(n, Duration::ZERO, &mut rng))
            .collect();
        assert_eq!(
            got,
            [100 * MS, 200 * MS, 400 * MS, 800 * MS, 1000 * MS, 1000 * MS]
        );
        assert_eq!(
            s(Backoff::Constant).delay(9, Duration::ZERO, &mut rng),
            100 * MS
        );
    }

    #[test]
    fn specs_jitter_bounds() {
        // SPECS §4 vectors, base 100 ms, cap 1 s.
        let mut rng = SmallRng::seed_from_u64(7);
        let full = s(Backoff::FullJitter);
        for _ in 0..1000 {
            assert!(full.delay(0, Duration::ZERO, &mut rng) < 100 * MS);
            assert!(full.delay(1, Duration::ZERO, &mut rng) < 200 * MS);
            assert!(full.delay(3, Duration::ZERO, &mut rng) < 800 * MS);
            assert!(full.delay(4, Duration::ZERO, &mut rng) <= 1000 * MS);
            assert!(full.delay(9, Duration::ZERO, &mut rng) <= 1000 * MS);
            let eq = s(Backoff::EqualJitter).delay(2, Duration::ZERO, &mut rng);
            assert!((200 * MS..=400 * MS).contains(&eq), "{eq:?}");
            let d = s(Backoff::Decorrelated);
            let s1 = d.delay(0, Duration::ZERO, &mut rng);
            assert!((100 * MS..=300 * MS).contains(&s1), "{s1:?}");
            let s2 = d.delay(1, s1, &mut rng);
            assert!(s2 >= 100 * MS && s2 <= (3 * s1).min(1000 * MS), "{s2:?}");
        }
    }

    #[test]
    fn seeded_rng_is_deterministic() {
        let run = || {
            let mut rng = SmallRng::seed_from_u64(42);
            (0..5)
                .map(|n| s(Backoff::FullJitter).delay(n, Duration::ZERO, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }

    proptest::proptest! {
        #[test]
        fn never_above_cap(kind in 0usize..5, n in 0u32..100, seed: u64, prev_ms in 0u64..5000) {
            let kind = [Backoff::Constant, Backoff::Exponential, Backoff::FullJitter, Backoff::EqualJitter, Backoff::Decorrelated][kind];
            let mut rng = SmallRng::seed_from_u64(seed);
            let d = s(kind).delay(n, Duration::from_millis(prev_ms), &mut rng);
            proptest::prop_assert!(d <= 1000 * MS);
        }
    }
}
