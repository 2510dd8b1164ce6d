//! One breaker's shared state: a state machine behind a briefly held mutex, with atomic
//! fast paths so that CLOSED, DISABLED, FORCED_OPEN and a still-running OPEN period take no
//! lock to admit or reject, and an outcome in CLOSED or METRICS_ONLY goes into the
//! lock-free window; the lock is taken only when that outcome may open the breaker.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use palisade_core::clock::{Clock, nanos};
use palisade_core::{CircuitOpen, InstanceName, Listeners};
use tokio::time::Instant;

use crate::events::BreakerEvent;
use crate::fleet::Fleet;
use crate::machine::{
    FleetReport, FleetView, Machine, Permit, Rejected, Settings, State, Transition,
};
use crate::window::{Totals, Window};

#[derive(Debug)]
pub(crate) struct Breaker {
    clock: Clock,
    state: AtomicU8,
    /// End of the current OPEN period, in nanoseconds on `clock`.
    open_until: AtomicU64,
    machine: Mutex<Machine>,
    /// The machine's window, recorded into without the lock in CLOSED and METRICS_ONLY.
    window: Arc<Window>,
    /// The machine's settings (thresholds, slow-call duration), read without the lock.
    settings: Settings,
    automatic: bool,
    /// The retry hint of a FORCED_OPEN rejection (the state has no end of its own).
    wait_in_open: Duration,
    /// Itself, for the eager mode's timer tasks (which must not keep it alive).
    me: Weak<Breaker>,
    pub(crate) listeners: Listeners<BreakerEvent>,
    /// Fleet mode: the outcomes waiting for the next flush, and whether the fleet decides.
    fleet: Option<Fleet>,
    /// A `FleetDegraded` event was emitted and no `FleetRejoined` since (flush task only).
    degraded: AtomicBool,
}

impl Breaker {
    /// `listeners` carry the breaker's instance name.
    pub(crate) fn new(settings: Settings, listeners: Listeners<BreakerEvent>) -> Arc<Self> {
        Self::with_fleet(settings, listeners, None)
    }

