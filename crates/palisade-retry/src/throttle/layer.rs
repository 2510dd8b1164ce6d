//! [`AdaptiveThrottleLayer`]: the settings, and the window every service it builds shares.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use palisade_core::{InstanceName, Listeners};
use tower_layer::Layer;

use super::classify::OverloadClassifier;
use super::config::{BUCKETS_RANGE, K_RANGE, WINDOW_RANGE};
use super::service::AdaptiveThrottle;
use super::window::Window;
use crate::events::ThrottleEvent;

/// The state every service built by one layer shares: the window and the RNG.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) window: Window,
    /// SplitMix64 state: a draw is one atomic add and a few multiplications.
    rng: AtomicU64,
}

impl State {
    fn new(window: Duration, buckets: u32, seed: Option<u64>) -> Self {
        let seed = seed.unwrap_or_else(rand::random);
        Self {
            window: Window::new(window, buckets),
            rng: AtomicU64::new(seed),
        }
    }

    /// A uniform draw in `[0, 1)`, lock-free (SplitMix64 over an atomic counter: with a
    /// seed and one task, the sequence is reproducible).
    #[inline]
    pub(crate) fn draw(&self) -> f64 {
        const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut z = self
            .rng
            .fetch_add(GAMMA, Ordering::Relaxed)
            .wrapping_add(GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 * (1.0 / (1_u64 << 53) as f64)
    }
}

/// The rejection probability of the SRE book, `max(0, (requests − k·accepts) / (requests + 1))`,
/// capped at `max`.
#[inline]
pub(crate) fn probability(k: f64, max: f64, requests: u64, accepts: u64) -> f64 {
    let r = requests as f64;
    ((r - k * accepts as f64) / (r + 1.0)).clamp(0.0, max)
}

/// A snapshot of a throttle's window.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ThrottleStats {
    /// Requests in the window, the locally shed ones included.
    pub requests: u64,
    /// Requests the upstream accepted in the window.
    pub accepts: u64,
    /// The rejection probability the next request gets.
    pub probability: f64,
}

/// Layer of client-side adaptive throttling; see the [module docs](crate::throttle).
///
/// Defaults: `k` = 2, a window of 2 minutes in 20 buckets, no cap on the rejection
/// probability (`max_probability` = 1), [`OverloadClassifier`], a random seed. Every
/// service it builds, and their clones, share one window.
pub struct AdaptiveThrottleLayer<C = OverloadClassifier> {
    k: f64,
    max_probability: f64,
    window: Duration,
    buckets: u32,
    seed: Option<u64>,
    state: Arc<State>,
    listeners: Listeners<ThrottleEvent>,
    classifier: C,
}

impl<C: Clone> Clone for AdaptiveThrottleLayer<C> {
    fn clone(&self) -> Self {
        Self {
            k: self.k,
            max_probability: self.max_probability,
            window: self.window,
            buckets: self.buckets,
            seed: self.seed,
            state: self.state.clone(),
            listeners: self.listeners.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for AdaptiveThrottleLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveThrottleLayer")
            .field("k", &self.k)
            .field("max_probability", &self.max_probability)
            .field("window", &self.window)
            .field("buckets", &self.buckets)
            .field("state", &self.state.window)
            .field("classifier", &self.classifier)
            .finish_non_exhaustive()
    }
}

impl Default for AdaptiveThrottleLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl AdaptiveThrottleLayer {
    /// A layer with the defaults.
    pub fn new() -> Self {
        let window = Duration::from_secs(120);
        Self {
            k: 2.0,
            max_probability: 1.0,
            window,
            buckets: 20,
            seed: None,
            state: Arc::new(State::new(window, 20, None)),
            listeners: Listeners::new().named("adaptive_throttle"),
            classifier: OverloadClassifier,
        }
    }
}

impl<C> AdaptiveThrottleLayer<C> {
    fn renew(mut self) -> Self {
        self.state = Arc::new(State::new(self.window, self.buckets, self.seed));
        self
    }

    /// The multiplier `k` of accepts (clamped to 1–10; NaN keeps the current value):
    /// the client sends up to about `k` times what the upstream accepts. 2 is the SRE
    /// book's default; 1.1 sheds sooner, more wastes more upstream work on rejections.
    #[must_use]
    pub fn k(mut self, k: f64) -> Self {
        if !k.is_nan() {
            self.k = k.clamp(K_RANGE.0, K_RANGE.1);
        }
        self
    }

    /// The highest the rejection probability may get (clamped to 0–1; NaN keeps the
    /// current value), so that some requests always probe the upstream.
    #[must_use]
    pub fn max_probability(mut self, p: f64) -> Self {
        if !p.is_nan() {
            self.max_probability = p.clamp(0.0, 1.0);
        }
        self
    }

    /// How far back requests and accepts count (clamped to 1 s–1 h). Resets the window.
    #[must_use]
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window.clamp(WINDOW_RANGE.0, WINDOW_RANGE.1);
        self.renew()
    }

    /// Buckets the window slides by (clamped to 1–120). Resets the window.
    #[must_use]
    pub fn buckets(mut self, buckets: u32) -> Self {
        self.buckets = buckets.clamp(BUCKETS_RANGE.0, BUCKETS_RANGE.1);
        self.renew()
    }

