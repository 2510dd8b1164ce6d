//! [`EventMetrics`]: every layer's events as `palisade_events_total{layer, event}`, plus
//! typed per-layer metrics (breaker state, retries, bulkhead, rate limit, canary).

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use arc_swap::ArcSwap;
use metrics::{Counter, Histogram, Key, Label};
use palisade_breaker::BreakerEvent;
use palisade_bulkhead::{BulkheadEvent, RejectReason};
use palisade_core::event::{AnyListener, Event};
use palisade_ratelimit::RateLimitEvent;
use palisade_retry::{RetryEvent, RetryReason};
use palisade_traffic::{RollbackReason, TrafficEvent};

use crate::names::{
    BREAKER_STATE, BREAKER_TRANSITIONS_TOTAL, BULKHEAD_IN_FLIGHT_AT_ADMISSION,
    BULKHEAD_QUEUE_DEPTH_AT_ENQUEUE, BULKHEAD_REJECTIONS_TOTAL, CANARY_ROLLBACKS_TOTAL,
    CANARY_WEIGHT_PERCENT, EVENTS_TOTAL, RATELIMIT_DECISIONS_TOTAL, RETRY_ATTEMPTS_TOTAL,
    RETRY_BUDGET_EXHAUSTED_TOTAL,
};

type Entries = Vec<(&'static str, &'static str, Counter)>;
type Hook = Arc<dyn Fn(&dyn Event) + Send + Sync>;

static METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new("palisade", metrics::Level::INFO, Some(module_path!()));

/// Most distinct canary arm names labelled; further arms are labelled `other`.
pub(crate) const MAX_ARMS: usize = 32;

/// An [`AnyListener`] turning every Palisade layer's events into metrics.
///
/// - Every event is counted as [`palisade_events_total`](crate::EVENTS_TOTAL)`{layer, event}`:
///   `layer` and `event` are the event's [`Event::layer`] and [`Event::name`], both
///   `&'static str`, so cardinality is bounded by the code.
/// - The events of the breaker, retry, bulkhead, rate-limit and traffic layers also feed
///   typed metrics (breaker state gauge and transitions, retries, budget exhaustion,
///   bulkhead occupancy and rejections, rate-limit decisions, canary weight and rollbacks):
///   see the [crate-level table](crate#metric-names). Their labels are breaker names
///   (`&'static str` in code), state and reason names, and canary arm names (at most
///   32, then `other`); never keys or paths. Turn them off with
///   [`without_layer_metrics`](Self::without_layer_metrics).
/// - More metrics: typed hooks, [`EventMetrics::on`], which see the concrete event type.
///
/// Handles are registered with the recorder current at the first event of each kind and
/// cached (lock-free reads), so counting a frequent event costs one short scan, a type
/// check and an atomic add or two.
///
/// Install it process-wide with [`EventMetrics::install_global`], on one layer with
/// `layer.on_event(metrics.callback())`, or on a [`Listeners`](palisade_core::Listeners)
/// with `on_any(metrics.into_listener())`.
///
/// ```
/// use palisade_breaker::CircuitBreakerLayer;
/// use palisade_metrics::EventMetrics;
///
/// let metrics = EventMetrics::new();
/// let breaker = CircuitBreakerLayer::builder()
///     .name("payments")
///     .on_event(metrics.callback())
///     .build()
///     .unwrap();
/// # let _ = breaker;
/// ```
#[derive(Clone)]
pub struct EventMetrics {
    cache: Arc<Cache>,
    hooks: Option<Arc<[Hook]>>,
    layer_metrics: bool,
}

impl Default for EventMetrics {
    fn default() -> Self {
        Self {
            cache: Arc::default(),
            hooks: None,
            layer_metrics: true,
        }
    }
}

#[derive(Default)]
struct Cache {
    entries: ArcSwap<Entries>,
    insert: Mutex<()>,
    retry: OnceLock<RetryHandles>,
    bulkhead: OnceLock<BulkheadHandles>,
    ratelimit: OnceLock<RateLimitHandles>,
    /// Canary arm names given their own label value so far.
    arms: Mutex<Vec<Arc<str>>>,
}

/// Retry counters, indexed like [`retry_reason`].
struct RetryHandles {
    attempts: [Counter; 3],
    budget_exhausted: Counter,
}

/// Bulkhead histograms and rejection counters, indexed like [`bulkhead_reason`].
struct BulkheadHandles {
    in_flight: Histogram,
    queue_depth: Histogram,
    rejections: [Counter; 3],
}

struct RateLimitHandles {
    allowed: Counter,
    limited: Counter,
}

const RETRY_REASONS: [&str; 3] = ["error", "status", "grpc"];
const BULKHEAD_REASONS: [&str; 3] = ["full", "queue_timeout", "too_many_keys"];

fn retry_reason(reason: RetryReason) -> usize {
    match reason {
        RetryReason::Status(_) => 1,
        RetryReason::Grpc(_) => 2,
        _ => 0,
    }
}

