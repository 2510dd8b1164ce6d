//! [`EventMetrics`]: every layer's events as `palisade_events_total{layer, instance, event}`,
//! plus typed per-layer metrics (breaker state, retries, bulkhead, rate limit, canary), all
//! read through core's event vocabulary.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use metrics::{Counter, Label, SharedString};
use palisade_core::event::{AnyListener, Event};

use crate::names::EVENTS_TOTAL;
use crate::series::Series;
use crate::typed::{LayerMetrics, counter};

type Hook = Arc<dyn Fn(&dyn Event) + Send + Sync>;

/// The instance label of an event: its [`Event::instance`], or its layer's name when the
/// instance was left unnamed (events of `Listeners::new()` that nobody named).
pub(crate) fn instance(event: &dyn Event) -> &str {
    match event.instance() {
        "" => event.layer(),
        name => name,
    }
}

/// An [`AnyListener`] turning every Palisade layer's events into metrics.
///
/// - Every event is counted as
///   [`palisade_events_total`](crate::EVENTS_TOTAL)`{layer, instance, event}`: `layer` and
///   `event` are the event's [`Event::layer`] and [`Event::name`] (`&'static str`, so
///   bounded by the code), `instance` its [`Event::instance`], the name the layer was given
///   in code or config (at most 256 per layer and event, then `other`).
/// - The events of the breaker, retry, bulkhead, rate-limit and traffic layers also feed
///   typed metrics (breaker state gauge and transitions, retries, budget exhaustion,
///   bulkhead occupancy and rejections, rate-limit decisions, canary weight and rollbacks):
///   see the [crate-level table](crate#metric-names). They are read through core's event
///   vocabulary alone (layer, instance, kind and the typed fields), so this crate depends
///   on no pattern crate. Each is labelled by its instance under the layer's name
///   (`bulkhead="db"`), so two bulkheads are two series; other labels are state and reason
///   names and canary arm names (at most 32, then `other`); never keys or paths. Turn them
///   off with [`without_layer_metrics`](Self::without_layer_metrics).
/// - More metrics: typed hooks, [`EventMetrics::on`], which see the concrete event type.
///
/// Handles are registered with the recorder current at the first event of each kind and
/// instance and cached (lock-free reads), so counting a frequent event costs two short
/// scans (comparing pointers and the instance name) and an atomic add or two; nothing is
/// allocated after the first event of a series.
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
///     .name("payments") // labels its metrics `breaker="payments"`
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
    events: Series<Counter>,
    layers: LayerMetrics,
}

impl fmt::Debug for EventMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventMetrics")
            .field(
                "series",
                &(self.cache.events.len() + self.cache.layers.len()),
            )
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

    /// Counts one event by layer and name, for an instance named after its layer (as
    /// [`Event::instance`] defaults to).
    pub fn record(&self, layer: &'static str, name: &'static str) {
        self.record_instance(layer, layer, name);
    }

    /// Counts one event by layer, instance and name.
    pub fn record_instance(&self, layer: &'static str, instance: &str, name: &'static str) {
        let make = |instance: SharedString| {
            counter(
                EVENTS_TOTAL,
                vec![
                    Label::from_static_parts("layer", layer),
                    Label::new("instance", instance),
                    Label::from_static_parts("event", name),
                ],
            )
        };
        self.cache
            .events
            .with(layer, name, instance, make, |c| c.increment(1));
    }
}

impl AnyListener for EventMetrics {
    fn on_event(&self, event: &dyn Event) {
        self.record_instance(event.layer(), instance(event), event.name());
        if self.layer_metrics {
            self.cache.layers.record(event);
        }
        if let Some(hooks) = &self.hooks {
            for hook in hooks.iter() {
                hook(event);
            }
        }
    }
}
