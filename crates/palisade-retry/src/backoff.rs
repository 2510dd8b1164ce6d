//! Backoff between attempts: constant, exponential, and the three jittered variants of the
//! AWS Architecture Blog ("Exponential Backoff And Jitter", formulas as in its simulator).
//!
//! `attempt` is 0-based: the delay before retry #1 uses `attempt = 0`, so
//! `expo(0) = initial`. With `expo(n) = min(max, initial · multiplier^n)`:
//!
//! | kind | delay before retry `n + 1` |
//! |---|---|
//! | [`constant`](Backoff::constant) | `initial` |
//! | [`exponential`](Backoff::exponential) | `expo(n)` |
//! | [`full_jitter`](Backoff::full_jitter) (default) | `U[0, expo(n))` |
//! | [`equal_jitter`](Backoff::equal_jitter) | `expo(n)/2 + U[0, expo(n)/2]` |
//! | [`decorrelated_jitter`](Backoff::decorrelated_jitter) | `min(max, U[initial, 3 · prev])`, `prev₀ = initial` |
//!
//! ```
//! use palisade_retry::Backoff;
//! use std::time::Duration;
//! let b = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(1));
//! let delays: Vec<_> = b.delays(7).take(5).map(|d| d.as_millis()).collect();
//! assert_eq!(delays, [100, 200, 400, 800, 1000]);
//! ```

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Which backoff formula to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(rename_all = "snake_case")
)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[non_exhaustive]
pub enum BackoffKind {
    /// Always `initial`.
    Constant,
    /// `min(max, initial · multiplier^n)`, no jitter.
    Exponential,
    /// `U[0, expo(n))` (AWS "full jitter"; the default).
    FullJitter,
    /// `expo(n)/2 + U[0, expo(n)/2]` (AWS "equal jitter").
    EqualJitter,
    /// `min(max, U[initial, 3 · previous delay])` (AWS "decorrelated jitter").
    DecorrelatedJitter,
}

/// A backoff policy: kind, initial delay, multiplier and cap. `Copy`, validated at
/// construction time by the config (`initial ≤ max`, `multiplier ≥ 1`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    kind: BackoffKind,
    initial: Duration,
    multiplier: f64,
    max: Duration,
}

impl Default for Backoff {
    /// Full jitter, 100 ms initial, ×2, capped at 10 s.
    fn default() -> Self {
        Self::full_jitter(Duration::from_millis(100), Duration::from_secs(10))
    }
}

/// The longest backoff cap: a larger `max` (or `initial`) is lowered to one hour, the
/// bound [`RetryConfig`](crate::RetryConfig) checks at load. A server's `Retry-After` or
/// pushback longer than the cap is not waited for: the retry layer gives up
/// ([`GiveUpReason::ServerDelayTooLong`](crate::GiveUpReason::ServerDelayTooLong)).
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// `d`, at most [`MAX_BACKOFF`] (in a `const fn`).
const fn capped(d: Duration) -> Duration {
    if d.as_secs() >= MAX_BACKOFF.as_secs() {
        MAX_BACKOFF
    } else {
        d
    }
}

impl Backoff {
    const fn with(kind: BackoffKind, initial: Duration, max: Duration) -> Self {
        Self {
            kind,
            initial: capped(initial),
            multiplier: 2.0,
            max: capped(max),
        }
    }

    /// The same `delay` before every retry.
    pub const fn constant(delay: Duration) -> Self {
        Self::with(BackoffKind::Constant, delay, delay)
    }

    /// `min(max, initial · multiplier^n)` (multiplier 2 unless changed).
    pub const fn exponential(initial: Duration, max: Duration) -> Self {
        Self::with(BackoffKind::Exponential, initial, max)
    }

    /// `U[0, expo(n))`.
    pub const fn full_jitter(initial: Duration, max: Duration) -> Self {
        Self::with(BackoffKind::FullJitter, initial, max)
    }

    /// `expo(n)/2 + U[0, expo(n)/2]`.
    pub const fn equal_jitter(initial: Duration, max: Duration) -> Self {
        Self::with(BackoffKind::EqualJitter, initial, max)
    }

    /// `min(max, U[initial, 3 · prev])` with `prev₀ = initial`.
    pub const fn decorrelated_jitter(initial: Duration, max: Duration) -> Self {
        Self::with(BackoffKind::DecorrelatedJitter, initial, max)
    }

