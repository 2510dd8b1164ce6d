//! The state machine's side of fleet mode (see `crate::fleet`): what a flush reports of this
//! instance, and how the fleet's answer moves the local state.
//!
//! While the last flush reached Redis ("connected") the fleet decides: the local window and
//! timers make no transition, the state follows the shared one at each flush, and HALF_OPEN
//! admits only the probes leased to this instance. Otherwise the machine is the ordinary
//! local breaker, on the window it has kept recording all along.

// Without the `redis` feature nothing turns fleet mode on.
#![cfg_attr(not(feature = "redis"), allow(dead_code))]

use std::time::Duration;

use super::{Machine, State, Transition};
use crate::window::Totals;

/// This instance's view of the shared breaker.
#[derive(Debug)]
pub(crate) struct FleetLocal {
    /// The last flush reached Redis.
    pub(super) connected: bool,
    /// The shared epoch the local state follows, `None` until it follows one (or after a
    /// failed flush): probe reports and leases are only valid for this epoch.
    pub(super) epoch: Option<u64>,
    /// Probe permits leased to this instance in the current HALF_OPEN epoch.
    pub(super) leases: u32,
    /// A call met OPEN or HALF_OPEN since the last flush, so this instance asks for leases.
    pub(super) demand: bool,
    /// The fleet's window and probe outcomes, as the last flush read them.
    pub(super) window: Totals,
    pub(super) probes: Totals,
    pub(super) flush_interval: Duration,
}

/// What one flush reports of this instance's probes (the window's counts travel apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FleetReport {
    /// The shared epoch this instance is in, if any.
    pub(crate) epoch: Option<u64>,
    /// Leased probe permits not yet finished (in flight or unused).
    pub(crate) held: u32,
    /// Outcomes of this instance's probes in that epoch (absolute, so a lost reply loses
    /// nothing).
    pub(crate) probes: Totals,
    /// Probe permits wanted.
    pub(crate) want: u32,
}

/// The fleet's answer to a flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FleetView {
    /// CLOSED, OPEN or HALF_OPEN.
    pub(crate) state: State,
    pub(crate) epoch: u64,
    /// Time left of OPEN.
    pub(crate) open_remaining: Duration,
    /// Probe permits leased to this instance by this flush.
    pub(crate) granted: u32,
    /// The fleet's window.
    pub(crate) window: Totals,
    /// The fleet's probe outcomes in HALF_OPEN.
    pub(crate) probes: Totals,
}

impl Machine {
    /// Turns fleet mode on. The machine decides locally until the first flush succeeds.
    pub(crate) fn enable_fleet(&mut self, flush_interval: Duration) {
        self.fleet = Some(FleetLocal {
            connected: false,
            epoch: None,
            leases: 0,
            demand: false,
            window: Totals::default(),
            probes: Totals::default(),
            flush_interval,
        });
    }

    /// What the next flush reports; clears the demand flag and gives back leases this
    /// instance did not use since the last flush.
    pub(crate) fn fleet_report(&mut self) -> Option<FleetReport> {
        let half_open = self.state == State::HalfOpen;
        let f = self.fleet.as_mut()?;
        let mut report = FleetReport {
            epoch: f.epoch,
            held: 0,
            probes: Totals::default(),
            want: 0,
        };
        if half_open && f.connected && f.epoch.is_some() {
            if !f.demand {
                f.leases = f.leases.min(self.probes_admitted);
            }
            report.held = f.leases.saturating_sub(self.probe_results.calls);
            report.probes = self.probe_results;
        }
        if f.demand {
            report.want = self.settings.permitted_in_half_open;
        }
        f.demand = false;
        Some(report)
    }

