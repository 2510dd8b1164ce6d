//! [`EventRecorder`]: collects the events of every Palisade layer, for assertions.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use palisade_core::Event;
use palisade_core::event::AnyListener;
use tokio::time::Instant;

/// One recorded event.
#[derive(Clone)]
pub struct Recorded {
    /// The emitting layer (`"breaker"`).
    pub layer: &'static str,
    /// The event name (`"state_changed"`).
    pub name: &'static str,
    /// The name of the emitting layer instance (`"payments"`; the layer's name when unnamed).
    pub instance: String,
    /// Its `Debug` form.
    pub debug: String,
    /// When it was emitted (tokio time, so exact on a paused clock).
    pub at: Instant,
    value: Option<Arc<dyn Any + Send + Sync>>,
}

impl fmt::Debug for Recorded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.debug)
    }
}

/// Records events in the order they were emitted; clones share the record.
///
/// Attach it with a layer's `on_event(rec.on())` (typed, so [`assert_events!`](crate::assert_events) can match
/// the values), or to any layer's `Listeners` with `on_any(rec.listener())`.
#[derive(Clone, Default)]
pub struct EventRecorder {
    log: Arc<Mutex<Vec<Recorded>>>,
}

impl fmt::Debug for EventRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.all()).finish()
    }
}

impl EventRecorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&self, r: Recorded) {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(r);
    }

    /// A typed listener, for a layer's `on_event`.
    pub fn on<E: Event + Clone>(&self) -> impl Fn(&E) + Send + Sync + 'static {
        let rec = self.clone();
        move |e: &E| {
            rec.push(Recorded {
                layer: e.layer(),
                name: e.name(),
                instance: e.instance().to_owned(),
                debug: format!("{e:?}"),
                at: Instant::now(),
                value: Some(Arc::new(e.clone())),
            });
        }
    }

    /// A listener for events of any type (records layer, name and `Debug` form only).
    pub fn listener(&self) -> Arc<dyn AnyListener> {
        let rec = self.clone();
        Arc::new(move |e: &dyn Event| {
            rec.push(Recorded {
                layer: e.layer(),
                name: e.name(),
                instance: e.instance().to_owned(),
                debug: format!("{e:?}"),
                at: Instant::now(),
                value: None,
            });
        })
    }

    /// Everything recorded, in order.
    pub fn all(&self) -> Vec<Recorded> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The recorded events of type `E` (recorded with [`on`](Self::on)), in order.
    pub fn events<E: Event + Clone>(&self) -> Vec<E> {
        self.all()
            .iter()
            .filter_map(|r| r.value.as_ref()?.downcast_ref::<E>().cloned())
            .collect()
    }

    /// `layer/name` of everything recorded, in order.
    pub fn names(&self) -> Vec<String> {
        self.all()
            .iter()
            .map(|r| format!("{}/{}", r.layer, r.name))
            .collect()
    }

    /// Forgets everything recorded so far.
    pub fn clear(&self) {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// Asserts that the events of type `$ty` recorded by an [`EventRecorder`] are exactly the
/// given patterns, in order.
///
/// ```
/// use palisade_test::{EventRecorder, assert_events};
/// #[derive(Debug, Clone)]
/// enum Door { Opened, Closed }
/// impl palisade_core::Event for Door {
///     fn layer(&self) -> &'static str { "door" }
///     fn name(&self) -> &'static str { "door" }
/// }
/// let rec = EventRecorder::new();
/// let listen = rec.on::<Door>();
/// listen(&Door::Opened);
/// listen(&Door::Closed);
/// assert_events!(rec, Door, [Door::Opened, Door::Closed]);
/// ```
#[macro_export]
macro_rules! assert_events {
    ($rec:expr, $ty:ty, [$($pat:pat),* $(,)?]) => {{
        let events: ::std::vec::Vec<$ty> = $rec.events::<$ty>();
        let expected: &[&str] = &[$(stringify!($pat)),*];
        let mut ok = events.len() == expected.len();
        let mut i = 0usize;
        $(
            ok = ok && matches!(events.get(i), Some($pat));
            i += 1;
        )*
        let _ = i;
        assert!(ok, "recorded events\n  {:?}\ndo not match\n  [{}]", events, expected.join(", "));
    }};
}