    /// A backoff of this kind.
    pub const fn new(kind: BackoffKind, initial: Duration, max: Duration) -> Self {
        Self::with(kind, initial, max)
    }

    /// Sets the growth factor of the exponential kinds (default 2; not used by
    /// constant and decorrelated).
    #[must_use]
    pub const fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// The kind.
    pub const fn kind(&self) -> BackoffKind {
        self.kind
    }
    /// The initial delay.
    pub const fn initial(&self) -> Duration {
        self.initial
    }
    /// The cap (at most [`MAX_BACKOFF`]).
    pub const fn max(&self) -> Duration {
        self.max
    }
    /// The multiplier.
    pub const fn get_multiplier(&self) -> f64 {
        self.multiplier
    }

    /// `min(max, initial · multiplier^attempt)`, computed in nanoseconds.
    pub fn expo(&self, attempt: u32) -> Duration {
        let max = self.max.as_nanos() as f64;
        let exp = i32::try_from(attempt).unwrap_or(i32::MAX);
        let v = self.initial.as_nanos() as f64 * self.multiplier.powi(exp);
        if !v.is_finite() || v >= max {
            return self.max;
        }
        Duration::from_nanos(v.round() as u64)
    }

    /// The delay before retry `attempt + 1`; `prev` is the previous delay (only used by
    /// decorrelated jitter; pass `initial` for the first retry).
    pub fn delay<R: Rng + ?Sized>(&self, attempt: u32, prev: Duration, rng: &mut R) -> Duration {
        match self.kind {
            BackoffKind::Constant => self.initial,
            BackoffKind::Exponential => self.expo(attempt),
            BackoffKind::FullJitter => {
                let v = nanos(self.expo(attempt));
                if v == 0 {
                    Duration::ZERO
                } else {
                    Duration::from_nanos(rng.random_range(0..v))
                }
            }
            BackoffKind::EqualJitter => {
                let half = nanos(self.expo(attempt)) / 2;
                Duration::from_nanos(half + rng.random_range(0..=half))
            }
            BackoffKind::DecorrelatedJitter => {
                let base = nanos(self.initial);
                let hi = nanos(prev).saturating_mul(3);
                let v = if hi <= base {
                    base
                } else {
                    rng.random_range(base..=hi)
                };
                Duration::from_nanos(v).min(self.max)
            }
        }
    }

    /// The sequence of delays for retries 1, 2, 3, … from an RNG seeded with `seed`
    /// (`SmallRng::seed_from_u64`), as the layer computes them for one request.
    pub fn delays(self, seed: u64) -> impl Iterator<Item = Duration> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut state = BackoffState::new();
        std::iter::from_fn(move || Some(state.next(&self, &mut rng)))
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Per-request backoff progress: the retry number and the previous delay.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BackoffState {
    attempt: u32,
    prev: Option<Duration>,
}

impl BackoffState {
    pub(crate) const fn new() -> Self {
        Self {
            attempt: 0,
            prev: None,
        }
    }

    /// The next delay, advancing the state.
    pub(crate) fn next<R: Rng + ?Sized>(&mut self, backoff: &Backoff, rng: &mut R) -> Duration {
        let prev = self.prev.unwrap_or(backoff.initial);
        let d = backoff.delay(self.attempt, prev, rng);
        self.attempt = self.attempt.saturating_add(1);
        self.prev = Some(d);
        d
    }

