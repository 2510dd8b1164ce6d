//! [`FaultLayer`]: the builder, and [`FaultHandle`]: the kill switch and counters.

use std::fmt;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use http::StatusCode;
use palisade_core::{GrpcCode, Listeners, RequestParts};
use tokio::time::Instant;
use tower_layer::Layer;

use crate::events::FaultEvent;
use crate::fault::{AbortFault, AbortWith, DelayFault, Latency, ThrottleFault};
use crate::headers::HeaderControl;
use crate::rng::{Chance, Rng};
use crate::service::Fault;

/// A predicate choosing the requests faults may apply to.
pub(crate) type Predicate = Arc<dyn Fn(&dyn RequestParts) -> bool + Send + Sync>;

#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) delay: Option<DelayFault>,
    pub(crate) abort: Option<AbortFault>,
    pub(crate) error: Chance,
    pub(crate) throttle: Option<ThrottleFault>,
    pub(crate) max_active: usize,
    pub(crate) window: Option<(Instant, Instant)>,
    pub(crate) limited: bool,
    pub(crate) predicate: Option<Predicate>,
    pub(crate) headers: Option<HeaderControl>,
    pub(crate) listeners: Listeners<FaultEvent>,
    /// Whether any fault can fire at all (set when the layer makes a service).
    pub(crate) armed: bool,
}

impl Settings {
    /// Whether some fault has a non-zero chance (or headers may ask for one) and
    /// `max_active` lets any through.
    pub(crate) fn can_fire(&self) -> bool {
        let configured = self
            .delay
            .as_ref()
            .is_some_and(|d| d.chance != Chance::NEVER)
            || self
                .abort
                .as_ref()
                .is_some_and(|a| a.chance != Chance::NEVER)
            || self.error != Chance::NEVER
            || self
                .throttle
                .as_ref()
                .is_some_and(|t| t.chance != Chance::NEVER)
            || self.headers.is_some();
        configured && self.max_active > 0
    }

    /// Whether any gate (window, request count, predicate) must be checked.
    pub(crate) fn gated(&self) -> bool {
        self.window.is_some() || self.limited || self.predicate.is_some()
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("delay", &self.delay)
            .field("abort", &self.abort)
            .field("error", &self.error)
            .field("throttle", &self.throttle)
            .field("max_active", &self.max_active)
            .field("window", &self.window)
            .field("limited", &self.limited)
            .field("predicate", &self.predicate.as_ref().map(|_| "Fn"))
            .field("headers", &self.headers)
            .field("listeners", &self.listeners)
            .field("armed", &self.armed)
            .finish()
    }
}

/// Shared mutable state of one layer and all its services.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) rng: Rng,
    pub(crate) enabled: AtomicBool,
    pub(crate) active: AtomicUsize,
    pub(crate) remaining: AtomicU64,
    pub(crate) delayed: AtomicU64,
    pub(crate) aborted: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) throttled: AtomicU64,
    pub(crate) skipped: AtomicU64,
}

