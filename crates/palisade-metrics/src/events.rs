//! [`EventMetrics`]: every layer's events as `palisade_events_total{layer, event}`.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use metrics::{Counter, Key, Label};
use palisade_core::event::{AnyListener, Event};

use crate::names::EVENTS_TOTAL;

type Entries = Vec<(&'static str, &'static str, Counter)>;
type Hook = Arc<dyn Fn(&dyn Event) + Send + Sync>;

/// An [`AnyListener`] counting every event of every Palisade layer as
/// [`palisade_events_total`](crate::EVENTS_TOTAL)`{layer, event}`.
///
/// It needs no knowledge of the layers: `layer` and `event` are the event's
/// [`Event::layer`] and [`Event::name`], both `&'static str`, so cardinality is bounded by
/// the code. Counter handles are cached (lock-free reads), so counting an event costs one
/// short scan and one atomic add.
///
/// Layer-specific metrics (a breaker's state as a gauge, a bulkhead's queue depth) are
/// added with typed hooks, [`EventMetrics::on`], which see the concrete event type.
///
/// Install it process-wide with [`EventMetrics::install_global`], or per layer with
/// `Listeners::on_any(EventMetrics::new().into_listener())`.
#[derive(Clone, Default)]
pub struct EventMetrics {
    counters: Arc<Cache>,
    hooks: Option<Arc<[Hook]>>,
}

#[derive(Default)]
struct Cache {
    entries: ArcSwap<Entries>,
    insert: Mutex<()>,
}

impl fmt::Debug for EventMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventMetrics")
            .field("series", &self.counters.entries.load().len())
            .field("hooks", &self.hooks.as_ref().map_or(0, |h| h.len()))
            .finish()
    }
}

impl EventMetrics {
    /// A listener with an empty handle cache.
    pub fn new() -> Self {
        Self::default()
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
    ///     .on(|e: &QueueDepth| metrics::gauge!("palisade_bulkhead_queue_depth").set(e.0 as f64));
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
            .counters
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
            .counters
            .insert
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = self.counters.entries.load_full();
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
        static METADATA: metrics::Metadata<'static> =
            metrics::Metadata::new("palisade", metrics::Level::INFO, Some(module_path!()));
        let counter = metrics::with_recorder(|r| r.register_counter(&key, &METADATA));
        let mut next = Entries::clone(&current);
        next.push((layer, name, counter.clone()));
        self.counters.entries.store(Arc::new(next));
        counter
    }
}

impl AnyListener for EventMetrics {
    fn on_event(&self, event: &dyn Event) {
        self.record(event.layer(), event.name());
        if let Some(hooks) = &self.hooks {
            for hook in hooks.iter() {
                hook(event);
            }
        }
    }
}
