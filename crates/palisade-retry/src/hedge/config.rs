//! [`HedgeBuilder`]: the checked settings of a learned (or fixed) hedging delay, and their
//! bounds.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use palisade_core::ConfigError;
use palisade_core::config::check_duration;

use super::layer::{HedgeDelay, HedgeLayer};
use crate::budget::Budget;
use crate::events::RetryEvent;
use crate::latency::LatencyHistogram;
use crate::policy::DefaultPredicate;

/// Builds a [`HedgeLayer`]; the delay settings are checked by [`build`](Self::build).
///
/// Made by [`HedgeLayer::builder`]. [`percentile`](Self::percentile) (the default, 95) and
/// [`delay`](Self::delay) choose between a learned and a fixed delay: the one set last wins.
pub struct HedgeBuilder<P = DefaultPredicate> {
    /// Everything but the delay.
    layer: HedgeLayer<P>,
    fixed: Option<Duration>,
    percentile: f64,
    min_data_points: u64,
    period: Duration,
}

impl<P> fmt::Debug for HedgeBuilder<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeBuilder")
            .field("fixed", &self.fixed)
            .field("percentile", &self.percentile)
            .field("min_data_points", &self.min_data_points)
            .field("period", &self.period)
            .field("max_hedged", &self.layer.shared.max_hedged)
            .finish_non_exhaustive()
    }
}

/// Most extra copies of one request ([`HedgeLayer::max_hedged`]).
pub const MAX_HEDGED: u32 = 10;
/// Longest fixed delay accepted by [`HedgeBuilder::build`]: 1 h.
pub const MAX_DELAY: Duration = Duration::from_secs(3600);

/// Largest [`HedgeBuilder::min_data_points`].
pub const MAX_MIN_DATA_POINTS: u64 = 1_000_000;

/// Bounds of [`HedgeBuilder::period`].
pub const PERIOD_RANGE: (Duration, Duration) =
    (Duration::from_millis(1), Duration::from_secs(3600));

impl HedgeBuilder {
    /// The builder of [`HedgeLayer::builder`], around `layer` (everything but the delay).
    pub(super) fn from_layer(layer: HedgeLayer) -> Self {
        Self {
            layer,
            fixed: None,
            percentile: 95.0,
            min_data_points: 20,
            period: Duration::from_secs(10),
        }
    }
}

impl<P> HedgeBuilder<P> {
    /// Hedges after the `percentile`-th latency of the successful calls of the last full
    /// period, in (0, 100]: 95.0 is the 95th percentile, 100.0 the slowest call.
    #[must_use]
    pub fn percentile(mut self, percentile: f64) -> Self {
        self.percentile = percentile;
        self.fixed = None;
        self
    }
    /// Successful calls the last full period must hold before any request is hedged
    /// (at least 1; default 20). Learned delay only.
    #[must_use]
    pub fn min_data_points(mut self, n: u64) -> Self {
        self.min_data_points = n;
        self
    }
    /// How long latencies are collected before they are used, 1 ms–1 h (default 10 s).
    /// The delay is learned from the last full period; data older than two periods is
    /// forgotten. Learned delay only.
    #[must_use]
    pub fn period(mut self, period: Duration) -> Self {
        self.period = period;
        self
    }
    /// Hedges after a fixed `delay` instead (as [`HedgeLayer::new`]).
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.fixed = Some(delay);
        self
    }
    /// Extra copies at most (default 1; 0 disables hedging; at most [`MAX_HEDGED`]).
    #[must_use]
    pub fn max_hedged(mut self, n: u32) -> Self {
        self.layer = self.layer.max_hedged(n);
        self
    }
    /// The budget each hedge withdraws from (default: none).
    #[must_use]
    pub fn budget(mut self, budget: impl Budget) -> Self {
        self.layer = self.layer.budget(budget);
        self
    }
    /// A budget shared with other layers (e.g. the retry layer).
    #[must_use]
    pub fn shared_budget(mut self, budget: Arc<dyn Budget>) -> Self {
        self.layer = self.layer.shared_budget(budget);
        self
    }
    /// Adds an event listener.
    #[must_use]
    pub fn on_event(mut self, f: impl Fn(&RetryEvent) + Send + Sync + 'static) -> Self {
        self.layer = self.layer.on_event(f);
        self
    }
    /// Also hedge requests whose method is not safe; see
    /// [`HedgeLayer::hedge_unsafe_methods`].
    #[must_use]
    pub fn hedge_unsafe_methods(mut self, yes: bool) -> Self {
        self.layer = self.layer.hedge_unsafe_methods(yes);
        self
    }
    /// The former name of [`hedge_unsafe_methods`](Self::hedge_unsafe_methods).
    #[deprecated(note = "use `hedge_unsafe_methods`; only safe methods are hedged by default")]
    #[must_use]
    pub fn retry_unsafe_methods(self, yes: bool) -> Self {
        self.hedge_unsafe_methods(yes)
    }
    /// Replaces which answers are acceptable (and, for a learned delay, recorded).
    #[must_use]
    pub fn predicate<Q>(self, predicate: Q) -> HedgeBuilder<Q> {
        HedgeBuilder {
            layer: self.layer.predicate(predicate),
            fixed: self.fixed,
            percentile: self.percentile,
            min_data_points: self.min_data_points,
            period: self.period,
        }
    }

    /// Checks the settings and builds the layer (for a learned delay, with the one
    /// histogram all its services share).
    ///
    /// # Errors
    /// `percentile` outside (0, 100] or not a number, `min_data_points` outside 1 to
    /// 1,000,000, `period` outside 1 ms–1 h, a fixed `delay` over 1 h; the error names the
    /// field and what is allowed.
    pub fn build(self) -> Result<HedgeLayer<P>, ConfigError> {
        let mut layer = self.layer;
        if let Some(d) = self.fixed {
            check_duration("delay", d, Duration::ZERO, MAX_DELAY)?;
            layer.shared.delay = HedgeDelay::Fixed(d);
            return Ok(layer);
        }
        let p = self.percentile;
        if !(p > 0.0 && p <= 100.0) {
            return Err(ConfigError::new(
                "percentile",
                format!(
                    "must be greater than 0 and at most 100, e.g. 95.0 for the 95th percentile (got {p})"
                ),
            ));
        }
        if self.min_data_points > MAX_MIN_DATA_POINTS {
            return Err(ConfigError::new(
                "min_data_points",
                format!(
                    "must be between 1 and {MAX_MIN_DATA_POINTS} (got {})",
                    self.min_data_points
                ),
            ));
        }
        if self.min_data_points == 0 {
            return Err(ConfigError::new(
                "min_data_points",
                "must be at least 1 (got 0): no delay can be learned from no calls; \
                 use `delay` for a fixed one",
            ));
        }
        check_duration("period", self.period, PERIOD_RANGE.0, PERIOD_RANGE.1)?;
        layer.shared.delay = HedgeDelay::Learned(Arc::new(LatencyHistogram::new(
            p,
            self.min_data_points,
            self.period,
        )));
        Ok(layer)
    }
}