    /// Seeds the rejection draws, for reproducible tests. Resets the window.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self.renew()
    }

    /// The throttle's instance name, carried by its events (`adaptive_throttle="payments"`).
    /// Default `"adaptive_throttle"`.
    #[must_use]
    pub fn name(mut self, name: impl Into<InstanceName>) -> Self {
        self.listeners = self.listeners.named(name);
        self
    }

    /// Adds an event listener.
    #[must_use]
    pub fn on_event(mut self, f: impl Fn(&ThrottleEvent) + Send + Sync + 'static) -> Self {
        self.listeners = self.listeners.on(f);
        self
    }

    /// Replaces what counts as an accept: [`Outcome::Failure`](palisade_core::Outcome::Failure)
    /// is a rejection, anything else an accept.
    pub fn classifier<D>(self, classifier: D) -> AdaptiveThrottleLayer<D> {
        AdaptiveThrottleLayer {
            k: self.k,
            max_probability: self.max_probability,
            window: self.window,
            buckets: self.buckets,
            seed: self.seed,
            state: self.state,
            listeners: self.listeners,
            classifier,
        }
    }

    /// The configured `k`.
    pub fn get_k(&self) -> f64 {
        self.k
    }

    /// The configured window.
    pub fn get_window(&self) -> Duration {
        self.window
    }

    /// The window's counts now, shared by every service this layer built.
    pub fn stats(&self) -> ThrottleStats {
        stats(&self.state, self.k, self.max_probability)
    }
}

pub(crate) fn stats(state: &State, k: f64, max: f64) -> ThrottleStats {
    let (requests, accepts) = state.window.counts();
    ThrottleStats {
        requests,
        accepts,
        probability: probability(k, max, requests, accepts),
    }
}

/// What a service (and its clones) holds.
pub(crate) struct Shared<C> {
    pub(crate) state: Arc<State>,
    pub(crate) k: f64,
    pub(crate) max_probability: f64,
    pub(crate) listeners: Listeners<ThrottleEvent>,
    pub(crate) classifier: C,
}

impl<S, C: Clone> Layer<S> for AdaptiveThrottleLayer<C> {
    type Service = AdaptiveThrottle<S, C>;
    fn layer(&self, inner: S) -> AdaptiveThrottle<S, C> {
        AdaptiveThrottle::from_shared(
            inner,
            Arc::new(Shared {
                state: self.state.clone(),
                k: self.k,
                max_probability: self.max_probability,
                listeners: self.listeners.clone(),
                classifier: self.classifier.clone(),
            }),
        )
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // clamped bounds and identical seeded draws are exact
mod tests {
    use super::*;

    #[test]
    fn the_sre_formula() {
        assert_eq!(probability(2.0, 1.0, 0, 0), 0.0);
        assert_eq!(probability(2.0, 1.0, 100, 50), 0.0);
        assert!((probability(2.0, 1.0, 100, 10) - 80.0 / 101.0).abs() < 1e-12);
        assert!((probability(2.0, 1.0, 9, 0) - 0.9).abs() < 1e-12);
        assert!((probability(2.0, 0.5, 9, 0) - 0.5).abs() < 1e-12);
        assert!((probability(1.1, 1.0, 100, 50) - 45.0 / 101.0).abs() < 1e-12);
    }

    #[test]
    fn draws_are_uniform_and_seeded() {
        let a = State::new(Duration::from_secs(1), 1, Some(7));
        let b = State::new(Duration::from_secs(1), 1, Some(7));
        let xs: Vec<f64> = (0..10_000).map(|_| a.draw()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        assert!(xs.iter().zip((0..).map(|_| b.draw())).all(|(x, y)| *x == y));
        let below = xs.iter().filter(|x| **x < 0.3).count();
        assert!((2_800..3_200).contains(&below), "{below}");
    }

    proptest::proptest! {
        #[test]
        fn probability_is_bounded_and_zero_while_accepts_keep_up(
            requests in 0u64..1_000_000,
            accepts in 0u64..1_000_000,
            k in 1.0f64..10.0,
            max in 0.0f64..=1.0,
        ) {
            let accepts = accepts.min(requests);
            let p = probability(k, max, requests, accepts);
            proptest::prop_assert!((0.0..=max).contains(&p));
            proptest::prop_assert!(p < 1.0, "requests / (requests + 1) < 1");
            if requests as f64 <= k * accepts as f64 {
                proptest::prop_assert_eq!(p, 0.0);
            }
        }
    }

    #[test]
    fn setters_clamp() {
        let l = AdaptiveThrottleLayer::new()
            .k(0.5)
            .window(Duration::from_millis(1))
            .buckets(0)
            .max_probability(f64::NAN);
        assert_eq!(l.get_k(), 1.0);
        assert_eq!(l.get_window(), Duration::from_secs(1));
        assert_eq!(l.buckets, 1);
        assert_eq!(l.max_probability, 1.0);
        assert_eq!(AdaptiveThrottleLayer::new().k(50.0).get_k(), 10.0);
    }
}
