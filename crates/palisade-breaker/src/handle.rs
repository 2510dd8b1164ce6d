//! [`BreakerHandle`]: read and steer a breaker from outside the request path.

use std::fmt;
use std::sync::Arc;

use palisade_core::event::{InstanceName, StateGauge};

use crate::State;
use crate::shared::Breaker;
use crate::window::Totals;

/// A cloneable handle on one circuit breaker: its state and counts, and manual transitions
/// (for admin endpoints, health checks and tests).
#[derive(Clone)]
pub struct BreakerHandle {
    pub(crate) breaker: Arc<Breaker>,
}

impl fmt::Debug for BreakerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerHandle")
            .field("state", &self.state())
            .finish()
    }
}

impl BreakerHandle {
    /// The breaker's name (its builder's [`name`](crate::CircuitBreakerBuilder::name)), as
    /// its events carry it.
    pub fn name(&self) -> &InstanceName {
        self.breaker.name()
    }
    /// The current state. A finished OPEN wait shows as OPEN until the next call moves the
    /// breaker to HALF_OPEN (the transition is lazy, as in Resilience4j by default).
    pub fn state(&self) -> State {
        self.breaker.state()
    }
    /// Counts in the window (or of the probes, in HALF_OPEN). In fleet mode, while the
    /// fleet decides, the fleet's counts as of the last flush.
    pub fn totals(&self) -> Totals {
        self.breaker.totals()
    }
    /// Failure rate in percent over [`totals`](Self::totals).
    pub fn failure_rate(&self) -> f32 {
        self.totals().failure_rate()
    }
    /// Slow-call rate in percent over [`totals`](Self::totals).
    pub fn slow_call_rate(&self) -> f32 {
        self.totals().slow_rate()
    }
    /// Fleet mode (`CircuitBreakerBuilder::redis`):
    /// `Some(true)` while the last flush reached Redis and the fleet decides, `Some(false)`
    /// before the first flush and while this instance decides alone; `None` outside fleet
    /// mode. For health checks and tests.
    pub fn fleet_connected(&self) -> Option<bool> {
        self.breaker.fleet_connected()
    }
    /// Rejects every call until another manual transition (FORCED_OPEN).
    pub fn force_open(&self) {
        self.breaker.force(State::ForcedOpen);
    }
    /// Permits every call and records nothing (DISABLED).
    pub fn disable(&self) {
        self.breaker.force(State::Disabled);
    }
    /// Records like CLOSED but never opens (METRICS_ONLY).
    pub fn metrics_only(&self) {
        self.breaker.force(State::MetricsOnly);
    }
    /// Opens now, for the configured wait.
    pub fn open(&self) {
        self.breaker.force(State::Open);
    }
    /// Back to CLOSED with fresh metrics.
    pub fn reset(&self) {
        self.breaker.force(State::Closed);
    }
}

/// Live state for metrics exporters (`palisade-metrics`'s `watch_breaker`).
impl StateGauge for BreakerHandle {
    fn state(&self) -> &'static str {
        self.breaker.state().as_str()
    }
    fn instance(&self) -> InstanceName {
        self.name().clone()
    }
}
