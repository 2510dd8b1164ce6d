//! Events: every layer decision as a typed value, for listeners and `tracing`.
//!
//! Each layer defines its own event enum (`TimeoutEvent`, `BreakerEvent`, …) implementing
//! [`Event`], keeps a [`Listeners`] of it, and calls [`Listeners::emit_with`] at each
//! decision. The event is built only when a listener is registered or `tracing` is enabled
//! for target `palisade` at DEBUG, so an unobserved layer pays one branch.
//!
//! # One vocabulary for every layer
//!
//! A listener that knows no pattern crate (a metrics exporter, a log shipper) reads every
//! event through [`Event`] alone:
//!
//! - [`layer`](Event::layer): which pattern (`"bulkhead"`), a `&'static str`;
//! - [`instance`](Event::instance): which instance of it, the [`InstanceName`] given with the
//!   layer's `.name(..)` setter or its config's `name` (default: the layer's name), so two
//!   bulkheads are two series, not one;
//! - [`name`](Event::name): the event kind (`"rejected"`), a `&'static str`;
//! - typed optional fields, `None` where they do not apply: [`duration`](Event::duration),
//!   [`reason`](Event::reason), [`state`](Event::state) and
//!   [`previous_state`](Event::previous_state) (the [`state`] names), [`attempt`](Event::attempt),
//!   [`count`](Event::count), [`percent`](Event::percent) and [`target`](Event::target).
//!
//! Values a listener must sample rather than hear about come from the live-gauge traits
//! [`OccupancyGauge`], [`StateGauge`], [`WeightGauge`] and [`UsageGauge`], implemented by the layers' handles
//! and by closures.
//!
//! Every emitted event also goes to `tracing` at DEBUG, target `palisade`, with the stable
//! fields `layer`, `instance`, `event` and `details` (the event's `Debug` form).
//!
//! # Example
//! ```
//! use palisade_core::event::{Event, Listeners};
//! use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
//!
//! #[derive(Debug)]
//! enum DoorEvent { Opened }
//! impl Event for DoorEvent {
//!     fn layer(&self) -> &'static str { "door" }
//!     fn name(&self) -> &'static str { "opened" }
//! }
//!
//! let seen = Arc::new(AtomicUsize::new(0));
//! let counter = seen.clone();
//! let listeners = Listeners::new().on(move |_e: &DoorEvent| { counter.fetch_add(1, Ordering::Relaxed); });
//! listeners.emit_with(|| DoorEvent::Opened);
//! assert_eq!(seen.load(Ordering::Relaxed), 1);
//! ```

use std::any::Any;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

mod gauge;
mod instance;

pub use gauge::{OccupancyGauge, StateGauge, UsageGauge, WeightGauge, state};
pub use instance::InstanceName;

/// A typed event from a Palisade layer.
///
/// Only [`layer`](Self::layer) and [`name`](Self::name) are required; the other methods
/// default to "does not apply". Every field is a borrow or a copy: reading an event never
/// allocates.
pub trait Event: Any + fmt::Debug + Send + Sync + 'static {
    /// Stable name of the layer that emitted it (`"timeout"`, `"breaker"`).
    fn layer(&self) -> &'static str;
    /// Stable snake_case name of the event: its kind (`"elapsed"`, `"state_changed"`).
    fn name(&self) -> &'static str;
    /// The name of the layer instance that emitted it (`"payments"`); by default the layer's
    /// name, for events of a layer that has no instance names.
    fn instance(&self) -> &str {
        self.layer()
    }
    /// A duration the event reports: a timeout that fired, a retry's backoff, a rate
    /// limit's wait or `Retry-After`, an injected delay.
    fn duration(&self) -> Option<Duration> {
        None
    }
    /// Why, as a stable snake_case word from a small fixed set (`"full"`, `"status"`,
    /// `"error_rate"`): safe as a metric label.
    fn reason(&self) -> Option<&'static str> {
        None
    }
    /// The circuit state after the event (one of the [`state`] names).
    fn state(&self) -> Option<&'static str> {
        None
    }
    /// The circuit state before a transition (one of the [`state`] names).
    fn previous_state(&self) -> Option<&'static str> {
        None
    }
    /// An attempt number, counting the first (so a first retry is 2), or attempts made.
    fn attempt(&self) -> Option<u32> {
        None
    }
    /// A count the event reports: calls in flight at an admission, queue length at an
    /// enqueue, a new limit, bytes stored.
    fn count(&self) -> Option<u64> {
        None
    }
    /// A share of traffic in percent (a canary's new weight).
    fn percent(&self) -> Option<u32> {
        None
    }
    /// What the event is about inside the instance, when it is a name fixed in code or
    /// config (a traffic arm). Never a request key.
    fn target(&self) -> Option<&str> {
        None
    }
}

