//! [`EventMetrics`]: every layer's events as `palisade_events_total{layer, event}`.

use std::fmt;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use metrics::{Counter, Key, Label};
use palisade_core::event::{AnyListener, Event};

use crate::names::EVENTS_TOTAL;

type Entries = Vec<(&'static str, &'static str, Counter)>;

/// An [`AnyListener`] counting every event of every Palisade layer as
/// [`palisade_events_total`](crate::EVENTS_TOTAL)`{layer, event}`.
///
/// It needs no knowledge of the layers: `layer` and `event` are the event's
/// [`Event::layer`] and [`Event::name`], both `&'static str`, so cardinality is bounded by
/// the code. Counter handles are cached (lock-free reads), so counting an event costs one
/// short scan and one atomic add.
///
/// Install it process-wide with [`EventMetrics::install_global`], or per layer with
/// `Listeners::on_any(EventMetrics::new().into_listener())`.
#[derive(Clone, Default)]
pub struct EventMetrics {
    counters: Arc<Cache>,
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
            .finish()
    }
}

impl EventMetrics {
    /// A listener with an empty handle cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// As an `Arc<dyn AnyListener>`, for `Listeners::on_any`.
    pub fn into_listener(self) -> Arc<dyn AnyListener> {
        Arc::new(self)
    }

    /// Installs a new `EventMetrics` as the process-wide event listener
    /// ([`palisade_core::event::set_global_listener`]); `false` if one was already set.
    pub fn install_global() -> bool {
        palisade_core::event::set_global_listener(Self::new())
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
    }
}
