//! The breaker's state machine, free of I/O and clocks: time comes in as the elapsed time
//! since the breaker was built, so the same code runs under `tokio::time::pause()` and in
//! the proptest model.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::window::{SlidingWindow, Totals, Window};

/// A breaker state: Resilience4j's three normal states (CLOSED, OPEN, HALF_OPEN) and its
/// three special ones (DISABLED, FORCED_OPEN, METRICS_ONLY), left only by an explicit
/// transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum State {
    /// Calls pass; outcomes are recorded; opens when a rate crosses its threshold.
    Closed = 0,
    /// Calls are rejected until the wait is over.
    Open = 1,
    /// A limited number of probe calls decide between CLOSED and OPEN.
    HalfOpen = 2,
    /// Always permits, records nothing.
    Disabled = 3,
    /// Always rejects.
    ForcedOpen = 4,
    /// Permits and records like CLOSED, never opens.
    MetricsOnly = 5,
}

impl State {
    pub(crate) const fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Closed,
            1 => Self::Open,
            2 => Self::HalfOpen,
            3 => Self::Disabled,
            4 => Self::ForcedOpen,
            _ => Self::MetricsOnly,
        }
    }
    /// Stable snake_case name, for events and health checks.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
            Self::Disabled => "disabled",
            Self::ForcedOpen => "forced_open",
            Self::MetricsOnly => "metrics_only",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Validated settings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Settings {
    pub(crate) window: SlidingWindow,
    pub(crate) minimum_calls: u32,
    pub(crate) failure_rate: f32,
    pub(crate) slow_rate: f32,
    pub(crate) slow_call: Duration,
    pub(crate) wait_in_open: Duration,
    pub(crate) wait_multiplier: f64,
    pub(crate) max_wait_in_open: Duration,
    pub(crate) permitted_in_half_open: u32,
    pub(crate) max_wait_in_half_open: Option<Duration>,
    /// Run the OPEN → HALF_OPEN (and half-open timeout) transitions from a timer task.
    pub(crate) automatic: bool,
}

impl Settings {
    /// Whether a rate reaches its threshold. Thresholds are validated to (0, 100] and a rate
    /// over no calls is 0, so no calls never trip.
    #[inline]
    pub(crate) fn rates_trip(&self, t: Totals) -> bool {
        t.failure_rate() >= self.failure_rate || t.slow_rate() >= self.slow_rate
    }

    /// Whether the window's totals open a CLOSED breaker.
    #[inline]
    pub(crate) fn trips(&self, t: Totals) -> bool {
        t.calls >= self.minimum_calls && self.rates_trip(t)
    }

    /// Whether an outcome recorded into the shared window without the lock may have opened a
    /// CLOSED breaker, so that the lock must be taken: it `changed` the totals and they now
    /// trip. Of outcomes racing, the last to read the totals (after a fence) reads the final
    /// ones, so a trip is never missed (the `loom` model in `tests/loom.rs` checks it).
    #[inline]
    pub(crate) fn may_trip(&self, window: &Window, changed: bool) -> bool {
        changed && self.trips(window.totals_after_change())
    }
}

/// What a permitted call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Permit {
    /// A call in CLOSED or METRICS_ONLY: its outcome goes into the window.
    Recorded,
    /// A probe in HALF_OPEN, of the half-open generation given.
    Probe(u64),
    /// A call in DISABLED: nothing is recorded.
    Unrecorded,
}

/// A state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Transition {
    pub(crate) from: State,
    pub(crate) to: State,
}

/// A rejected call: the state it met and how long until a probe may pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rejected {
    pub(crate) state: State,
    pub(crate) retry_after: Option<Duration>,
}

#[derive(Debug)]
pub(crate) struct Machine {
    pub(crate) settings: Settings,
    state: State,
    /// Shared with the breaker, which records CLOSED outcomes into it without the lock.
    window: Arc<Window>,
    /// When OPEN ends (elapsed since epoch).
    open_until: Duration,
    /// OPEN periods since the last CLOSED, for the growing wait.
    consecutive_opens: u32,
    /// HALF_OPEN bookkeeping; `generation` tells probes of an old half-open period apart.
    generation: u64,
    half_open_since: Duration,
    probes_admitted: u32,
    probe_results: Totals,
    /// Fleet mode (`fleet.rs`): what this instance knows of the shared breaker.
    fleet: Option<fleet::FleetLocal>,
}

impl Machine {
    pub(crate) fn new(settings: Settings) -> Self {
        Self {
            window: Arc::new(Window::new(settings.window)),
            settings,
            state: State::Closed,
            open_until: Duration::ZERO,
            consecutive_opens: 0,
            generation: 0,
            half_open_since: Duration::ZERO,
            probes_admitted: 0,
            probe_results: Totals::default(),
            fleet: None,
        }
    }