/// Counts one faulted request in flight; dropped when its response (body) is done.
#[derive(Debug)]
pub(crate) struct ActiveGuard(pub(crate) Arc<State>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Applies [`Fault`] to a service: injects latency, aborts, errors and bandwidth limits.
///
/// Defaults: no fault configured (the layer passes every request through), enabled, at most
/// 100 faulted requests in flight, a random seed, no schedule, no header control.
///
/// Builder values are never refused: probabilities are clamped into `[0, 1]` (NaN is 0) and
/// delays to [`MAX_DELAY`](crate::MAX_DELAY). Use [`FaultConfig`](crate::FaultConfig) to
/// have bad values refused with the field named.
///
/// Every service made by the layer shares one state: the random source, the kill switch
/// ([`handle`](Self::handle)), the in-flight count and the request budget.
#[derive(Debug, Clone)]
pub struct FaultLayer {
    settings: Settings,
    state: Arc<State>,
}

impl Default for FaultLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl FaultLayer {
    /// A layer injecting nothing yet.
    pub fn new() -> Self {
        Self {
            settings: Settings {
                delay: None,
                abort: None,
                error: Chance::NEVER,
                throttle: None,
                max_active: 100,
                window: None,
                limited: false,
                predicate: None,
                headers: None,
                listeners: Listeners::new().named("chaos"),
                armed: false,
            },
            state: Arc::new(State {
                rng: Rng::new(Rng::random_seed()),
                enabled: AtomicBool::new(true),
                active: AtomicUsize::new(0),
                remaining: AtomicU64::new(0),
                delayed: AtomicU64::new(0),
                aborted: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                throttled: AtomicU64::new(0),
                skipped: AtomicU64::new(0),
            }),
        }
    }

    /// Delays a `probability` of requests (in `[0, 1]`) by `latency` before they go on.
    #[must_use]
    pub fn delay(mut self, latency: Latency, probability: f64) -> Self {
        self.settings.delay = Some(DelayFault {
            latency: latency.clamped(),
            chance: Chance::new(probability),
        });
        self
    }

    /// Answers a `probability` of requests with `status` (problem+json) without calling the
    /// inner service. Statuses outside 200–599 are clamped to 500.
    #[must_use]
    pub fn abort(self, status: StatusCode, probability: f64) -> Self {
        let status = if (200..600).contains(&status.as_u16()) {
            status
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        self.abort_with(AbortWith::Http(status), probability)
    }

    /// Answers a `probability` of requests with a gRPC trailers-only response carrying
    /// `code`, without calling the inner service.
    #[must_use]
    pub fn abort_grpc(self, code: GrpcCode, probability: f64) -> Self {
        self.abort_with(AbortWith::Grpc(code), probability)
    }

    /// Aborts a `probability` of requests with `with`.
    #[must_use]
    pub fn abort_with(mut self, with: AbortWith, probability: f64) -> Self {
        self.settings.abort = Some(AbortFault {
            with,
            chance: Chance::new(probability),
        });
        self
    }

    /// Fails a `probability` of requests with
    /// [`FaultInjected`](crate::error::FaultInjected), without calling the inner service.
    #[must_use]
    pub fn error(mut self, probability: f64) -> Self {
        self.settings.error = Chance::new(probability);
        self
    }

    /// Limits the response body of a `probability` of requests to `bytes_per_second`.
    #[must_use]
    pub fn throttle(mut self, bytes_per_second: NonZeroU64, probability: f64) -> Self {
        self.settings.throttle = Some(ThrottleFault {
            bytes_per_second,
            chance: Chance::new(probability),
        });
        self
    }

    /// Seeds the random source, so a run is reproducible (draws happen in request order).
    #[must_use]
    pub fn seed(self, seed: u64) -> Self {
        self.state.rng.reseed(seed);
        self
    }

    /// At most `max` faulted requests in flight (default 100); further requests pass
    /// through unfaulted, so an experiment cannot take the service down. `0` disables
    /// injection.
    #[must_use]
    pub fn max_active(mut self, max: usize) -> Self {
        self.settings.max_active = max;
        self
    }

    /// Faults only requests arriving in `[start, end)` (tokio time, so paused clocks work).
    #[must_use]
    pub fn between(mut self, start: Instant, end: Instant) -> Self {
        self.settings.window = Some((start, end));
        self
    }

    /// Faults only the next `n` requests that pass the other gates (window, predicate);
    /// later requests pass through.
    #[must_use]
    pub fn next_requests(mut self, n: u64) -> Self {
        self.settings.limited = true;
        self.state.remaining.store(n, Ordering::Relaxed);
        self
    }

    /// Faults only requests for which `predicate` is true: a route, a header, or a feature
    /// flag (e.g. a `palisade-toggle` flag on for 5 % of the `chaos` segment).
    #[must_use]
    pub fn when(
        mut self,
        predicate: impl Fn(&dyn RequestParts) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.settings.predicate = Some(Arc::new(predicate));
        self
    }

    /// Lets callers choose faults with Envoy's fault headers (see [`HeaderControl`]).
    #[must_use]
    pub fn header_control(mut self, control: HeaderControl) -> Self {
        self.settings.headers = Some(control);
        self
    }

    /// The layer's instance name, carried by its events so metrics label it. Default
    /// `"chaos"`.
    #[must_use]
    pub fn name(mut self, name: impl Into<palisade_core::InstanceName>) -> Self {
        self.settings.listeners = self.settings.listeners.named(name);
        self
    }

    /// Adds a listener for this layer's events.
    #[must_use]
    pub fn on_event(mut self, f: impl Fn(&FaultEvent) + Send + Sync + 'static) -> Self {
        self.settings.listeners = self.settings.listeners.on(f);
        self
    }

    /// Replaces the event listeners (keeping this layer's name if they carry none).
    #[must_use]
    pub fn listeners(mut self, listeners: Listeners<FaultEvent>) -> Self {
        self.settings.listeners = if listeners.instance().is_empty() {
            listeners.named(self.settings.listeners.instance().clone())
        } else {
            listeners
        };
        self
    }

    /// A handle to the state every service of this layer shares: kill switch and counters.
    pub fn handle(&self) -> FaultHandle {
        FaultHandle {
            state: self.state.clone(),
        }
    }
}

impl<S> Layer<S> for FaultLayer {
    type Service = Fault<S>;
    fn layer(&self, inner: S) -> Fault<S> {
        let mut settings = self.settings.clone();
        settings.armed = settings.can_fire();
        Fault::from_parts(inner, Arc::new(settings), self.state.clone())
    }
}

/// The kill switch and counters of a [`FaultLayer`], shared with every service it made.
#[derive(Debug, Clone)]
pub struct FaultHandle {
    state: Arc<State>,
}

/// How many faults a layer injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct FaultStats {
    /// Requests delayed.
    pub delayed: u64,
    /// Requests aborted.
    pub aborted: u64,
    /// Requests failed with an error.
    pub failed: u64,
    /// Responses throttled.
    pub throttled: u64,
    /// Requests left unfaulted because of [`FaultLayer::max_active`].
    pub skipped: u64,
    /// Faulted requests in flight now.
    pub active: usize,
}

impl FaultHandle {
    /// Stops injecting at once; requests already delayed finish their delay.
    pub fn disable(&self) {
        self.state.enabled.store(false, Ordering::Release);
    }
    /// Resumes injecting.
    pub fn enable(&self) {
        self.state.enabled.store(true, Ordering::Release);
    }
    /// Whether faults are injected.
    pub fn is_enabled(&self) -> bool {
        self.state.enabled.load(Ordering::Acquire)
    }
    /// Requests still to be faulted under [`FaultLayer::next_requests`].
    pub fn remaining(&self) -> u64 {
        self.state.remaining.load(Ordering::Relaxed)
    }
    /// The counters.
    pub fn stats(&self) -> FaultStats {
        let s = &self.state;
        FaultStats {
            delayed: s.delayed.load(Ordering::Relaxed),
            aborted: s.aborted.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            throttled: s.throttled.load(Ordering::Relaxed),
            skipped: s.skipped.load(Ordering::Relaxed),
            active: s.active.load(Ordering::Relaxed),
        }
    }
}