    /// A breaker in fleet mode when `flush_interval` is given (its flush task is started
    /// apart, see `fleet/redis.rs`).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn with_fleet(
        settings: Settings,
        listeners: Listeners<BreakerEvent>,
        flush_interval: Option<Duration>,
    ) -> Arc<Self> {
        let mut machine = Machine::new(settings.clone());
        if let Some(every) = flush_interval {
            machine.enable_fleet(every);
        }
        Arc::new_cyclic(|me| Self {
            fleet: flush_interval.map(|_| Fleet::new()),
            degraded: AtomicBool::new(false),
            automatic: settings.automatic,
            wait_in_open: settings.wait_in_open,
            me: me.clone(),
            clock: Clock::new(),
            state: AtomicU8::new(State::Closed as u8),
            open_until: AtomicU64::new(0),
            window: machine.window().clone(),
            machine: Mutex::new(machine),
            settings,
            listeners,
        })
    }

    pub(crate) fn name(&self) -> &InstanceName {
        self.listeners.instance()
    }

    pub(crate) fn now(&self) -> Duration {
        self.clock.elapsed()
    }

    pub(crate) fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Whether a keyed store must keep this breaker at `now` (see `keyed.rs`): OPEN with its
    /// wait running, HALF_OPEN, or a state set by hand. Two atomic loads, no lock.
    pub(crate) fn pinned(&self, now: Instant) -> bool {
        match self.state() {
            State::Closed => false,
            State::Open => self.clock.nanos_at(now) < self.open_until.load(Ordering::Acquire),
            State::HalfOpen | State::Disabled | State::ForcedOpen | State::MetricsOnly => true,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Machine> {
        // The machine stays consistent even if a listener panicked while we held the lock.
        self.machine
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Publishes the machine's state to the atomics (under the lock).
    fn publish(&self, m: &Machine) {
        self.open_until
            .store(nanos(m.open_until()), Ordering::Release);
        self.state.store(m.state() as u8, Ordering::Release);
    }

    /// Emits a state change and, in the eager mode, arms the timer for the new state's
    /// deadline. Called with the machine locked, so that listeners see the transitions in
    /// the order they happened.
    fn announce(&self, t: Option<Transition>, deadline: Option<Duration>) {
        if let Some(t) = t {
            if self.automatic
                && let Some(d) = deadline
            {
                self.schedule(d);
            }
            self.listeners
                .emit_named(|instance| BreakerEvent::StateChanged {
                    instance,
                    from: t.from,
                    to: t.to,
                });
        }
    }

    /// Spawns a task that applies the timer transitions at `deadline` (per transition, not
    /// per call). Without a Tokio runtime the breaker stays lazy.
    fn schedule(&self, deadline: Duration) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let me = self.me.clone();
        let at = self.clock.at(deadline);
        rt.spawn(async move {
            tokio::time::sleep_until(at).await;
            if let Some(b) = me.upgrade() {
                b.poll_timers();
            }
        });
    }

    /// Applies due timer transitions now.
    fn poll_timers(&self) {
        let now = self.now();
        let mut m = self.lock();
        let t = m.poll_timers(now);
        self.publish(&m);
        // Announced under the lock, so listeners see transitions in order.
        self.announce(t, m.next_deadline());
    }

    fn reject(&self, r: Rejected) -> CircuitOpen {
        self.listeners
            .emit_named(|instance| BreakerEvent::Rejected {
                instance,
                state: r.state,
                retry_after: r.retry_after,
            });
        CircuitOpen::new(r.retry_after)
    }

    /// Asks to make a call now: CLOSED and DISABLED answer from one atomic load, inlined.
    #[inline]
    pub(crate) fn acquire(&self) -> Result<Permit, CircuitOpen> {
        match self.state() {
            State::Closed => Ok(Permit::Recorded),
            State::Disabled => Ok(Permit::Unrecorded),
            _ => self.acquire_slow(),
        }
    }

    /// [`acquire`](Self::acquire) in the other states.
    #[cold]
    fn acquire_slow(&self) -> Result<Permit, CircuitOpen> {
        match self.state() {
            State::Closed => return Ok(Permit::Recorded),
            State::Disabled => return Ok(Permit::Unrecorded),
            State::ForcedOpen => {
                return Err(self.reject(Rejected {
                    state: State::ForcedOpen,
                    retry_after: Some(self.wait_in_open),
                }));
            }
            State::Open => {
                let now = self.now();
                let until = Duration::from_nanos(self.open_until.load(Ordering::Acquire));
                if now < until {
                    return Err(self.reject(Rejected {
                        state: State::Open,
                        retry_after: Some(until.saturating_sub(now)),
                    }));
                }
            }
            State::HalfOpen | State::MetricsOnly => {}
        }
        let now = self.now();
        let mut m = self.lock();
        let (r, t) = m.acquire(now);
        self.publish(&m);
        // Announced under the lock, so listeners see transitions in order.
        self.announce(t, m.next_deadline());
        drop(m);
        r.map_err(|r| self.reject(r))
    }

    /// Records a finished call, started at `start` and ended at `end`; `outcome` is
    /// `Some(failed)` or `None` when ignored.
    #[inline]
    pub(crate) fn record(
        &self,
        permit: Permit,
        outcome: Option<bool>,
        start: Instant,
        end: Instant,
    ) {
        if permit == Permit::Unrecorded {
            return;
        }
        if permit == Permit::Recorded {
            let state = self.state();
            if matches!(state, State::Closed | State::MetricsOnly) {
                // As `Machine::record` does under the lock, without it: the window is
                // shared, and only an outcome that may open the breaker takes the lock. A
                // count window needs no recording time, so it is computed only for a time
                // window or a transition.
                let now = || self.clock.since_epoch(end);
                let at = if self.window.is_timed() {
                    now()
                } else {
                    Duration::ZERO
                };
                let changed = match outcome {
                    Some(failed) => {
                        // `end - start > slow_call`, with an add instead of a subtraction
                        // (`Instant` subtraction normalises a `Duration`: twice the work).
                        let slow = start
                            .checked_add(self.settings.slow_call)
                            .is_some_and(|slow_from| end > slow_from);
                        if state == State::Closed
                            && let Some(fleet) = &self.fleet
                        {
                            fleet.add(failed, slow);
                        }
                        self.window.add(failed, slow, at)
                    }
                    None => self.window.advance_shared(at),
                };
                // While the fleet decides, the local window opens nothing: no lock.
                if state == State::Closed
                    && !self.fleet.as_ref().is_some_and(Fleet::connected)
                    && self.settings.may_trip(&self.window, changed)
                {
                    let mut m = self.lock();
                    let t = m.recorded(now());
                    self.publish(&m);
                    // Announced under the lock, so listeners see transitions in order.
                    self.announce(t, m.next_deadline());
                }
                return;
            }
        }
        let now = self.clock.since_epoch(end);
        let duration = end.saturating_duration_since(start);
        let mut m = self.lock();
        let t = m.record(permit, outcome, duration, now);
        self.publish(&m);
        // Announced under the lock, so listeners see transitions in order.
        self.announce(t, m.next_deadline());
    }

    /// A permitted call was dropped before finishing.
    pub(crate) fn cancel(&self, permit: Permit) {
        if let Permit::Probe(_) = permit {
            self.lock().cancel(permit);
        }
    }

    pub(crate) fn force(&self, to: State) {
        let now = self.now();
        let mut m = self.lock();
        let t = m.force(to, now);
        self.publish(&m);
        // Announced under the lock, so listeners see transitions in order.
        self.announce(t, m.next_deadline());
    }

    pub(crate) fn totals(&self) -> Totals {
        self.lock().totals()
    }

    pub(crate) fn fleet_connected(&self) -> Option<bool> {
        self.fleet.as_ref().map(Fleet::connected)
    }

    /// What the next flush sends: the outcomes counted since the last one and the probe
    /// report. `None` outside fleet mode.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn fleet_report(&self) -> Option<(Totals, FleetReport)> {
        let fleet = self.fleet.as_ref()?;
        let report = self.lock().fleet_report()?;
        Some((fleet.take(), report))
    }

    /// A flush succeeded: follow the fleet's state.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn fleet_synced(&self, view: FleetView) {
        let Some(fleet) = &self.fleet else {
            return;
        };
        let now = self.now();
        let mut m = self.lock();
        let t = m.fleet_sync(view, now);
        // The state first: a reader that sees "connected" sees the fleet's state.
        self.publish(&m);
        fleet.set_connected(true);
        if self.degraded.swap(false, Ordering::Relaxed) {
            self.listeners
                .emit_named(|instance| BreakerEvent::FleetRejoined { instance });
        }
        // Announced under the lock, so listeners see transitions in order.
        self.announce(t, m.next_deadline());
    }

    /// A flush failed: decide locally until one succeeds (one `FleetDegraded` event per
    /// outage).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn fleet_failed(&self, error: String) {
        let Some(fleet) = &self.fleet else {
            return;
        };
        let now = self.now();
        let mut m = self.lock();
        fleet.set_connected(false);
        if !self.degraded.swap(true, Ordering::Relaxed) {
            self.listeners
                .emit_named(|instance| BreakerEvent::FleetDegraded { instance, error });
        }
        let t = m.fleet_lost(now);
        self.publish(&m);
        // Announced under the lock, so listeners see transitions in order.
        self.announce(t, m.next_deadline());
    }
}