    /// Follows the fleet's state after a successful flush. The special states (DISABLED,
    /// FORCED_OPEN, METRICS_ONLY), set by hand, are kept.
    pub(crate) fn fleet_sync(&mut self, view: FleetView, now: Duration) -> Option<Transition> {
        let mut t = None;
        let Some(f) = self.fleet.as_mut() else {
            return t;
        };
        f.connected = true;
        f.window = view.window;
        f.probes = view.probes;
        let same_epoch = f.epoch == Some(view.epoch);
        f.epoch = Some(view.epoch);
        if matches!(
            self.state,
            State::Disabled | State::ForcedOpen | State::MetricsOnly
        ) {
            return t;
        }
        match view.state {
            State::Open => {
                self.set(State::Open, now, &mut t);
                self.open_until = now + view.open_remaining;
            }
            State::HalfOpen => {
                if self.state != State::HalfOpen || !same_epoch {
                    // A new HALF_OPEN period: earlier probes no longer count.
                    let from = self.state;
                    self.state = State::Closed; // so that `set` sees a change
                    self.set(State::HalfOpen, now, &mut t);
                    if let Some(tr) = &mut t {
                        tr.from = from;
                    }
                    if from == State::HalfOpen {
                        t = None;
                    }
                    if let Some(f) = self.fleet.as_mut() {
                        f.leases = 0;
                    }
                }
                if let Some(f) = self.fleet.as_mut() {
                    f.leases = f.leases.saturating_add(view.granted);
                }
            }
            _ => self.set(State::Closed, now, &mut t),
        }
        t
    }

    /// A flush failed: decide locally from now on, on this instance's own window and probe
    /// count (and its timers), until a flush succeeds again.
    pub(crate) fn fleet_lost(&mut self, now: Duration) -> Option<Transition> {
        let f = self.fleet.as_mut()?;
        f.connected = false;
        f.epoch = None;
        f.leases = 0;
        let mut t = None;
        self.tick(now, &mut t);
        self.trip_if_due(now, &mut t);
        t
    }
}

#[cfg(test)]
#[allow(clippy::many_single_char_names)]
mod tests {
    use super::*;
    use crate::machine::{Permit, Settings};
    use crate::window::SlidingWindow;

    const MS: Duration = Duration::from_millis(1);
    const FLUSH: Duration = Duration::from_millis(100);

    fn settings() -> Settings {
        Settings {
            window: SlidingWindow::Time(10),
            minimum_calls: 5,
            failure_rate: 50.0,
            slow_rate: 100.0,
            slow_call: Duration::from_secs(60),
            wait_in_open: Duration::from_secs(60),
            wait_multiplier: 1.0,
            max_wait_in_open: Duration::from_secs(60),
            permitted_in_half_open: 3,
            max_wait_in_half_open: None,
            automatic: false,
        }
    }

    fn view(state: State, epoch: u64, granted: u32) -> FleetView {
        FleetView {
            state,
            epoch,
            open_remaining: if state == State::Open {
                Duration::from_secs(30)
            } else {
                Duration::ZERO
            },
            granted,
            window: Totals::default(),
            probes: Totals::default(),
        }
    }

    fn connected() -> Machine {
        let mut m = Machine::new(settings());
        m.enable_fleet(FLUSH);
        assert_eq!(
            m.fleet_sync(view(State::Closed, 0, 0), Duration::ZERO),
            None
        );
        m
    }

    fn fail(m: &mut Machine, now: Duration) -> Result<(), ()> {
        let (p, _) = m.acquire(now);
        let p = p.map_err(|_| ())?;
        m.record(p, Some(true), Duration::ZERO, now);
        Ok(())
    }

    #[test]
    fn while_connected_only_the_fleet_opens_and_half_opens() {
        let mut m = connected();
        for _ in 0..10 {
            fail(&mut m, MS).unwrap();
        }
        assert_eq!(m.state(), State::Closed, "the local window decides nothing");
        let t = m.fleet_sync(view(State::Open, 1, 0), 2 * MS).unwrap();
        assert_eq!((t.from, t.to), (State::Closed, State::Open));
        assert_eq!(m.open_until(), 2 * MS + Duration::from_secs(30));
        // Past the shared wait the state stays OPEN until the fleet says otherwise, with a
        // retry hint of one flush.
        let (r, t) = m.acquire(Duration::from_secs(40));
        assert_eq!(t, None);
        assert_eq!(r.unwrap_err().retry_after, Some(FLUSH));
        let report = m.fleet_report().unwrap();
        assert_eq!(report.want, 3, "a call met OPEN: asks for probe leases");
        assert_eq!(m.fleet_report().unwrap().want, 0, "demand is per flush");
    }