fn bulkhead_reason(reason: RejectReason) -> usize {
    match reason {
        RejectReason::Full => 0,
        RejectReason::QueueTimeout => 1,
        RejectReason::TooManyKeys => 2,
    }
}

fn counter(name: &'static str, labels: Vec<Label>) -> Counter {
    let key = Key::from_parts(name, labels);
    metrics::with_recorder(|r| r.register_counter(&key, &METADATA))
}

fn histogram(name: &'static str) -> Histogram {
    let key = Key::from_static_name(name);
    metrics::with_recorder(|r| r.register_histogram(&key, &METADATA))
}

fn labelled(name: &'static str, label: &'static str, values: [&'static str; 3]) -> [Counter; 3] {
    values.map(|v| counter(name, vec![Label::from_static_parts(label, v)]))
}

impl fmt::Debug for EventMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventMetrics")
            .field("series", &self.cache.entries.load().len())
            .field("hooks", &self.hooks.as_ref().map_or(0, |h| h.len()))
            .field("layer_metrics", &self.layer_metrics)
            .finish()
    }
}

impl EventMetrics {
    /// A listener with an empty handle cache, counting every event and recording the
    /// typed per-layer metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only `palisade_events_total` (and the hooks added with [`on`](Self::on)): no typed
    /// per-layer metrics.
    #[must_use]
    pub fn without_layer_metrics(mut self) -> Self {
        self.layer_metrics = false;
        self
    }

    /// This listener as a closure for a layer's `on_event`, e.g.
    /// `CircuitBreakerLayer::builder().on_event(metrics.callback())`.
    pub fn callback<E: Event>(&self) -> impl Fn(&E) + Send + Sync + 'static {
        let this = self.clone();
        move |event: &E| this.on_event(event)
    }

    /// Adds a hook for events of type `E`, e.g. to set a gauge from a breaker's state
    /// transitions. Hooks run after the event is counted, on the emitting thread: keep
    /// them short.
    ///
    /// ```
    /// use palisade_core::event::{Event, Listeners};
    /// use palisade_metrics::EventMetrics;
    ///
    /// #[derive(Debug)]
    /// struct QueueDepth(usize);
    /// impl Event for QueueDepth {
    ///     fn layer(&self) -> &'static str { "bulkhead" }
    ///     fn name(&self) -> &'static str { "queue_depth" }
    /// }
    ///
    /// let listener = EventMetrics::new()
    ///     .on(|e: &QueueDepth| metrics::gauge!("my_queue_depth").set(e.0 as f64));
    /// let listeners = Listeners::new().on_any(listener.into_listener());
    /// listeners.emit_with(|| QueueDepth(3));
    /// ```
    #[must_use]
    pub fn on<E: Event>(mut self, hook: impl Fn(&E) + Send + Sync + 'static) -> Self {
        let hook: Hook = Arc::new(move |event: &dyn Event| {
            if let Some(e) = (event as &dyn Any).downcast_ref::<E>() {
                hook(e);
            }
        });
        let mut hooks: Vec<Hook> = self.hooks.as_deref().map(<[_]>::to_vec).unwrap_or_default();
        hooks.push(hook);
        self.hooks = Some(hooks.into());
        self
    }

    /// As an `Arc<dyn AnyListener>`, for `Listeners::on_any`.
    pub fn into_listener(self) -> Arc<dyn AnyListener> {
        Arc::new(self)
    }

    /// Installs a new `EventMetrics` as the process-wide event listener
    /// ([`palisade_core::event::set_global_listener`]); `false` if one was already set.
    pub fn install_global() -> bool {
        Self::new().install_as_global()
    }

    /// Installs this listener (with its hooks) as the process-wide event listener;
    /// `false` if one was already set.
    pub fn install_as_global(self) -> bool {
        palisade_core::event::set_global_listener(self)
    }

    /// Counts one event by layer and name.
    pub fn record(&self, layer: &'static str, name: &'static str) {
        if let Some((_, _, c)) = self
            .cache
            .entries
            .load()
            .iter()
            .find(|(l, n, _)| *l == layer && *n == name)
        {
            return c.increment(1);
        }
        self.insert_slow(layer, name).increment(1);
    }

    #[cold]
    fn insert_slow(&self, layer: &'static str, name: &'static str) -> Counter {
        let _guard = self
            .cache
            .insert
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = self.cache.entries.load_full();
        if let Some((_, _, c)) = current.iter().find(|(l, n, _)| *l == layer && *n == name) {
            return c.clone();
        }
        let key = Key::from_parts(
            EVENTS_TOTAL,
            vec![
                Label::from_static_parts("layer", layer),
                Label::from_static_parts("event", name),
            ],
        );
        let counter = metrics::with_recorder(|r| r.register_counter(&key, &METADATA));
        let mut next = Entries::clone(&current);
        next.push((layer, name, counter.clone()));
        self.cache.entries.store(Arc::new(next));
        counter
    }
}

