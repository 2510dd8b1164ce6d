//! [`HedgeLayer`] and the settings every service it builds shares.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use palisade_core::Listeners;
use tokio::time::Instant;
use tower_layer::Layer;

use super::config::{HedgeBuilder, MAX_HEDGED};
use super::service::Hedge;
use crate::budget::Budget;
use crate::events::RetryEvent;
use crate::latency::LatencyHistogram;
use crate::policy::DefaultPredicate;

/// Layer that hedges slow requests; see the [module docs](crate::hedge).
pub struct HedgeLayer<P = DefaultPredicate> {
    pub(super) shared: HedgeShared<P>,
}

/// When to send a hedge.
#[derive(Clone)]
pub(super) enum HedgeDelay {
    Fixed(Duration),
    /// Shared by every service the layer builds.
    Learned(Arc<LatencyHistogram>),
}

impl fmt::Debug for HedgeDelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fixed(d) => f.debug_tuple("Fixed").field(d).finish(),
            Self::Learned(h) => f
                .debug_struct("Learned")
                .field("percentile", &h.percentile())
                .field("min_data_points", &h.min_data_points())
                .field("period", &h.period())
                .finish(),
        }
    }
}

pub(super) struct HedgeShared<P> {
    pub(super) delay: HedgeDelay,
    pub(super) max_hedged: u32,
    pub(super) budget: Option<Arc<dyn Budget>>,
    pub(super) listeners: Listeners<RetryEvent>,
    pub(super) hedge_unsafe: bool,
    pub(super) predicate: P,
}

impl<P> HedgeShared<P> {
    /// Records the latency of a successful attempt sent at `started` (learned delay only).
    pub(super) fn learn(&self, started: Option<Instant>) {
        if let (HedgeDelay::Learned(h), Some(started)) = (&self.delay, started) {
            let now = Instant::now();
            h.record(now.saturating_duration_since(started), now);
        }
    }

    /// The send time of an attempt, if latencies are learned.
    pub(super) fn start(&self) -> Option<Instant> {
        matches!(self.delay, HedgeDelay::Learned(_)).then(Instant::now)
    }
}

impl<P: Clone> Clone for HedgeShared<P> {
    fn clone(&self) -> Self {
        Self {
            delay: self.delay.clone(),
            max_hedged: self.max_hedged,
            budget: self.budget.clone(),
            listeners: self.listeners.clone(),
            hedge_unsafe: self.hedge_unsafe,
            predicate: self.predicate.clone(),
        }
    }
}

impl<P: Clone> Clone for HedgeLayer<P> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<P> fmt::Debug for HedgeLayer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HedgeLayer")
            .field("delay", &self.shared.delay)
            .field("max_hedged", &self.shared.max_hedged)
            .finish_non_exhaustive()
    }
}

impl HedgeLayer {
    /// Hedges after a fixed `delay`, one extra copy at most, no budget.
    pub fn new(delay: Duration) -> Self {
        Self {
            shared: HedgeShared {
                delay: HedgeDelay::Fixed(delay),
                max_hedged: 1,
                budget: None,
                listeners: Listeners::new().named("hedge"),
                hedge_unsafe: false,
                predicate: DefaultPredicate,
            },
        }
    }

    /// A builder, for a delay learned from recent latencies. Defaults: the 95th percentile
    /// of the last full 10 s period, hedging once it holds at least 20 successful calls; one
    /// extra copy at most, no budget.
    pub fn builder() -> HedgeBuilder {
        HedgeBuilder::from_layer(Self::new(Duration::ZERO))
    }
}

impl<P> HedgeLayer<P> {
    /// Extra copies at most, up to [`MAX_HEDGED`] (larger values are lowered to it; 0
    /// disables hedging).
    pub fn max_hedged(mut self, n: u32) -> Self {
        self.shared.max_hedged = n.min(MAX_HEDGED);
        self
    }
    /// The budget each hedge withdraws from.
    pub fn budget(mut self, budget: impl Budget) -> Self {
        self.shared.budget = Some(Arc::new(budget));
        self
    }
    /// A budget shared with other layers (e.g. the retry layer).
    pub fn shared_budget(mut self, budget: Arc<dyn Budget>) -> Self {
        self.shared.budget = Some(budget);
        self
    }
    /// Adds an event listener.
    pub fn on_event(mut self, f: impl Fn(&RetryEvent) + Send + Sync + 'static) -> Self {
        self.shared.listeners = self.shared.listeners.on(f);
        self
    }
    /// Also hedge requests whose method is not safe (PUT, DELETE, POST, PATCH, …, with or
    /// without an `Idempotency-Key`). Default `false`: only GET, HEAD, OPTIONS and TRACE are
    /// hedged; see [which requests are hedged](crate::hedge#which-requests-are-hedged).
    pub fn hedge_unsafe_methods(mut self, yes: bool) -> Self {
        self.shared.hedge_unsafe = yes;
        self
    }
    /// The former name of [`hedge_unsafe_methods`](Self::hedge_unsafe_methods).
    #[deprecated(note = "use `hedge_unsafe_methods`; only safe methods are hedged by default")]
    pub fn retry_unsafe_methods(self, yes: bool) -> Self {
        self.hedge_unsafe_methods(yes)
    }
    /// Replaces which answers are acceptable.
    pub fn predicate<Q>(self, predicate: Q) -> HedgeLayer<Q> {
        let s = self.shared;
        HedgeLayer {
            shared: HedgeShared {
                delay: s.delay,
                max_hedged: s.max_hedged,
                budget: s.budget,
                listeners: s.listeners,
                hedge_unsafe: s.hedge_unsafe,
                predicate,
            },
        }
    }

    /// The delay after which a request sent now would be hedged: the fixed delay, or the
    /// one learned from the last full period; `None` while that period recorded fewer than
    /// `min_data_points` successful calls (requests are then sent alone).
    pub fn current_delay(&self) -> Option<Duration> {
        match &self.shared.delay {
            HedgeDelay::Fixed(d) => Some(*d),
            HedgeDelay::Learned(h) => h.delay(Instant::now()),
        }
    }
}

impl<S, P: Clone> Layer<S> for HedgeLayer<P> {
    type Service = Hedge<S, P>;
    fn layer(&self, inner: S) -> Hedge<S, P> {
        Hedge::from_shared(inner, Arc::new(self.shared.clone()))
    }
}
