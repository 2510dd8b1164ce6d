//! Events emitted by the circuit breaker.

use std::time::Duration;

use palisade_core::event::{Event, InstanceName};

use crate::State;

/// What a circuit breaker did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakerEvent {
    /// The state changed.
    StateChanged {
        /// The breaker's name.
        instance: InstanceName,
        /// The state before.
        from: State,
        /// The state after.
        to: State,
    },
    /// A call was rejected without reaching the service.
    Rejected {
        /// The breaker's name.
        instance: InstanceName,
        /// The state that rejected it.
        state: State,
        /// The retry hint given to the caller.
        retry_after: Option<Duration>,
    },
    /// Fleet mode: a flush could not reach Redis, so this instance now decides from its own
    /// window, probe count and timers (emitted once per outage).
    FleetDegraded {
        /// The breaker's name.
        instance: InstanceName,
        /// What went wrong (the Redis error, or the timeout).
        error: String,
    },
    /// Fleet mode: a flush reached Redis again after [`FleetDegraded`](Self::FleetDegraded);
    /// the instance follows the fleet's state again.
    FleetRejoined {
        /// The breaker's name.
        instance: InstanceName,
    },
}

impl Event for BreakerEvent {
    fn layer(&self) -> &'static str {
        "breaker"
    }
    fn name(&self) -> &'static str {
        match self {
            Self::StateChanged { .. } => "state_changed",
            Self::Rejected { .. } => "rejected",
            Self::FleetDegraded { .. } => "fleet_degraded",
            Self::FleetRejoined { .. } => "fleet_rejoined",
        }
    }
    fn instance(&self) -> &str {
        match self {
            Self::StateChanged { instance, .. }
            | Self::Rejected { instance, .. }
            | Self::FleetDegraded { instance, .. }
            | Self::FleetRejoined { instance } => instance,
        }
    }
    /// The state after a change, or the state that rejected.
    fn state(&self) -> Option<&'static str> {
        match self {
            Self::StateChanged { to: s, .. } | Self::Rejected { state: s, .. } => Some(s.as_str()),
            Self::FleetDegraded { .. } | Self::FleetRejoined { .. } => None,
        }
    }
    fn previous_state(&self) -> Option<&'static str> {
        match self {
            Self::StateChanged { from, .. } => Some(from.as_str()),
            Self::Rejected { .. } | Self::FleetDegraded { .. } | Self::FleetRejoined { .. } => None,
        }
    }
    /// The retry hint of a rejection.
    fn duration(&self) -> Option<Duration> {
        match self {
            Self::Rejected { retry_after, .. } => *retry_after,
            Self::StateChanged { .. } | Self::FleetDegraded { .. } | Self::FleetRejoined { .. } => {
                None
            }
        }
    }
}