    /// Restarts from `initial` (after a server-given pushback, gRFC A6).
    pub(crate) fn reset(&mut self) {
        *self = Self::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn ms(v: impl Iterator<Item = Duration>, n: usize) -> Vec<u128> {
        v.take(n).map(|d| d.as_millis()).collect()
    }

    #[test]
    fn constant_and_exponential_exact() {
        assert_eq!(
            ms(Backoff::constant(MS(250)).delays(1), 4),
            [250, 250, 250, 250]
        );
        assert_eq!(
            ms(Backoff::exponential(MS(100), MS(1000)).delays(1), 6),
            [100, 200, 400, 800, 1000, 1000]
        );
        assert_eq!(
            ms(
                Backoff::exponential(MS(100), MS(10_000))
                    .multiplier(3.0)
                    .delays(1),
                5
            ),
            [100, 300, 900, 2700, 8100]
        );
        // huge attempt numbers saturate at the cap instead of overflowing
        assert_eq!(
            Backoff::exponential(MS(100), MS(1000)).expo(u32::MAX),
            MS(1000)
        );
    }

    #[test]
    fn seeded_sequences_are_deterministic() {
        for b in [
            Backoff::full_jitter(MS(100), MS(1000)),
            Backoff::equal_jitter(MS(100), MS(1000)),
            Backoff::decorrelated_jitter(MS(100), MS(1000)),
        ] {
            let a: Vec<_> = b.delays(42).take(10).collect();
            assert_eq!(a, b.delays(42).take(10).collect::<Vec<_>>());
            assert_ne!(a, b.delays(43).take(10).collect::<Vec<_>>());
        }
    }

    #[test]
    fn spec_vectors_full_jitter() {
        // SPECS §4 vectors, over many seeds.
        let b = Backoff::full_jitter(MS(100), MS(1000));
        for seed in 0..500 {
            let d: Vec<_> = b.delays(seed).take(10).collect();
            assert!(d[0] < MS(100));
            assert!(d[1] < MS(200));
            assert!(d[3] < MS(800));
            assert!(d[4] <= MS(1000));
            assert!(d[9] <= MS(1000));
        }
    }

    #[test]
    fn spec_vectors_equal_and_decorrelated() {
        let e = Backoff::equal_jitter(MS(100), MS(1000));
        let d = Backoff::decorrelated_jitter(MS(100), MS(1000));
        for seed in 0..500 {
            let v: Vec<_> = e.delays(seed).take(3).collect();
            assert!((MS(200)..=MS(400)).contains(&v[2]), "{v:?}");
            let v: Vec<_> = d.delays(seed).take(20).collect();
            assert!((MS(100)..=MS(300)).contains(&v[0]));
            assert!(v[1] >= MS(100) && v[1] <= MS(1000).min(v[0] * 3));
            assert!(v.iter().all(|x| *x <= MS(1000) && *x >= MS(100)));
        }
    }

    #[test]
    fn reset_restarts_from_initial() {
        let mut rng = SmallRng::seed_from_u64(1);
        let b = Backoff::exponential(MS(100), MS(10_000));
        let mut s = BackoffState::new();
        assert_eq!(s.next(&b, &mut rng), MS(100));
        assert_eq!(s.next(&b, &mut rng), MS(200));
        s.reset();
        assert_eq!(s.next(&b, &mut rng), MS(100));
        assert_eq!(s.next(&b, &mut rng), MS(200));
    }

    proptest! {
        #[test]
        fn bounds_hold(seed: u64, init in 1u64..10_000, cap_mult in 1u64..100, mult in 1.0f64..4.0, n in 0usize..40) {
            let init = MS(init);
            let cap = init * u32::try_from(cap_mult).unwrap();
            for kind in [BackoffKind::Constant, BackoffKind::Exponential, BackoffKind::FullJitter,
                         BackoffKind::EqualJitter, BackoffKind::DecorrelatedJitter] {
                let b = Backoff::new(kind, init, cap).multiplier(mult);
                let mut prev = init;
                for (i, d) in b.delays(seed).take(n).enumerate() {
                    let expo = b.expo(u32::try_from(i).unwrap());
                    prop_assert!(expo <= cap);
                    match kind {
                        BackoffKind::Constant => prop_assert_eq!(d, init),
                        BackoffKind::Exponential => prop_assert_eq!(d, expo),
                        BackoffKind::FullJitter => prop_assert!(d < expo),
                        BackoffKind::EqualJitter => prop_assert!(d >= expo / 2 && d <= expo),
                        BackoffKind::DecorrelatedJitter => {
                            prop_assert!(d >= init.min(cap) && d <= cap && d <= (prev * 3).max(init));
                        }
                    }
                    prev = d;
                }
            }
        }

        #[test]
        fn exponential_is_monotone(init in 1u64..1000, mult in 1.0f64..8.0) {
            let b = Backoff::exponential(MS(init), Duration::from_secs(60)).multiplier(mult);
            let v: Vec<_> = b.delays(0).take(30).collect();
            prop_assert!(v.windows(2).all(|w| w[0] <= w[1]));
        }
    }
}