    #[test]
    fn half_open_admits_only_leased_probes_and_reports_them() {
        let mut m = connected();
        m.fleet_sync(view(State::Open, 1, 0), MS);
        let t = m.fleet_sync(view(State::HalfOpen, 2, 2), 2 * MS).unwrap();
        assert_eq!((t.from, t.to), (State::Open, State::HalfOpen));
        let now = 3 * MS;
        let (a, _) = m.acquire(now);
        let (b, _) = m.acquire(now);
        let (c, _) = m.acquire(now);
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(c.unwrap_err().retry_after, Some(FLUSH));
        // Three probe outcomes would close a local breaker; here only the fleet decides.
        m.record(a, Some(false), Duration::ZERO, now);
        let report = m.fleet_report().unwrap();
        assert_eq!(report.epoch, Some(2));
        assert_eq!((report.held, report.probes.calls, report.want), (1, 1, 3));
        m.record(b, Some(true), Duration::ZERO, now);
        assert_eq!(m.state(), State::HalfOpen);
        // One more lease in the same epoch adds up; a probe of an old epoch no longer counts.
        m.fleet_sync(view(State::HalfOpen, 2, 1), 4 * MS);
        let (d, _) = m.acquire(now);
        let d = d.unwrap();
        m.fleet_sync(view(State::HalfOpen, 3, 0), 5 * MS);
        m.record(d, Some(true), Duration::ZERO, now);
        let report = m.fleet_report().unwrap();
        assert_eq!(report.epoch, Some(3));
        assert_eq!((report.held, report.probes.calls), (0, 0));
        assert!(m.acquire(now).0.is_err(), "no lease in epoch 3");
        let t = m.fleet_sync(view(State::Closed, 4, 0), 6 * MS).unwrap();
        assert_eq!((t.from, t.to), (State::HalfOpen, State::Closed));
        assert_eq!(m.acquire(now).0, Ok(Permit::Recorded));
    }

    #[test]
    fn unused_leases_go_back_when_no_call_wants_them() {
        let mut m = connected();
        m.fleet_sync(view(State::HalfOpen, 1, 3), MS);
        let (p, _) = m.acquire(MS);
        let p = p.unwrap();
        assert_eq!(
            m.fleet_report().unwrap().held,
            3,
            "demand: keeps its leases"
        );
        let report = m.fleet_report().unwrap();
        assert_eq!(
            (report.held, report.want),
            (1, 0),
            "two unused leases given back"
        );
        m.cancel(p);
        assert_eq!(m.fleet_report().unwrap().held, 0);
    }

    #[test]
    fn a_lost_fleet_leaves_the_local_breaker_in_charge() {
        let mut m = connected();
        for _ in 0..5 {
            fail(&mut m, MS).unwrap();
        }
        assert_eq!(m.state(), State::Closed);
        let t = m.fleet_lost(2 * MS).unwrap();
        assert_eq!(
            (t.from, t.to),
            (State::Closed, State::Open),
            "its own window trips"
        );
        assert_eq!(m.fleet_report().unwrap().epoch, None);
        // Rejoining follows the fleet, whatever the local state.
        let t = m.fleet_sync(view(State::Closed, 7, 0), 3 * MS).unwrap();
        assert_eq!((t.from, t.to), (State::Open, State::Closed));
        // Special states set by hand stay.
        m.force(State::ForcedOpen, 4 * MS);
        assert_eq!(m.fleet_sync(view(State::Open, 8, 0), 5 * MS), None);
        assert_eq!(m.state(), State::ForcedOpen);
    }
}