impl EventMetrics {
    /// The typed metrics of the layers this crate knows.
    fn record_layer_metrics(&self, event: &dyn Event) {
        let any = event as &dyn Any;
        if let Some(e) = any.downcast_ref::<RateLimitEvent>() {
            self.ratelimit(e);
        } else if let Some(e) = any.downcast_ref::<BulkheadEvent>() {
            self.bulkhead(e);
        } else if let Some(e) = any.downcast_ref::<RetryEvent>() {
            self.retry(e);
        } else if let Some(e) = any.downcast_ref::<BreakerEvent>() {
            breaker(e);
        } else if let Some(e) = any.downcast_ref::<TrafficEvent>() {
            self.traffic(e);
        }
    }

    fn ratelimit(&self, event: &RateLimitEvent) {
        let h = self.cache.ratelimit.get_or_init(|| {
            let [allowed, limited] = ["allowed", "limited"].map(|d| {
                counter(
                    RATELIMIT_DECISIONS_TOTAL,
                    vec![Label::from_static_parts("decision", d)],
                )
            });
            RateLimitHandles { allowed, limited }
        });
        match event {
            RateLimitEvent::Allowed { .. } => h.allowed.increment(1),
            RateLimitEvent::Limited { .. } => h.limited.increment(1),
            _ => {}
        }
    }

    fn bulkhead(&self, event: &BulkheadEvent) {
        let h = self.cache.bulkhead.get_or_init(|| BulkheadHandles {
            in_flight: histogram(BULKHEAD_IN_FLIGHT_AT_ADMISSION),
            queue_depth: histogram(BULKHEAD_QUEUE_DEPTH_AT_ENQUEUE),
            rejections: labelled(BULKHEAD_REJECTIONS_TOTAL, "reason", BULKHEAD_REASONS),
        });
        match event {
            BulkheadEvent::Admitted { in_flight, .. } => h.in_flight.record(*in_flight as f64),
            BulkheadEvent::Queued { depth, .. } => h.queue_depth.record(*depth as f64),
            BulkheadEvent::Rejected { reason, .. } => {
                h.rejections[bulkhead_reason(*reason)].increment(1);
            }
            _ => {}
        }
    }

    fn retry(&self, event: &RetryEvent) {
        let h = self.cache.retry.get_or_init(|| RetryHandles {
            attempts: labelled(RETRY_ATTEMPTS_TOTAL, "reason", RETRY_REASONS),
            budget_exhausted: counter(RETRY_BUDGET_EXHAUSTED_TOTAL, Vec::new()),
        });
        match event {
            RetryEvent::Attempt { reason, .. } => h.attempts[retry_reason(*reason)].increment(1),
            RetryEvent::BudgetExhausted { .. } => h.budget_exhausted.increment(1),
            _ => {}
        }
    }

    fn traffic(&self, event: &TrafficEvent) {
        match event {
            TrafficEvent::Advanced { arm, percent } => {
                self.canary_weight(arm, f64::from(*percent));
            }
            TrafficEvent::Promoted { arm } => self.canary_weight(arm, 100.0),
            TrafficEvent::RolledBack { arm, reason } => {
                let reason = match reason {
                    RollbackReason::Latency { .. } => "latency",
                    _ => "error_rate",
                };
                self.canary_weight(arm, 0.0);
                metrics::counter!(CANARY_ROLLBACKS_TOTAL, "arm" => self.arm_label(arm), "reason" => reason)
                    .increment(1);
            }
            _ => {}
        }
    }

    fn canary_weight(&self, arm: &Arc<str>, percent: f64) {
        metrics::gauge!(CANARY_WEIGHT_PERCENT, "arm" => self.arm_label(arm)).set(percent);
    }

    /// The `arm` label: the arm's name for the first [`MAX_ARMS`] names seen, then `other`.
    fn arm_label(&self, arm: &Arc<str>) -> metrics::SharedString {
        let mut arms = self
            .cache
            .arms
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !arms.iter().any(|a| a == arm) {
            if arms.len() >= MAX_ARMS {
                return metrics::SharedString::const_str("other");
            }
            arms.push(arm.clone());
        }
        metrics::SharedString::from(arm.to_string())
    }
}

/// Breaker state gauge and transitions; both rare, so registered through the macros.
fn breaker(event: &BreakerEvent) {
    if let BreakerEvent::StateChanged { name, from, to } = event {
        metrics::gauge!(BREAKER_STATE, "breaker" => *name).set(f64::from(*to as u8));
        metrics::counter!(
            BREAKER_TRANSITIONS_TOTAL,
            "breaker" => *name,
            "from" => from.as_str(),
            "to" => to.as_str()
        )
        .increment(1);
    }
}

impl AnyListener for EventMetrics {
    fn on_event(&self, event: &dyn Event) {
        self.record(event.layer(), event.name());
        if self.layer_metrics {
            self.record_layer_metrics(event);
        }
        if let Some(hooks) = &self.hooks {
            for hook in hooks.iter() {
                hook(event);
            }
        }
    }
}