    /// Whether the fleet decides (fleet mode, and the last flush reached Redis): the local
    /// window and timers then make no transition of their own.
    fn fleet_decides(&self) -> bool {
        self.fleet.as_ref().is_some_and(|f| f.connected)
    }

    pub(crate) fn state(&self) -> State {
        self.state
    }

    /// The window, for recording without the lock.
    pub(crate) fn window(&self) -> &Arc<Window> {
        &self.window
    }

    pub(crate) fn open_until(&self) -> Duration {
        self.open_until
    }

    /// The counts the breaker decides on: the probes in HALF_OPEN, else the window.
    pub(crate) fn totals(&self) -> Totals {
        match (self.state, &self.fleet) {
            (State::HalfOpen | State::Closed, Some(f)) if f.connected => {
                if self.state == State::HalfOpen {
                    f.probes
                } else {
                    f.window
                }
            }
            (State::HalfOpen, _) => self.probe_results,
            _ => self.window.totals(),
        }
    }

    fn set(&mut self, to: State, now: Duration, out: &mut Option<Transition>) {
        let from = self.state;
        if from == to {
            return;
        }
        self.state = to;
        match to {
            State::Open => {
                self.consecutive_opens = self.consecutive_opens.saturating_add(1);
                let grow = self
                    .settings
                    .wait_multiplier
                    .powi(self.consecutive_opens.saturating_sub(1).min(64) as i32);
                let wait = self.settings.wait_in_open.mul_f64(grow.min(1e9)).min(
                    self.settings
                        .max_wait_in_open
                        .max(self.settings.wait_in_open),
                );
                self.open_until = now + wait;
            }
            State::HalfOpen => {
                self.generation += 1;
                self.half_open_since = now;
                self.probes_admitted = 0;
                self.probe_results = Totals::default();
            }
            State::Closed => {
                self.consecutive_opens = 0;
                self.window.clear();
            }
            State::Disabled | State::ForcedOpen | State::MetricsOnly => {
                self.window.clear();
            }
        }
        *out = Some(Transition { from, to });
    }

    /// Lazy timers: OPEN → HALF_OPEN once the wait is over; HALF_OPEN → OPEN once
    /// `max_wait_in_half_open` has passed.
    fn tick(&mut self, now: Duration, out: &mut Option<Transition>) {
        if self.fleet_decides() {
            return;
        }
        match self.state {
            State::Open if now >= self.open_until => self.set(State::HalfOpen, now, out),
            State::HalfOpen => {
                if let Some(max) = self.settings.max_wait_in_half_open
                    && now >= self.half_open_since + max
                {
                    self.set(State::Open, now, out);
                }
            }
            _ => {}
        }
    }

    /// Applies due timer transitions (the eager mode's timer task).
    pub(crate) fn poll_timers(&mut self, now: Duration) -> Option<Transition> {
        let mut t = None;
        self.tick(now, &mut t);
        t
    }

    /// When the next timer transition is due, if the state has one.
    pub(crate) fn next_deadline(&self) -> Option<Duration> {
        match self.state {
            State::Open => Some(self.open_until),
            State::HalfOpen => self
                .settings
                .max_wait_in_half_open
                .map(|max| self.half_open_since + max),
            _ => None,
        }
    }

    /// Asks to make a call at `now`.
    pub(crate) fn acquire(
        &mut self,
        now: Duration,
    ) -> (Result<Permit, Rejected>, Option<Transition>) {
        let mut t = None;
        self.tick(now, &mut t);
        let r = match self.state {
            State::Closed | State::MetricsOnly => Ok(Permit::Recorded),
            State::Disabled => Ok(Permit::Unrecorded),
            State::ForcedOpen => Err(Rejected {
                state: State::ForcedOpen,
                retry_after: Some(self.settings.wait_in_open),
            }),
            State::Open => {
                let mut retry_after = self.open_until.saturating_sub(now);
                if let Some(f) = &mut self.fleet {
                    f.demand = true;
                    if f.connected {
                        // The wait is over once the fleet says HALF_OPEN, at a next flush.
                        retry_after = retry_after.max(f.flush_interval);
                    }
                }
                Err(Rejected {
                    state: State::Open,
                    retry_after: Some(retry_after),
                })
            }
            State::HalfOpen => {
                let limit = match &mut self.fleet {
                    Some(f) => {
                        f.demand = true;
                        if f.connected {
                            f.leases
                        } else {
                            self.settings.permitted_in_half_open
                        }
                    }
                    None => self.settings.permitted_in_half_open,
                };
                if self.probes_admitted < limit {
                    self.probes_admitted += 1;
                    Ok(Permit::Probe(self.generation))
                } else {
                    Err(Rejected {
                        state: State::HalfOpen,
                        retry_after: Some(self.half_open_retry_after(now)),
                    })
                }
            }
        };
        (r, t)
    }