/// A listener for events of any layer (e.g. a metrics exporter). Downcast with
/// `(event as &dyn Any).downcast_ref::<BreakerEvent>()`.
pub trait AnyListener: Send + Sync + 'static {
    /// Called synchronously for each event; keep it short and non-blocking.
    fn on_event(&self, event: &dyn Event);
}

impl<F> AnyListener for F
where
    F: Fn(&dyn Event) + Send + Sync + 'static,
{
    fn on_event(&self, event: &dyn Event) {
        self(event);
    }
}

static GLOBAL: OnceLock<Arc<dyn AnyListener>> = OnceLock::new();

/// Installs a process-wide listener that receives the events of every layer, in addition
/// to each layer's own listeners. Can be set once; returns `false` if one was already set.
pub fn set_global_listener(listener: impl AnyListener) -> bool {
    GLOBAL.set(Arc::new(listener)).is_ok()
}

enum Entry<E> {
    Typed(Arc<dyn Fn(&E) + Send + Sync>),
    Any(Arc<dyn AnyListener>),
}

impl<E> Clone for Entry<E> {
    fn clone(&self) -> Self {
        match self {
            Self::Typed(f) => Self::Typed(f.clone()),
            Self::Any(l) => Self::Any(l.clone()),
        }
    }
}

/// The listeners of one layer instance, and that instance's [`InstanceName`]. Cheap to
/// clone (one `Arc` and the name), free when empty.
pub struct Listeners<E> {
    entries: Option<Arc<[Entry<E>]>>,
    instance: InstanceName,
}

impl<E> Clone for Listeners<E> {
    fn clone(&self) -> Self {
        Self {
            entries: self.entries.clone(),
            instance: self.instance.clone(),
        }
    }
}

impl<E> Default for Listeners<E> {
    fn default() -> Self {
        Self {
            entries: None,
            instance: InstanceName::default(),
        }
    }
}

impl<E> fmt::Debug for Listeners<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listeners")
            .field("instance", &self.instance)
            .field("len", &self.entries.as_ref().map_or(0, |e| e.len()))
            .finish()
    }
}

impl<E> Listeners<E> {
    /// The name of the instance these listeners belong to, for the events it emits
    /// (clone it into the event: a copy or a reference-count bump).
    pub fn instance(&self) -> &InstanceName {
        &self.instance
    }

    /// Names the instance these listeners belong to (a layer's `.name(..)` setter calls
    /// this); the listeners are kept.
    #[must_use]
    pub fn named(mut self, instance: impl Into<InstanceName>) -> Self {
        self.instance = instance.into();
        self
    }
}

impl<E: Event> Listeners<E> {
    /// No listeners, and the empty instance name.
    pub fn new() -> Self {
        Self::default()
    }

    fn push(self, entry: Entry<E>) -> Self {
        let mut v: Vec<Entry<E>> = self
            .entries
            .as_deref()
            .map(<[_]>::to_vec)
            .unwrap_or_default();
        v.push(entry);
        Self {
            entries: Some(v.into()),
            instance: self.instance,
        }
    }

    /// Adds a listener for this layer's events.
    #[must_use]
    pub fn on(self, f: impl Fn(&E) + Send + Sync + 'static) -> Self {
        self.push(Entry::Typed(Arc::new(f)))
    }

    /// Adds a listener for events of any type.
    #[must_use]
    pub fn on_any(self, listener: Arc<dyn AnyListener>) -> Self {
        self.push(Entry::Any(listener))
    }