    /// The retry hint while every probe slot is taken: until `max_wait_in_half_open` ends
    /// (the probes have decided by then, or the breaker reopens), or, without that bound,
    /// `wait_in_open` (the probes' outcome is unknown; a failed probe round would keep the
    /// breaker shut at least that long).
    fn half_open_retry_after(&self, now: Duration) -> Duration {
        if let Some(f) = &self.fleet
            && f.connected
        {
            // Probe leases come with each flush.
            return f.flush_interval;
        }
        match self.settings.max_wait_in_half_open {
            Some(max) => (self.half_open_since + max).saturating_sub(now),
            None => self.settings.wait_in_open,
        }
    }

    /// Whether a rate reaches its threshold. Thresholds are validated to (0, 100] and a rate
    /// over no calls is 0, so no calls never trip.
    fn rates_trip(&self, t: Totals) -> bool {
        self.settings.rates_trip(t)
    }

    /// Records a finished call. `outcome` is `None` for an ignored call.
    pub(crate) fn record(
        &mut self,
        permit: Permit,
        outcome: Option<bool>,
        duration: Duration,
        now: Duration,
    ) -> Option<Transition> {
        let mut t = None;
        self.tick(now, &mut t);
        let slow = duration > self.settings.slow_call;
        match (permit, self.state) {
            (Permit::Recorded, State::Closed | State::MetricsOnly) => {
                if let Some(failed) = outcome {
                    self.window.add(failed, slow, now);
                } else {
                    self.window.advance_shared(now);
                }
                self.trip_if_due(now, &mut t);
            }
            (Permit::Probe(g), State::HalfOpen) if g == self.generation => match outcome {
                Some(failed) => {
                    self.probe_results.add(failed, slow);
                    // In fleet mode the fleet's probes decide, at a flush.
                    if !self.fleet_decides()
                        && self.probe_results.calls >= self.settings.permitted_in_half_open
                    {
                        let to = if self.rates_trip(self.probe_results) {
                            State::Open
                        } else {
                            State::Closed
                        };
                        self.set(to, now, &mut t);
                    }
                }
                // An ignored probe gives its slot back.
                None => self.probes_admitted = self.probes_admitted.saturating_sub(1),
            },
            // Calls admitted in an earlier state (or generation) no longer count.
            _ => {}
        }
        t
    }

    /// Opens a CLOSED breaker whose window's totals reach a threshold (with at least
    /// `minimum_calls` calls).
    fn trip_if_due(&mut self, now: Duration, out: &mut Option<Transition>) {
        if self.state == State::Closed
            && !self.fleet_decides()
            && self.settings.trips(self.window.totals())
        {
            self.set(State::Open, now, out);
        }
    }

    /// After an outcome was recorded into the window without the lock: applies due timers
    /// and opens the breaker if the window now trips it.
    pub(crate) fn recorded(&mut self, now: Duration) -> Option<Transition> {
        let mut t = None;
        self.tick(now, &mut t);
        self.trip_if_due(now, &mut t);
        t
    }

    /// A permitted call was dropped before it finished: free its probe slot.
    pub(crate) fn cancel(&mut self, permit: Permit) {
        if let Permit::Probe(g) = permit
            && self.state == State::HalfOpen
            && g == self.generation
        {
            self.probes_admitted = self.probes_admitted.saturating_sub(1);
        }
    }

    /// Moves to `to` by hand (`BreakerHandle`). CLOSED starts with fresh metrics.
    pub(crate) fn force(&mut self, to: State, now: Duration) -> Option<Transition> {
        let mut t = None;
        if to == State::Closed && self.state == State::Closed {
            self.window.clear();
        }
        self.set(to, now, &mut t);
        t
    }
}

mod fleet;
pub(crate) use fleet::{FleetReport, FleetView};

#[cfg(test)]
#[allow(clippy::many_single_char_names)]
mod tests;

#[cfg(test)]
mod vocabulary {
    use super::State;
    use palisade_core::event::state;

    #[test]
    fn state_names_and_codes_are_cores() {
        for code in 0..6_u8 {
            let s = State::from_u8(code);
            assert_eq!(state::code(s.as_str()), Some(s as u8));
        }
    }
}