    /// Whether any listener is registered here (the global listener is not counted).
    pub fn is_empty(&self) -> bool {
        self.entries.is_none()
    }

    /// Whether an event would be observed by anyone: a listener here, the global listener,
    /// or `tracing` at DEBUG for target `palisade`.
    pub fn is_observed(&self) -> bool {
        self.entries.is_some()
            || GLOBAL.get().is_some()
            || tracing::enabled!(target: "palisade", tracing::Level::DEBUG)
    }

    /// Builds the event with `f` only if it is observed, then emits it.
    #[inline]
    pub fn emit_with(&self, f: impl FnOnce() -> E) {
        if self.is_observed() {
            self.emit(&f());
        }
    }

    /// As [`emit_with`](Self::emit_with), handing `f` this instance's name (cloned only if
    /// the event is observed): `listeners.emit_named(|instance| MyEvent::Shed { instance })`.
    #[inline]
    pub fn emit_named(&self, f: impl FnOnce(InstanceName) -> E) {
        if self.is_observed() {
            self.emit(&f(self.instance.clone()));
        }
    }

    /// Emits an event to `tracing`, the global listener and every listener here.
    pub fn emit(&self, event: &E) {
        tracing::debug!(
            target: "palisade",
            layer = event.layer(),
            instance = event.instance(),
            event = event.name(),
            details = ?event,
        );
        if let Some(global) = GLOBAL.get() {
            global.on_event(event);
        }
        if let Some(entries) = &self.entries {
            for entry in entries.iter() {
                match entry {
                    Entry::Typed(f) => f(event),
                    Entry::Any(l) => l.on_event(event),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Debug, PartialEq)]
    struct Ping(u32);
    impl Event for Ping {
        fn layer(&self) -> &'static str {
            "test"
        }
        fn name(&self) -> &'static str {
            "ping"
        }
    }

    #[test]
    fn not_built_when_unobserved() {
        let l = Listeners::<Ping>::new();
        assert!(l.is_empty());
        if !l.is_observed() {
            l.emit_with(|| unreachable!("event built with nobody listening"));
        }
    }

    #[test]
    fn typed_and_any_listeners_see_events_in_order() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let (a, b) = (log.clone(), log.clone());
        let l = Listeners::new()
            .on(move |p: &Ping| a.lock().unwrap().push(format!("typed {}", p.0)))
            .on_any(Arc::new(move |e: &dyn Event| {
                let p = (e as &dyn Any).downcast_ref::<Ping>().unwrap();
                b.lock()
                    .unwrap()
                    .push(format!("any {}/{} {}", e.layer(), e.name(), p.0));
            }));
        let clone = l.clone();
        clone.emit_with(|| Ping(7));
        assert_eq!(
            *log.lock().unwrap(),
            vec!["typed 7".to_owned(), "any test/ping 7".to_owned()]
        );
    }

    #[derive(Debug)]
    struct Shed {
        instance: InstanceName,
    }
    impl Event for Shed {
        fn layer(&self) -> &'static str {
            "bulkhead"
        }
        fn name(&self) -> &'static str {
            "rejected"
        }
        fn instance(&self) -> &str {
            &self.instance
        }
        fn reason(&self) -> Option<&'static str> {
            Some("full")
        }
    }

    #[test]
    fn the_instance_name_flows_from_the_listeners_into_events() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let l = Listeners::new()
            .named("db")
            .on_any(Arc::new(move |e: &dyn Event| {
                log.lock().unwrap().push(format!(
                    "{}/{}/{} {:?} {:?}",
                    e.layer(),
                    e.instance(),
                    e.name(),
                    e.reason(),
                    e.duration()
                ));
            }));
        assert_eq!(l.instance(), "db");
        l.emit_named(|instance| Shed { instance });
        assert_eq!(
            *seen.lock().unwrap(),
            vec!["bulkhead/db/rejected Some(\"full\") None".to_owned()]
        );
        // Unnamed events of other crates default to their layer name.
        assert_eq!(Ping(1).instance(), "test");
        assert_eq!(Ping(1).count(), None);
    }
}
